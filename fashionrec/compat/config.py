"""Training settings shared by every model kind, and the named presets.

A kind's own settings (sizes, margins, and its measured-best epochs, learning rate and batch
size) live beside its model (``mlp.MLPConfig``, ``type_aware.TypeAwareConfig``,
``outfit.OutfitConfig``), as nanoGPT keeps ``GPTConfig`` next to ``GPT``. ``TrainConfig``'s
epochs, lr and batch_size are overrides: None means the kind's own value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fashionrec.core.config import check_range
from fashionrec.core.errors import ConfigError

NEGATIVE_SAMPLERS = ("random", "same_group")


@dataclass(frozen=True)
class TripletConfig:
    negatives: str = "random"  # "random" (the design) or "same_group" (type-aware, Vasileva et al.)
    seed: int = 0  # makes the sampled negatives reproducible

    def __post_init__(self) -> None:
        if self.negatives not in NEGATIVE_SAMPLERS:
            raise ConfigError(
                f"unknown negative sampler {self.negatives!r}; choose one of: {', '.join(NEGATIVE_SAMPLERS)}"
            )


@dataclass(frozen=True)
class TrainConfig:
    epochs: int | None = None  # None: the model kind's own (the design's preset: 10)
    lr: float | None = None  # None: the kind's own (the design's preset: 1e-4)
    batch_size: int | None = None  # None: the kind's own (the design's preset: 1024)
    weight_decay: float = 0.0  # Adam weight decay (the design uses none)
    seed: int = 0  # weight init and batch order
    device: str = "auto"  # "auto" = CUDA when available, else CPU; embeddings live there whole
    bf16_autocast: bool = False  # bf16 autocast of forward/backward (fp32 weights): for CUDA or CPUs with native bf16
    cuda_graphs: bool = True  # on CUDA, replay each full batch's step as one captured CUDA graph

    def __post_init__(self) -> None:
        if self.epochs is not None:
            check_range(self, "epochs", 1)
        if self.lr is not None:
            check_range(self, "lr", 0.0, low_open=True)
        if self.batch_size is not None:
            check_range(self, "batch_size", 1)
        check_range(self, "weight_decay", 0.0)

    def resolved(self, kind_settings) -> "TrainConfig":
        """This config with the kind's own epochs, lr and batch size where none was given."""
        return replace(self, **{k: getattr(kind_settings, k) for k in ("epochs", "lr", "batch_size")
                                if getattr(self, k) is None})


@dataclass(frozen=True)
class Preset:
    """A named set of training choices (``fashionrec train --preset NAME``); flags given beside
    it still win."""

    model: str
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    negatives: str | None = None
    description: str = ""


PRESETS: dict[str, Preset] = {
    # the original design, reproducible: its MLP, 10 epochs, Adam lr 1e-4, batches of 1024 pairs,
    # negatives drawn from any item
    "design": Preset("mlp", 10, 1e-4, 1024, "random", "the original design's MLP and settings"),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None

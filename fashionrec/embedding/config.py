"""The embedding stage's settings (``EmbedConfig``), checked against the backbone registry."""

from __future__ import annotations

from dataclasses import dataclass

from fashionrec.core.config import check_range
from fashionrec.core.errors import ConfigError
from fashionrec.embedding.backbones import backbone

CPU_FORWARD_BATCH = 8  # EmbedConfig.forward_batch's auto value on a CPU
AUTO_DECODE_BATCH = {"cpu": 32, "cuda": 128}  # EmbedConfig.batch_size's auto value per device type
MAX_AUTO_WORKERS = 16  # EmbedConfig.num_workers' auto value on CUDA: one per core, at most this

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DECODERS = ("auto", "pil", "torchvision")
ENGINES = ("auto", "torch", "onnxruntime")  # what runs the CNN on a CPU (embedding/onnx_cpu.py)


def _check_choice(config: object, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


@dataclass(frozen=True)
class EmbedConfig:
    backbone: str = "resnet50"  # a key of embedding.backbones.BACKBONES; the design uses ResNet50 (2048-d)
    batch_size: int = 0  # images decoded and moved to the device together; 0 = auto (CPU 32, CUDA 128)
    # images per forward pass; 0 = auto: 8 on a CPU (batches that stay in its caches: 32 was
    # slower than 8 on the 2-core benchmark machine), the whole batch on CUDA
    forward_batch: int = 0
    shard_size: int = 512  # images per shard: one Prefect task and one Parquet part each
    # DataLoader processes that read, check and decode the images (0 = the calling process);
    # -1 = auto: on CUDA one per CPU core up to 16 (a GPU outruns any single decoder), on a CPU 0
    # (the CNN already uses every core; a decoding process competed with it when measured)
    num_workers: int = -1
    # "auto": bf16 autocast on CPUs with native bf16 (for backbones where it beats ONNX Runtime's
    # fp32 there: ResNet50, not the Lites, see Encoder.cpu_autocast) and fp16 on CUDA, each kept only if it
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
        backbone(self.backbone)  # a ConfigError naming the known backbones
        check_range(self, "shard_size", 1)
        check_range(self, "batch_size", 0)
        check_range(self, "forward_batch", 0)
        check_range(self, "num_workers", -1)
        _check_choice(self, "precision", PRECISIONS)
        _check_choice(self, "engine", ENGINES)
        _check_choice(self, "decode", DECODERS)

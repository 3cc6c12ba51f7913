"""The fast paths give the results of the slow ones: blocked top-K, the decomposed scorer, the
index-tensor training loop, the low-precision guard and JPEG draft decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fashionrec.compat import CompatibilityMLP, DecomposedScorer
from fashionrec.config import EmbedConfig, TrainConfig
from fashionrec.errors import ConfigError
from fashionrec.images import EvalPreset, load_image
from fashionrec.neighbors import blocked_topk
from fashionrec.precision import candidate_dtype, check_vectors, choose_autocast
from fashionrec.training import batch_orders, train_pairs


def _brute_force(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full stable sort of every row: score descending, lower index first among equals."""
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.mark.parametrize("n, block", [(97, 10), (97, 97), (97, 200), (250, 33)])
def test_blocked_topk_with_ties_equals_a_stable_full_sort(n, block):
    # small integer vectors: dot products are exact, so duplicated rows make exact ties,
    # also across the k-th place, and blocks that do not divide n leave a ragged last block
    g = torch.Generator().manual_seed(n)
    base = torch.randint(-2, 3, (n // 3 + 1, 8), generator=g).float()
    x = base[torch.randint(0, base.shape[0], (n,), generator=g)]
    idx, val = blocked_topk(x, x, 9, block_size=block, exclude_self=True)
    sims = (x @ x.T).numpy().astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    ref_idx, ref_val = _brute_force(sims, 9)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)
    assert (idx != np.arange(n)[:, None]).all()


def test_blocked_topk_k_larger_than_candidates():
    x = torch.eye(4)
    idx, val = blocked_topk(x, x, 10, block_size=3, exclude_self=True)
    assert idx.shape == (4, 3)
    np.testing.assert_array_equal(idx[0], [1, 2, 3])  # all tied at 0: lower index first


def test_decomposed_scores_equal_the_forward_and_give_the_same_topk():
    torch.manual_seed(1)
    model = CompatibilityMLP(96, 48).eval()
    xa = nn.functional.normalize(torch.randn(40, 96), dim=1)
    xb = nn.functional.normalize(torch.randn(130, 96), dim=1)
    scorer = DecomposedScorer(model)
    pa, _ = scorer.project(xa)
    _, pb = scorer.project(xb)
    # chunk sizes that split rows, columns and neither
    for chunk in (48 * 7, 48 * 130 * 3, 1 << 20):
        scores = scorer.scores(pa, pb, chunk=chunk)
        i, j = torch.meshgrid(torch.arange(40), torch.arange(130), indexing="ij")
        with torch.no_grad():
            ref = model(xa[i.ravel()], xb[j.ravel()]).reshape(40, 130)  # the pairwise forward
        torch.testing.assert_close(scores, ref, atol=1e-4, rtol=0)
    idx, _ = blocked_topk(pa, pb, 5, block_size=16, score_block=scorer.logits)
    ref_idx, _ = _brute_force(ref.numpy().astype(np.float64), 5)
    np.testing.assert_array_equal(idx, ref_idx)


class _SlidesDataset(Dataset):
    """The design's CompatibilityDataset (slides, step 6), on the CPU."""

    def __init__(self, pairs, labels, features):
        self.pairs, self.labels, self.features = pairs, labels, features

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, idx):
        id1, id2 = self.pairs[idx]
        x1 = self.features[id1].to("cpu")
        x2 = self.features[id2].to("cpu")
        label = torch.tensor(self.labels[idx], dtype=torch.float32).to("cpu")
        return x1, x2, label


class _FixedOrder(torch.utils.data.Sampler):
    def __init__(self, orders):
        self.orders, self.epoch = orders, 0

    def __iter__(self):
        order = self.orders[self.epoch]
        self.epoch += 1
        return iter(order.tolist())

    def __len__(self):
        return len(self.orders[0])


def test_index_training_gives_the_slides_loop_losses():
    rng = np.random.default_rng(0)
    n, dim = 60, 32
    vectors = nn.functional.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(0)), dim=1)
    first, second = rng.integers(0, n, 700), rng.integers(0, n, 700)
    labels = (rng.random(700) < 0.5).astype(np.float32)
    config = TrainConfig(epochs=3, lr=1e-3, batch_size=64, hidden_dim=16, device="cpu")

    torch.manual_seed(5)
    ours = CompatibilityMLP(dim, 16)
    theirs = CompatibilityMLP(dim, 16)
    theirs.load_state_dict(ours.state_dict())
    our_losses = train_pairs(ours, vectors.numpy(), first, second, labels, config)

    # the slides' step 7 loop, fed the same pair order
    ids = [f"item{i}" for i in range(n)]
    features = {ids[i]: vectors[i] for i in range(n)}
    dataset = _SlidesDataset([(ids[a], ids[b]) for a, b in zip(first, second)], labels.tolist(), features)
    loader = DataLoader(dataset, batch_size=64, sampler=_FixedOrder(batch_orders(700, config)))
    optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    loss_fn = nn.BCELoss()
    slides_losses = []
    for _ in range(config.epochs):
        total = 0.0
        for x1, x2, label in loader:
            out = theirs(x1, x2).squeeze()
            loss = loss_fn(out, label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        slides_losses.append(total / len(loader))
    np.testing.assert_allclose(our_losses, slides_losses, rtol=1e-4)
    assert our_losses[-1] < our_losses[0]  # it learns
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_bf16_training_stays_close_to_fp32():
    rng = np.random.default_rng(1)
    vectors = nn.functional.normalize(torch.randn(40, 32, generator=torch.Generator().manual_seed(1)), dim=1)
    first, second = rng.integers(0, 40, 300), rng.integers(0, 40, 300)
    labels = (rng.random(300) < 0.5).astype(np.float32)
    losses = {}
    for bf16 in (False, True):
        torch.manual_seed(2)
        model = CompatibilityMLP(32, 16)
        cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=50, hidden_dim=16, device="cpu", bf16_autocast=bf16)
        losses[bf16] = train_pairs(model, vectors.numpy(), first, second, labels, cfg)
    np.testing.assert_allclose(losses[True], losses[False], atol=2e-2)


def test_precision_check_passes_close_vectors_and_fails_distorted_ones():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(64, 128, generator=g)
    close = ref + 0.01 * torch.randn(64, 128, generator=g)
    good = check_vectors(ref, close)
    assert good.passed and good.min_cosine > 0.99 and good.neighbour_overlap >= 0.9
    # one vector far off: the worst cosine fails the check even though the mean is fine
    bad = close.clone()
    bad[3] = torch.randn(128, generator=g)
    worst = check_vectors(ref, bad)
    assert not worst.passed and worst.min_cosine < 0.99
    # each vector near its own (cosine >= 0.99) but neighbours reshuffled: the overlap fails
    clustered = torch.randn(1, 128, generator=g) * 10 + 0.3 * torch.randn(64, 128, generator=g)
    shuffled = clustered + 0.15 * torch.randn(64, 128, generator=g)
    result = check_vectors(clustered, shuffled)
    assert result.min_cosine >= 0.99 and result.neighbour_overlap < 0.9 and not result.passed
    assert not check_vectors(ref, torch.full_like(ref, float("nan"))).passed


def test_precision_guard_falls_back_to_fp32_when_the_check_fails():
    cpu = torch.device("cpu")
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    assert candidate_dtype("fp32", cpu) is None
    assert candidate_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="fp32"):
        candidate_dtype("int4", cpu)

    def stable(batch):
        return batch * 2.0

    def unstable(batch):  # stands for a network whose low-precision output drifts
        if torch.is_autocast_enabled("cpu"):
            return torch.flip(batch, dims=[0])
        return batch

    dtype, check = choose_autocast(stable, x, cpu, "bf16")
    assert dtype is torch.bfloat16 and check.passed
    dtype, check = choose_autocast(unstable, x, cpu, "bf16")
    assert dtype is None and not check.passed
    assert choose_autocast(unstable, x, cpu, "fp32") == (None, None)


def test_bf16_embedding_of_real_network_passes_or_falls_back(tmp_path):
    """On this CPU (whatever its bf16 support) forcing bf16 yields vectors that either pass the
    check or come from the fp32 fallback: either way close to fp32."""
    from fashionrec.backbones import get_encoder
    from fashionrec.embedding import encode_images

    paths = []
    rng = np.random.default_rng(0)
    for i in range(12):
        arr = (rng.random((8, 8, 3)) * 255).astype("uint8")
        Image.fromarray(arr).resize((96, 128), Image.NEAREST).save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    encoder = get_encoder("efficientnet_lite0")
    ref, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32", batch_size=12))
    low, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="bf16", batch_size=12))
    cos = [float(np.dot(ref[i], low[i])) for i in range(12)]
    assert min(cos) >= 0.99


def test_forward_batches_split_the_decoded_batch_without_changing_vectors(tmp_path):
    from fashionrec.backbones import get_encoder
    from fashionrec.embedding import encode_images

    paths = []
    for i in range(7):
        Image.effect_mandelbrot((90, 120), (-2 + i / 10, -1.5, 1, 1.5), 30).convert("RGB").save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    encoder = get_encoder("efficientnet_lite0")
    whole, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32",
                                                         batch_size=7, forward_batch=7))
    split, _ = encode_images(paths, encoder, EmbedConfig(backbone="efficientnet_lite0", precision="fp32",
                                                         batch_size=7, forward_batch=3))
    assert sorted(split) == list(range(7))
    for i in range(7):
        np.testing.assert_allclose(split[i], whole[i], atol=1e-5)
    with pytest.raises(ConfigError):
        EmbedConfig(forward_batch=-1)


def test_batched_normalisation_equals_the_eval_preset(tmp_path):
    Image.effect_mandelbrot((300, 400), (-2, -1.5, 1, 1.5), 50).convert("RGB").save(tmp_path / "m.png")
    preset = EvalPreset()
    img = load_image(tmp_path / "m.png")
    ref = preset.transform()(img)
    ours = preset.normalize(preset.crop_transform()(img)[None])[0]
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_large_jpegs_are_decoded_in_draft_mode_small_ones_whole(tmp_path):
    big = Image.effect_mandelbrot((1200, 1600), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    big.save(tmp_path / "big.jpg", quality=90)
    img = load_image(tmp_path / "big.jpg", draft_size=256)
    assert min(img.size) >= 256 and img.size == (300, 400)  # decoded at 1/4 scale
    assert load_image(tmp_path / "big.jpg").size == (1200, 1600)
    big.resize((60, 80)).save(tmp_path / "small.jpg")
    assert load_image(tmp_path / "small.jpg", draft_size=256).size == (60, 80)
    # the crop fed to the network barely changes
    preset = EvalPreset()
    a = preset.transform()(img)
    b = preset.transform()(load_image(tmp_path / "big.jpg"))
    assert torch.nn.functional.cosine_similarity(a.ravel(), b.ravel(), dim=0) > 0.99


@pytest.mark.parametrize("n, block", [(97, 10), (97, 97), (97, 200), (250, 33), (2, 1)])
def test_self_topk_with_ties_equals_a_stable_full_sort(n, block):
    from fashionrec.neighbors import self_topk

    g = torch.Generator().manual_seed(n + 1)
    base = torch.randint(-2, 3, (n // 3 + 1, 8), generator=g).float()
    x = base[torch.randint(0, base.shape[0], (n,), generator=g)]
    idx, val = self_topk(x, 9, block_size=block)
    sims = (x @ x.T).numpy().astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    ref_idx, ref_val = _brute_force(sims, min(9, n - 1))
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(val, ref_val)


def test_self_topk_matches_blocked_topk_on_real_valued_vectors():
    from fashionrec.neighbors import self_topk

    x = nn.functional.normalize(torch.randn(301, 24, generator=torch.Generator().manual_seed(3)), dim=1)
    idx, val = self_topk(x, 7, block_size=64)
    ref_idx, ref_val = blocked_topk(x, x, 7, block_size=50, exclude_self=True)
    np.testing.assert_allclose(val, ref_val, atol=1e-6)
    assert (idx == ref_idx).mean() > 0.99  # only last-bit near-ties may swap


def test_outfit_batches_keep_each_outfit_together_and_cover_every_pair():
    groups = np.repeat(np.array([7, 3, 9, 3, 5]), [4, 2, 6, 2, 1])  # outfit 3 appears twice, apart
    config = TrainConfig(epochs=2, batch_size=4, device="cpu")
    for order in batch_orders(len(groups), config, groups):
        assert sorted(order.tolist()) == list(range(len(groups)))
        seen = groups[order.numpy()]
        runs = [g for i, g in enumerate(seen) if i == 0 or g != seen[i - 1]]
        assert len(runs) == len(set(runs)) == 4  # each outfit's pairs form one contiguous run


def test_pairs_projected_once_per_item_give_the_concat_forward_and_gradients():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 8, generator=g)
    first = torch.tensor([0, 0, 1, 5, 5, 5, 11, 0])  # repeated items on both sides
    second = torch.tensor([1, 2, 0, 3, 3, 4, 0, 11])
    torch.manual_seed(0)
    a = CompatibilityMLP(8, 6)
    b = CompatibilityMLP(8, 6)
    b.load_state_dict(a.state_dict())
    out_a = a.logits(x[first], x[second])
    out_b = b.logits_indexed(x, first, second)
    torch.testing.assert_close(out_b, out_a)
    (out_a.sin().sum()).backward()
    (out_b.sin().sum()).backward()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(q.grad, p.grad)


def test_int8_resnet50_keeps_its_vectors_and_lite0_is_never_quantized(tmp_path):
    """int8 (x86 CPUs): calibrated on the first batch, kept only if it passes the check."""
    from fashionrec.backbones import get_encoder
    from fashionrec.embedding import encode_images
    from fashionrec.precision import int8_engine

    if int8_engine() is None:
        pytest.skip("this torch build has no x86 quantized engine")
    paths = []
    for i in range(16):
        Image.effect_mandelbrot((120, 160), (-2 + i / 20, -1.5, 1, 1.5), 20 + i).convert("RGB").save(tmp_path / f"{i}.jpg")
        paths.append(str(tmp_path / f"{i}.jpg"))
    for backbone, quantizable in (("resnet50_random", True), ("efficientnet_lite0", False)):
        encoder = get_encoder(backbone)
        assert encoder.quantizable is quantizable
        ref, _ = encode_images(paths, encoder, EmbedConfig(backbone=backbone, precision="fp32", batch_size=16))
        low, _ = encode_images(paths, encoder, EmbedConfig(backbone=backbone, precision="int8", batch_size=16))
        cos = np.array([float(np.dot(ref[i], low[i])) for i in range(16)])
        assert cos.min() >= 0.99
        if not quantizable:  # never tried: the very fp32 vectors
            np.testing.assert_allclose(np.stack([low[i] for i in range(16)]), np.stack([ref[i] for i in range(16)]), atol=1e-6)
        else:
            assert cos.min() < 1 - 1e-7, "int8 vectors differ a little from fp32"

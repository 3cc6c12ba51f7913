"""The MLP's fast paths give the results of the slow ones: the decomposed scorer, the
index-tensor training loop (the slides' loss, batch by batch), outfit batches, bf16 training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fashionrec.compat.config import TrainConfig
from fashionrec.compat.mlp import CompatibilityMLP, DecomposedScorer
from fashionrec.compat.training import batch_orders, train_pairs
from fashionrec.tables.neighbors import blocked_topk
from tests.tables.test_neighbors import _brute_force


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
    config = TrainConfig(epochs=3, lr=1e-3, batch_size=64, device="cpu")

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
        cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=50, device="cpu", bf16_autocast=bf16)
        losses[bf16] = train_pairs(model, vectors.numpy(), first, second, labels, cfg)
    np.testing.assert_allclose(losses[True], losses[False], atol=2e-2)


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

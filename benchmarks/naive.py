"""The original design's ways, as the slides do them: the baselines the benchmarks compare with.

Nothing here is used by the product. Each function is kept as close to the slides as runs on a
CPU (``.to("cuda")`` became ``.to(device)``).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


def embed_naive(paths: list[str], model: nn.Module, preset) -> np.ndarray:
    """Slides step 3: open each .jpg with PIL, transform, a batch of one, fp32, no_grad."""
    transform = transforms.Compose(
        [
            transforms.Resize(preset.resize_size, interpolation=transforms.InterpolationMode(preset.interpolation)),
            transforms.CenterCrop(preset.crop_size),
            transforms.ToTensor(),
            transforms.Normalize(preset.mean, preset.std),
        ]
    )
    model.eval()
    out = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        x = transform(img).unsqueeze(0)
        with torch.no_grad():
            feat = model(x)
        out.append(feat.squeeze(0).numpy())
    return np.stack(out)


class CompatibilityDataset(Dataset):
    """Slides step 6, verbatim but for the device."""

    def __init__(self, triplets, features, device="cpu"):
        self.pairs = []
        self.labels = []
        for a, p, n in triplets:
            self.pairs.append((a, p))  # compatible
            self.labels.append(1)
            self.pairs.append((a, n))  # incompatible
            self.labels.append(0)
        self.features = features
        self.device = device

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, idx):
        id1, id2 = self.pairs[idx]
        x1 = self.features[id1].to(self.device)
        x2 = self.features[id2].to(self.device)
        label = torch.tensor(self.labels[idx], dtype=torch.float32).to(self.device)
        return x1, x2, label


def train_naive(model: nn.Module, triplets, features, epochs: int = 1, device="cpu") -> list[float]:
    """Slides step 7: Adam 1e-4, BCELoss on the sigmoid output, DataLoader of 1024, shuffled."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.BCELoss()
    comp_dataset = CompatibilityDataset(triplets, features, device)
    comp_loader = DataLoader(comp_dataset, batch_size=1024, shuffle=True)
    losses = []
    for _ in range(epochs):
        total_loss = 0
        for x1, x2, label in comp_loader:
            out = model(x1, x2).squeeze()
            loss = loss_fn(out, label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        losses.append(total_loss / len(comp_loader))
    return losses


def similar_naive(features: np.ndarray, query: int, k: int = 10) -> np.ndarray:
    """Slides 'similarity mapping': cosine of one query against every item, then sort.

    As ``sklearn.metrics.pairwise.cosine_similarity([f[q]], f)`` followed by ``argsort``:
    both sides normalised on every call, the whole row sorted.
    """
    q = features[query : query + 1]
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    items = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = (q @ items.T)[0]
    order = np.argsort(sims)[::-1]
    return order[order != query][:k]


def compatible_naive(model: nn.Module, x: torch.Tensor, query: int, candidates: torch.Tensor,
                     k: int = 10, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Slides step 8: the model's forward on every (query, candidate) pair, then the top k."""
    scores = []
    with torch.no_grad():
        for s in range(0, len(candidates), batch):
            c = candidates[s : s + batch]
            q = x[query : query + 1].expand(len(c), -1)
            scores.append(model(q, c).squeeze(1))
    scores = torch.cat(scores)
    vals, idx = torch.sort(scores, descending=True, stable=True)
    return idx[:k].numpy(), vals[:k].numpy()

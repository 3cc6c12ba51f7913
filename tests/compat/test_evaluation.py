"""The standard evaluation on a hand-made Polyvore split whose AUC and FITB are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.compat.evaluation import evaluate_split, select_eval_items
from fashionrec.compat.mlp import CompatibilityMLP
from fashionrec.core import schemas as S
from fashionrec.core.errors import CatalogError
from fashionrec.vectors import ItemVectors

# style A items are (1, 0), style B items (0, 1); the model scores a pair high when both share a style
STYLE = {"a1": "A", "a2": "A", "a3": "A", "a4": "A", "b1": "B", "b2": "B", "b3": "B", "b4": "B"}
CATEGORY = {"a1": 11, "b1": 11, "a2": 27, "b2": 27, "a3": 41, "b3": 41, "a4": 37, "b4": 37, "x1": 3}


def style_model() -> CompatibilityMLP:
    """sigmoid(10 * (relu(a0 + b0 - 1) + relu(a1 + b1 - 1)) - 5): 0.993 for a same-style pair,
    0.0067 otherwise (exactly equal for every mixed pair)."""
    model = CompatibilityMLP(embed_dim=2, hidden_dim=2)
    with torch.no_grad():
        model.fc[0].weight.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
        model.fc[0].bias.copy_(torch.tensor([-1.0, -1.0]))
        model.fc[2].weight.copy_(torch.tensor([[10.0, 10.0]]))
        model.fc[2].bias.copy_(torch.tensor([-5.0]))
    return model.eval()


@pytest.fixture
def tiny_release(tmp_path):
    root = tmp_path / "release"
    (root / "images").mkdir(parents=True)
    (root / "nondisjoint").mkdir()
    (root / "categories.csv").write_text(
        "3,dress,all-body\r\n11,top,tops\r\n11,top,tops\r\n\r\n27,jeans,bottoms\r\n41,sneakers,shoes\r\n"
        "37,handbag,bags \r\n"
    )
    meta = {i: {"category_id": str(c), "catgeories": []} for i, c in CATEGORY.items()}
    (root / "polyvore_item_metadata.json").write_text(json.dumps(meta))
    for i in CATEGORY:
        (root / "images" / f"{i}.jpg").touch()
    test = [
        {"set_id": "s1", "items": [{"item_id": "a1", "index": 1}, {"item_id": "a2", "index": 2},
                                    {"item_id": "a3", "index": 3}, {"item_id": "x1", "index": 4}]},
        {"set_id": "s2", "items": [{"item_id": "b1", "index": 1}, {"item_id": "b2", "index": 2},
                                    {"item_id": "b3", "index": 3}]},
        {"set_id": "s3", "items": [{"item_id": "a4", "index": 1}, {"item_id": "b4", "index": 2}]},
    ]
    (root / "nondisjoint" / "test.json").write_text(json.dumps(test))
    (root / "nondisjoint" / "compatibility_test.txt").write_text(
        "1 s1_1 s1_2 s1_3 s1_4\n"  # all A (the dress has no vector): 0.993
        "1 s2_1 s2_2 s2_3\n"  # all B: 0.993
        "0  s1_1 s2_2 s1_3\n"  # A B A: (2 x 0.0067 + 0.993) / 3 = 0.336
        "1 s3_1 s3_2\n"  # A B: 0.0067, a positive the model gets wrong
        "0  s2_1 s1_2\n"  # B A: 0.0067, ties with the positive above
    )
    (root / "nondisjoint" / "fill_in_blank_test.json").write_text(json.dumps([
        # right answer s1_3 (a3, style A) and the model picks it
        {"question": ["s1_1", "s1_2"], "answers": ["s2_3", "s1_3", "s2_1", "s2_2"], "blank_position": 3},
        # right answer s3_2 (b4) but the model prefers a1, of the question's style
        {"question": ["s3_1"], "answers": ["s1_1", "s3_2", "s2_1", "s2_2"], "blank_position": 2},
    ]))
    return root


def test_auc_and_fitb_of_a_known_split(tiny_release):
    cat = load_catalog(tiny_release)
    items = select_eval_items(filter_categories(cat).items, cat, "test")
    assert items[S.ITEM_ID].to_list() == sorted(STYLE)  # the dress is filtered out
    vectors = np.asarray([[1.0, 0.0] if STYLE[i] == "A" else [0.0, 1.0] for i in items[S.ITEM_ID]], np.float32)
    result = evaluate_split(style_model(), ItemVectors(items, vectors, "test"), cat, "test")
    # positives 0.993, 0.993, 0.0067 vs negatives 0.336, 0.0067: 4 wins + 1 tie of 6 pairs
    assert result.compat_auc == pytest.approx(4.5 / 6)
    assert result.fitb_accuracy == pytest.approx(0.5)
    assert (result.outfits, result.questions, result.skipped) == (5, 2, 0)


def test_a_split_without_its_question_files_is_named(tiny_release):
    (tiny_release / "nondisjoint" / "fill_in_blank_test.json").unlink()
    cat = load_catalog(tiny_release)
    with pytest.raises(CatalogError, match="missing fill_in_blank_test.json"):
        select_eval_items(filter_categories(cat).items, cat, "test")
    with pytest.raises(CatalogError, match=r"no valid outfits \(it has \['test'\]\)"):
        select_eval_items(filter_categories(cat).items, cat, "valid")

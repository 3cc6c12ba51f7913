import hashlib
import json

from fashionrec.catalog import filter_categories, load_catalog
from fashionrec.catalog.polyvore import read_compatibility, read_fitb
from fashionrec.catalog.sample import write_sample_catalog
from fashionrec.core.groups import DEFAULT_GROUPS as GROUPS


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_is_the_polyvore_release(sample_catalog):
    root = sample_catalog
    for rel in [
        "polyvore_item_metadata.json", "categories.csv",
        "nondisjoint/train.json", "nondisjoint/valid.json", "nondisjoint/test.json",
        "nondisjoint/compatibility_valid.txt", "nondisjoint/compatibility_test.txt",
        "nondisjoint/fill_in_blank_valid.json", "nondisjoint/fill_in_blank_test.json",
    ]:
        assert (root / rel).is_file(), rel
    meta = json.loads((root / "polyvore_item_metadata.json").read_text())
    assert all({"category_id", "semantic_category", "catgeories"} <= set(m) for m in meta.values())
    assert len(list((root / "images").glob("*.jpg"))) == len(meta)
    # negative compatibility lines carry the release's double space
    lines = (root / "nondisjoint" / "compatibility_valid.txt").read_text().splitlines()
    assert any(line.startswith("0  ") for line in lines)


def test_deterministic_for_a_seed(tmp_path):
    a = write_sample_catalog(tmp_path / "a", items=60, seed=5)
    b = write_sample_catalog(tmp_path / "b", items=60, seed=5)
    c = write_sample_catalog(tmp_path / "c", items=60, seed=6)
    assert _digest(a.root) == _digest(b.root)
    assert _digest(a.root) != _digest(c.root)


def test_filter_drops_and_counts_other_categories(sample_catalog):
    cat = load_catalog(sample_catalog)
    result = filter_categories(cat)
    assert result.kept + result.dropped == cat.items.height
    assert result.dropped > 0
    assert set(result.items["category"].unique()) == set(GROUPS)
    assert set(result.dropped_by_category) <= {"dress", "hat", "necklace", "sunglasses"}
    assert sum(result.dropped_by_category.values()) == result.dropped


def test_questions_parse(sample_catalog):
    cat = load_catalog(sample_catalog)
    compat = read_compatibility(cat.split_dir / "compatibility_valid.txt", cat.outfits["valid"])
    assert sorted(set(compat.labels)) == [0, 1]
    assert compat.labels.count(1) == cat.outfits["valid"]["set_id"].n_unique()
    fitb = read_fitb(cat.split_dir / "fill_in_blank_valid.json", cat.outfits["valid"])
    assert all(len(a) == 4 for a in fitb.answers)
    assert all(0 <= c < 4 for c in fitb.correct)

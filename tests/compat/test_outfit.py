"""The outfit model: it learns from looks (beats chance on questions whose answer is new, and the
co-occurrence count on questions whose answer was styled before, on held-out looks), its
compatible table is exactly the brute-force ranking by its own score, and it is stored, loaded
and registered like every kind."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
import torch

from fashionrec.catalog.base import Catalog, FilterResult
from fashionrec.catalog.looks import split_looks, split_of
from fashionrec.catalog.polyvore import read_fitb
from fashionrec.compat.config import TrainConfig
from fashionrec.compat.evaluation import evaluate_split
from fashionrec.compat.kinds import build_model, fit_compat, info_from_dict
from fashionrec.compat.outfit import OutfitConfig, OutfitNet, steps_for
from fashionrec.core import schemas as S
from fashionrec.core.config import TopKConfig
from fashionrec.core.groups import mapping_from_dict
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.topk import compatible_topk
from fashionrec.vectors import ItemVectors

GROUPS = ("tops", "bottoms", "shoes", "bags")
FAST = OutfitConfig(min_steps=250, warmup=20)  # enough on this small fixture; the product's is 1500


@pytest.fixture(scope="module")
def looks_world(tmp_path_factory):
    """Items of 4 groups with a hidden style (their vectors say it, through noise), and looks of
    one item per group of one style; a fifth of the items appear only in held-out looks (cold)."""
    rng = np.random.default_rng(0)
    styles, per = 10, 12
    basis = rng.standard_normal((styles, 48))
    ids, groups, fines, style_of, x = [], [], [], [], []
    for g, group in enumerate(GROUPS):
        for s in range(styles):
            for n in range(per):
                ids.append(f"{group[:2]}{s:02d}{n:02d}")
                groups.append(group)
                fines.append(f"{group}-{n % 2}")
                style_of.append(s)
                x.append(basis[s] + 1.3 * rng.standard_normal(48) + 0.5 * g)
    x = np.asarray(x, np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    colours = np.abs(rng.standard_normal((len(ids), 8))).astype(np.float32)
    colours /= np.linalg.norm(colours, axis=1, keepdims=True)
    items = pl.DataFrame({S.ITEM_ID: ids, S.RAW_CATEGORY: fines, S.SEMANTIC_CATEGORY: [None] * len(ids),
                          S.GROUP: groups, S.IMAGE: [f"{i}.jpg" for i in ids]}).with_columns(
        pl.lit(None, dtype=pl.String).alias(S.TITLE)).sort(S.ITEM_ID)
    order = np.argsort(ids)
    vectors = ItemVectors(items, x[order], "synthetic-v1", colours[order])
    style = dict(zip(ids, style_of))
    by = {(g, s): [i for i, gg, ss in zip(ids, groups, style_of) if gg == g and ss == s] for g in GROUPS
          for s in range(styles)}
    cold = {i for i in ids if rng.random() < 0.2}  # in held-out looks only: new to the model
    rows = []
    for k in range(700):
        s = int(rng.integers(styles))
        held_out = split_of(f"look{k:04d}") != "train"
        for g in GROUPS:
            pool = [i for i in by[(g, s)] if held_out or i not in cold]
            rows.append((f"look{k:04d}", pool[int(rng.integers(len(pool)))]))
    looks = pl.DataFrame(rows, schema=[S.SET_ID, S.ITEM_ID], orient="row").with_columns(
        pl.int_range(1, pl.len() + 1).over(S.SET_ID).cast(pl.Int32).alias(S.OUTFIT_INDEX))
    mapping = mapping_from_dict({g: [f"{g}-0", f"{g}-1"] for g in GROUPS})
    cat = Catalog("synthetic", tmp_path_factory.mktemp("synthetic"), items.drop(S.GROUP), group_mapping=mapping,
                  looks=looks)
    filtered = FilterResult(items.select(S.ITEMS_SCHEMA.names), items.height, 0, {})
    cat = split_looks(cat, filtered, DataDir.open(tmp_path_factory.mktemp("synthetic-data")))
    return cat, vectors, style


def _cooccurrence_accuracy(cat: Catalog, split: str) -> tuple[float, float]:
    """FITB of "the candidate seen most often with the question's items in train looks" (ties:
    wrong), on the warm and on the cold questions."""
    train = cat.outfits["train"]
    members = train.group_by(S.SET_ID).agg(S.ITEM_ID)[S.ITEM_ID].to_list()
    pair = Counter((a, b) for look in members for a in look for b in look if a != b)
    seen = set(train[S.ITEM_ID].to_list())
    fitb = read_fitb(cat.split_dir / f"fill_in_blank_{split}.json", cat.outfits[split])
    hits = {True: [], False: []}
    for q, answers, right in zip(fitb.questions, fitb.answers, fitb.correct):
        s = np.asarray([sum(pair[(i, a)] for i in q) for a in answers])
        hits[answers[right] in seen].append(s[right] == s.max() and (s == s.max()).sum() == 1)
    return float(np.mean(hits[True])), float(np.mean(hits[False]))


@pytest.fixture(scope="module")
def fitted(looks_world):
    cat, vectors, _ = looks_world
    return fit_compat(vectors, None, TrainConfig(seed=0), "synthetic", GROUPS, "outfit", FAST,
                      outfits=cat.outfits["train"])


def test_it_beats_chance_when_the_answer_is_new_and_counting_when_it_was_styled(looks_world, fitted):
    cat, vectors, _ = looks_world
    result = evaluate_split(fitted.model, vectors, cat, "test")  # held-out looks
    assert result.cold_questions >= 15 and result.questions - result.cold_questions >= 50
    warm_count, cold_count = _cooccurrence_accuracy(cat, "test")
    assert result.cold_fitb_accuracy > 0.45, result  # chance: 0.25; counting knows nothing of new items
    # the warm questions alone: from all and cold, FITB's mean
    warm = (result.fitb_accuracy * result.questions - result.cold_fitb_accuracy * result.cold_questions) / (
        result.questions - result.cold_questions)
    assert warm > warm_count + 0.05, (warm, warm_count)
    assert result.compat_auc > 0.8


def test_the_compatible_table_is_the_brute_force_ranking_by_its_own_score(looks_world, fitted):
    _, vectors, _ = looks_world
    model: OutfitNet = fitted.model
    assert model.prior_count.numel() > 0, "the co-occurrence prior takes part"
    table = pl.from_arrow(compatible_topk(vectors, model, TopKConfig(k=5, block_size=37, expose=False)))
    exposing = TopKConfig(k=5, block_size=37)  # the default: the last slot may go to a list's next few
    exposed = pl.from_arrow(compatible_topk(vectors, model, exposing))
    exposed = {(a, b): c for a, b, c in exposed.group_by(S.ITEM_ID, S.NEIGHBOR_CATEGORY)
               .agg(pl.col(S.NEIGHBOR_ID).sort_by(S.RANK)).iter_rows()}
    f = model.features(vectors)
    z = model.candidate_vectors(f)
    prior = model.prior(f).toarray()
    ids = vectors.items[S.ITEM_ID].to_list()
    groups = np.asarray(vectors.groups)
    got = table.group_by(S.ITEM_ID, S.NEIGHBOR_CATEGORY).agg(pl.col(S.NEIGHBOR_ID).sort_by(S.RANK))
    got = {(a, b): c for a, b, c in got.iter_rows()}
    for i in range(0, len(ids), 9):
        for g, other in enumerate(GROUPS):
            if other == groups[i]:
                continue
            cand = np.nonzero(groups == other)[0]
            q = model.query_vectors(f, [[i]], [g])[0]
            raw = (z[torch.as_tensor(cand)] @ q).numpy().astype(np.float64) + prior[i, cand]
            order = cand[np.lexsort((cand, -raw))][: exposing.expose_depth]
            assert got[(ids[i], other)] == [ids[o] for o in order[:5]], (ids[i], other)
            assert exposed[(ids[i], other)][:4] == got[(ids[i], other)][:4]
            assert exposed[(ids[i], other)][4] in [ids[o] for o in order[4:]]
    scores = table.group_by(S.ITEM_ID, S.NEIGHBOR_CATEGORY).agg(pl.col(S.SCORE).sort_by(S.RANK).diff().max())
    assert (scores[S.SCORE] <= 1e-6).all() and table[S.SCORE].is_between(0, 1).all()


def test_outfit_and_candidate_scores_are_the_whole_outfits(looks_world, fitted):
    _, vectors, _ = looks_world
    model = fitted.model
    score = model.candidate_scorer(vectors)
    a, b, c = 0, 200, 300
    alone = score([[a]], [[c]])[0][0]
    both = score([[a, b]], [[c]])[0][0]
    assert alone != both, "the query is the whole partial outfit, not a sum of pairs"
    outfit = model.outfit_scorer(vectors)([[a, b, c]])[0]
    raw = model._raw_scorer(vectors)  # the outfit's score: its items' mean leave-one-out logit
    loo = np.mean([raw([[b, c]], [[a]])[0][0], raw([[a, c]], [[b]])[0][0], raw([[a, b]], [[c]])[0][0]])
    assert model.calibrated(raw([[a, b]], [[c]])[0])[0] == pytest.approx(both)
    assert outfit == pytest.approx(loo, rel=1e-5)


def test_it_is_stored_as_weights_and_json_and_scores_the_same_when_loaded(looks_world, fitted):
    import json

    _, vectors, _ = looks_world
    info = info_from_dict(json.loads(json.dumps(fitted.info.to_dict())))
    assert info == fitted.info and info.kind == "outfit" and info.groups == GROUPS
    assert len(info.config["item_ids"]) > 0 and "<" in str(info.summary()["config"]["item_ids"])
    again = build_model(info)
    again.load_state_dict(fitted.model.state_dict())
    again.eval()
    q = [[0, 50], [7]]
    c = [list(range(100, 140)), list(range(200, 260))]
    for x, y in zip(again.candidate_scorer(vectors)(q, c), fitted.model.candidate_scorer(vectors)(q, c)):
        np.testing.assert_array_equal(x, y)


def test_the_schedule_scales_with_the_looks():
    cfg = OutfitConfig()
    assert steps_for(300, 256, cfg) == 1500  # a tiny shop: its looks make 2 batches, it still needs the steps
    assert steps_for(13_000, 256, cfg) == 1500  # Mango's dev set: the minimum number of steps, ~29 passes
    assert steps_for(2_000_000, 256, cfg) == 15626  # a large catalogue: two passes are enough steps
    assert steps_for(300, 256, replace(cfg, epochs=3)) == 6


def test_hard_negatives_stay_in_the_targets_group_when_a_category_name_spans_groups():
    """A category named in two groups (or no category column: every item's is "") must not hand
    a shoe a top as its hard negative; a category with a single item falls back to its group."""
    from fashionrec.compat.outfit import _Features, _Pools

    grp = np.array([0, 0, 0, 0, 1, 1, 1])
    fine = np.array([1, 1, 1, 2, 1, 1, 1])  # category 1 in both groups; category 2: one item
    f = _Features(x=torch.zeros((7, 1)), col=torch.zeros((7, 0)), grp=torch.as_tensor(grp),
                  fine=torch.as_tensor(fine), ids=torch.zeros(7, dtype=torch.long))
    negs = _Pools.of(np.arange(7), fine, grp).draw(np.random.default_rng(0), np.array([0, 4, 3]), f, 200)
    assert set(negs[0]) == {0, 1, 2}  # group 0's category 1, never group 1's
    assert set(negs[1]) == {4, 5, 6}
    assert set(negs[2]) == {0, 1, 2, 3}  # alone in its category: its group


def test_it_trains_on_in_batch_negatives_alone(looks_world):
    cat, vectors, _ = looks_world
    fit = fit_compat(vectors, None, TrainConfig(seed=0), "synthetic", GROUPS, "outfit",
                     replace(FAST, fine_negatives=0, min_steps=60), outfits=cat.outfits["train"])
    assert fit.epoch_losses[-1] < fit.epoch_losses[0]


def test_same_category_negatives_are_off_where_no_category_splits_a_group(looks_world):
    """Without a category column (or one category per group) the hard negatives would be random
    same-group items: the model records fine_negatives=0; with real categories it keeps them."""
    cat, vectors, _ = looks_world
    bare = ItemVectors(vectors.items.drop(S.RAW_CATEGORY), vectors.vectors, vectors.encoder_key, vectors.colours)
    short = replace(FAST, min_steps=30)
    without = fit_compat(bare, None, TrainConfig(seed=0), "synthetic", GROUPS, "outfit", short,
                         outfits=cat.outfits["train"])
    with_fine = fit_compat(vectors, None, TrainConfig(seed=0), "synthetic", GROUPS, "outfit", short,
                           outfits=cat.outfits["train"])
    assert without.info.config["fine_negatives"] == 0
    assert with_fine.info.config["fine_negatives"] == short.fine_negatives > 0


def test_the_refresh_updates_an_outfit_champions_table_and_equals_a_full_recompute(looks_world, fitted):
    """The prior of pairs seen in looks is merged into deep lists of the inner product alone, so
    the compatible table of an outfit champion is incremental too: after removals (the item in
    most prior pairs among them), new items and changed photos, it equals a full recompute."""
    from fashionrec.tables.topk import DeepLists, PreviousTopK, TopKBasis, compatible_tables

    _, vectors, _ = looks_world
    model: OutfitNet = fitted.model
    config = TopKConfig(k=3, depth_margin=4, block_size=37)
    basis = TopKBasis(vectors.encoder_key, config.k, config.depth, config.colour_weight, "models:/m@champion", "1")
    items = vectors.items.with_columns(pl.format("sha-{}", S.ITEM_ID).alias(S.IMAGE_SHA256))
    first = compatible_tables(ItemVectors(items, vectors.vectors, vectors.encoder_key, vectors.colours),
                              model, config, basis)
    assert first.report["mode"] == "full"
    previous = PreviousTopK("r0", {S.COMPATIBLE_TABLE: first.report["basis"]}, items.select(S.ITEM_ID, S.GROUP,
                            S.IMAGE_SHA256), {S.COMPATIBLE_TABLE: DeepLists.from_table(first.state)})

    rng = np.random.default_rng(3)
    prior = model.prior(model.features(vectors))
    hub = int(np.argmax(np.diff(prior.tocsr().indptr)))  # the item with the most prior partners
    drop = set(rng.choice(items.height, 12, replace=False).tolist()) | {hub}
    keep = np.array([r for r in range(items.height) if r not in drop])
    changed = rng.choice(len(keep), 5, replace=False)
    x, col = vectors.vectors[keep].copy(), vectors.colours[keep].copy()
    x[changed] = x[changed[::-1]]  # changed photos: another item's vector
    sha = items[S.IMAGE_SHA256].to_numpy()[keep].astype(object)
    sha[changed] = [f"changed-{i}" for i in changed]
    new = items[rng.choice(items.height, 6, replace=False)].with_columns(
        pl.format("new-{}", S.ITEM_ID).alias(S.ITEM_ID), pl.format("new-{}", S.ITEM_ID).alias(S.IMAGE_SHA256))
    now_items = pl.concat([items[keep].with_columns(pl.Series(S.IMAGE_SHA256, sha.tolist(), pl.String)), new])
    new_rows = [items[S.ITEM_ID].to_list().index(i.removeprefix("new-")) for i in new[S.ITEM_ID].to_list()]
    now_x = np.concatenate([x, vectors.vectors[new_rows] * 0.9 + 0.1 * vectors.vectors[new_rows[::-1]]])
    now_c = np.concatenate([col, vectors.colours[new_rows]])
    order = np.argsort(now_items[S.ITEM_ID].to_numpy())
    now = ItemVectors(now_items[order], now_x[order].astype(np.float32), vectors.encoder_key, now_c[order])

    incremental = compatible_tables(now, model, config, basis, previous)
    full = compatible_tables(now, model, config, basis)
    assert incremental.report["mode"] == "incremental", incremental.report
    assert incremental.report["lists_recomputed"] < incremental.report["lists"] / 2, incremental.report
    assert pl.from_arrow(incremental.table).equals(pl.from_arrow(full.table))

"""Readers never see half a run: CURRENT is swapped atomically after validation, and the run it
replaced stays readable after the swap."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run
from fashionrec.tables.store import RecommendationStore
from tests.conftest import TEST_BACKBONE
from tests.support import child_env, python, read_metadata, remove_items
from tests.tables.test_store import _first_of


def test_reader_process_sees_only_complete_valid_runs_while_refreshes_publish(tmp_path, workspace, refresh):
    catalog, data, _ = workspace
    stop = tmp_path / "stop"
    reader = subprocess.Popen([python(), "-m", "tests.flows.child_reader", str(data), str(stop)],
                              env=child_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    published = []
    try:
        time.sleep(3)  # let the reader start reading the first run
        some = sorted(read_metadata(catalog))[:3]
        saved = {i: read_metadata(catalog)[i] for i in some}
        for n in range(6):  # runs of alternating content: 3 items out, then back in
            if n % 2 == 0:
                remove_items(catalog, some)
            else:
                meta = read_metadata(catalog)
                meta.update(saved)
                (catalog / "polyvore_item_metadata.json").write_text(json.dumps(meta))
            published.append(refresh(catalog, data, keep_runs=1)["run_id"])
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert reader.returncode == 0 and not result["failed"], err[-3000:]
    assert result["reads"] > 20 and result["runs"] >= 3, result
    assert current_run(data) == published[-1]
    kept = sorted(p.name for p in DataDir.open(data).tables.iterdir() if p.is_dir())
    assert set(published) <= set(kept), "runs replaced within the grace period are all kept"


def test_an_open_store_keeps_its_run_while_a_refresh_publishes(published_data, sample_catalog, tmp_path):
    from flows.nightly_refresh import nightly_refresh

    data = tmp_path / "data"
    shutil.copytree(published_data, data)
    old = RecommendationStore(data)
    items = old.items
    top, bag = _first_of(items, "tops"), _first_of(items, "bags")
    before = (old.similar(top), old.compatible(bag), old.complete_outfit([top], k=3))
    assert before[0].height == 5

    # two publishes: the run replaced by the latest swap is always kept (a reader may have just
    # resolved CURRENT), so the store's run is pruned by the second one
    for _ in range(2):
        manifest = nightly_refresh(catalog=str(sample_catalog), data_dir=str(data), backbone=TEST_BACKBONE,
                                   k=3, keep_runs=1, retire_grace_s=0)
    assert current_run(data) == manifest["run_id"] != old.run_id
    assert not DataDir.open(data).run(old.run_id).exists(), "keep_runs=1 pruned the old run from disk"
    assert DataDir.open(data).gallery(manifest["run_id"]).is_file()

    # the open store still answers from its run (files it opened stay readable)
    assert old.similar(top).equals(before[0]) and old.compatible(bag).equals(before[1])
    assert old.complete_outfit([top], k=3) == before[2]
    # a store opened now sees the new run (K=3)
    new = RecommendationStore(data)
    assert new.run_id == manifest["run_id"] and new.similar(top).height == 3
    assert new.compatible(bag, category="tops").height == 3


def test_retention_keeps_the_newest_runs_and_recently_replaced_ones(workspace, refresh):
    catalog, data, first = workspace
    runs = [first["run_id"]]
    for _ in range(3):
        runs.append(refresh(catalog, data, keep_runs=1, retire_grace_s=3600)["run_id"])
    assert sorted(p.name for p in DataDir.open(data).tables.iterdir() if p.is_dir()) == runs, "within the grace"
    time.sleep(1.1)
    last = refresh(catalog, data, keep_runs=2, retire_grace_s=1.0)["run_id"]
    kept = sorted(p.name for p in DataDir.open(data).tables.iterdir() if p.is_dir())
    assert kept == [runs[-1], last], "the newest keep_runs; older ones, replaced long enough ago, went"

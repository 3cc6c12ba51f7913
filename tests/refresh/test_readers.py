"""Readers never see half a run: CURRENT is swapped atomically after validation, and the run it
replaced stays readable after the swap."""

from __future__ import annotations

import json
import subprocess
import time

from fashionrec.publish import current_run, tables_dir
from fashionrec.store import RecommendationStore
from tests.refresh.support import add_items, child_env, python, read_metadata, refresh, remove_items


def test_reader_process_sees_only_complete_valid_runs_while_refreshes_publish(tmp_path, workspace):
    catalog, data, _ = workspace
    stop = tmp_path / "stop"
    reader = subprocess.Popen([python(), "-m", "tests.refresh.child_reader", str(data), str(stop)],
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
    kept = sorted(p.name for p in tables_dir(data).iterdir() if p.is_dir())
    assert set(published) <= set(kept), "runs replaced within the grace period are all kept"


def test_a_store_opened_on_the_old_run_keeps_reading_it(workspace):
    catalog, data, first = workspace
    store = RecommendationStore(data)
    item = store.items["item_id"][0]
    before = store.similar(item, k=3)
    new = add_items(catalog, 2, seed=5)
    manifest = refresh(catalog, data, keep_runs=1)
    assert current_run(data) == manifest["run_id"] != store.run_id == first["run_id"]
    assert store.similar(item, k=3).equals(before), "the old run is still there to read"
    assert RecommendationStore(data).similar(new[0], k=3).height == 3


def test_retention_keeps_the_newest_runs_and_recently_replaced_ones(workspace):
    catalog, data, first = workspace
    runs = [first["run_id"]]
    for _ in range(3):
        runs.append(refresh(catalog, data, keep_runs=1, retire_grace_s=3600)["run_id"])
    assert sorted(p.name for p in tables_dir(data).iterdir() if p.is_dir()) == runs, "within the grace"
    time.sleep(1.1)
    last = refresh(catalog, data, keep_runs=2, retire_grace_s=1.0)["run_id"]
    kept = sorted(p.name for p in tables_dir(data).iterdir() if p.is_dir())
    assert kept == [runs[-1], last], "the newest keep_runs; older ones, replaced long enough ago, went"

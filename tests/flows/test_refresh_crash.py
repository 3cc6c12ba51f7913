"""A refresh killed with SIGKILL (while embedding, while writing tables) resumes on the next
run without redoing finished shards, and publishes tables equal to an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fashionrec.catalog.sample import write_sample_catalog
from fashionrec.core import schemas as S
from fashionrec.embedding.backbones import encoder_key
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run
from tests.support import BACKBONE, child_env, python

TABLES = (S.SIMILAR_TABLE, S.COMPATIBLE_TABLE, S.ITEMS_TABLE, S.REJECTS_TABLE)
SHARD = 5


@pytest.fixture
def start_child(prefect_api_url, champion_template):
    """Start the nightly-refresh flow in a child process (against the session's test server)."""

    def start(tmp: Path, catalog: Path, data: Path, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [python(), "-m", "tests.flows.child_refresh", str(catalog), str(data), str(champion_template),
             "--shard-size", str(SHARD), *extra],
            env=child_env(tmp, prefect_api_url), cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    return start


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"child ended early ({proc.returncode}): {proc.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the child")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _assert_same_tables(data_a: Path, run_a: str, data_b: Path, run_b: str) -> None:
    for name in TABLES:
        a = pq.read_table(DataDir.open(data_a).table_part(run_a, name))
        b = pq.read_table(DataDir.open(data_b).table_part(run_b, name))
        assert a.schema.equals(b.schema), name
        assert a.equals(b), f"table {name} differs from the uninterrupted run's"


def test_sigkill_during_embedding_then_rerun_resumes_and_matches_a_clean_run(tmp_path, refresh, start_child):
    catalog = tmp_path / "catalog"
    write_sample_catalog(catalog, items=45, seed=21)
    clean = refresh(catalog, tmp_path / "clean", shard_size=SHARD)  # uninterrupted, for reference
    total_shards = clean["shards_embedded"]
    assert total_shards >= 6

    data = tmp_path / "data"
    store = DataDir.open(data).embeddings(encoder_key(BACKBONE))
    proc = start_child(tmp_path, catalog, data)
    _wait_for(lambda: len(list(store.glob("part-*.parquet"))) >= 2, proc)
    _kill(proc)

    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.glob("part-*.parquet")}
    finished_images = sum(pq.read_metadata(store / name).num_rows for name in finished)
    assert 2 <= len(finished) < total_shards, "killed in the middle of embedding"
    assert current_run(data) is None, "nothing published by the killed run"

    rerun = refresh(catalog, data, shard_size=SHARD)
    # finished shards were not recomputed: only the rest was embedded, and the parts are untouched
    assert rerun["shards_embedded"] == total_shards - len(finished)
    assert rerun["embedded_new"] == clean["embedded_new"] - finished_images
    assert rerun["reused"] == finished_images
    for name, stamp in finished.items():
        path = store / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{name} was rewritten"
    assert current_run(data) == rerun["run_id"]
    assert not list(store.glob(".*.tmp")), "no half-written part of the killed child is left"
    _assert_same_tables(tmp_path / "clean", clean["run_id"], data, rerun["run_id"])


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    from fashionrec.embedding.store import remove_dead_temporaries

    dead = subprocess.Popen([python(), "-c", "pass"])
    dead.wait()
    data = DataDir.open(tmp_path)
    store, rejects = data.embeddings("k"), data.rejects("k")
    rejects.mkdir(parents=True)
    gone = [store / f".part-abc.parquet.{dead.pid}.tmp", rejects / f".rejects-abc.parquet.{dead.pid}.tmp"]
    kept = store / f".part-def.parquet.{os.getpid()}.tmp"
    for p in [*gone, kept]:
        p.write_bytes(b"PAR1")
    assert sorted(remove_dead_temporaries(data, "k")) == sorted(gone)
    assert kept.exists()


def test_sigkill_while_writing_tables_publishes_nothing_and_the_rerun_cleans_up(tmp_path, workspace, refresh,
                                                                                 start_child):
    catalog, data, _ = workspace
    before = refresh(catalog, data)  # reference: an uninterrupted run on this very catalogue
    flag = tmp_path / "hung"
    proc = start_child(tmp_path, catalog, data, "--hang-after-table", S.SIMILAR_TABLE, "--flag", str(flag))
    _wait_for(flag.exists, proc)
    _kill(proc)

    killed_run = flag.read_text()
    assert DataDir.open(data).table_part(killed_run, S.SIMILAR_TABLE).exists()
    assert not DataDir.open(data).manifest(killed_run).exists()
    assert current_run(data) == before["run_id"], "readers still see the last complete run"

    rerun = refresh(catalog, data)  # the writer lock the child held died with it
    assert rerun["embedded_new"] == 0
    assert current_run(data) == rerun["run_id"]
    assert not DataDir.open(data).run(killed_run).exists(), "the half-written run was cleaned up"
    _assert_same_tables(data, before["run_id"], data, rerun["run_id"])

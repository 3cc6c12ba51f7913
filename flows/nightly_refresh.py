"""nightly-refresh: catalogue -> filter -> champion model -> embed (reusing the store) ->
titles' text vectors (reusing theirs) -> similar and compatible tables -> validate and write the run -> publish atomically.

This flow is the one definition of the refresh: the CLI, the deployments and the crash, kill and
incremental tests all run it. The whole run holds the data dir's writer lock."""

from __future__ import annotations

from dataclasses import replace

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

import flows  # noqa: F401  (routes library logs to Prefect)
from fashionrec.core import schemas as S
from fashionrec.core.config import FlowRunConfig, PublishConfig, TopKConfig
from fashionrec.embedding.backbones import embedding_dim
from fashionrec.embedding.config import EmbedConfig
from fashionrec.embedding.text import prefetch_libraries
from fashionrec.storage.data_dir import DataDir
from fashionrec.storage.locking import DataDirLock
from fashionrec.tables.publish import new_run_id
from fashionrec.tables.runs import ModelUsed, Stopwatch, assemble_run
from fashionrec.tables.topk import TopKBasis
from flows.embedding import embed_items
from flows.runners import block_runner, flow_process_threads, frozen_heap, shared_torch_threads, stage_placement
from tasks.artifacts import publish_refresh_artifacts
from tasks.catalog import filter_categories, load_catalog
from tasks.embedding import embed_titles
from tasks.storage import pull
from tasks.tables import (
    build_rejects,
    compatible_tables,
    load_previous_topk,
    publish_run,
    record_rejects,
    similar_tables,
    write_gallery,
    write_run,
    write_topk_table,
)
from tasks.training import load_champion


@flow(name="nightly-refresh", task_runner=ThreadPoolTaskRunner(max_workers=FlowRunConfig.max_workers))
def nightly_refresh(
    catalog: str,
    data_dir: str = "data",
    backbone: str | None = None,
    k: int = TopKConfig.k,
    colour_weight: float = TopKConfig.colour_weight,
    title_weights: str = str(TopKConfig.title_weights),
    fine_first: bool = TopKConfig.fine_first,
    expose: bool = TopKConfig.expose,
    split: str = "nondisjoint",
    shard_size: int = EmbedConfig.shard_size,
    keep_runs: int = PublishConfig.keep_runs,
    retire_grace_s: float = PublishConfig.retire_grace_s,
    max_reject_share: float = PublishConfig.max_reject_share,
    lock_timeout_s: float = PublishConfig.lock_timeout_s,
    rehash: bool = False,
) -> dict:
    """Recompute and publish the similar-items and compatible-items tables of a catalogue with
    the champion model (``backbone``: the champion's unless given; it must match it).
    ``rehash``: read and hash every image, not only those whose size or mtime changed."""
    logger = get_run_logger()
    data = DataDir.open(data_dir)  # s3://...: the run works on its local copy
    topk = TopKConfig(k=k, colour_weight=colour_weight, title_weights=title_weights, fine_first=fine_first,
                      expose=expose)
    publishing = PublishConfig(keep_runs, retire_grace_s, max_reject_share, lock_timeout_s)
    clock = Stopwatch()
    with frozen_heap(), DataDirLock(data, timeout_s=lock_timeout_s, purpose=f"nightly-refresh of {catalog}"):
        if data.is_remote:
            pull(data)
        run_id = new_run_id()
        # independent steps at once (numpy, pyarrow, torch free the GIL); four threads, as a table's
        # write waits in one for the table to be computed
        with flow_process_threads(max_workers=4) as side_by_side:
            # the model and the previous run's lists are read while the catalogue loads and the images embed
            champion = side_by_side.submit(load_champion, {"data": data})
            previous = side_by_side.submit(load_previous_topk, {"data": data})
            cat = load_catalog(catalog, split)  # validates the catalogue
            filtered = filter_categories(cat)
            champion = champion.result()
            embed = EmbedConfig(backbone=backbone or champion.info.backbone, shard_size=shard_size)
            champion.info.check_backbone(embed.backbone, embedding_dim(embed.backbone))  # before any heavy work
            champion.info.check_groups(cat.group_mapping.names)
            clock.lap("load")

            if S.TITLE in filtered.items.columns and filtered.items[S.TITLE].is_not_null().any():
                prefetch_libraries()  # scikit-learn loads in the background while the images embed
            embedded = embed_items(filtered.items, data, embed, rehash)
            rejects = build_rejects(embedded, data)
            record_rejects(rejects, filtered.kept, max_reject_share, data, run_id)  # too many: nothing published
            clock.lap("embed")

            titles = embed_titles(embedded.vectors, data)  # product names: text vectors (none: unchanged)
            clock.lap("text")

            # the previous run's lists are updated where the basis is the same; the two tables side by side
            basis = TopKBasis(embedded.vectors.encoder_key, k, topk.depth, colour_weight, champion.uri, champion.version)
            blocks = block_runner()  # on a Dask cluster: top-K blocks on its workers
            shared = {"config": topk, "basis": basis, "previous": previous.result(), "run_blocks": blocks}
            with shared_torch_threads(2):  # until one table is done: the other then has every thread
                similar = side_by_side.submit(similar_tables, {"vectors": titles.vectors,
                                                               "text_model": titles.model_id, **shared})
                compatible = side_by_side.submit(compatible_tables, {"vectors": embedded.vectors,
                                                                     "model": champion.model, **shared})
                next(as_completed([similar, compatible]))
            # each table is validated and written (with its deep lists) while the other is computed
            written = [side_by_side.submit(write_topk_table, {"data": data, "run_id": run_id, "name": name,
                                                              "result": future, "items": embedded.vectors.items,
                                                              "k": k})
                       for name, future in ((S.SIMILAR_TABLE, similar), (S.COMPATIBLE_TABLE, compatible))]
            similar, compatible = similar.result(), compatible.result()
            clock.lap("topk")

            model = ModelUsed(champion.uri, champion.version, champion.info.kind)
            tables, manifest = assemble_run(data, run_id, cat, filtered, embedded, rejects, similar.table,
                                            compatible.table, embed.backbone, k, model, catalog,
                                            {S.SIMILAR_TABLE: similar, S.COMPATIBLE_TABLE: compatible})
            written = [w.result() for w in written]
        result = write_run(data, tables, replace(manifest, seconds=dict(clock.seconds),
                                                 ran_on=stage_placement(blocks)), k, written)
        gallery = write_gallery(data, run_id, return_state=True)  # a page that fails costs no table
        if gallery.is_failed():
            logger.warning("the run's gallery page could not be written (%s); the run is published "
                           "without it", gallery.result(raise_on_failure=False))
        clock.lap("write")
        publish_run(data, run_id, publishing)
        clock.lap("publish")
    result["seconds"] = dict(clock.seconds)  # with the write and publish stages
    result["text"] = titles.to_dict()
    publish_refresh_artifacts(result, data)
    logger.info(
        "published run %s: %d items (%d new, %d removed, %d changed), %d embedded now, %d reused, "
        "%d rejects", run_id, result["items_published"], result["items_new"], result["items_removed"],
        result["items_changed"], result["embedded_new"], result["reused"], result["rejects"],
    )
    return result


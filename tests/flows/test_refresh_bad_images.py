"""Bad images in a refresh: converted and embedded, or rejected with a reason in
``tables/<run_id>/rejects/``; too many rejects fail the run before publishing."""

from __future__ import annotations

import polars as pl
import pytest

from fashionrec.core import schemas as S
from fashionrec.core.errors import RejectsExceededError
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.publish import current_run, read_table
from tests.embedding.badimages import KINDS


def _plant_bad_images(catalog, data) -> dict[str, str]:
    """Replace the images of some published items by each kind; return item_id -> kind."""
    items = read_table(data, S.ITEMS_TABLE).sort(S.ITEM_ID)
    planted = {}
    for item_id, kind in zip(items[S.ITEM_ID].to_list(), sorted(KINDS)):
        KINDS[kind][0](catalog / "images" / f"{item_id}.jpg")
        planted[item_id] = kind
    return planted


def test_refresh_rejects_bad_images_and_embeds_convertible_ones(workspace, refresh):
    catalog, data, _ = workspace
    planted = _plant_bad_images(catalog, data)
    manifest = refresh(catalog, data, max_reject_share=0.5)
    run = manifest["run_id"]
    assert current_run(data) == run
    rejects = pl.read_parquet(DataDir.open(data).table_part(run, S.REJECTS_TABLE))
    assert rejects.columns == [S.ITEM_ID, S.IMAGE, S.REASON]
    reasons = dict(zip(rejects[S.ITEM_ID].to_list(), rejects[S.REASON].to_list()))
    published = set(read_table(data, S.ITEMS_TABLE)[S.ITEM_ID].to_list())
    for item_id, kind in planted.items():
        expected = KINDS[kind][1]
        if expected is None:
            assert item_id in published and item_id not in reasons, f"{kind} should be embedded"
        else:
            assert item_id not in published, kind
            assert reasons[item_id].startswith(expected), (kind, reasons[item_id])
            image = rejects.filter(pl.col(S.ITEM_ID) == item_id)[S.IMAGE][0]
            assert image.endswith(f"{item_id}.jpg")
    n_rejected = sum(1 for k in planted.values() if KINDS[k][1] is not None)
    assert manifest["rejects"] == rejects.height == n_rejected
    assert manifest["items_changed"] == len(planted) - n_rejected  # new image, same item id
    assert manifest["items_removed"] == n_rejected


def test_too_many_rejects_fail_the_run_without_publishing(workspace, refresh):
    catalog, data, first = workspace
    planted = _plant_bad_images(catalog, data)
    with pytest.raises(RejectsExceededError) as err:
        refresh(catalog, data)  # default threshold: 5% of the items
    msg = str(err.value)
    n_rejected = sum(1 for k in planted.values() if KINDS[k][1] is not None)
    assert f"{n_rejected} of {first['items_filtered']} items" in msg
    assert "above the threshold of 5.0%" in msg and "nothing was published" in msg
    assert current_run(data) == first["run_id"], "the previous run stays current"
    # the reasons are there to read, in the refused run's folder named by the message
    folder = msg.split("listed in ")[1].split(";")[0]
    refused = pl.read_parquet(f"{folder}/*.parquet")
    assert refused.height == n_rejected

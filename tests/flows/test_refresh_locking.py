"""A refresh never runs beside another writer of its data dir."""

from __future__ import annotations

import pytest

from fashionrec.core.errors import LockedError
from fashionrec.storage.locking import DataDirLock
from fashionrec.tables.publish import current_run


def test_refresh_refuses_to_run_beside_another_writer(workspace, refresh):
    catalog, data, first = workspace
    with DataDirLock(data, purpose="another refresh"):
        with pytest.raises(LockedError, match="another refresh holds the writer lock"):
            refresh(catalog, data)
    assert current_run(data) == first["run_id"]

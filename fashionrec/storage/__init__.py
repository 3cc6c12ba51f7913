"""Where a data dir's files live: the ``DataDir`` layout, the writer lock, object storage."""

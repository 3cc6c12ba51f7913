"""What every stage shares: configuration, column names and schemas, errors, category groups.

Nothing here imports another fashionrec package, nor torch."""

"""The published tables: top-K computation, runs, publishing, the read API, the gallery.

- ``neighbors``: every exact top-K (similar items; compatible items of any model kind)
- ``runs``: what a refresh publishes (tables, rejects, manifest, changes since the last run)
- ``publish``: atomic publishing, validation, retention, reading published runs
- ``store``: the read API for websites (no torch); ``gallery``: the HTML page; ``report``: the
  Prefect artifacts' content; ``retrieval``: precision@k of the similar table against labels
"""

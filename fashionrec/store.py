"""The read API under its stable public name: ``from fashionrec.store import RecommendationStore``.

It lives in ``fashionrec.tables.store``; this alias imports nothing heavier (no torch, no
onnxruntime), for a shop's website backend."""

from fashionrec.tables.store import RecommendationStore, SortedTable, Suggestion

__all__ = ["RecommendationStore", "SortedTable", "Suggestion"]

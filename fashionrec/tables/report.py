"""What the operators see of a run: summary rows, recommendation examples, training results.

Plain functions that build the content of the Prefect artifacts (tables as lists of dicts,
markdown as strings) from a run's manifest, its published tables and a training result. The
Prefect code in ``tasks/artifacts.py`` only hands their output to ``create_*_artifact``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fashionrec.core import schemas as S
from fashionrec.storage.data_dir import DataDir
from fashionrec.tables.store import RecommendationStore


def refresh_summary_rows(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The refresh run as (what, value) rows: counts, throughput and seconds per stage."""
    rate = manifest.get("images_per_second")
    rows = [
        ("run", manifest.get("run_id")),
        ("model version", f"{manifest.get('model_version')} ({manifest.get('model_uri')})"),
        ("items in catalogue", manifest.get("items_in_catalog")),
        (f"items kept ({', '.join(manifest.get('groups') or ())})", manifest.get("items_filtered")),
        ("items published", manifest.get("items_published")),
        ("images embedded now (new)", manifest.get("embedded_new")),
        ("images reused from the store", manifest.get("reused")),
        ("items new since the previous run", manifest.get("items_new")),
        ("items removed since the previous run", manifest.get("items_removed")),
        ("items whose image changed (re-embedded)", manifest.get("items_changed")),
        ("rejects", manifest.get("rejects")),
        ("images per second (embedding)", "-" if rate is None else f"{rate:.1f}"),
    ]
    for name, rows_n in sorted((manifest.get("rows") or {}).items()):
        rows.append((f"rows: {name}", rows_n))
    for group, c in (manifest.get("compatible_coverage") or {}).items():
        rows.append((f"compatible table: {group} recommended",
                     f"{c['coverage']:.0%} of the items; the 10 most listed hold {c['top_share']:.0%} of the slots"))
    for stage, seconds in (manifest.get("seconds") or {}).items():
        rows.append((f"seconds: {stage}", f"{seconds:.2f}"))
    return [{"what": what, "value": "-" if value is None else str(value)} for what, value in rows]


@dataclass(frozen=True)
class Example:
    """One query item and the items the published tables suggest for it."""

    item_id: str
    category: str
    similar: list[tuple[str, float]] = field(default_factory=list)  # (item id, cosine)
    compatible: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # group -> (id, prob)


def pick_examples(data: DataDir, run_id: str, k: int = 3) -> list[Example]:
    """One query item per group (its first by item id), with its top-``k`` suggestions (looked
    up in the sorted tables: the tables themselves are not read whole)."""
    store = RecommendationStore(data, run_id)
    items = store.items.sort(S.ITEM_ID)
    examples = []
    for group in store.groups:
        first = items.filter(pl.col(S.GROUP) == group).head(1)
        if first.height == 0:
            continue
        item = first[S.ITEM_ID][0]
        by_group: dict[str, list[tuple[str, float]]] = {}
        for row in store.compatible(item, k=k).iter_rows(named=True):
            by_group.setdefault(row[S.NEIGHBOR_CATEGORY], []).append((row[S.NEIGHBOR_ID], row[S.SCORE]))
        similar = [(r[S.NEIGHBOR_ID], r[S.SCORE]) for r in store.similar(item, k=k).iter_rows(named=True)]
        examples.append(Example(item, group, similar, by_group))
    return examples


def _suggestions(pairs: list[tuple[str, float]]) -> str:
    return ", ".join(f"`{item}` ({score:.3f})" for item, score in pairs) or "-"


def examples_markdown(manifest: dict[str, Any], examples: list[Example]) -> str:
    """Markdown: the model used and, per query item, its similar and compatible suggestions."""
    lines = [
        f"# Recommendations of run {manifest.get('run_id')}",
        "",
        f"Model: **{manifest.get('model_uri')}**, version **{manifest.get('model_version')}**; "
        f"backbone `{manifest.get('backbone')}`; K = {manifest.get('k')}; "
        f"{manifest.get('items_published')} items published.",
        "",
        "| query item | group | similar (cosine) | compatible (model probability) |",
        "|---|---|---|---|",
    ]
    for ex in examples:
        compatible = "<br>".join(f"{group}: {_suggestions(pairs)}" for group, pairs in ex.compatible.items())
        lines.append(f"| `{ex.item_id}` | {ex.category} | {_suggestions(ex.similar)} | {compatible or '-'} |")
    if not examples:
        lines.append("| - | - | - | - |")
    return "\n".join(lines) + "\n"


def training_markdown(result: dict[str, Any], run_link: str | None) -> str:
    """Markdown: the registered version, its alias, valid AUC and FITB, and the MLflow run."""
    auc, fitb = result.get("compat_auc"), result.get("fitb_accuracy")
    link = f"[{result.get('mlflow_run_id')}]({run_link})" if run_link else f"`{result.get('mlflow_run_id')}`"
    return "\n".join(
        [
            f"# fashion-compat version {result.get('model_version')} (@{result.get('alias')})",
            "",
            "| metric (valid split) | value | chance |",
            "|---|---|---|",
            f"| compatibility AUC | {_fmt(auc)} | 0.5 |",
            f"| FITB accuracy | {_fmt(fitb)} | 0.25 |",
            "",
            f"MLflow run: {link}",
            "",
            "The version became `champion` only if its AUC beat the previous champion's; "
            "otherwise it is the `challenger` (see `fashionrec models`).",
        ]
    ) + "\n"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"

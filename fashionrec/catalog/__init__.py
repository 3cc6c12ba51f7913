"""Catalogue readers: the Polyvore Outfits layout (and the synthetic sample), shop exports.

``load_catalog`` opens either; every reader validates what it read (``validate``) and returns a
``Catalog`` (``base``); ``filter_categories`` keeps the items of the catalogue's groups.
"""

from __future__ import annotations

from pathlib import Path

from fashionrec.catalog.base import Catalog, CatalogReport, FilterResult, RowProblem
from fashionrec.catalog.filter import filter_categories
from fashionrec.core.config import CatalogConfig
from fashionrec.core.errors import CatalogError

__all__ = ["Catalog", "CatalogReport", "FilterResult", "RowProblem", "filter_categories", "load_catalog"]


def load_catalog(
    path: str | Path, split: str = "nondisjoint", config: CatalogConfig = CatalogConfig()
) -> Catalog:
    """Open a catalogue: a Polyvore Outfits folder (or the synthetic sample, same layout), or a
    shop catalogue described by a ``.toml`` file."""
    path = Path(path)
    if path.is_dir():
        from fashionrec.catalog.polyvore import load_polyvore

        return load_polyvore(path, split, config)
    if path.suffix == ".toml" and path.is_file():
        from fashionrec.catalog.shop import load_shop_catalog

        return load_shop_catalog(path, config)
    raise CatalogError(
        f"catalogue {path} is neither a Polyvore Outfits folder nor a shop .toml file; "
        "pass the folder holding polyvore_item_metadata.json, or a shop.toml"
    )

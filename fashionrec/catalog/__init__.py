"""Catalogue readers: the Polyvore Outfits layout and the synthetic sample."""

from fashionrec.catalog.base import Catalog, filter_categories, load_catalog

__all__ = ["Catalog", "filter_categories", "load_catalog"]

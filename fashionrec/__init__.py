"""fashionrec: similar and compatible fashion items for small shops."""

__version__ = "0.1.0"

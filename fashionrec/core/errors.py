"""Errors raised at fashionrec's boundaries. Each message says what is wrong and what to do."""

from __future__ import annotations


class FashionrecError(Exception):
    """Base class of every error fashionrec raises on purpose."""


class CatalogError(FashionrecError):
    """The catalogue on disk is missing a file, a column, or holds rows we cannot use."""


class ConfigError(FashionrecError, ValueError):
    """A configuration value (backbone name, group mapping, K, ...) is not allowed."""


class BackboneUnavailableError(FashionrecError):
    """The backbone's weights are not on this machine and cannot be downloaded."""


class ModelError(FashionrecError):
    """No usable compatibility model, or one that does not fit the embeddings at hand."""


class PublishError(FashionrecError):
    """Tables failed validation; nothing was published."""


class UnknownItemError(FashionrecError, KeyError):
    """Item ids asked for that the published tables do not hold."""

    def __init__(self, item_ids: list[str], hint: str = "") -> None:
        self.item_ids = list(item_ids)
        shown = ", ".join(self.item_ids[:10]) + (" ..." if len(self.item_ids) > 10 else "")
        msg = f"unknown item id(s): {shown}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return self.args[0]


class LockedError(FashionrecError):
    """Another writer holds the data dir's lock; ``owner`` says who (pid, host, since when)."""

    def __init__(self, message: str, owner: object = None) -> None:
        super().__init__(message)
        self.owner = owner


class RejectsExceededError(PublishError):
    """More items were rejected than the configured share allows; nothing was published."""

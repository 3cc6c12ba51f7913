"""Raw category -> group: the set of groups is data, not code.

The default mapping is the original design's ``valid_categories`` (tops, bottoms, shoes, bags),
shipped as ``groups.toml`` beside this module; a catalogue may bring its own ``[groups]`` table
of the same format, with any number of groups (two or more), e.g. dresses and outerwear too.
Every stage follows the catalogue's groups: the filter, triplets, the model's pair spaces, the
tables' "other groups", the gallery. Matching ignores case, spaces, hyphens, punctuation and a
plural "s".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

import tomllib

from fashionrec.core.errors import ConfigError

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MIN_GROUPS = 2  # a compatible item is of another group: one group alone has none


def normalize_category(raw: str) -> str:
    """Canonical key of a raw category: lower case, alphanumerics only, singular.

    >>> normalize_category(" T-Shirts ")
    'tshirt'
    """
    key = _NON_ALNUM.sub("", raw.lower())
    if len(key) > 3 and key.endswith("s") and not key.endswith("ss"):
        key = key[:-1]
    return key


@dataclass(frozen=True)
class GroupMapping:
    """Which raw categories belong to which group; ``names`` keeps the groups' order."""

    groups: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", {g: tuple(v) for g, v in self.groups.items()})
        bad = [g for g in self.groups if not _GROUP_NAME.match(g)]
        if bad:
            raise ConfigError(
                f"group name(s) {bad} in the [groups] table must be lower-case words (letters, digits, "
                "underscores), e.g. tops, bottoms, dresses"
            )
        if len(self.groups) < MIN_GROUPS:
            raise ConfigError(
                f"the [groups] table names {len(self.groups)} group(s) ({', '.join(self.groups) or 'none'}); "
                f"it needs at least {MIN_GROUPS}: compatible items are items of the other groups"
            )
        seen: dict[str, str] = {}
        for group, names in self.groups.items():
            if not names:
                raise ConfigError(f"group {group!r} in the [groups] table lists no category")
            for name in names:
                key = normalize_category(name)
                if key in seen and seen[key] != group:
                    raise ConfigError(
                        f"category {name!r} is listed under both {seen[key]!r} and {group!r} "
                        "in the [groups] table; keep it in one group"
                    )
                seen[key] = group
        object.__setattr__(self, "_lookup", seen)

    @property
    def names(self) -> tuple[str, ...]:
        """The groups, in the order the table lists them."""
        return tuple(self.groups)

    def group_of(self, *raw_categories: str | None) -> str | None:
        """The group of the first raw category that maps to one, else None."""
        lookup: dict[str, str] = self._lookup  # type: ignore[attr-defined]
        for raw in raw_categories:
            if raw:
                group = lookup.get(normalize_category(raw))
                if group is not None:
                    return group
        return None

    def to_toml(self) -> str:
        lines = ["[groups]"]
        for group, names in self.groups.items():
            lines.append(f"{group} = [{', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}]")
        return "\n".join(lines) + "\n"


def mapping_from_dict(table: Mapping[str, Iterable[str]], source: str = "[groups]") -> GroupMapping:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source} must be a table of group = [category names]")
    groups: dict[str, tuple[str, ...]] = {}
    for group, names in table.items():
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{source}: {group} must be a list of category names (strings)")
        groups[group] = tuple(names)
    try:
        return GroupMapping(groups)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_group_mapping(path: str | Path | None = None) -> GroupMapping:
    """Read a ``[groups]`` table from ``path``, or the package's default (the design's list)."""
    if path is None:
        text = resources.files("fashionrec.core").joinpath("groups.toml").read_text()
        source = "fashionrec/core/groups.toml"
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"group mapping file {path} does not exist")
        text = path.read_text()
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    if "groups" not in data:
        raise ConfigError(f"{source} has no [groups] table; expected e.g. tops = [\"tops\", ...]")
    return mapping_from_dict(data["groups"], source)


def default_mapping() -> GroupMapping:
    return _DEFAULT


_DEFAULT = load_group_mapping(None)
DEFAULT_GROUPS: tuple[str, ...] = _DEFAULT.names  # the design's four: tops, bottoms, shoes, bags

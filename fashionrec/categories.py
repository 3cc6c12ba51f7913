"""Raw category -> group mapping (tops, bottoms, shoes, bags).

The default mapping is the original design's ``valid_categories``, shipped as ``groups.toml``
inside the package; a catalogue may bring its own ``[groups]`` table of the same format.
Matching ignores case, spaces, hyphens, punctuation and a plural "s".
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

from fashionrec.errors import ConfigError

GROUPS: tuple[str, ...] = ("tops", "bottoms", "shoes", "bags")

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


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
    """Which raw categories belong to which group."""

    groups: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.groups) - set(GROUPS))
        if unknown:
            raise ConfigError(
                f"unknown group(s) {unknown} in the [groups] table; allowed groups: "
                f"{', '.join(GROUPS)}"
            )
        seen: dict[str, str] = {}
        for group, names in self.groups.items():
            for name in names:
                key = normalize_category(name)
                if key in seen and seen[key] != group:
                    raise ConfigError(
                        f"category {name!r} is listed under both {seen[key]!r} and {group!r} "
                        "in the [groups] table; keep it in one group"
                    )
                seen[key] = group
        object.__setattr__(self, "_lookup", seen)

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
        for group in GROUPS:
            names = ", ".join(f'"{n}"' for n in self.groups.get(group, ()))
            lines.append(f"{group} = [{names}]")
        return "\n".join(lines) + "\n"


def mapping_from_dict(table: Mapping[str, Iterable[str]], source: str = "[groups]") -> GroupMapping:
    groups: dict[str, tuple[str, ...]] = {}
    for group, names in table.items():
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{source}: {group} must be a list of category names (strings)")
        groups[group] = tuple(names)
    return GroupMapping(groups)


def load_group_mapping(path: str | Path | None = None) -> GroupMapping:
    """Read a ``[groups]`` table from ``path``, or the package's default (the design's list)."""
    if path is None:
        text = resources.files("fashionrec").joinpath("groups.toml").read_text()
        source = "fashionrec/groups.toml"
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
    return load_group_mapping(None)

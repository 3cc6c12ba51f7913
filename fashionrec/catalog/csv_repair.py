"""Reading a shop's CSV export as it really is: unquoted commas inside values.

A CSV row with more fields than the header (an unquoted comma inside a value) is repaired only
when exactly one column can have absorbed the extra fields: every other column must keep the
shape it has in the clean rows (integer columns stay integers, columns with few distinct values
keep one of those values). Otherwise the row is rejected and reported with its line number; it
is never silently shifted. Rows with too few fields are rejected too.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import polars as pl

from fashionrec.catalog.base import RowProblem
from fashionrec.core.errors import CatalogError

LINE = "_line"  # column of the parsed table: the row's line number in the CSV (header = 1)

_INT = re.compile(r"-?\d+")

# the characters str.strip() removes (str.isspace()), so that stripping in polars is the same
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                 "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _column_shapes(header: list[str], rows: list[list[str]]) -> list[tuple[str, set[str] | None]]:
    """What each column looks like in the clean rows: ("int", None), ("values", allowed) for
    columns with few distinct values, or ("text", None) for anything else."""
    shapes = []
    limit = max(20, len(rows) // 50)
    for j in range(len(header)):
        values = [r[j] for r in rows]
        non_empty = [v for v in values if v != ""]
        distinct = set(values)
        if non_empty and all(_INT.fullmatch(v) for v in non_empty):
            shapes.append(("int", None))
        elif len(rows) >= 20 and len(distinct) <= min(limit, len(rows) // 2):  # values repeat
            shapes.append(("values", distinct))
        else:
            shapes.append(("text", None))
    return shapes


def _fits(value: str, shape: tuple[str, set[str] | None]) -> bool:
    kind, allowed = shape
    if kind == "int":
        return value == "" or _INT.fullmatch(value) is not None
    if kind == "values":
        return value in allowed  # type: ignore[operator]
    return True


def _repair(
    fields: list[str], header: list[str], shapes: list[tuple[str, set[str] | None]]
) -> tuple[list[str] | None, str]:
    """Merge the extra fields back into the one column that can hold them, if exactly one can."""
    n, extra = len(header), len(fields) - len(header)
    fits = []
    for j in range(n):
        candidate = fields[:j] + [",".join(fields[j : j + extra + 1])] + fields[j + extra + 1 :]
        if all(_fits(v, shapes[c]) for c, v in enumerate(candidate)):
            fits.append((j, candidate))
    if len(fits) == 1:
        j, candidate = fits[0]
        return candidate, f"{len(fields)} fields for {n} columns: unquoted comma inside {header[j]!r}, merged"
    if not fits:
        return None, (f"{len(fields)} fields for {n} columns, and no single column can hold the extra "
                      "comma(s) without shifting the others; quote the value and export again")
    cols = ", ".join(repr(header[j]) for j, _ in fits)
    return None, (f"{len(fields)} fields for {n} columns: the unquoted comma could be in any of {cols}; "
                  "quote the value and export again")


def read_csv(path: Path) -> tuple[pl.DataFrame, list[RowProblem], list[RowProblem]]:
    """All columns as strings plus LINE; repaired and rejected rows by line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path} is not UTF-8 text ({exc}); export it as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CatalogError(f"{path} is empty: expected a header row and one row per product") from None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise CatalogError(f"{path}: the header names column(s) {dupes} more than once")
    n = len(header)
    clean: list[list[str]] = []
    clean_lines: list[int] = []
    long_rows: list[tuple[int, list[str]]] = []
    rejected: list[RowProblem] = []
    last = reader.line_num
    for fields in reader:  # rows of the header's width as they are: stripped, blanks dropped, below
        line, last = last + 1, reader.line_num
        if len(fields) == n:
            clean.append(fields)
            clean_lines.append(line)
            continue
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue  # blank line
        if len(fields) > n:
            long_rows.append((line, fields))
        else:
            rejected.append(RowProblem(line, f"{len(fields)} fields for {n} columns: a value is missing"))
    repaired: list[RowProblem] = []
    if long_rows:
        # the shapes are those of the clean rows stripped, blank ones left out (as below, in polars)
        stripped = [[f.strip() for f in row] for row in clean]
        kept = [i for i, row in enumerate(stripped) if any(row)]
        clean, clean_lines = [stripped[i] for i in kept], [clean_lines[i] for i in kept]
        shapes = _column_shapes(header, clean)
        for line, fields in long_rows:
            fixed, reason = _repair(fields, header, shapes)
            if fixed is None:
                rejected.append(RowProblem(line, reason))
            else:
                repaired.append(RowProblem(line, reason))
                clean.append(fixed)
                clean_lines.append(line)
    columns = list(zip(*clean)) if clean else [()] * n
    frame = pl.DataFrame(
        {h: pl.Series(h, list(col), dtype=pl.String) for h, col in zip(header, columns)}
        | {LINE: pl.Series(LINE, clean_lines, dtype=pl.Int64)}
    ).with_columns(pl.col(header).str.strip_chars(PY_WHITESPACE))  # as str.strip(), in one pass per column
    if header:
        frame = frame.filter(pl.any_horizontal(pl.col(header) != ""))  # rows of only blanks and commas
    frame = frame.sort(LINE)
    return frame, repaired, sorted(rejected, key=lambda r: r.line)

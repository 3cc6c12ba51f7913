"""The library's shape, checked: folders that follow the data flow and import only from below,
no import cycle, no orchestrator in the library, a read API without torch, data-dir paths named
in one place, and no block of code written twice between the flows and the library."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "fashionrec"
# a folder (or top-level module) imports only from folders of a lower rank
RANK = {"core": 0, "storage": 1, "vectors": 1, "catalog": 2, "embedding": 3, "compat": 4, "tables": 5, "store": 6}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (top-level and inside functions; not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _library() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in LIB.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_folders_import_only_from_below_and_never_the_orchestrator():
    problems = []
    for path in LIB.rglob("*.py"):
        name = _module_name(path)
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top in ("prefect", "flows", "tasks", "app", "prefect_dask"):
                problems.append(f"{name} imports {imported}")
            if top != "fashionrec" or name == "fashionrec" or imported == "fashionrec":
                continue
            mine, theirs = _stage(name), _stage(imported)
            if mine and theirs and mine != theirs and RANK[theirs] > RANK[mine]:
                problems.append(f"{name} ({mine}) imports {imported} ({theirs}), a folder above it")
    assert not problems, "\n".join(sorted(problems))


def test_no_import_cycle_in_the_library():
    graph = _library()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_read_api_imports_neither_torch_nor_onnxruntime():
    code = ("import sys, fashionrec.store, fashionrec.tables.store; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'torchvision', 'prefect') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_only_the_data_dir_names_the_data_dirs_files():
    """The names of a data dir's files and folders are string literals of storage/data_dir.py alone."""
    names = ('"tables"', '"embeddings"', '"mlflow.db"', '"mlartifacts"', '"CURRENT"', '"manifest.json"',
             '".lock"', '"gallery.html"', '"plans"', '"part-0.parquet"')
    found = []
    for path in LIB.rglob("*.py"):
        if path == LIB / "storage" / "data_dir.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            found += [f"{path.relative_to(ROOT)}:{n}: {name}" for name in names if name in code]
    assert not found, "\n".join(found)


_TRIVIAL = re.compile(r"^[\s()\[\]{}:,.]*$")


def _shapes(path: Path) -> list[tuple[int, str]]:
    """(line number, shape) of each meaningful line: identifiers, strings and numbers folded, so
    that a block copied with other names is still the same shape."""
    out: dict[int, list[str]] = {}
    skip_lines: set[int] = set()
    tokens = list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.string in ("import", "from") and tok.start[1] == tok.line.find(tok.string):
            skip_lines.add(tok.start[0])
    for tok in tokens:
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER) or tok.start[0] in skip_lines:
            continue
        word = {tokenize.NAME: "N" if not __import__("keyword").iskeyword(tok.string) else tok.string,
                tokenize.STRING: "S", tokenize.NUMBER: "0"}.get(tok.type, tok.string)
        out.setdefault(tok.start[0], []).append(word)
    shapes = [(n, " ".join(w)) for n, w in sorted(out.items())]
    return [(n, s) for n, s in shapes if not _TRIVIAL.match(s) and s != "S"]  # no docstring lines


def _windows(path: Path, size: int = 6) -> dict[tuple[str, ...], int]:
    lines = _shapes(path)
    return {tuple(s for _, s in lines[i : i + size]): lines[i][0] for i in range(len(lines) - size + 1)}


def test_no_block_of_six_lines_is_shared_by_the_flows_and_the_library():
    library: dict[tuple[str, ...], str] = {}
    for path in LIB.rglob("*.py"):
        for window, line in _windows(path).items():
            library.setdefault(window, f"{path.relative_to(ROOT)}:{line}")
    shared = []
    for path in (ROOT / "flows").glob("*.py"):
        for window, line in _windows(path).items():
            if window in library:
                shared.append(f"{path.relative_to(ROOT)}:{line} ~ {library[window]}")
    assert not shared, "\n".join(shared)

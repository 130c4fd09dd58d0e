"""Imports run downward only: every import in the project's code, including those inside functions,
checked against the layering order

    core  <  datasets  <  agent | VOS  <  interaction  <  scripts, benchmarks, anything else

A module may import its own package and the layers below it; ``agent`` and ``VOS`` (the parts) do not
import each other. ``tests`` may import anything. Run it alone with

    python -m pytest -q tests/test_import_layers.py      # or: python tests/test_import_layers.py (prints the graph)
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: rank per top-level package; anything else of the project (scripts, benchmarks, new rooms) is on top
LAYERS = {"core": 0, "datasets": 1, "agent": 2, "VOS": 2, "interaction": 3}
TOP = 9
#: not project code: the users' network checkouts (git-ignored), the venv, tests
SKIP_DIRS = {".venv", "tests", "__pycache__", ".git", "data", "weights", "results", "train", "runs"}
CHECKOUTS = {("VOS", "ATNet"), ("VOS", "MANet"), ("VOS", "IPN")}


def project_names() -> set[str]:
    """Top-level importable names of the project (packages and modules at the repo root)."""
    names = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    names |= {p.stem for p in ROOT.glob("*.py")}
    return names | {"benchmarks"}


def source_files() -> list[Path]:
    out = []
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT).parts
        if rel[0] in SKIP_DIRS or tuple(rel[:2]) in CHECKOUTS:
            continue
        out.append(p)
    return out


def owner(path: Path) -> str:
    """The top-level package a file belongs to ('<script>' for files at the root)."""
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else "<script>"


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, top-level name) of every import in ``path``, at any depth (functions, classes, branches)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:          # relative: stays inside its own package
                out.append((node.lineno, owner(path)))
            elif node.module:
                out.append((node.lineno, node.module.split(".")[0]))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value.split(".")[0]))
    return out


def rank(name: str) -> int:
    return LAYERS.get(name, TOP)


def violations() -> list[str]:
    names = project_names()
    bad = []
    for path in source_files():
        src = owner(path)
        for line, target in imported_names(path):
            if target not in names or target == src:
                continue
            if rank(target) > rank(src) or (rank(target) == rank(src) < TOP):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {src} (layer {rank(src)}) imports {target} "
                           f"(layer {rank(target)})")
    return bad


def graph() -> dict[str, set[str]]:
    names, edges = project_names(), defaultdict(set)
    for path in source_files():
        for _, target in imported_names(path):
            if target in names and target != owner(path):
                edges[owner(path)].add(target)
    return edges


def test_no_upward_import():
    bad = violations()
    assert not bad, "imports against the layering order (move the code up, or the part down):\n" + "\n".join(bad)


def test_checker_sees_imports_inside_functions(tmp_path):
    """The check is not vacuous: an import hidden in a function body is found."""
    f = tmp_path / "m.py"
    f.write_text("def run():\n    from interaction.loop import run_episodes\n    return run_episodes\n")
    assert (2, "interaction") in imported_names(f)
    assert rank("interaction") > rank("agent")


def test_every_library_package_is_scanned():
    seen = {owner(p) for p in source_files()}
    assert set(LAYERS) <= seen, f"missing packages: {set(LAYERS) - seen}"


if __name__ == "__main__":
    for src, targets in sorted(graph().items(), key=lambda kv: rank(kv[0])):
        print(f"{src:>12} (layer {rank(src)}) -> {', '.join(sorted(targets, key=rank))}")
    bad = violations()
    print("\n".join(bad) if bad else "no upward import")
    sys.exit(1 if bad else 0)

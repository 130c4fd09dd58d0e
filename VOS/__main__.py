"""``python -m VOS check [--root VOS]``: what each VOS backend needs, and what is missing.

For every backend in VOS/registry.py it prints whether its checkout, weights and extensions are
present, with the exact command or path that fixes each missing part. Backends expose this as a
classmethod ``check(root) -> list[(item, ok, fix)]`` (``root``: the directory holding the
checkouts); a backend without one needs nothing outside the project.
Exit status: 0 when every required item of every backend is present, 1 otherwise (items whose
name contains "optional" never fail the check).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from VOS._checkout import CHECKOUTS, VOS_DIR
from VOS.registry import BACKENDS


def check_backend(name: str, root: Path) -> list[tuple[str, bool, str]]:
    """(item, ok, fix) rows for backend ``name``; an adapter that does not import is a row too."""
    module, cls_name = BACKENDS[name].split(":")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except Exception as exc:   # an adapter still missing or broken must not hide the others
        rows = [(f"adapter {module}", False, f"does not import: {type(exc).__name__}: {exc}")]
        if name in CHECKOUTS:   # still say where the checkout goes
            info = CHECKOUTS[name]
            path = root / info.name
            rows.append((f"checkout {path}", path.is_dir(), info.clone_command()))
        return rows
    check = getattr(cls, "check", None)
    if check is None:
        return [("built in", True, "")]
    return list(check(root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m VOS", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    chk = sub.add_parser("check", help="report checkouts, weights and extensions of every backend")
    chk.add_argument("--root", type=Path, default=VOS_DIR, help="directory holding the checkouts (default: VOS/)")
    chk.add_argument("backends", nargs="*", default=list(BACKENDS), help="backends to check (default: all)")
    args = parser.parse_args(argv)

    all_ok = True
    for name in args.backends:
        if name not in BACKENDS:
            parser.error(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
        rows = check_backend(name, args.root)
        required_ok = all(ok for item, ok, _ in rows if "optional" not in item)
        all_ok &= required_ok
        print(f"{name}: {'ready' if required_ok else 'NOT READY'}")
        for item, ok, fix in rows:
            print(f"  [{'ok' if ok else '--'}] {item}")
            if not ok and fix:
                print(f"       fix: {fix}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Load a user's VOS checkout (VOS/ATNet, VOS/MANet, VOS/IPN) without letting it leak.

The published networks are plain directories of scripts whose top-level modules have generic
names (``networks``, ``config``, ``utils``, ...) that clash with each other and with ours. A
checkout is imported with its directory first on ``sys.path``; afterwards every module that came
from it is taken out of ``sys.modules`` again and whatever was there before is put back. The
module objects keep working (their globals are bound); code that imports lazily inside a
function needs the checkout's modules visible again, which ``checkout_context`` does::

    handle = load_checkout(root, ["networks.atnet", "libs.utils"], stubs={...})
    atnet = handle["networks.atnet"]
    with checkout_context(handle):          # around building and forward calls
        net = atnet.ATnet()

Old numpy aliases (``np.int``, ``np.float``, ``np.bool``, ...) used by checkout code are fixed
per module: each loaded checkout module whose global ``np`` is numpy gets a proxy that also
carries the aliases. numpy itself is only touched while the checkout's files execute their top
level (a default argument such as ``dtype=np.int`` is evaluated then), and restored right after.

Nothing here edits a checkout's files.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as _np

from VOS.base import BackendError

log = logging.getLogger(__name__)

#: the directory holding the users' checkouts (this package's directory)
VOS_DIR = Path(__file__).resolve().parent

#: module names that clash between checkouts or with the project, always isolated
CLASHING = ("networks", "config", "utils", "libs", "dataloaders", "model", "dataset", "configs",
            "correlation_package", "test", "inter_net", "interaction_net", "propagation_net",
            "utils_ipn", "models", "data", "lib")


@dataclass(frozen=True)
class CheckoutInfo:
    """Where a published network's code and weights come from."""

    name: str                 # display name and directory under VOS/
    repo: str                 # GitHub owner/name
    weights: tuple[str, ...]  # weight files relative to the checkout

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}"

    def clone_command(self) -> str:
        return f"git clone {self.url} VOS/{self.name}"


#: backend name -> checkout facts (PROTOCOL.md §7)
CHECKOUTS: dict[str, CheckoutInfo] = {
    "atnet": CheckoutInfo("ATNet", "yuk6heo/IVOS-ATNet", ("ATNet-checkpoint.pth",)),
    "manet": CheckoutInfo("MANet", "lightas/CVPR2020_MANet", ("save_step_80000.pth",)),
    "ipn": CheckoutInfo("IPN", "zyy-cn/IPN", ("weights/I.pth", "weights/P.pth")),
}


class CheckoutMissing(BackendError):
    """The checkout directory (or a file it must hold) is not there."""

    def __init__(self, path: Path | str, info: CheckoutInfo | None = None, detail: str = "") -> None:
        self.path = Path(path)
        self.info = info or _info_for(self.path)
        if self.info is not None:
            fix = f"clone it from the project root with:\n    {self.info.clone_command()}"
        else:
            fix = "clone the network's repository there"
        what = self.info.name if self.info else "VOS"
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{what} checkout not found at {self.path}{extra}; {fix}")


class WeightsMissing(BackendError):
    """A network's weight file is not where it is expected."""

    def __init__(self, path: Path | str, name: str = "VOS") -> None:
        self.path = Path(path)
        super().__init__(f"{name} weights not found at {self.path}; download them and place the file there "
                         f"(see README, 'VOS networks'), or pass weights=<path>")


def _info_for(path: Path) -> CheckoutInfo | None:
    for info in CHECKOUTS.values():
        if info.name.lower() == path.name.lower():
            return info
    return None


def checkout_dir(backend: str, root: Path | str | None = None) -> Path:
    """The checkout directory of ``backend`` ('atnet', 'manet', 'ipn') under ``root`` (default VOS/)."""
    return Path(root or VOS_DIR) / CHECKOUTS[backend].name


def require_checkout(backend: str, root: Path | str | None = None, must_have: Iterable[str] = ()) -> Path:
    """The checkout directory; raises CheckoutMissing (with the clone command) if it or a file in
    ``must_have`` (paths relative to it) is absent."""
    path = checkout_dir(backend, root)
    info = CHECKOUTS[backend]
    if not path.is_dir():
        raise CheckoutMissing(path, info)
    for rel in must_have:
        if not (path / rel).exists():
            raise CheckoutMissing(path, info, detail=f"{rel} is missing: incomplete clone?")
    return path


def require_weights(path: Path | str, name: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(path, name)
    return path


# -- numpy aliases, per module ------------------------------------------------------------------
_NP_ALIASES = {"int": int, "float": float, "bool": bool, "object": object, "str": str,
               "complex": complex, "long": int, "unicode": str}


class NumpyProxy(types.ModuleType):
    """numpy plus the aliases removed in numpy 1.24/2.0; set as a checkout module's ``np``."""

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str):
        if name in _NP_ALIASES and name not in _np.__dict__:
            return _NP_ALIASES[name]
        return getattr(_np, name)


_NP_PROXY = NumpyProxy()


@contextmanager
def _numpy_aliases() -> Iterator[None]:
    """numpy carries the old aliases only inside the block (import time of checkout files)."""
    added = [k for k in _NP_ALIASES if k not in _np.__dict__]
    for k in added:
        setattr(_np, k, _NP_ALIASES[k])
    try:
        yield
    finally:
        for k in added:
            if k in _np.__dict__:
                delattr(_np, k)


# -- the isolation --------------------------------------------------------------------------------
_LOCK = threading.RLock()


def _is_clash(name: str, clash: Iterable[str]) -> bool:
    top = name.split(".", 1)[0]
    return top in clash


def _file_of(mod: types.ModuleType) -> str | None:
    f = getattr(mod, "__file__", None)
    if f:
        return f
    paths = getattr(mod, "__path__", None)   # namespace packages have no __file__
    try:
        return next(iter(paths)) if paths else None
    except TypeError:
        return None


def _lives_in(mod: object, root: str) -> bool:
    if not isinstance(mod, types.ModuleType):
        return False
    f = _file_of(mod)
    if not f:
        return False
    try:
        return os.path.realpath(f).startswith(root + os.sep)
    except (TypeError, ValueError):
        return False


def _top_level_names(root: Path) -> set[str]:
    names = set()
    for p in root.iterdir():
        if p.suffix == ".py":
            names.add(p.stem)
        elif p.is_dir() and not p.name.startswith(".") and p.name.isidentifier():
            names.add(p.name)
    return names


@dataclass
class Checkout:
    """A loaded checkout: its modules (``handle[name]``) and what must be swapped in to use it.

    root: the checkout directory. modules: every module that came from it (or was stubbed for it),
    by dotted name; includes those imported later inside ``checkout_context``.
    """

    root: Path
    modules: dict[str, types.ModuleType] = field(default_factory=dict)
    clash: frozenset[str] = frozenset()
    _depth: int = 0

    def __getitem__(self, name: str) -> types.ModuleType:
        return self.modules[name]

    def __contains__(self, name: str) -> bool:
        return name in self.modules

    def owns(self, mod: object) -> bool:
        return _lives_in(mod, os.path.realpath(self.root))


def _names_to_isolate(handle: Checkout) -> list[str]:
    return [n for n in list(sys.modules) if _is_clash(n, handle.clash) or n in handle.modules]


def _enter(handle: Checkout) -> dict[str, types.ModuleType]:
    """Swap the checkout's modules into sys.modules; returns what was there before."""
    saved = {}
    for n in _names_to_isolate(handle):
        saved[n] = sys.modules.pop(n)
    sys.modules.update(handle.modules)
    sys.path.insert(0, str(handle.root))
    return saved


def _exit(handle: Checkout, saved: dict[str, types.ModuleType]) -> None:
    """Collect what the checkout imported, take it out, put the previous entries back."""
    root = os.path.realpath(handle.root)
    try:
        sys.path.remove(str(handle.root))
    except ValueError:
        pass
    for n, mod in list(sys.modules.items()):
        if n in handle.modules or _lives_in(mod, root):
            if n not in handle.modules:   # imported by this checkout just now
                handle.modules[n] = mod
                _fix_numpy(mod)
            del sys.modules[n]
        elif _is_clash(n, handle.clash):   # a same-named module from elsewhere: not ours to keep
            del sys.modules[n]
    sys.modules.update(saved)


def _fix_numpy(mod: types.ModuleType) -> None:
    if mod.__dict__.get("np") is _np:
        mod.np = _NP_PROXY
    if mod.__dict__.get("numpy") is _np:
        mod.numpy = _NP_PROXY


@contextmanager
def checkout_context(handle: Checkout) -> Iterator[Checkout]:
    """Make the checkout's modules importable by their own names for the duration of the block
    (wrap model building and forward calls whose code may import lazily). Re-entrant."""
    with _LOCK:
        if handle._depth:
            handle._depth += 1
            try:
                yield handle
            finally:
                handle._depth -= 1
            return
        saved = _enter(handle)
        handle._depth = 1
        try:
            yield handle
        finally:
            handle._depth = 0
            _exit(handle, saved)


def load_checkout(path: Path | str, modules: list[str], *,
                  stubs: dict[str, types.ModuleType] | None = None,
                  prepare: Callable[[], None] | None = None,
                  clash: Iterable[str] = ()) -> Checkout:
    """Import ``modules`` (dotted names, e.g. ``"networks.atnet"``) from the checkout at ``path``.

    stubs: modules put in ``sys.modules`` under the given names before importing (e.g. a
        replacement for a CUDA extension); they belong to the checkout afterwards.
    prepare: called inside the isolation (checkout first on sys.path, clashing names removed)
        right before the imports, e.g. to set ``sys.argv`` for a config that parses it.
    clash: extra top-level names to isolate, besides ``CLASHING`` and the checkout's own
        top-level modules and packages.

    Returns a ``Checkout`` handle: ``handle["networks.atnet"]`` is the module; use
    ``checkout_context(handle)`` around calls that may import more of the checkout.
    Raises CheckoutMissing if ``path`` is not a directory; import errors propagate.
    """
    root = Path(path).resolve()
    if not root.is_dir():
        raise CheckoutMissing(root)
    names = set(CLASHING) | set(clash) | _top_level_names(root)
    handle = Checkout(root=root, clash=frozenset(names))
    stubs = dict(stubs or {})
    handle.modules.update(stubs)
    with _LOCK:
        saved = _enter(handle)
        handle._depth = 1
        try:
            with _numpy_aliases():
                if prepare is not None:
                    prepare()
                for name in modules:
                    importlib.import_module(name)
        finally:
            handle._depth = 0
            _exit(handle, saved)
    missing = [m for m in modules if m not in handle.modules]
    if missing:   # imported from somewhere else than the checkout: a clash we did not isolate
        raise BackendError(f"modules {missing} did not come from {root}")
    log.debug("loaded %d modules from %s", len(handle.modules), root)
    return handle


def stub_module(name: str, **attrs: object) -> types.ModuleType:
    """A module object named ``name`` holding ``attrs`` (for ``stubs=``); marked as a package
    so that submodules can be stubbed under it."""
    mod = types.ModuleType(name)
    mod.__path__ = []   # a package, so "name.sub" can be stubbed too
    mod.__dict__.update(attrs)
    return mod


@contextmanager
def no_downloads(*modules: types.ModuleType) -> Iterator[None]:
    """Within the block, ``model_zoo.load_url``/``load_state_dict_from_url`` as seen by ``modules``
    return an empty state dict, so networks whose weights come from a checkpoint build without
    fetching ImageNet weights. Only the given modules' globals are touched, and restored."""
    def _empty(*_a, **_k):
        return {}

    fake_zoo = types.SimpleNamespace(load_url=_empty)
    undo: list[tuple[types.ModuleType, str, object]] = []
    for mod in modules:
        for attr in ("model_zoo",):
            if attr in mod.__dict__:
                undo.append((mod, attr, mod.__dict__[attr]))
                setattr(mod, attr, fake_zoo)
        for attr in ("load_url", "load_state_dict_from_url"):
            if attr in mod.__dict__:
                undo.append((mod, attr, mod.__dict__[attr]))
                setattr(mod, attr, _empty)
    try:
        yield
    finally:
        for mod, attr, old in reversed(undo):
            setattr(mod, attr, old)


def load_state_dict_file(path: Path | str, map_location: object = "cpu") -> dict:
    """A checkpoint's state dict on ``map_location``, with any ``module.`` prefix stripped and
    a wrapping ``{'state_dict': ...}``/``{'model': ...}`` unwrapped; loaded with ``weights_only=True``
    (:func:`core.checkpoint.load_state_dict`: errors name the file)."""
    from core.checkpoint import load_state_dict

    return load_state_dict(path, expected="a VOS network's state dict", map_location=map_location,
                           fix="download it again (README, 'VOS networks')")

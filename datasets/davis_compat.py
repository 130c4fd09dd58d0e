"""davisinteractive 1.0.4 on a current stack, fixed from outside.

The package (GPL-3.0, last released 2020) is installed unmodified (see the Makefile). It was
written for numpy < 1.24, networkx 2, pandas 1 and scikit-image <= 0.18. Importing this module
applies, once and idempotently, the fixes listed in ../README.md ("davisinteractive on a
current stack") and re-exports what the project uses. Every module of the project reaches
davisinteractive through here:

    from datasets.davis_compat import DavisInteractiveSession, robot_for, batched_jaccard

What is fixed, and how (no file of the package is edited or copied):
- ``np.int``/``np.float``/``np.bool`` and ``np.trapz``: each package module's global ``np``
  is replaced by a proxy of numpy that also carries those names. numpy itself is left alone,
  except for the instant of the first import, when ``dataset/davis.py`` evaluates
  ``dtype=np.int`` as a default argument.
- ``nx.from_scipy_sparse_matrix`` (networkx 3): the robot's ``nx`` is a proxy that maps it to
  ``from_scipy_sparse_array``.
- pandas >= 2: the summary's ``groupby().mean()`` runs on a frame that still holds the string
  ``session_id`` column; pandas 3: the local storage's report keeps ``object`` columns after
  concatenation to an empty frame. The report is handed out with numeric columns and the summary
  gets a frame without ``session_id``.
- scikit-image >= 0.19 breaks ties in ``medial_axis`` with an unseeded generator, so the robot's
  scribbles changed from run to run; the robot's ``medial_axis`` is called with a generator
  whose permutation is ``np.random.RandomState(0)``'s, exactly as scikit-image <= 0.18 did.
- The C mask-decoding extension (only used by the remote challenge-server connector) may fail to
  import under Cython 3 / numpy 2; it is then replaced by a module that raises when used.
"""
from __future__ import annotations

import importlib
import sys
import types

import networkx as _nx
import numpy as _np
import pandas as _pd

_ALIASES = {"int": int, "float": float, "bool": bool, "object": object, "str": str,
            "trapz": getattr(_np, "trapezoid", None) or _np.trapz}


class _NumpyProxy(types.ModuleType):
    """numpy with the aliases the package still uses."""

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str):
        if name in _ALIASES:
            return _ALIASES[name]
        return getattr(_np, name)


class _NetworkxProxy(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("networkx")

    def __getattr__(self, name: str):
        if name == "from_scipy_sparse_matrix":
            return _nx.from_scipy_sparse_array
        return getattr(_nx, name)


class _LegacyTieBreaker(_np.random.Generator):
    """A Generator whose ``permutation`` is that of ``np.random.RandomState(0)``, which is what
    scikit-image <= 0.18's ``medial_axis`` used to break ties."""

    def permutation(self, x, axis=0):  # noqa: D401 - numpy signature
        return _np.random.RandomState(0).permutation(x)


def _medial_axis_legacy(image, mask=None, return_distance=False):
    from skimage.morphology import medial_axis

    return medial_axis(image, mask=mask, return_distance=return_distance,
                       rng=_LegacyTieBreaker(_np.random.PCG64(0)))


_MODULES = [
    "davisinteractive.common",
    "davisinteractive.logging",
    "davisinteractive.utils.operations",
    "davisinteractive.utils.mask",
    "davisinteractive.utils.scribbles",
    "davisinteractive.utils.visualization",
    "davisinteractive.metrics.jaccard",
    "davisinteractive.dataset.davis",
    "davisinteractive.robot.interactive_robot",
    "davisinteractive.storage.local",
    "davisinteractive.evaluation.service",
    "davisinteractive.connector.local",
    "davisinteractive.connector.fabric",
    "davisinteractive.session.session",
]

_APPLIED = False


def _stub_mask_extension() -> None:
    name = "davisinteractive.third_party.mask_api._mask"
    try:
        importlib.import_module(name)
    except Exception as exc:  # the extension was built for an older numpy/Cython
        reason = f"{type(exc).__name__}: {exc}"
        stub = types.ModuleType(name)

        def _unavailable(*_a, **_k):
            raise RuntimeError(
                "davisinteractive's C mask decoder does not load on this numpy/Cython "
                f"({reason}); it is only needed for the remote challenge server, not local evaluation.")

        for fn in ("encode", "decode", "iou", "merge", "frPyObjects", "area", "toBbox"):
            setattr(stub, fn, _unavailable)
        sys.modules[name] = stub


def apply() -> None:
    """Import davisinteractive with every fix in place. Safe to call any number of times."""
    global _APPLIED
    if _APPLIED:
        return
    added = [k for k in ("int", "float", "bool") if k not in _np.__dict__]
    for k in added:  # only while the package's modules execute their top level
        setattr(_np, k, _ALIASES[k])
    try:
        _stub_mask_extension()
        mods = [importlib.import_module(m) for m in _MODULES]
    finally:
        for k in added:
            delattr(_np, k)
    np_proxy, nx_proxy = _NumpyProxy(), _NetworkxProxy()
    for mod in mods:
        if getattr(mod, "np", None) is _np:
            mod.np = np_proxy
        if getattr(mod, "nx", None) is _nx:
            mod.nx = nx_proxy
    robot_mod = sys.modules["davisinteractive.robot.interactive_robot"]
    robot_mod.medial_axis = _medial_axis_legacy

    from davisinteractive.evaluation.service import EvaluationService
    from davisinteractive.storage.local import LocalStorage

    original_get_report = LocalStorage.get_report
    original_summarize = EvaluationService.summarize_report

    def get_report(self, session_id=None, **kwargs):
        df = original_get_report(self, session_id=session_id, **kwargs)
        return _numeric_report(df)

    def summarize_report(self, df):
        df = _numeric_report(df)
        if "session_id" in df:
            df = df.drop(columns="session_id")
        return original_summarize(self, df)

    LocalStorage.get_report = get_report
    EvaluationService.summarize_report = summarize_report
    _APPLIED = True


_NUMERIC = {"scribble_idx": "int64", "interaction": "int64", "object_id": "int64", "frame": "int64",
            "timing": "float64", "jaccard": "float64", "contour": "float64", "j_and_f": "float64"}


def _numeric_report(df: _pd.DataFrame) -> _pd.DataFrame:
    cols = {c: t for c, t in _NUMERIC.items() if c in df.columns}
    return df.astype(cols) if cols else df


apply()

# Re-exports: the project's only door to the package.
from davisinteractive.dataset.davis import Davis  # noqa: E402
from davisinteractive.evaluation.service import ROBOT_DEFAULT_PARAMETERS, EvaluationService  # noqa: E402
from davisinteractive.metrics import batched_f_measure, batched_jaccard  # noqa: E402
from davisinteractive.robot import InteractiveScribblesRobot  # noqa: E402
from davisinteractive.session import DavisInteractiveSession  # noqa: E402
from davisinteractive.utils.scribbles import annotated_frames, fuse_scribbles, scribbles2mask  # noqa: E402

__all__ = [
    "Davis", "DavisInteractiveSession", "EvaluationService", "InteractiveScribblesRobot",
    "ROBOT_DEFAULT_PARAMETERS", "annotated_frames", "apply", "batched_f_measure",
    "batched_jaccard", "fuse_scribbles", "robot_for", "scribbles2mask",
]


def robot_for(min_nb_nodes: int = 4, **overrides) -> InteractiveScribblesRobot:
    """The benchmark's robot with the published defaults, ``min_nb_nodes`` as given."""
    params = dict(ROBOT_DEFAULT_PARAMETERS, min_nb_nodes=min_nb_nodes, **overrides)
    return InteractiveScribblesRobot(**params)

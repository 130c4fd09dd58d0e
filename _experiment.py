"""Shared set-up of the sacred experiments (scripts only: library code never imports sacred)."""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from sacred import SETTINGS, Experiment  # noqa: E402

SETTINGS.CAPTURE_MODE = "no"   # keep tqdm bars and logs live


def new_experiment(name: str) -> Experiment:
    """A sacred Experiment without git/source bookkeeping (the runs are files, not a database)."""
    return Experiment(name, save_git_info=False)

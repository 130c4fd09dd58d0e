"""Shared set-up of the sacred experiments (scripts only: library code never imports sacred)."""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

import logging  # noqa: E402

from sacred import SETTINGS, Experiment  # noqa: E402

SETTINGS.CAPTURE_MODE = "no"   # keep tqdm bars and logs live


def new_experiment(name: str) -> Experiment:
    """A sacred Experiment without git/source bookkeeping (the runs are files, not a database)."""
    ex = Experiment(name, save_git_info=False)
    # sacred's own start/stop lines and its "no observers" warning are noise here; errors still show
    quiet = logging.getLogger(f"sacred.{name}")
    quiet.setLevel(logging.ERROR)
    ex.logger = quiet
    return ex


def setup_logging(level: int = logging.INFO) -> None:
    """Scripts' logging: our modules at ``level``; davisinteractive's per-round messages (absl) hidden."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)

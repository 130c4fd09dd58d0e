"""Shared set-up of the sacred experiments (scripts only: library code never imports sacred)."""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from sacred import SETTINGS, Experiment  # noqa: E402

SETTINGS.CAPTURE_MODE = "no"   # keep tqdm bars and logs live


#: errors caused by the user's input: printed as one line, exit code 2 (``--debug``: the traceback)
USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError)
EXIT_INPUT_ERROR = 2


def _user_errors() -> tuple[type[BaseException], ...]:
    from core.errors import InputError
    from VOS.base import BackendError

    return (InputError, BackendError, *USER_ERRORS)


def format_error(script: str, exc: BaseException) -> str:
    """One line: the script, what is wrong and the fix (the exception's message), and how to see more."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return f"{script}: error: {msg}  (add --debug for the traceback)"


class _Experiment(Experiment):
    """A sacred Experiment whose command line prints input errors as one line and exits with code 2.

    Errors of the user's input (:class:`core.errors.InputError` and its subclasses, a backend that
    cannot be built, a missing file, a bad setting value) already say what is wrong and the fix;
    sacred's traceback would bury that. Other exceptions (bugs) keep sacred's filtered traceback and
    exit code 1. ``--debug`` (sacred's own flag) re-raises every error with its full traceback."""

    def run_commandline(self, argv=None):
        import sacred.experiment as sacred_experiment

        argv = list(sys.argv if argv is None else argv)
        script = os.path.basename(str(argv[0])) if argv else self.path
        original = sacred_experiment.print_filtered_stacktrace

        def print_error(*args, **kwargs):
            exc = sys.exc_info()[1]
            if exc is not None and isinstance(exc, _user_errors()):
                print(format_error(script, exc), file=sys.stderr)
                sys.exit(EXIT_INPUT_ERROR)
            return original(*args, **kwargs)

        sacred_experiment.print_filtered_stacktrace = print_error
        try:
            return super().run_commandline(argv)
        finally:
            sacred_experiment.print_filtered_stacktrace = original


def new_experiment(name: str) -> Experiment:
    """A sacred Experiment without git/source bookkeeping (the runs are files, not a database); input
    errors end the command line with one line and exit code 2 (see :class:`_Experiment`)."""
    ex = _Experiment(name, save_git_info=False)
    # sacred's own start/stop lines and its "no observers" warning are noise here; errors still show
    quiet = logging.getLogger(f"sacred.{name}")
    quiet.setLevel(logging.CRITICAL)   # its "Failed after" line too: the error itself is printed below
    ex.logger = quiet
    return ex


def setup_logging(level: int = logging.INFO) -> None:
    """Scripts' logging: our modules at ``level``; davisinteractive's per-round messages (absl) hidden."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)

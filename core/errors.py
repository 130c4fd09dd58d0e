"""The one base class of errors caused by the user's input (files, settings), not by a bug.

Its message says what is wrong, names the file, and says how to fix it. The scripts print such an
error as one line and exit with code 2 (``_experiment.py``); ``--debug`` shows the traceback.
"""
from __future__ import annotations


class InputError(RuntimeError):
    """Bad input: a missing or malformed file, or a setting that contradicts what is on disk."""


__all__ = ["InputError"]

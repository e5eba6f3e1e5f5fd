"""argparse ``type=`` converters shared by the sub-commands: a bad number is a usage error, not a traceback."""

from __future__ import annotations

import argparse

__all__ = ["positive_int", "non_negative_int", "THREADS_HELP"]

#: Help of every ``--threads`` option: an override of the automatic choice.
THREADS_HELP = ("BLAS/OpenMP threads (default: chosen from the free cores and the data size; "
                "an override, rarely needed)")


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value

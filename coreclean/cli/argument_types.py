"""argparse ``type=`` converters shared by the sub-commands: a bad number is a usage error, not a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["positive_int", "non_negative_int", "THREADS_HELP", "RenamedOption"]

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


class RenamedOption(argparse.Action):
    """An option with a new name that still takes its old spelling for one release, with a notice on stderr.

    Declare the new spelling first: ``parser.add_argument("--per-class", "--batch", action=RenamedOption,
    old="--batch", ...)``. Scripts that use the old spelling keep working; people are told the new one.
    """

    def __init__(self, option_strings: list[str], dest: str, *, old: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.old = old

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string == self.old:
            print(f"{parser.prog}: {self.old} is renamed {self.option_strings[0]}; the old spelling goes in the "
                  "next release", file=sys.stderr)
        setattr(namespace, self.dest, values)

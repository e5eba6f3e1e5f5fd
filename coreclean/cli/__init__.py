"""coreclean's command line: one sub-command per module in this package, imported lazily.

Every sub-command module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` to a function ``(args) -> int``. Command modules import heavy libraries (torch,
faiss, matplotlib) only inside their handlers, so ``coreclean --help`` stays fast. Domain
errors (:class:`coreclean.exceptions.CorecleanError`) become a one-line message and exit code 2
here, and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from coreclean import __version__
from coreclean.exceptions import CorecleanError

__all__ = ["main", "build_parser"]

COMMAND_MODULES = ("embed", "rank", "classes", "session", "review", "demo")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="coreclean",
        description="Find and fix mislabeled images: embed once, rank by label-aware importance, clean in sessions.",
    )
    parser.add_argument("--version", action="version", version=f"coreclean {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"coreclean.cli.{name}_command")
        except ModuleNotFoundError as err:
            if err.name != f"coreclean.cli.{name}_command":
                raise
            continue  # a command not built yet in this checkout
        module.register(subparsers)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("faiss").setLevel(max(level, logging.WARNING))  # its loader narrates CPU features


def main(argv: Sequence[str] | None = None) -> int:
    """Run coreclean with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    _configure_logging(args.verbose, args.quiet)
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that left is seen here, not as a traceback at exit
        return code
    except CorecleanError as err:
        print(f"coreclean {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coreclean {args.command}: interrupted; everything finished so far is saved.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `coreclean ... | head`: the reader left; no traceback (Python docs, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141

"""What is the command doing right now? Phase names, a bar and a live clock on stderr, for steps that take seconds.

:class:`Progress` shows one tqdm line on stderr: the step, the current phase, how many phases are
done and the elapsed time, redrawn twice a second by a background thread, so a phase spent inside
one long library call (a model fit) still shows a running clock. It draws nothing when stderr is not
a terminal (pipes, logs, tests) unless asked to, and leaves no line behind when the step took under
:data:`QUIET_SECONDS`. Usage::

    with Progress("rank", phases=["loading", "ranking", "writing"]) as progress:
        with progress.phase("loading"):
            ...
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TextIO

__all__ = ["Progress", "progress_enabled", "QUIET_SECONDS"]

#: Steps shorter than this leave no progress line behind.
QUIET_SECONDS = 2.0
_REDRAW_SECONDS = 0.5


def progress_enabled(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """A progress line for one step made of named phases.

    Parameters
    ----------
    step : str
        What the user ran, e.g. ``"classes"``; shown first on the line.
    phases : sequence of str or int, optional
        The phases to come (their names, or their number): the bar counts them. None: no bar, just
        the phase name and the clock.
    enabled : bool, optional
        Draw or not; default: only when ``stream`` is a terminal.
    stream : file, optional
        Default: ``sys.stderr``.
    """

    def __init__(self, step: str, phases: Sequence[str] | int | None = None, *, enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.step = step
        self.stream = sys.stderr if stream is None else stream
        self.enabled = progress_enabled(self.stream) if enabled is None else bool(enabled)
        self.total = len(phases) if isinstance(phases, Sequence) else phases
        self.done = 0
        self.current = ""
        self._bar = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._started = time.perf_counter()

    def __enter__(self) -> "Progress":
        self._started = time.perf_counter()
        if self.enabled:
            from tqdm.auto import tqdm

            bar_format = ("{desc} |{bar}| {n_fmt}/{total_fmt} [{elapsed}]" if self.total
                          else "{desc} [{elapsed}]")
            self._bar = tqdm(total=self.total, desc=self.step, file=self.stream, bar_format=bar_format, leave=False,
                             dynamic_ncols=True, mininterval=0.0)
            self._thread = threading.Thread(target=self._redraw, name="coreclean-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            with self._lock:
                self._bar.close()
            elapsed = time.perf_counter() - self._started
            if elapsed >= QUIET_SECONDS and exc[0] is None:
                print(f"{self.step}: done in {elapsed:.1f} s", file=self.stream, flush=True)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Show ``name`` as the current phase while the block runs; count it done at the end."""
        self._set(name)
        yield
        self.done += 1
        if self._bar is not None:
            with self._lock:
                self._bar.update(1)

    @property
    def elapsed(self) -> float:
        """Seconds since the step started."""
        return time.perf_counter() - self._started

    def _set(self, name: str) -> None:
        self.current = name
        if self._bar is not None:
            with self._lock:
                self._bar.set_description_str(f"{self.step}: {name}", refresh=True)

    def _redraw(self) -> None:
        while not self._stop.wait(_REDRAW_SECONDS):
            with self._lock:
                self._bar.refresh()

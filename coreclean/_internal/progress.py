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
from typing import Any, TextIO

__all__ = ["Progress", "count_bar", "progress_enabled", "LOG_LINE_SECONDS", "QUIET_SECONDS"]

#: Steps shorter than this leave no progress line behind.
QUIET_SECONDS = 2.0
#: Where stderr is a log, not a terminal, a long count writes one plain line this often.
LOG_LINE_SECONDS = 60.0
_REDRAW_SECONDS = 0.5


def progress_enabled(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def count_bar(total: int, desc: str, *, unit: str = "img", enabled: bool = True, stream: TextIO | None = None) -> Any:
    """A counter of ``total`` items with tqdm's ``update``/``close`` and context manager.

    On a terminal it is a tqdm bar. Elsewhere (a log file, a pipe) a tqdm bar would write ten carriage-return
    redraws a second, megabytes over an hours-long embed; there it writes one plain line every
    :data:`LOG_LINE_SECONDS` (count, rate, time left) and a last one at the end, if the count ran that long.
    ``enabled=False``: nothing at all.
    """
    stream = sys.stderr if stream is None else stream
    if enabled and progress_enabled(stream):
        from tqdm.auto import tqdm

        return tqdm(total=total, unit=unit, file=stream, desc=desc, smoothing=0.1)
    return _LogLines(total, desc, unit, stream if enabled else None)


class _LogLines:
    """The log-file form of :func:`count_bar`: a plain line a minute."""

    def __init__(self, total: int, desc: str, unit: str, stream: TextIO | None) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.n = 0
        self._started = self._last_line = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.stream is not None and time.monotonic() - self._last_line >= LOG_LINE_SECONDS:
            self._line()

    def close(self) -> None:
        if self.stream is not None and self._last_line > self._started:  # it wrote lines: say where it ended
            self._line()
        self.stream = None

    def __enter__(self) -> "_LogLines":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> None:
        now = time.monotonic()
        rate = self.n / max(now - self._started, 1e-9)
        left = f", ~{(self.total - self.n) / rate:.0f} s left" if 0 < rate and self.n < self.total else ""
        print(f"{self.desc}: {self.n:,} / {self.total:,} {self.unit} ({100 * self.n / max(self.total, 1):.0f}%), "
              f"{rate:.1f} {self.unit}/s{left}", file=self.stream, flush=True)
        self._last_line = now


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

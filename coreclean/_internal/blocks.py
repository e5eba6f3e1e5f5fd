"""Who runs a pass over every row? The scheduling seam between the maths and an engine.

A pass is a *block function* ``fn(features, start, stop, *args, *shared) -> result`` that reads rows
``start:stop`` of ``features`` (a matrix, or a memory map of one) and returns something small. The
maths lives in the block functions; a runner only decides where they run and in which blocks.
:class:`LocalBlocks` runs them here, one after another; :class:`coreclean.engines.ray_blocks.RayBlocks`
runs the same functions as Ray tasks. Results always come back in block order, so what is reduced
from them does not depend on the engine, only on the blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["BlockRunner", "LocalBlocks", "row_blocks", "rows_in_block", "record_pass", "array_bytes"]


def row_blocks(n_rows: int, block_rows: int | None) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of at most ``block_rows`` rows (one block when None)."""
    if n_rows == 0:
        return []
    size = n_rows if block_rows is None else max(1, int(block_rows))
    return [(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]


class BlockRunner(Protocol):
    """What the scoring passes need from an engine."""

    info: dict[str, Any]
    #: True when block functions run in this process (shared objects need not be serialised).
    in_process: bool
    #: Most bytes one task's search index may hold (None: no limit); a larger index is cut into shards.
    max_index_bytes: int | None

    def blocks(self, n_rows: int) -> list[tuple[int, int]]:
        """The row blocks a pass over ``n_rows`` rows is split into."""

    def map(self, fn: Callable[..., Any], features: Any, blocks: Sequence[tuple[int, int]],
            per_block: Sequence[tuple] | None = None, shared: tuple = (), *, keep: bool = False) -> list[Any]:
        """``[fn(features, start, stop, *per_block[b], *shared) for each block b]``, in block order.

        With ``keep``, the results stay where they were made and handles to them come back, which a
        later ``map`` accepts among its ``shared`` values (the pass record's ``result_bytes`` gives
        each one's size); a result is freed when its handle is dropped.
        """


class LocalBlocks:
    """Run block functions in this process, one after another; ``info`` records each pass (as Ray's does).

    Parameters
    ----------
    block_rows : int, optional
        Rows per block; None (default) makes each pass one block over every row, which is how the
        library ranks without an engine (the block functions stream their rows in chunks themselves).
    max_index_bytes : int, optional
        Cut the neighbour search's index into shards of at most this many bytes (default: one index).
    """

    in_process = True

    def __init__(self, block_rows: int | None = None, *, max_index_bytes: int | None = None) -> None:
        self.block_rows = block_rows
        self.max_index_bytes = max_index_bytes
        self.info: dict[str, Any] = {"engine": "local", "blocks": 0, "tasks": 0, "passes": []}

    def blocks(self, n_rows: int) -> list[tuple[int, int]]:
        """Blocks of ``block_rows`` rows (one block when None); records their count in ``info``."""
        blocks = row_blocks(n_rows, self.block_rows)
        self.info["blocks"] = max(self.info["blocks"], len(blocks))
        return blocks

    def map(self, fn: Callable[..., Any], features: Any, blocks: Sequence[tuple[int, int]],
            per_block: Sequence[tuple] | None = None, shared: tuple = (), *, keep: bool = False) -> list[Any]:
        """Call ``fn`` on each block here, in order; a kept result is its own handle."""
        per_block = per_block if per_block is not None else [()] * len(blocks)
        began = time.perf_counter()
        results, seconds = [], []
        for (start, stop), args in zip(blocks, per_block):
            results.append(fn(features, start, stop, *args, *shared))
            seconds.append(time.perf_counter() - began - sum(seconds))
        record_pass(self.info, fn, blocks, time.perf_counter() - began, seconds,
                    result_bytes=[array_bytes(result) for result in results])
        return results


def record_pass(info: dict[str, Any], fn: Callable[..., Any], blocks: Sequence[tuple[int, int]], wall_s: float,
                task_s: list[float], *, result_bytes: list[int], **bytes_moved: int) -> None:
    """Add one pass to ``info``: its function, blocks, rows, wall time, per-block times, each block's
    result size (:func:`array_bytes`) and bytes moved."""
    info["tasks"] += len(blocks)
    info["passes"].append({"fn": fn.__name__, "blocks": len(blocks), "rows": int(sum(b - a for a, b in blocks)),
                           "wall_s": wall_s, "task_s": task_s, "result_bytes": result_bytes, **bytes_moved})


def array_bytes(value: Any) -> int:
    """Bytes of the numpy arrays in ``value`` (nested tuples, lists, dicts, object attributes); the rest counts 0."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(array_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(array_bytes(v) for v in value.values())
    if hasattr(value, "__dict__"):
        return array_bytes(vars(value))
    return 0


def rows_in_block(rows: np.ndarray, start: int, stop: int) -> slice:
    """The slice of the sorted index array ``rows`` whose values lie in ``[start, stop)``."""
    return slice(int(np.searchsorted(rows, start)), int(np.searchsorted(rows, stop)))

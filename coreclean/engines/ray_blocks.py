"""Who runs the ranking's passes over every row, when that is a Ray cluster?

:class:`RayBlocks` is a :class:`coreclean._internal.blocks.BlockRunner`: pass it as
``LabelIssueRanker(engine=...)`` and the out-of-fold predictions, the coreset sensitivities and the
neighbour search run as one Ray task per row block, calling the very block functions the local
path calls. The fits stay on the driver, on the union of the blocks' coresets (or on every training
row below ``max_fit_samples``). A memory-mapped ``.npy`` travels as its path: each task opens it with
``np.load(mmap_mode="r")`` and reads its rows only, so on a multi-node cluster every node must see
the file at the same path (as for ``embed --engine ray``). Anything else a task needs (an in-memory
matrix, the models, the search index) is put in the object store once per pass; a pass run with
``keep=True`` (the shards of the neighbour index) leaves its results there, and later passes read them
from the store without the driver ever holding them.

``info`` records what ran: engine, blocks, tasks, the cluster's CPUs, and per pass the task times
and the bytes that went to and came back from the tasks (of those sent, ``per_block_bytes`` the blocks' own
arguments; what ``benchmarks/cost_model.py`` fits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from coreclean._internal.blocks import array_bytes, record_pass, row_blocks
from coreclean.engines.ray_embed import connect, import_ray

__all__ = ["RayBlocks", "MIN_BLOCK_ROWS", "MAX_INDEX_BYTES"]

#: Default blocks are never smaller than this (a task costs ~10 ms to schedule).
MIN_BLOCK_ROWS = 256
#: Default blocks are never larger than this (a task's rows stay a few hundred MB at 512 columns).
MAX_BLOCK_ROWS = 131_072
#: Default most bytes of the neighbour index one task holds: about 3.8M rows of 128 reduced columns
#: (a larger index is cut into shards, one search pass each; at 100M rows, 27 shards instead of one 53 GiB index).
MAX_INDEX_BYTES = 2 * 1024**3


def _npy_path(features: Any) -> str | None:
    """The file of a memory-mapped ``.npy`` that holds exactly ``features``, else None."""
    filename = getattr(features, "filename", None)
    if not isinstance(features, np.memmap) or not filename or not str(filename).endswith(".npy"):
        return None
    try:
        whole = np.load(filename, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if whole.shape != features.shape or whole.dtype != features.dtype or whole.offset != features.offset:
        return None
    return str(filename)


def _run_block(fn: Callable[..., Any], source: Any, start: int, stop: int, args: tuple, *shared: Any
               ) -> tuple[Any, tuple[float, int]]:
    """One task: open the rows (a path is memory-mapped here), call ``fn``; returns (result, (seconds, result bytes)),
    as two objects (``num_returns=2``), so the result can stay in the object store while its size travels."""
    began = time.perf_counter()
    features = np.load(source, mmap_mode="r") if isinstance(source, str) else source
    result = fn(features, start, stop, *args, *shared)
    return result, (time.perf_counter() - began, array_bytes(result))


class RayBlocks:
    """Run block functions as Ray tasks, one per row block, on a local Ray or the cluster at ``address``.

    Use as a context manager: entering connects (starting a local Ray bound to 127.0.0.1 when
    ``address`` is None), leaving shuts down what entering started.

    Parameters
    ----------
    address : str, optional
        A running cluster to join (``host:6379``); None starts a local Ray on this machine.
    block_rows : int, optional
        Rows per block; default: enough blocks for four per CPU of the cluster, within
        ``MIN_BLOCK_ROWS..MAX_BLOCK_ROWS`` rows each.
    connect_timeout : float
        Seconds to wait for the cluster at ``address`` before failing with one line.
    max_index_bytes : int, optional
        Most bytes of the neighbour search's index a task holds (default ``MAX_INDEX_BYTES``, 2 GiB);
        a larger index is cut into shards (runs of its inverted lists), searched one pass each.
    """

    in_process = False

    def __init__(self, address: str | None = None, *, block_rows: int | None = None, connect_timeout: float = 10.0,
                 max_index_bytes: int | None = MAX_INDEX_BYTES) -> None:
        from coreclean.exceptions import CorecleanError

        if block_rows is not None and block_rows < 1:
            raise CorecleanError(f"block_rows must be >= 1; got {block_rows}.")
        import_ray()
        self.address = address
        self.block_rows = block_rows
        self.connect_timeout = connect_timeout
        if max_index_bytes is not None and max_index_bytes < 1:
            raise CorecleanError(f"max_index_bytes must be >= 1; got {max_index_bytes}.")
        self.max_index_bytes = max_index_bytes
        self.info: dict[str, Any] = {"engine": "ray", "address": address or "local", "blocks": 0, "tasks": 0,
                                     "cpus": 0, "passes": []}
        self._started = False
        # A kept result's id (not its handle, which would keep it alive) -> its size, for the bytes later passes ship.
        self._kept_bytes: dict[str, int] = {}

    def __enter__(self) -> "RayBlocks":
        ray = import_ray()
        self._started = connect(self.address, timeout=self.connect_timeout)
        self.info["cpus"] = int(ray.cluster_resources().get("CPU", 1))
        self._task = ray.remote(num_cpus=1, max_retries=3, num_returns=2)(_run_block)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False

    def blocks(self, n_rows: int) -> list[tuple[int, int]]:
        """Blocks of ``block_rows`` rows, or four per cluster CPU; records their count in ``info``."""
        size = self.block_rows
        if size is None:
            per_cpu = -(-n_rows // (4 * max(1, self.info["cpus"])))
            size = min(MAX_BLOCK_ROWS, max(MIN_BLOCK_ROWS, per_cpu))
        blocks = row_blocks(n_rows, size)
        self.info["blocks"] = max(self.info["blocks"], len(blocks))
        return blocks

    def map(self, fn: Callable[..., Any], features: Any, blocks: Sequence[tuple[int, int]],
            per_block: Sequence[tuple] | None = None, shared: tuple = (), *, keep: bool = False) -> list[Any]:
        """Run ``fn`` on every block as a Ray task (retried if its worker dies); results in block order.

        With ``keep``, the results stay in the object store and their ``ObjectRef`` handles come back;
        a handle among a later pass's ``shared`` values is read from the store by each task.
        """
        ray = import_ray()
        if not hasattr(self, "_task"):
            raise RuntimeError("use RayBlocks as a context manager: `with RayBlocks(...) as engine:`")
        began = time.perf_counter()
        per_block = per_block if per_block is not None else [()] * len(blocks)
        path = _npy_path(features)
        if path is not None or features is None:
            source, source_bytes = path, 0
        else:
            array = np.ascontiguousarray(features)
            source, source_bytes = ray.put(array), int(array.nbytes)
        shared_refs = [value if isinstance(value, ray.ObjectRef) else ray.put(value) for value in shared]
        refs = [self._task.remote(fn, source, start, stop, args, *shared_refs)
                for (start, stop), args in zip(blocks, per_block)]
        measured = ray.get([meta for _, meta in refs])
        results = [result for result, _ in refs] if keep else ray.get([result for result, _ in refs])
        result_bytes = [int(size) for _, size in measured]
        if keep:
            self._kept_bytes.update((ref.hex(), size) for ref, size in zip(results, result_bytes))
        rows = int(sum(b - a for a, b in blocks))
        row_bytes = int(np.prod(features.shape[1:])) * features.dtype.itemsize if path is not None else 0
        per_block_bytes = array_bytes(list(per_block))
        shipped = source_bytes + per_block_bytes + sum(
            self._kept_bytes.get(value.hex(), 0) if isinstance(value, ray.ObjectRef) else array_bytes(value)
            for value in shared)
        record_pass(self.info, fn, blocks, time.perf_counter() - began, [seconds for seconds, _ in measured],
                    result_bytes=result_bytes, bytes_to_tasks=shipped, per_block_bytes=per_block_bytes,
                    bytes_read_from_file=row_bytes * rows,
                    bytes_from_tasks=0 if keep else sum(result_bytes))
        return results

    def describe(self) -> str:
        """One line: the engine, where it ran, blocks and tasks."""
        return (f"engine ray ({self.info['address']}, {self.info['cpus']} CPUs): {self.info['blocks']} blocks, "
                f"{self.info['tasks']} tasks")

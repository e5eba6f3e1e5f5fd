"""Who computes the vectors of the uncached images, when that is a Ray cluster?

:class:`RayEmbedder` is a drop-in for the local compute step of
:func:`coreclean.embedding.embed.embed_dataset` (pass it as ``compute=``). The driver has already hashed
the files and left out every image whose content is cached, so only new content reaches the cluster. The
rest is split into blocks; each block is decoded (resize and crop on uint8, exactly the local
:class:`~coreclean.embedding.backbones.Preprocess`) by a CPU task, then embedded by one actor of a pool
that holds the frozen model (one GPU per actor where the cluster has GPUs, CPU threads otherwise). Vectors
stream back to the driver, which alone commits them through the same chunk store, every ``chunk_size``
vectors or :data:`~coreclean.embedding.embed.COMMIT_SECONDS`, so resume, bad-file reports and fingerprints
are the local path's. Actors restart and their calls retry when a worker dies; decode tasks retry too.

Workers open the image paths themselves: on a multi-node cluster every node must see the dataset at the
same path (shared storage such as NFS, or the same mount everywhere).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from coreclean.exceptions import CorecleanError

__all__ = ["RayEmbedder", "import_ray", "connect"]


def import_ray() -> Any:
    """Return the ``ray`` module, or raise a one-line error that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise CorecleanError('--engine ray needs Ray: pip install "coreclean[ray]" (or pip install "ray[data]").') from err
    return ray


def connect(address: str | None, *, num_cpus: int | None = None, timeout: float = 10.0) -> bool:
    """Join the Ray cluster at ``address``, or start a new local Ray (bound to 127.0.0.1) when ``address`` is None.

    Reuses a Ray already initialised in this process. Returns True when this call started the
    connection (the caller then shuts it down). A ``host:port`` address is first probed for
    ``timeout`` seconds, because Ray itself keeps retrying an address where nothing answers.

    Raises
    ------
    CorecleanError
        If the cluster at ``address`` cannot be reached (within about ``timeout`` seconds).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    hint = ("start it with `ray start --head` and pass its address (host:6379), or leave out --address for a "
            "local Ray.")
    if address is not None:
        _probe(address, timeout, hint)
    try:
        if address is None:
            # "local": a new instance even where another Ray runs on this machine (address=None would join
            # the latest one started here, e.g. another user's test cluster)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise CorecleanError(f"cannot join the Ray cluster at {address}: {err}; {hint}") from err
    return True


def _probe(address: str, timeout: float, hint: str) -> None:
    """Fail with one line unless something accepts a TCP connection at ``address``'s host:port."""
    import socket

    target = address.split("://", 1)[-1]
    if address == "auto" or ":" not in target:
        return  # "auto" and bare names are Ray's to resolve
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as err:
        raise CorecleanError(f"cannot reach the Ray cluster at {address} within {timeout:.0f} s ({err}); {hint}") from err


def _decode_block(paths: list[str], preprocess: Any) -> tuple[list[int], np.ndarray | None, list[tuple[int, str]]]:
    """Decode one block: (positions decoded, their uint8 (n, 3, h, w) pixels, (position, reason) failures)."""
    from coreclean.embedding.embed import _collate, _ImageFiles

    files = _ImageFiles([Path(p) for p in paths], preprocess)
    indices, batch, failed = _collate([files[i] for i in range(len(files))])
    return indices, None if batch is None else batch.numpy(), failed


class _Embedder:
    """A pool member: holds the frozen model on its GPU (or CPU threads) and embeds decoded blocks."""

    def __init__(self, model: Any, preprocess: Any, precision: str, batch_size: int, backbone: str, threads: int) -> None:
        import ray
        import torch

        from coreclean.embedding.embed import _prepare_model

        self.device = torch.device("cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, threads))
        self.model = _prepare_model(model, self.device)
        self.preprocess = preprocess
        self.precision = precision
        self.batch_size = batch_size
        self.backbone = backbone

    def pid(self) -> int:
        """This actor's process id (tests kill it to check the pool recovers)."""
        return os.getpid()

    def embed(self, decoded: tuple[list[int], np.ndarray | None, list[tuple[int, str]]]
              ) -> tuple[list[int], np.ndarray, list[tuple[int, str]]]:
        """Return (positions, float32 features, failures) for one decoded block."""
        import torch

        from coreclean.embedding.embed import _forward

        indices, pixels, failed = decoded
        if pixels is None:
            return indices, np.zeros((0, 0), dtype=np.float32), failed
        batch = torch.from_numpy(pixels)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        parts = []
        with torch.inference_mode(), autocast:
            for start in range(0, len(batch), self.batch_size):
                parts.append(_forward(self.model, self.preprocess, batch[start:start + self.batch_size],
                                      self.device, self.backbone))
        return indices, np.concatenate(parts), failed


class RayEmbedder:
    """Compute step for ``embed_dataset(..., compute=RayEmbedder(...))`` that runs on Ray.

    Parameters
    ----------
    address : str, optional
        A running cluster to join (``host:6379`` or ``ray://host:10001``); None starts a local Ray.
    block_size : int
        Most images per block (one decode task, one actor call); smaller when needed to give every
        actor at least four blocks, so the pool stays busy.
    actors : int, optional
        Pool size; default one per GPU, else one per two CPUs of the cluster (at least one).

    Attributes
    ----------
    info : dict
        ``{"engine": "ray", "blocks": ..., "actors": ...}`` of the last run, recorded in the set's info.
    pool : list
        The actor handles of the run under way (empty before it starts).
    """

    def __init__(self, address: str | None = None, *, block_size: int = 512, actors: int | None = None) -> None:
        if block_size < 1 or (actors is not None and actors < 1):
            raise CorecleanError(f"block_size and actors must be >= 1; got {block_size}, {actors}.")
        import_ray()
        self.address = address
        self.block_size = block_size
        self.actors = actors
        self.info: dict[str, Any] = {"engine": "ray", "blocks": 0, "actors": 0}
        self.pool: list[Any] = []

    def __call__(self, extractor: Any, preprocess: Any, todo: list[tuple[str, Path]], store: Any, *, device: Any,
                 precision: str, batch_size: int, workers: int, chunk_size: int, progress: bool) -> None:
        """Embed ``todo`` ((sha, path) pairs) on the cluster and commit into ``store`` from the driver."""
        ray = import_ray()
        started = connect(self.address, num_cpus=workers or None)
        try:
            self._run(ray, extractor, preprocess, todo, store, precision=precision, batch_size=batch_size,
                      chunk_size=chunk_size, progress=progress)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray: Any, extractor: Any, preprocess: Any, todo: list[tuple[str, Path]], store: Any, *,
             precision: str, batch_size: int, chunk_size: int, progress: bool) -> None:
        from coreclean._internal.progress import count_bar
        from coreclean.embedding.embed import COMMIT_SECONDS, _commit

        resources = ray.cluster_resources()
        n_gpus = int(resources.get("GPU", 0))
        n_cpus = max(1, int(resources.get("CPU", 1)))
        n_actors = self.actors or (n_gpus if n_gpus else max(1, n_cpus // 2))
        actor_cpus = 1 if n_gpus else max(1, n_cpus // (2 * n_actors))
        actor_cls = ray.remote(num_cpus=actor_cpus, num_gpus=1 if n_gpus else 0,
                               max_restarts=-1, max_task_retries=-1)(_Embedder)
        model_ref = ray.put(extractor.model)
        pool = [actor_cls.remote(model_ref, preprocess, precision, batch_size, extractor.backbone, actor_cpus)
                for _ in range(n_actors)]
        decode = ray.remote(num_cpus=1, max_retries=3)(_decode_block)
        size = max(1, min(self.block_size, -(-len(todo) // (4 * n_actors))))
        blocks = [list(range(s, min(s + size, len(todo)))) for s in range(0, len(todo), size)]
        self.pool = pool
        self.info = {"engine": "ray", "blocks": len(blocks), "actors": n_actors}

        pending_shas: list[str] = []
        pending_features: list[np.ndarray] = []
        pending_failed: list[tuple[str, str]] = []
        in_flight: dict[Any, list[int]] = {}
        next_block = 0
        last_commit = time.monotonic()
        bar = count_bar(len(todo), "embedding (ray)", enabled=progress)
        with bar:
            try:
                while next_block < len(blocks) or in_flight:
                    while next_block < len(blocks) and len(in_flight) < 2 * n_actors:
                        block = blocks[next_block]
                        decoded = decode.remote([str(todo[i][1]) for i in block], preprocess)
                        in_flight[pool[next_block % n_actors].embed.remote(decoded)] = block
                        next_block += 1
                    (ready,), _ = ray.wait(list(in_flight), num_returns=1)
                    block = in_flight.pop(ready)
                    positions, features, failed = ray.get(ready)
                    pending_failed.extend((todo[block[i]][0], reason) for i, reason in failed)
                    if positions:
                        finite = np.isfinite(features).all(axis=1)
                        pending_failed.extend((todo[block[i]][0], "the model's features are not finite (NaN or inf)")
                                              for i, ok in zip(positions, finite) if not ok)
                        pending_features.append(features[finite])
                        pending_shas.extend(todo[block[i]][0] for i, ok in zip(positions, finite) if ok)
                    bar.update(len(block))
                    if (len(pending_shas) + len(pending_failed) >= chunk_size
                            or time.monotonic() - last_commit >= COMMIT_SECONDS):
                        _commit(store, pending_shas, pending_features, pending_failed)
                        last_commit = time.monotonic()
            except KeyboardInterrupt:
                _commit(store, pending_shas, pending_features, pending_failed)
                raise
            _commit(store, pending_shas, pending_features, pending_failed)
        for actor in pool:
            ray.kill(actor)

"""How are a dataset's images turned into cached feature vectors, fast and resumably?

:func:`embed_dataset` reads the dataset (:mod:`coreclean.embedding.manifest`), hashes every file's bytes,
and runs only the images whose content is not in the cache yet through a frozen backbone
(:mod:`coreclean.embedding.backbones`): decoding and resizing in DataLoader workers on uint8, normalisation,
channels-last layout, folded batch norms and (where validated) bf16 autocast on the batch.
Finished vectors are committed in chunks (:class:`coreclean.embedding.chunks.ChunkStore`) every
``chunk_size`` vectors or :data:`COMMIT_SECONDS` of work, whichever comes first, and at once on
Ctrl-C, so a killed run resumes where it stopped whatever the dataset's size; at the end the
dataset-ordered ``features.npy`` and tables are published. A damaged chunk or published file found
on the way is repaired: its samples are computed again, the files written again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from coreclean.embedding.backbones import FeatureExtractor, Preprocess, build_feature_extractor, default_preprocess
from coreclean.embedding.cache import dataset_dir, publish_embedding_set, samples_frame, write_errors
from coreclean.embedding.chunks import ChunkStore, DamagedChunkError, shared_chunk_dirs
from coreclean.exceptions import CacheError, CorecleanError, ManifestError, WeightsError
from coreclean.embedding.manifest import Manifest, Problem, read_manifest
from coreclean.embedding.reuse import BF16_VALIDATED, EmbedResult, embed_request, remember_request
from coreclean.embedding.views import ViewStores, check_tta, open_view_stores
from coreclean._internal.hashing import hash_files
from coreclean._internal.progress import count_bar
from coreclean._internal.threads import usable_cores

__all__ = ["EmbedResult", "embed_dataset", "resolve_device", "resolve_precision", "BF16_VALIDATED"]

logger = logging.getLogger(__name__)

COMMIT_SECONDS = 30.0
"""Finished vectors are committed at least this often (seconds of work), as well as every ``chunk_size``."""
_REPAIR_ATTEMPTS = 3


def embed_dataset(
    source: str | os.PathLike | Manifest,
    cache_dir: str | os.PathLike,
    *,
    backbone: str = "resnet18",
    weights: str | os.PathLike | None = "DEFAULT",
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    image_size: int = 224,
    precision: str = "auto",
    chunk_size: int = 4096,
    progress: bool = True,
    compute: Callable[..., None] | None = None,
    tta: str = "none",
) -> EmbedResult:
    """Embed every image of ``source`` into ``cache_dir``, computing only what is not cached yet.

    Parameters
    ----------
    source : str, os.PathLike or Manifest
        A folder-per-class tree or a CSV manifest (``path,label[,id]``), see :func:`coreclean.read_manifest`;
        or a :class:`Manifest` read already (e.g. by :func:`coreclean.formats.hf_source.read_hf_dataset`).
    cache_dir : str or os.PathLike
        The cache folder (created if needed). Several datasets and settings share it, each as its
        own embedding set (key); sets with the same settings reuse each other's vectors.
    backbone : str
        A torchvision classification model name; its penultimate (pooled) features are stored.
    weights : str, os.PathLike or None
        ``"DEFAULT"`` (torchvision's ImageNet weights, downloaded once), another weights enum name,
        a local state-dict file, or ``"none"`` for a seeded random init.
    device : {"auto", "cpu", "cuda"} or a torch device string
    batch_size : int
        Images per forward pass.
    workers : int, optional
        DataLoader worker processes decoding images; default: the number of usable CPU cores (max 8).
    image_size : int
        Crop size fed to the network; the resize before the crop scales with it as in torchvision.
    precision : {"auto", "fp32", "bf16"}
        ``"auto"`` is bf16 only where validated (:data:`BF16_VALIDATED`), else fp32.
    chunk_size : int
        Vectors per committed chunk file: the most work a kill can lose.
    progress : bool
        Report progress on stderr: a tqdm bar (images/s) on a terminal, a plain line a minute in a log.
    compute : callable, optional
        Who computes the uncached vectors: called like ``_run`` and commits into the store it is given
        (e.g. :class:`coreclean.engines.ray_embed.RayEmbedder`); its ``info`` dict is recorded in the set's
        info. Default: this process (DataLoader workers and the local device).
    tta : {"none", "flip"}
        Test-time augmentation: ``"flip"`` stores the mean of the embeddings of each crop and its
        mirror image (:mod:`coreclean.embedding.views`); it is a set of its own, costs one more
        forward pass per image, and reuses the plain vectors a ``"none"`` run already cached.

    Returns
    -------
    EmbedResult

    Raises
    ------
    ManifestError
        If ``source`` is missing, malformed or has no readable image.
    WeightsError
        If the backbone or weights cannot be built or loaded.
    """
    check_tta(tta)
    if batch_size < 1 or chunk_size < 1 or image_size < 8:
        raise CorecleanError(
            f"batch_size and chunk_size must be >= 1 and image_size >= 8; got {batch_size}, {chunk_size}, {image_size}."
        )
    cache_dir = Path(cache_dir).expanduser()
    request = embed_request(source, backbone=backbone, weights=weights, image_size=image_size, precision=precision,
                            device=device, tta=tta)
    manifest = source if isinstance(source, Manifest) else read_manifest(source)
    torch_device = resolve_device(device)
    extractor = build_feature_extractor(backbone, weights=weights)
    preprocess = default_preprocess(backbone, image_size=image_size)
    resolved_precision = resolve_precision(precision, backbone=backbone, device=torch_device)
    settings = {
        "backbone": backbone,
        "weights": extractor.weights_id,
        "transform": repr(preprocess),
        "image_size": image_size,
        "precision": resolved_precision,
    }
    prefix = f"{backbone}-{image_size}-{resolved_precision}"
    if tta != "none":  # plain sets keep the settings (and so the keys) they had before tta existed
        settings["tta"] = tta
        prefix += f"-{tta}"
    set_dir, stored_settings = dataset_dir(cache_dir, settings, str(manifest.source), prefix=prefix)
    cache_dir.mkdir(parents=True, exist_ok=True)
    store: ChunkStore | ViewStores
    if tta == "flip":
        store = open_view_stores(set_dir, stored_settings, preprocess)
        views = store.views
    else:
        store = ChunkStore(set_dir, stored_settings, shared=shared_chunk_dirs(set_dir, stored_settings))
        views = [(preprocess, store)]

    problems = list(manifest.problems)
    hashed = hash_files(manifest.paths, memo_path=cache_dir / "hashes.csv")
    shas: list[str | None] = []
    for i, result in enumerate(hashed):
        if isinstance(result, BaseException):
            problems.append(Problem(manifest.sample_ids[i], str(manifest.paths[i]), f"cannot read file: {result}"))
            shas.append(None)
        else:
            shas.append(result)

    n_workers = _default_workers() if workers is None else max(0, workers)
    n_computed = 0
    for _ in range(_REPAIR_ATTEMPTS):
        computed: set[str] = set()
        for view, view_store in views:
            failed = set().union(*(other.failed for _, other in views))  # an unreadable file is tried once
            todo: dict[str, Path] = {}
            for sha, path in zip(shas, manifest.paths):
                if sha is not None and sha not in view_store.done and sha not in failed and sha not in todo:
                    todo[sha] = path
            logger.info(
                "%d images, %d distinct new to embed with %s (%s, %s, %s%s) into %s",
                len(manifest), len(todo), backbone, extractor.weights_id, resolved_precision, torch_device,
                ", mirrored" if view.mirror else "", set_dir,
            )
            if todo:
                (compute or _run)(extractor, view, list(todo.items()), view_store, device=torch_device,
                                  precision=resolved_precision, batch_size=batch_size, workers=n_workers,
                                  chunk_size=chunk_size, progress=progress)
            computed.update(todo)
        n_computed += len(computed)
        try:
            n_samples, n_skipped = _publish(manifest, shas, problems, store, cache_dir, set_dir, info={
                **settings,
                "weights_source": extractor.weights_source,
                "head_removed": extractor.head,
                "source": str(manifest.source),
                "device": torch_device.type,
                "torch_version": torch.__version__,
                "torchvision_version": torchvision.__version__,
                "numpy_version": np.__version__,
                "python_version": platform.python_version(),
                **getattr(compute, "info", {"engine": "local"}),
            })
        except DamagedChunkError as err:
            err.store.drop(err.chunk, err)
            continue
        remember_request(cache_dir, request, set_dir.name)
        return EmbedResult(set_dir.name, set_dir, n_samples, n_computed, n_skipped)
    raise CacheError(f"chunks of {set_dir} kept failing to read back after {_REPAIR_ATTEMPTS} repairs; "
                     "check the disk, then delete that folder and embed again.")


def _publish(manifest: Manifest, shas: list[str | None], problems: list[Problem], store: ChunkStore | ViewStores,
             cache_dir: Path, set_dir: Path, *, info: dict) -> tuple[int, int]:
    """Write errors.csv and publish the set from the store; return (samples kept, samples skipped).

    Raises
    ------
    DamagedChunkError
        A chunk could not be read back (the caller drops it and computes its samples again).
    """
    problems = list(problems)
    keep: list[int] = []
    done, failed = store.done, store.failed
    for i, sha in enumerate(shas):
        if sha is None:
            continue
        if sha in done:
            keep.append(i)
        else:
            problems.append(Problem(manifest.sample_ids[i], str(manifest.paths[i]), failed.get(sha, "not embedded")))
    if not keep:
        write_errors(cache_dir, problems)
        raise ManifestError(
            f"none of the {len(manifest)} images in {manifest.source} could be embedded; "
            f"see {cache_dir / 'errors.csv'} for the reasons."
        )
    positions = np.asarray(keep, dtype=np.int64)
    kept_shas = [shas[i] for i in keep]
    samples = samples_frame(manifest, positions, kept_shas)
    dim = store.dim(kept_shas[0])

    def fill(out: np.ndarray, rows: slice) -> None:
        store.fill(out, kept_shas[rows])

    publish_embedding_set(set_dir, samples=samples, class_names=manifest.class_names, dim=dim, fill=fill,
                          info={**info, "n_skipped": len(problems)})
    write_errors(cache_dir, problems)
    if problems:
        logger.warning("skipped %d sample(s); details in %s", len(problems), cache_dir / "errors.csv")
    return len(keep), len(problems)


def resolve_device(device: str) -> torch.device:
    """Turn ``"auto"`` into cuda when available (else cpu); check an explicit choice is usable.

    Raises
    ------
    CorecleanError
        If cuda is asked for but not available, or the string is not a device.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise CorecleanError(f"unknown device {device!r}; use auto, cpu or cuda.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CorecleanError("device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto.")
    return resolved


def resolve_precision(precision: str, *, backbone: str, device: torch.device) -> str:
    """Return ``"fp32"`` or ``"bf16"`` for ``precision`` (``"auto"`` picks bf16 only where validated)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise CorecleanError(f"unknown precision {precision!r}; use auto, fp32 or bf16.")
    if precision != "auto":
        return precision
    if (backbone, device.type) not in BF16_VALIDATED:
        return "fp32"
    if device.type == "cpu" and not torch.backends.mkldnn.is_available():
        return "fp32"
    if device.type == "cpu" and not _cpu_has_native_bf16():
        return "fp32"
    return "bf16"


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _default_workers() -> int:
    return min(8, usable_cores())


class _ImageFiles(Dataset):
    """(index, uint8 tensor or None, failure reason) per file; never raises on a bad file."""

    def __init__(self, paths: Sequence[Path], preprocess: Preprocess) -> None:
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            return index, self.preprocess.load(self.paths[index]), ""
        except CorecleanError as err:
            return index, None, getattr(err, "reason", str(err))
        except Exception as err:  # one broken file must never end the run: report it, move on
            return index, None, f"cannot decode image ({type(err).__name__}: {err})"


def _collate(items: list[tuple[int, torch.Tensor | None, str]]) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    ok = [(i, t) for i, t, _ in items if t is not None]
    failed = [(i, reason) for i, t, reason in items if t is None]
    batch = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], batch, failed


def _run(
    extractor: FeatureExtractor,
    preprocess: Preprocess,
    todo: list[tuple[str, Path]],
    store: ChunkStore,
    *,
    device: torch.device,
    precision: str,
    batch_size: int,
    workers: int,
    chunk_size: int,
    progress: bool,
) -> None:
    model = _prepare_model(extractor.model, device)
    loader = DataLoader(
        _ImageFiles([p for _, p in todo], preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )
    pending_shas: list[str] = []
    pending_features: list[np.ndarray] = []
    pending_failed: list[tuple[str, str]] = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    bar = count_bar(len(todo), "embedding", enabled=progress)
    last_commit = time.monotonic()
    with _torch_threads(), torch.inference_mode(), autocast, bar:
        try:
            for indices, batch, failed in loader:
                pending_failed.extend((todo[i][0], reason) for i, reason in failed)
                if batch is not None:
                    features = _forward(model, preprocess, batch, device, extractor.backbone)
                    finite = np.isfinite(features).all(axis=1)
                    pending_failed.extend((todo[i][0], "the model's features are not finite (NaN or inf)")
                                          for i, ok in zip(indices, finite) if not ok)
                    pending_features.append(features[finite])  # features first: _commit trims to the shas
                    pending_shas.extend(todo[i][0] for i, ok in zip(indices, finite) if ok)
                bar.update(len(indices) + len(failed))
                if (len(pending_shas) + len(pending_failed) >= chunk_size
                        or time.monotonic() - last_commit >= COMMIT_SECONDS):
                    _commit(store, pending_shas, pending_features, pending_failed)
                    last_commit = time.monotonic()
        except KeyboardInterrupt:
            _commit(store, pending_shas, pending_features, pending_failed)  # so the CLI's "saved" is true
            raise
        _commit(store, pending_shas, pending_features, pending_failed)


def _commit(store: ChunkStore, shas: list[str], features: list[np.ndarray], failed: list[tuple[str, str]]) -> None:
    """Commit the pending vectors and failures as one chunk, then empty the lists."""
    if shas or failed:
        stacked = np.concatenate(features)[: len(shas)] if features else np.zeros((0, 0), dtype=np.float32)
        store.commit(shas, stacked, failed)
    shas.clear()
    features.clear()
    failed.clear()


def _forward(model: nn.Module, preprocess: Preprocess, batch: torch.Tensor, device: torch.device, backbone: str) -> np.ndarray:
    batch = batch.to(device, non_blocking=True)
    inputs = preprocess.normalize(batch).contiguous(memory_format=torch.channels_last)
    try:
        output = model(inputs)
    except RuntimeError as err:
        raise WeightsError(
            f"{backbone} failed on a {tuple(inputs.shape[1:])} input ({err}); some models (e.g. vit_*) "
            "need --image-size 224."
        ) from err
    if isinstance(output, (tuple, list)):
        output = output[0]
    if output.ndim > 2:  # a head-less model that stops before pooling
        output = output.flatten(2).mean(2)
    return np.ascontiguousarray(output.float().cpu().numpy(), dtype=np.float32)


def _prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Fold batch norms into convolutions where the model traces, then channels-last on ``device``."""
    model = model.eval()
    with contextlib.suppress(Exception):  # torch.fx cannot trace every model; unfused is still correct
        from torch.fx.experimental.optimization import fuse

        model = fuse(model)
    return model.to(device=device, memory_format=torch.channels_last)


@contextlib.contextmanager
def _torch_threads() -> Iterator[None]:
    """Use one intra-op thread per usable core for the call, then restore torch's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(usable_cores())
    try:
        yield
    finally:
        torch.set_num_threads(previous)

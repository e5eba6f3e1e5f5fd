"""Re-running ``embed`` on a dataset that is already embedded, without loading torch.

An embedding set's key is made of settings only the model can tell (the weights' id, the transform's
``repr``), so finding it the ordinary way means importing torch and torchvision: 4.4 s of a 4.9 s
no-op ``coreclean embed`` on 3,000 images (2-core box), against 0.4 s of actual work. Each finished
embed therefore remembers, in ``cache_dir/requests.json``, which set a request (source, backbone,
weights, image size, precision, test-time augmentation, the installed torch, torchvision and
coreclean versions, and the source of the modules that make vectors) produced. :func:`find_up_to_date_set` answers a repeated request from that file
when, and only when, the set still holds exactly the dataset's current files and labels and its
files pass their checksums; any doubt returns ``None`` and the caller takes the ordinary path, which
embeds what is new and repairs what is damaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from coreclean import __version__
from coreclean._internal.atomic import atomic_write_text
from coreclean._internal.hashing import hash_files, sha256_file_once
from coreclean.embedding.cache import set_is_current, samples_frame, write_errors
from coreclean.embedding.manifest import read_manifest

__all__ = ["EmbedResult", "BF16_VALIDATED", "embed_request", "find_up_to_date_set", "looks_like_weights_file",
           "remember_request"]

logger = logging.getLogger(__name__)

REQUESTS_FILE = "requests.json"
_VECTOR_CODE = ("backbones.py", "embed.py", "images.py", "views.py", "cache.py")

BF16_VALIDATED: frozenset[tuple[str, str]] = frozenset()
"""(backbone, device type) pairs where bf16 autocast was measured to keep cosine >= 0.999 with fp32
features; ``precision="auto"`` picks bf16 only for these. Empty for now: on CPU, mobilenet_v2 with
ImageNet weights ran 2.5x faster in bf16 but its features fell to cosine 0.90 (min) / 0.98 (mean)
at 128 px (benchmarks/results/embed_speed.json), so auto means fp32 until a pair passes."""


class EmbedResult(NamedTuple):
    """What :func:`coreclean.embedding.embed.embed_dataset` did.

    Attributes
    ----------
    key : str
        The embedding set's folder name under ``cache_dir/embeddings`` (pass to ``load_embeddings``).
    path : Path
        That folder.
    n_samples : int
        Samples in the finished set (successfully embedded).
    n_computed : int
        Distinct images run through the model in this call (0 when everything was cached).
    n_skipped : int
        Samples skipped (listed in ``cache_dir/errors.csv``).
    """

    key: str
    path: Path
    n_samples: int
    n_computed: int
    n_skipped: int


def embed_request(
    source: object, *, backbone: str, weights: str | os.PathLike | None, image_size: int, precision: str,
    device: str, tta: str,
) -> dict[str, Any] | None:
    """The settings that decide an embed's vectors, as a comparable dict; ``None`` where they cannot be told cheaply.

    ``None`` for a source that is not a path (a Hugging Face dataset), a device other than auto or cpu
    (an explicit cuda is checked by the ordinary path), ``precision="auto"`` for a backbone that
    :data:`BF16_VALIDATED` names (auto would then depend on the device), or a weights path that
    cannot be read.
    """
    if not isinstance(source, (str, os.PathLike)) or device not in ("auto", "cpu"):
        return None
    if precision == "auto" and any(name == backbone for name, _ in BF16_VALIDATED):
        return None
    spec = "none" if weights is None else str(weights)
    if spec.lower() != "none" and looks_like_weights_file(spec):
        try:
            spec = "sha256:" + sha256_file_once(Path(spec).expanduser())
        except OSError:
            return None
    try:
        versions = {name: metadata.version(name) for name in ("torch", "torchvision")}
    except metadata.PackageNotFoundError:
        return None
    return {"source": str(Path(source).expanduser().resolve()), "backbone": backbone, "weights": spec,
            "image_size": int(image_size), "precision": precision, "tta": tta, "coreclean": __version__,
            "code": _vector_code_digest(), **versions}


def remember_request(cache_dir: Path, request: dict[str, Any] | None, key: str) -> None:
    """Record that ``request`` produced the set ``key`` (best effort: a lost entry only costs the next run time)."""
    if request is None:
        return
    entries = _read_requests(cache_dir)
    entries[_fingerprint(request)] = key
    with contextlib.suppress(OSError):
        atomic_write_text(Path(cache_dir) / REQUESTS_FILE, json.dumps(entries, indent=1, sort_keys=True))


def find_up_to_date_set(cache_dir: str | os.PathLike, request: dict[str, Any] | None) -> EmbedResult | None:
    """The result of embedding ``request`` again when nothing would change, found without the model; else ``None``.

    It holds only when an earlier embed of the same request produced a set that lists every image of
    the source, each with its current content hash and label, and whose files match their checksums;
    ``cache_dir/errors.csv`` is then rewritten empty, as the ordinary path would.

    Raises
    ------
    ManifestError
        If the source cannot be read as a dataset (as the ordinary path would).
    """
    if request is None:
        return None
    cache_dir = Path(cache_dir).expanduser()
    key = _read_requests(cache_dir).get(_fingerprint(request))
    if not isinstance(key, str) or not key or Path(key).name != key:
        return None
    set_dir = cache_dir / "embeddings" / key
    if not (set_dir / "info.json").is_file():
        return None
    manifest = read_manifest(request["source"])
    if manifest.problems:
        return None
    hashed = hash_files(manifest.paths, memo_path=cache_dir / "hashes.csv")
    if any(isinstance(result, BaseException) for result in hashed):
        return None
    samples = samples_frame(manifest, np.arange(len(manifest), dtype=np.int64), [str(sha) for sha in hashed])
    if not set_is_current(set_dir, samples, list(manifest.class_names)):
        return None
    write_errors(cache_dir, [])
    logger.info("%d images, all embedded already with these settings in %s; the model was not loaded",
                len(manifest), set_dir)
    return EmbedResult(key, set_dir, len(manifest), 0, 0)


def looks_like_weights_file(spec: str) -> bool:
    """Whether a ``--weights`` value names a file (a path, a state-dict suffix, or an existing file), not an enum."""
    return os.sep in spec or "/" in spec or spec.endswith((".pth", ".pt", ".bin", ".ckpt")) or Path(spec).exists()


def _vector_code_digest() -> str:
    """The sha256 of the modules that decide what a vector is, so an edit to them (even at the same version) counts."""
    digest = hashlib.sha256()
    for name in _VECTOR_CODE:
        digest.update((Path(__file__).with_name(name)).read_bytes())
    return digest.hexdigest()


def _fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _read_requests(cache_dir: Path) -> dict[str, str]:
    try:
        entries = json.loads((Path(cache_dir) / REQUESTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in entries.items() if isinstance(v, str)} if isinstance(entries, dict) else {}

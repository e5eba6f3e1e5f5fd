"""A real folder as a user has one: CIFAR-10 train images, a few moved into a wrong class folder.

    python -m benchmarks.journey_data OUT_DIR [--per-class 300] [--noise 0.08] [--skew 0] [--seed 0]

:func:`build_journey_folder` draws ``n_per_class`` images of each CIFAR-10 class from the shared
train tarball (``../shared/data/cifar10``, read in place: nothing is unpacked beyond the drawn
files), moves a share ``noise`` of them (exactly ``round(noise * n)``, uniformly over the other
classes, :func:`coreclean.simulate.noise.inject_noise`) into a wrong class folder, and writes

- ``OUT_DIR/<given class>/img-NNNNN.jpg``: unchanged JPEG bytes; ``NNNNN`` is the image's index in
  the standard CIFAR-10 train order, so names are unique and say nothing about the true class;
- ``OUT_DIR/truth.csv``: ``id,true_label,given_label,flipped``, ``id`` being the path relative to
  ``OUT_DIR`` (the sample id ``coreclean embed OUT_DIR`` gives it; files at the top level such as
  ``truth.csv`` are not samples).

With ``skew`` > 0 the wrong folders are not drawn uniformly: the ``k``-th class of a seeded order
receives errors in proportion to ``(k + 1) ** -skew`` (never its own images), so class folders hold
very different error counts, as where annotators sent the hard images to a few classes (skew 1:
about 80, 40, 27, ... of 240). A session over several classes can then save reviews by splitting
them by errors left (``--allocation errors``), which uniform noise gives it no room to show.

Everything is decided by ``seed``; rebuilding into an existing folder replaces it. The data stays
outside the repository (evaluation only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.data import SHARED

__all__ = ["build_journey_folder", "plant_errors", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_TRUTH_COLUMNS = ["id", "true_label", "given_label", "flipped"]


def build_journey_folder(out_dir: str | os.PathLike, n_per_class: int = 300, noise: float = 0.08, seed: int = 0,
                         *, skew: float = 0.0, shared: str | os.PathLike = SHARED) -> pd.DataFrame:
    """Write a folder-per-class tree of ``10 * n_per_class`` CIFAR-10 train images with planted label errors.

    Returns the truth table (also written to ``out_dir/truth.csv``): one row per image, columns
    ``id`` (path relative to ``out_dir``), ``true_label``, ``given_label`` (class names) and
    ``flipped`` (given != true); exactly ``round(noise * 10 * n_per_class)`` rows are flipped, into
    wrong folders drawn uniformly (``skew`` 0) or skewed toward a few classes (see the module docstring).
    """
    data = Path(shared) / "data" / "cifar10"
    tarball, order_file = data / "cifar10_train_jpg.tar.gz", data / "train_order.txt"
    if not tarball.is_file() or not order_file.is_file():
        raise FileNotFoundError(f"no CIFAR-10 train tarball and train_order.txt in {data}; pass shared=")
    if not 1 <= n_per_class <= 5000:
        raise ValueError(f"n_per_class must be in 1..5000 (CIFAR-10 has 5,000 train images a class); got {n_per_class}")
    order = order_file.read_text().split()
    true = np.array([CIFAR10_CLASSES.index(name.split("/")[1]) for name in order], dtype=np.int64)
    rng = np.random.default_rng(seed)
    chosen = np.sort(np.concatenate([rng.choice(np.flatnonzero(true == k), size=n_per_class, replace=False)
                                     for k in range(len(CIFAR10_CLASSES))]))
    given, flipped = plant_errors(true[chosen], noise, skew, rng)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    wanted = {order[i]: row for row, i in enumerate(chosen)}
    ids = [f"{CIFAR10_CLASSES[given[row]]}/img-{i:05d}.jpg" for row, i in enumerate(chosen)]
    for name in CIFAR10_CLASSES:
        (out / name).mkdir(parents=True)
    written = 0
    with tarfile.open(tarball) as archive:
        for member in archive:
            row = wanted.get(member.name)
            if row is None or not member.isfile():
                continue
            source = archive.extractfile(member)
            assert source is not None
            (out / ids[row]).write_bytes(source.read())
            written += 1
    if written != chosen.size:
        raise RuntimeError(f"found {written} of {chosen.size} drawn images in {tarball}")
    truth = pd.DataFrame({"id": ids, "true_label": [CIFAR10_CLASSES[k] for k in true[chosen]],
                          "given_label": [CIFAR10_CLASSES[k] for k in given], "flipped": flipped},
                         columns=_TRUTH_COLUMNS)
    truth.to_csv(out / "truth.csv", index=False)
    return truth


def plant_errors(true: np.ndarray, noise: float, skew: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The journey's planted errors in labels ``true``: uniform into wrong classes (``skew`` 0) or skewed: (given, flipped)."""
    if skew > 0:
        return _skewed_noise(true, noise, skew, rng)
    from coreclean.simulate.noise import inject_noise

    return inject_noise(true, rate=noise, kind="uniform", n_classes=len(CIFAR10_CLASSES), random_state=rng)


def _skewed_noise(true: np.ndarray, noise: float, skew: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``round(noise * n)`` rows drawn uniformly, each moved to a wrong class drawn with weight ``(rank + 1) ** -skew``
    (``rank``: the class's place in a seeded order; its own class excluded): (given labels, flipped)."""
    n_classes = len(CIFAR10_CLASSES)
    weights = (1.0 + rng.permutation(n_classes)) ** -float(skew)
    rows = rng.choice(true.size, size=round(noise * true.size), replace=False)
    given = true.copy()
    for row in rows:
        others = weights.copy()
        others[true[row]] = 0.0
        given[row] = rng.choice(n_classes, p=others / others.sum())
    return given, given != true


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.08)
    parser.add_argument("--skew", type=float, default=0.0, help="wrong folders skewed toward a few classes (0: uniform)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args(argv)
    truth = build_journey_folder(args.out_dir, args.per_class, args.noise, args.seed, skew=args.skew,
                                 shared=args.shared)
    print(f"{len(truth)} images, {int(truth['flipped'].sum())} in a wrong class folder -> {args.out_dir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Unpack the shared CIFAR-10 JPEG tarballs into folder-per-class trees, the layout users have.

    python scripts/prepare_cifar10.py [--shared ../shared] [--out benchmarks/work/cifar10]

writes OUT/train/<class>/NNNN.jpg and OUT/test/<class>/NNNN.jpg (unchanged bytes), plus
OUT/train_order.txt and OUT/test_order.txt copied from the shared folder (line i = image i of
the standard CIFAR-10 order, which CIFAR-10N's label arrays follow). Idempotent: files already
there with the right size are left alone. The data stays outside the package (evaluation only).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def unpack(tarball: Path, out: Path) -> int:
    """Extract regular files of ``tarball`` under ``out``; return how many were written."""
    written = 0
    with tarfile.open(tarball) as archive:
        for member in archive:
            if not member.isfile():
                continue
            target = out / member.name
            if target.is_file() and target.stat().st_size == member.size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "work" / "cifar10")
    args = parser.parse_args(argv)
    data = args.shared / "data" / "cifar10"
    if not data.is_dir():
        print(f"no CIFAR-10 data at {data}; pass --shared", file=sys.stderr)
        return 2
    for split in ("train", "test"):
        n = unpack(data / f"cifar10_{split}_jpg.tar.gz", args.out)
        shutil.copyfile(data / f"{split}_order.txt", args.out / f"{split}_order.txt")
        print(f"{split}: {n} files written under {args.out / split}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

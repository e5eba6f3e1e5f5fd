"""Keep ``python -m benchmarks.knn_variants`` working, and its ``product`` row what the product builds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks import knn_variants
from benchmarks.scale import generate
from coreclean._internal.knn import knn_graph


def test_knn_variants_tiny_and_its_product_row_is_the_products_graph(tmp_path: Path) -> None:
    size = 24_000  # above the exact-search limit: the approximate index, as at a million rows
    out = tmp_path / "variants.json"
    argv = ["--size", str(size), "--variants", "product", "probes32", "--recall-queries", "50",
            "--work", str(tmp_path / "work"), "--out", str(out)]
    assert knn_variants.main(argv) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["size"] == size and [run["variant"] for run in result["runs"]] == ["product", "probes32"]
    product, fewer_probes = result["runs"]
    assert set(product["seconds"]) == {"reduce", "train", "add", "search", "rerank"}
    assert 0 <= fewer_probes["share_of_product_neighbours"] < 1  # 32 probes miss some of 64 probes' neighbours
    assert 0 < fewer_probes["recall_at_k"]["recall"] <= product["recall_at_k"]["recall"] <= 1

    features = np.load(generate(tmp_path / "work", size, 512, 10, 0.1, 0)["features"], mmap_mode="r")
    (indices, _), _ = knn_variants._graph(features)
    assert np.mean(indices == knn_graph(features, 20)[0]) > 0.999

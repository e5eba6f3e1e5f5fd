"""Tests for coreclean.engines.ray_embed on a simulated two-node Ray cluster bound to 127.0.0.1 only.

The Ray path must give the local path's features and bad-file reports, survive a killed actor, and
resume after a killed driver without recomputing committed chunks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read when ray is imported: every node binds 127.0.0.1
ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "coreclean[ray]")')

from coreclean import load_embeddings  # noqa: E402
from coreclean.embedding.embed import embed_dataset  # noqa: E402
from coreclean.engines.ray_embed import RayEmbedder  # noqa: E402
from tests.conftest import make_image_folder, write_image  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """Two simulated nodes with one CPU each, every one on 127.0.0.1; the driver joins them."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, log_to_driver=False)
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"} and len(ray.nodes()) == 2
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def _chunk_rows(cache: Path) -> int:
    rows = 0
    for path in cache.glob("embeddings/*/chunks/chunk-*.npz"):
        with np.load(path) as chunk:
            rows += len(chunk["sha256"]) + len(chunk["failed_sha256"])
    return rows


def test_ray_features_equal_local_with_bad_files(cluster, image_folder: Path, tmp_path: Path,
                                                 tiny_embed_options: dict, rng: np.random.Generator) -> None:
    dog = image_folder / "dog"
    (dog / "zero.png").write_bytes(b"")
    (dog / "text.jpg").write_bytes(b"hello, not a jpeg")
    write_image(dog / "gray.png", rng, mode="L")
    local = embed_dataset(image_folder, tmp_path / "local", **tiny_embed_options)
    engine = RayEmbedder(block_size=3)
    remote = embed_dataset(image_folder, tmp_path / "ray", **tiny_embed_options, compute=engine)
    assert remote.key == local.key and (remote.n_samples, remote.n_skipped) == (local.n_samples, local.n_skipped) == (13, 2)
    a, b = load_embeddings(tmp_path / "local"), load_embeddings(tmp_path / "ray")
    assert list(a.sample_ids) == list(b.sample_ids)
    assert np.abs(np.asarray(a.features) - np.asarray(b.features)).max() <= 1e-5
    errors = [pd.read_csv(tmp_path / c / "errors.csv", keep_default_na=False).sort_values("id") for c in ("local", "ray")]
    assert list(errors[0]["id"]) == list(errors[1]["id"]) == ["dog/text.jpg", "dog/zero.png"]
    assert list(errors[0]["reason"]) == list(errors[1]["reason"])
    assert engine.info["engine"] == "ray" and engine.info["blocks"] >= 4 and engine.info["actors"] >= 1
    again = RayEmbedder()
    assert embed_dataset(image_folder, tmp_path / "ray", **tiny_embed_options, compute=again).n_computed == 0
    assert again.info["blocks"] == 0  # cached content never reaches the cluster


def test_ray_flip_features_equal_local(cluster, image_folder: Path, tmp_path: Path, tiny_embed_options: dict) -> None:
    local = embed_dataset(image_folder, tmp_path / "local", tta="flip", **tiny_embed_options)
    remote = embed_dataset(image_folder, tmp_path / "ray", tta="flip", **tiny_embed_options,
                           compute=RayEmbedder(block_size=3))
    assert remote.key == local.key and remote.n_samples == local.n_samples == 12
    a, b = (load_embeddings(tmp_path / c, key=local.key) for c in ("local", "ray"))
    assert np.abs(np.asarray(a.features) - np.asarray(b.features)).max() <= 1e-5


def test_killed_actor_is_restarted_and_the_run_completes(cluster, tmp_path: Path, tiny_embed_options: dict) -> None:
    folder = make_image_folder(tmp_path / "data", per_class=30)
    engine = RayEmbedder(block_size=1, actors=1)
    done: dict = {}
    runner = threading.Thread(target=lambda: done.setdefault(
        "result", embed_dataset(folder, tmp_path / "c", **tiny_embed_options, chunk_size=4, compute=engine)))
    runner.start()
    killed = None
    for _ in range(600):  # bounded: 60 s
        if engine.pool and _chunk_rows(tmp_path / "c") > 0:
            killed = ray.get(engine.pool[0].pid.remote(), timeout=30)
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.1)
    runner.join(timeout=120)
    assert killed is not None and not runner.is_alive()
    assert done["result"].n_samples == 90 and done["result"].n_skipped == 0
    reference = embed_dataset(folder, tmp_path / "local", **tiny_embed_options)
    diff = np.asarray(load_embeddings(tmp_path / "c").features) - np.asarray(load_embeddings(tmp_path / "local").features)
    assert reference.n_samples == 90 and np.abs(diff).max() <= 1e-5


def test_killed_driver_resumes_without_recomputing(cluster, tmp_path: Path, tiny_embed_options: dict) -> None:
    folder = make_image_folder(tmp_path / "data", per_class=60)
    cache = tmp_path / "c"
    command = [sys.executable, "-m", "coreclean", "--quiet", "embed", str(folder), "--cache", str(cache), "--engine", "ray",
               "--address", cluster.address, "--backbone", "resnet18", "--weights", "none", "--image-size", "64",
               "--device", "cpu", "--precision", "fp32", "--batch-size", "4", "--chunk-size", "2"]
    driver = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # bounded: 120 s
            if _chunk_rows(cache) > 0 or driver.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        driver.kill()
        driver.wait(timeout=30)
    committed = _chunk_rows(cache)
    assert 0 < committed < 180, "the driver finished before it could be killed; slow the run down"
    result = embed_dataset(folder, cache, **{**tiny_embed_options, "image_size": 64}, compute=RayEmbedder())
    assert result.n_samples == 180 and result.n_computed == 180 - committed


def test_hf_dataset_images_reach_the_workers(cluster, tmp_path: Path, tiny_embed_options: dict,
                                             rng: np.random.Generator) -> None:
    datasets = pytest.importorskip("datasets")
    import io

    from PIL import Image

    from coreclean.formats.hf_source import read_hf_dataset

    images = []
    for row in range(6):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)).save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue() if row else b"no image", "path": None})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"image": images, "label": [0, 1] * 3}, features=features).save_to_disk(tmp_path / "ds")
    runs = {}
    for name, compute in (("local", None), ("ray", RayEmbedder(block_size=2))):
        manifest = read_hf_dataset(tmp_path / "ds", tmp_path / name)  # the images live in each cache's store
        runs[name] = embed_dataset(manifest, tmp_path / name, **tiny_embed_options, compute=compute)
    assert (runs["ray"].n_samples, runs["ray"].n_skipped) == (runs["local"].n_samples, runs["local"].n_skipped) == (5, 1)
    a, b = load_embeddings(tmp_path / "local"), load_embeddings(tmp_path / "ray")
    assert list(a.sample_ids) == list(b.sample_ids) == ["1", "2", "3", "4", "5"]
    assert np.abs(np.asarray(a.features) - np.asarray(b.features)).max() <= 1e-5
    errors = pd.read_csv(tmp_path / "ray" / "errors.csv", dtype=str)
    assert errors["id"].tolist() == ["0"] and "not an image" in errors["reason"][0]

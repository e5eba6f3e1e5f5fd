"""The kNN graph: exact and approximate (IVF-PQ) branches both find the cosine neighbours of clustered data."""

from __future__ import annotations

import re

import numpy as np
import pytest

from coreclean._internal.blocks import LocalBlocks
from coreclean._internal.knn import knn_graph
from coreclean._internal.knn_index import reduced_rows


def _clusters(n_samples: int, n_features: int, seed: int = 0) -> np.ndarray:
    """Points around 40 random centres that vary in a 24-d subspace, as image embeddings are near low-rank."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, n_features))
    spread = rng.normal(size=(n_samples, 24)) @ rng.normal(size=(24, n_features)) * 0.15
    noise = 0.01 * rng.normal(size=(n_samples, n_features))
    return (centres[rng.integers(0, 40, n_samples)] + spread + noise).astype(np.float32)


def _brute_force(features: np.ndarray, k: int) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k]


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([np.intersect1d(a, b).size for a, b in zip(found, exact)]) / exact.shape[1])


@pytest.mark.parametrize("exact_limit", [10**9, 0], ids=["exact", "approximate"])
def test_both_branches_recall_the_full_space_neighbours(exact_limit: int) -> None:
    features = _clusters(3000, 300)
    indices, similarities = knn_graph(features, 10, exact_limit=exact_limit, search_dims=64)
    assert indices.shape == similarities.shape == (3000, 10)
    assert not (indices == np.arange(3000)[:, None]).any()  # never its own neighbour
    assert np.all(np.diff(similarities, axis=1) <= 1e-6)  # most similar first
    assert _recall(indices, _brute_force(features, 10)) >= 0.9


def test_similarities_are_cosines_without_reduction() -> None:
    features = _clusters(500, 16)
    indices, similarities = knn_graph(features, 5, search_dims=16)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    expected = np.einsum("nd,nkd->nk", unit, unit[indices])
    np.testing.assert_allclose(similarities, expected, atol=1e-5)
    np.testing.assert_array_equal(indices, _brute_force(features, 5))


def test_reduced_rows_are_unit_rows_of_the_requested_width() -> None:
    reduced = reduced_rows(_clusters(400, 50), 8)
    assert reduced.shape == (400, 8) and reduced.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0, rtol=1e-5)


def test_neighbours_clip_to_the_sample_count_and_duplicates_stay_out_of_their_own_row() -> None:
    features = np.repeat(_clusters(3, 8), 2, axis=0)  # every row twice
    indices, similarities = knn_graph(features, 10)
    assert indices.shape == (6, 5)
    assert not (indices == np.arange(6)[:, None]).any()
    assert knn_graph(features[:1], 3)[0].shape == (1, 0)


def test_neighbours_found_in_a_reduced_space_are_ranked_by_their_full_space_cosine() -> None:
    features = _clusters(2000, 300)
    indices, similarities = knn_graph(features, 10, search_dims=32)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(similarities, np.einsum("nd,nkd->nk", unit, unit[indices]), atol=1e-5)
    assert _recall(indices, _brute_force(features, 10)) >= 0.95  # the 32 columns alone found 0.75


class _SerialisingBlocks(LocalBlocks):
    """Runs here, but hands the block functions what another process would get (serialised indexes)."""

    in_process = False


@pytest.mark.parametrize("runner_type", [LocalBlocks, _SerialisingBlocks], ids=["in-process", "serialised"])
@pytest.mark.parametrize("exact_limit", [10**9, 0], ids=["exact", "approximate"])
def test_an_index_cut_into_shards_finds_what_one_index_finds_and_each_shard_keeps_to_its_bytes(
        exact_limit: int, runner_type: type) -> None:
    """A runner's ``max_index_bytes`` cuts the index into shards (filled in one pass, a block per shard;
    searched one pass each, then a re-rank pass): exact shards give exactly the one index's
    neighbours; approximate ones at least its recall."""
    features = _clusters(6000, 300, seed=3)
    whole_indices, whole_similarities = knn_graph(features, 10, exact_limit=exact_limit, search_dims=64)
    limit = 600_000
    runner = runner_type(block_rows=1700, max_index_bytes=limit)
    indices, similarities = knn_graph(features, 10, exact_limit=exact_limit, search_dims=64, runner=runner)
    shard_bytes = runner.info["index_shard_bytes"]
    assert len(shard_bytes) >= 3 and max(shard_bytes) <= limit
    passes = runner.info["passes"]
    # The approximate index is cut by its inverted lists: one coarse search of every row (the probe pass) first.
    probes = [] if exact_limit else ["probe_block"]
    assert [p["fn"] for p in passes] == probes + ["fill_shard_block"] + ["candidates_block"] * len(shard_bytes) + [
        "rerank_block"]
    fill = passes[len(probes)]
    assert fill["blocks"] == len(shard_bytes) and fill["rows"] == 6000
    assert not (indices == np.arange(6000)[:, None]).any()
    if exact_limit:
        np.testing.assert_array_equal(indices, whole_indices)
        np.testing.assert_allclose(similarities, whole_similarities, atol=1e-6)
    else:
        exact = _brute_force(features, 10)
        assert _recall(indices, exact) >= _recall(whole_indices, exact) - 0.01
        # the shards scan the lists one index scans, divided among them: nearly the same neighbours
        assert _recall(indices, whole_indices) >= 0.98


def test_shards_of_inverted_lists_hold_whole_runs_of_lists_each_row_once_and_none_over_its_capacity() -> None:
    from coreclean._internal.knn_shards import _list_shards

    rng = np.random.default_rng(1)
    for _ in range(50):  # lists from even to very uneven (where even cuts cannot keep to the capacity)
        n_lists, n_rows = int(rng.integers(2, 60)), int(rng.integers(100, 5000))
        nearest_list = rng.choice(n_lists, size=n_rows, p=rng.dirichlet(np.ones(n_lists) * rng.uniform(0.1, 3)))
        capacity = int(max(np.bincount(nearest_list).max(), rng.integers(n_rows // 6 + 1, n_rows + 1)))
        shards = _list_shards(nearest_list, n_lists, -(-n_rows // capacity), capacity)
        assert np.array_equal(np.sort(np.concatenate(shards)), np.arange(n_rows))
        assert all(len(rows) <= capacity for rows in shards)
        lists = [np.unique(nearest_list[rows]) for rows in shards]
        assert all(a.max() < b.min() for a, b in zip(lists, lists[1:]))  # consecutive runs, no list in two shards
        assert all(np.array_equal(rows, np.sort(rows)) for rows in shards)


def test_a_shard_limit_too_small_for_the_index_says_how_many_bytes_it_needs() -> None:
    from coreclean.exceptions import InputValidationError

    features = _clusters(3000, 300)
    with pytest.raises(InputValidationError, match=r"give at least (\d+) bytes") as raised:
        knn_graph(features, 10, exact_limit=0, search_dims=64, runner=LocalBlocks(max_index_bytes=10_000))
    needed = int(re.search(r"give at least (\d+) bytes", str(raised.value)).group(1))
    indices, _ = knn_graph(features, 10, exact_limit=0, search_dims=64, runner=LocalBlocks(max_index_bytes=needed))
    assert _recall(indices, _brute_force(features, 10)) >= 0.9

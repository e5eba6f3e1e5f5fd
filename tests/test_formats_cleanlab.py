"""cleanlab takes the exported arrays as they are."""

import numpy as np
import pytest
import scipy.sparse as sp

from coreclean.exceptions import ManifestError
from coreclean.formats.cleanlab_arrays import export_cleanlab


def test_cleanlab_accepts_the_arrays(tmp_path):
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    from cleanlab.rank import get_label_quality_scores

    rng = np.random.default_rng(0)
    n, c, k = 60, 3, 4
    labels = np.repeat(np.arange(c), n // c)
    probs = rng.dirichlet(np.ones(c), n) + 3 * np.eye(c)[labels]
    probs[0] = [0.0, 5.0, 0.0]  # sample 0 looks like class 1 though labelled 0
    indices = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    sims = rng.uniform(0, 1, (n, k))
    paths = export_cleanlab(np.array([f"s{i}" for i in range(n)]), labels, probs, indices, sims, tmp_path)
    got_labels, got_probs = np.load(paths["labels"]), np.load(paths["pred_probs"])
    np.testing.assert_allclose(got_probs.sum(axis=1), 1.0, rtol=1e-5)
    quality = get_label_quality_scores(got_labels, got_probs)
    assert quality.argmin() == 0
    assert cleanlab_filter.find_label_issues(got_labels, got_probs)[0]
    graph = sp.load_npz(paths["knn_graph"])
    assert graph.format == "csr" and graph.shape == (n, n) and np.all(np.diff(graph.indptr) == k)
    row = graph.getrow(5)
    assert set(row.indices) == set(indices[5]) and np.all(np.diff(row.data) >= 0)  # nearest first
    np.testing.assert_allclose(sorted(row.data), sorted(1 - sims[5]))
    assert paths["ids"].read_text().splitlines()[:2] == ["s0", "s1"]


def test_mismatched_arrays_are_refused(tmp_path):
    with pytest.raises(ManifestError, match="arrays disagree"):
        export_cleanlab(np.array(["a"]), np.array([0, 1]), np.ones((2, 2)), np.zeros((2, 1)), np.zeros((2, 1)),
                        tmp_path)


@pytest.mark.usefixtures("one_thread")
def test_session_export_format_cleanlab(tmp_path, capsys):
    from conftest import make_feature_cache

    from coreclean.cli import main

    cache, _, _, noisy = make_feature_cache(tmp_path, n_per_class=30)
    common = ["--session", str(tmp_path / "s.session"), "--threads", "1"]
    assert main(["session", "start", "--cache", str(cache), "--class", "cat", *common]) == 0
    assert main(["session", "export", *common, "--out", str(tmp_path / "cl"), "--format", "cleanlab"]) == 0
    labels, probs = np.load(tmp_path / "cl" / "labels.npy"), np.load(tmp_path / "cl" / "pred_probs.npy")
    assert labels.shape == (noisy.size,) and np.array_equal(labels, noisy) and probs.shape == (noisy.size, 3)
    assert sp.load_npz(tmp_path / "cl" / "knn_graph.npz").shape == (noisy.size, noisy.size)

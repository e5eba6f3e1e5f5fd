"""What does coreclean do, end to end, on a machine with no download? The ``coreclean demo``.

:func:`run_demo` writes scikit-learn's bundled handwritten digits (1,797 8x8 images, no download) as
32x32 PNG files in a folder per class, moves 10% of them into a wrong class folder
(:func:`coreclean.simulate.noise.inject_noise`), embeds the folder with :func:`coreclean.embed_dataset`, picks
the classes to clean with :func:`coreclean.diagnostics.class_report.class_report`, and runs the same cleaning
session twice with a simulated reviewer who knows the truth: once ranked by coreclean, once in
random order. Both sessions are real session files, so ``coreclean session status`` works on them.

Backbone: ResNet18 with ImageNet weights when they are already in torchvision's cache (or given as
``weights``); otherwise raw pixels (the ``pixels`` backbone), which suit these tiny images.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["run_demo", "DemoResult", "write_digits", "choose_backbone", "RESNET18_CHECKPOINT"]

logger = logging.getLogger(__name__)

RESNET18_CHECKPOINT = "resnet18-f37072fd.pth"
"""File name of torchvision's ResNet18 ImageNet weights in ``torch.hub.get_dir()/checkpoints``."""


@dataclass
class DemoResult:
    """What the demo produced.

    Attributes
    ----------
    out_dir : Path
    backbone, weights : str
        What embedded the images; ``note`` says why.
    classes : list of str
        The classes cleaned (the report's top rows).
    n_errors : int
        Planted errors in those classes.
    rounds : dict of str to DataFrame
        ``"coreclean"`` and ``"random"``: each session's :meth:`CleaningSession.rounds`.
    comparison : DataFrame
        Per round: reviewed so far and errors found so far by each ranking.
    report : DataFrame
        The class report.
    paths : dict of str to Path
        Written files (plots, sessions, export).
    """

    out_dir: Path
    backbone: str
    weights: str
    note: str
    classes: list[str]
    n_errors: int
    n_errors_total: int
    rounds: dict[str, pd.DataFrame]
    comparison: pd.DataFrame
    report: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)


def write_digits(root: str | os.PathLike, *, noise_rate: float = 0.1, image_size: int = 32,
                 random_state: int = 0) -> pd.DataFrame:
    """Write the digits as ``root/<noisy label>/digit-<i>.png`` and return the truth table.

    Returns
    -------
    pandas.DataFrame
        ``id`` (path relative to ``root``, the sample id ``coreclean embed`` gives it), ``true_label``,
        ``given_label``, ``flipped``.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    from coreclean.simulate.noise import inject_noise

    root = Path(root)
    digits = load_digits()
    true = digits.target.astype(np.int64)
    noisy, flipped = inject_noise(true, rate=noise_rate, kind="uniform", n_classes=10, random_state=random_state)
    rows = []
    for i, (image, label) in enumerate(zip(digits.images, noisy)):
        pixels = np.clip(image * (255.0 / 16.0), 0, 255).astype(np.uint8)
        picture = Image.fromarray(255 - pixels, mode="L").resize((image_size, image_size), Image.BILINEAR).convert("RGB")
        sample_id = f"{label}/digit-{i:04d}.png"
        path = root / sample_id
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path)
        rows.append((sample_id, str(true[i]), str(label), bool(flipped[i])))
    return pd.DataFrame(rows, columns=["id", "true_label", "given_label", "flipped"])


def choose_backbone(weights: str | os.PathLike | None = None) -> tuple[str, str | None, int, str]:
    """Pick the demo's backbone without downloading anything: ``(backbone, weights, image_size, note)``."""
    if weights is not None:
        return "resnet18", str(weights), 32, f"ResNet18 with weights {weights}"
    import torch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_CHECKPOINT
    if cached.is_file():
        return "resnet18", str(cached), 32, f"ResNet18 with the ImageNet weights cached at {cached}"
    return "pixels", None, 16, (f"no ResNet18 weights in {cached.parent} (the demo never downloads): "
                                "using raw pixels at 16x16, which suit these tiny digits")


def run_demo(
    out_dir: str | os.PathLike = "coreclean-demo",
    *,
    weights: str | os.PathLike | None = None,
    backbone: str | None = None,
    image_size: int | None = None,
    noise_rate: float = 0.1,
    n_classes_to_clean: int = 3,
    batch_size: int = 15,
    n_rounds: int = 4,
    random_state: int = 0,
    progress: bool = True,
    on_round: Callable[[str, object], None] | None = None,
    n_threads: int | None = 1,
) -> DemoResult:
    """Run the whole demo into ``out_dir``; see the module docstring.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Holds ``data/`` (the images), ``cache/``, ``sessions/``, ``export/`` and the PNG plots. Its
        sessions are started afresh on every run; images and embeddings are reused.
    weights : str or os.PathLike, optional
        A ResNet18 state-dict file; default: torchvision's cached ImageNet weights if present.
    backbone, image_size : optional
        Force a backbone (e.g. ``"resnet18"`` with ``weights="none"``) and its input size.
    noise_rate : float
        Share of labels flipped.
    n_classes_to_clean : int
        The class report's top rows to clean.
    batch_size : int
        Samples per class per round.
    n_rounds : int
    random_state : int
    progress : bool
        Show the embedding progress bar.
    on_round : callable, optional
        Called as ``on_round(ranking_name, RoundResult)`` after each round.
    n_threads : int, optional
        OpenMP/BLAS threads for the fits (default 1: these problems are small, and extra threads
        spinning on a busy machine cost far more than they give).

    Returns
    -------
    DemoResult
    """
    from coreclean.embedding.cache import load_embeddings
    from coreclean.diagnostics.class_report import class_report
    from coreclean.embedding.embed import embed_dataset
    from coreclean.diagnostics.plots import contact_sheet, plot_errors_found, plot_rounds
    from coreclean.sessions.session import CleaningSession
    from coreclean.simulate.reviewer import SimulatedReviewer

    out_dir = Path(out_dir)
    data_dir, cache_dir, session_dir = out_dir / "data", out_dir / "cache", out_dir / "sessions"
    truth_path = out_dir / "truth.csv"
    if truth_path.is_file() and data_dir.is_dir():
        truth = pd.read_csv(truth_path, dtype={"id": str, "true_label": str, "given_label": str})
    else:
        if data_dir.exists():
            shutil.rmtree(data_dir)
        truth = write_digits(data_dir, noise_rate=noise_rate, random_state=random_state)
        out_dir.mkdir(parents=True, exist_ok=True)
        truth.to_csv(truth_path, index=False)
    chosen_backbone, chosen_weights, chosen_size, note = choose_backbone(weights)
    if backbone is not None:
        chosen_backbone, chosen_weights, note = backbone, weights, f"backbone {backbone} as asked"
        chosen_size = image_size or chosen_size
    elif image_size is not None:
        chosen_size = image_size
    embedded = embed_dataset(data_dir, cache_dir, backbone=chosen_backbone, weights=chosen_weights, device="cpu",
                             batch_size=128, workers=0, image_size=chosen_size, precision="fp32", progress=progress)
    embeddings = load_embeddings(cache_dir, key=embedded.key)
    report = class_report(embeddings.features, embeddings.labels, class_names=embeddings.class_names,
                          random_state=random_state, n_threads=n_threads)
    classes = report["class"].head(n_classes_to_clean).tolist()
    truth_by_id = dict(zip(truth["id"], truth["true_label"]))
    true_labels = np.array([embeddings.class_names.index(truth_by_id[str(s)]) for s in embeddings.sample_ids])
    flipped = true_labels != embeddings.labels
    in_classes = np.isin(embeddings.labels, [embeddings.class_names.index(c) for c in classes])
    session_dir.mkdir(parents=True, exist_ok=True)
    rounds: dict[str, pd.DataFrame] = {}
    paths: dict[str, Path] = {}
    first_batch = None
    for name, method in (("coreclean", "coreclean"), ("random", "random")):
        path = session_dir / f"{name}.session"
        for stale in session_dir.glob(f"{name}.session*"):
            stale.unlink()
        with CleaningSession.start(cache_dir, path, classes=classes, batch_size=batch_size, method=method,
                                   key=embedded.key, random_state=random_state, n_threads=n_threads) as session:
            reviewer = SimulatedReviewer(session.sample_ids, true_labels, session.class_names)
            for _ in range(n_rounds):
                batch = session.next_batch()
                if batch.empty:
                    break
                if first_batch is None:
                    first_batch = batch
                session.apply(reviewer.review(batch))
                result = session.close_round()
                if on_round is not None:
                    on_round(name, result)
            rounds[name] = session.rounds()
            paths[f"{name}_session"] = path
            paths[f"{name}_rounds_plot"] = plot_rounds(rounds[name], out_dir / f"{name}-rounds.png",
                                                       title=f"{name} ranking: {', '.join(classes)}")
            if name == "coreclean":
                paths["export"] = session.export(out_dir / "export")["labels"].parent
    n_errors = int((flipped & in_classes).sum())
    comparison = pd.DataFrame({
        "round": rounds["coreclean"]["round"],
        "reviewed": rounds["coreclean"]["reviewed_total"],
        "coreclean_found": rounds["coreclean"]["errors_found_total"],
        "random_found": rounds["random"]["errors_found_total"].reindex(rounds["coreclean"].index),
        "coreclean_verdict": rounds["coreclean"]["verdict"],
    })
    paths["comparison_plot"] = plot_errors_found({"coreclean": rounds["coreclean"], "random": rounds["random"]},
                                                 out_dir / "errors-found.png", total_errors=n_errors,
                                                 title=f"digits, {noise_rate:.0%} label noise: classes {', '.join(classes)}")
    if first_batch is not None:
        paths["contact_sheet"] = contact_sheet(first_batch, out_dir / "round-1-batch.png")
    return DemoResult(out_dir=out_dir, backbone=chosen_backbone, weights=str(chosen_weights), note=note, classes=classes,
                      n_errors=n_errors, n_errors_total=int(flipped.sum()), rounds=rounds, comparison=comparison,
                      report=report, paths=paths)

"""Would random audits make a session's per-class "errors left" meet the bar on CIFAR-10N? A simulation.

A session estimates the errors left in a class from the ranker's scores, recalibrated on the
reviewer's verdicts (:mod:`coreclean.sessions.errors_left`). The verdicts come from the top of the
ranking; on CIFAR-10N aggre most of the errors left sit in the bulk, where the scores are
under-confident (bin 0-0.1 of P(label wrong): 2.9 % wrong against a mean score of 1.3 %), so the
estimate falls short (round 2: ~2,500 estimated where ~3,600 are). Issue #10 asks for every class
within max(5, 30 % of its true count) from round 2. The obvious cure is random audits: each round,
``K`` unreviewed samples per class drawn at random and reviewed too, so the bulk's error rate is
measured rather than extrapolated. This benchmark measures what that buys, by simulation (the
reviewer is CIFAR-10's clean labels), with four estimates each round:

- ``verdicts``: the product's estimate (top-of-ranking verdicts, a logit shift shared by the classes
  and one per class);
- ``verdicts+audits``: the same fit with the audits' verdicts added;
- ``verdicts+audits, slope``: shift and slope, ``sigmoid(a + b logit(s))``, on the same verdicts;
- ``audits' shift``: the same calibration fitted on the audits alone;
- ``difference``: the product's count plus the unreviewed count times the audits' mean residual
  (verdict minus calibrated probability), the unbiased difference estimator;
- ``shrunk difference``: that correction taken in proportion to its precision, what
  ``session start --audit K`` does (:func:`coreclean.sessions.errors_left.audit_corrected_count`);
- ``audit ratio``: per class, the unreviewed count times the audits' error rate (model-free);
- ``difference, scores now`` / ``shrunk, scores now``: the two above with each audit's residual at its
  score now (the ranker in hand, as the pool is scored) instead of its score when drawn — what the
  product does since the drift below was traced to it.

``K = 0`` is the product as it is. A class's bar counts as met when its estimate is within
max(5, 30 % of the truth). The lower bound printed beside it is statistics, not software: an audit
sample estimating a rate ``p`` within 30 % at one standard error needs ``(1 - p) / (0.09 p)`` draws,
about 110 a class at aggre's 9 % (180 once the unreviewed pool is down to its ~6 %).

What it found (``benchmarks/results/audit_sampling.md``, 6 rounds): on worse (40 % wrong) the
product's estimate overcounts more each round (25,000 left where 17,000 are; 0-1 of 10 classes
within the bar from round 3), because the top-of-ranking verdicts are nearly all errors and the
shift they fit is applied to the bulk; 5 audits a class a round (10 % more reviews) bring 8 of 10
classes within it, 20 bring all 10; the shrunk difference brings 9-10 of 10 with 5. Residuals at the
scores audits had when drawn drift low as the scores move with the cleaning (20 audits, round 5: 15,000
for 17,250); at the scores now 17,600, and through the product (audits reviewed and applied) 9-10 of 10
with 5 audits, 17,400 for 17,500 at round 5. On aggre (9 %) adding the audits to the fit does not move
it (4-5 of 10); the shrunk difference gives 5-6 of 10 with 5 audits and 5-7 with 20 (through the
product 2-7 and 4-7): the audits are too few for that rate, alone (``audit ratio``) too noisy.

Since the estimate fits a shift per class beside the shared one (``CLASS_STRENGTH``; 5 rounds,
classes within the bar, rounds 1-5, through the product): aggre without audits 7/6/4/3/2 (shared
shift only: 5/4/4/4/5), with 5 audits 5/5/5/3/4 (3/2/6/7/7), with 20 4/6/5/4/3 (4/7/6/6/6); worse
without 8/4/1/0/0 (9/5/1/0/0), with 5 9/10/9/9/9 (10/10/9/9/9), with 20 9/9/10/10/9 (9/9/10/10/10).
On this human noise it is about even, a little behind with audits on aggre; on the journey's
folders it is what brought the estimate within the bar (``benchmarks.class_shift_sweep``).

    python -m benchmarks.audit_sampling [--rounds 6] [--audits 0 5 20]   # ~1 min a setting on 2 cores
    (the committed results: --audits 0 5 20 --rounds 5)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

from benchmarks.common import machine_info, write_json
from benchmarks.data import cifar10n_labels, cifar_available, load_cifar10
from coreclean.sessions.errors_left import PRIOR_STRENGTH, audit_corrected_count, calibrated_error_probabilities
from coreclean.sessions.session import CleaningSession
from coreclean.sessions.state import reviewed_rows
from coreclean.sessions.store import HIT_ACTIONS
from coreclean.simulate.reviewer import SimulatedReviewer

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 50
ESTIMATES = ("verdicts", "verdicts+audits", "verdicts+audits, slope", "audits' shift", "difference", "shrunk difference",
             "audit ratio", "difference, scores now", "shrunk, scores now")


def within_bar(estimate: float, true: int) -> bool:
    """Issue #10's bar on one class: the estimate within max(5, 30 % of the true count)."""
    return abs(estimate - true) <= max(5.0, 0.3 * true)


def audits_for_relative_error(rate: float, relative_error: float = 0.3) -> float:
    """Random draws needed to estimate an error rate ``rate`` within ``relative_error`` at one standard error."""
    return (1.0 - rate) / (rate * relative_error ** 2)


def _clipped_logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, 1e-6, 1 - 1e-6))


def _shift_and_slope(scores: np.ndarray, was_error: np.ndarray, prior: float = PRIOR_STRENGTH) -> tuple[float, float]:
    x = _clipped_logit(scores)
    y = was_error.astype(np.float64)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] + params[1] * x
        gap = expit(z) - y
        penalty = 0.5 * prior * (params[0] ** 2 + (params[1] - 1.0) ** 2)
        return (float(np.sum(np.logaddexp(0.0, z) - y * z)) + penalty,
                np.array([gap.sum() + prior * params[0], (gap * x).sum() + prior * (params[1] - 1.0)]))

    a, b = minimize(loss, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B").x
    return float(a), float(b)


def _calibrated(reviewed: tuple[np.ndarray, np.ndarray, np.ndarray], at: np.ndarray, at_classes: np.ndarray) -> np.ndarray:
    """The product's recalibration (shared and per-class shift) of scores ``at`` on (scores, verdicts, classes)."""
    return calibrated_error_probabilities(reviewed[0], reviewed[1], at, reviewed_classes=reviewed[2],
                                          unreviewed_classes=at_classes)


def simulate(dataset, noisy: np.ndarray, clean: np.ndarray, *, audits_per_class: int, rounds: int,
             seed: int = 0) -> list[dict[str, Any]]:
    """One all-class session of ``BATCH`` reviews a class a round, plus ``audits_per_class`` random audits; a row a round."""
    rng = np.random.default_rng(seed)
    n_classes = len(dataset.class_names)
    audited: list[int] = []
    audit_scores: list[float] = []
    rows = []
    with CleaningSession.start(dataset.cache_dir, ":memory:", classes=list(dataset.class_names), batch_size=BATCH,
                               evaluate=False, labels=noisy, key=dataset.cache_key, random_state=seed,
                               n_threads=1) as session:
        reviewer = SimulatedReviewer(session.sample_ids, clean, session.class_names)
        for round_number in range(1, rounds + 1):
            session.apply(reviewer.review(session.next_batch()))
            session.close_round()
            scores = session.ranker().scores_.astype(np.float64)
            labels, weights = session.labels, session.weights
            live = session.live_decisions()
            reviewed = reviewed_rows(live, labels.size)
            is_audited = np.zeros(labels.size, dtype=bool)
            is_audited[audited] = True
            for c in range(n_classes):
                members = np.flatnonzero((labels == c) & (weights > 0) & ~reviewed & ~is_audited)
                picked = rng.choice(members, size=min(audits_per_class, members.size), replace=False)
                audited.extend(picked.tolist())
                audit_scores.extend(scores[picked].tolist())
            is_audited[audited] = True
            audit_rows = np.asarray(audited, dtype=np.int64)
            audit_error = noisy[audit_rows] != clean[audit_rows]
            pool = ~reviewed & ~is_audited & (weights > 0)
            wrong = pool & (labels != clean)

            decided = live[live["action"] != "skip"]
            shown = decided["score"].to_numpy(np.float64)
            verdict = decided["action"].isin(HIT_ACTIONS).to_numpy()
            known = np.isfinite(shown)
            shown, verdict = shown[known], verdict[known]
            shown_in = decided["old_label"].to_numpy(np.int64)[known]
            pool_labels = labels[pool]
            audit_labels = labels[audit_rows]

            verdicts = (shown, verdict, shown_in)
            with_audits = (np.concatenate([shown, audit_scores]), np.concatenate([verdict, audit_error]),
                           np.concatenate([shown_in, audit_labels]))
            a, b = _shift_and_slope(*with_audits[:2])
            probabilities = {
                "verdicts": _calibrated(verdicts, scores[pool], pool_labels),
                "verdicts+audits": _calibrated(with_audits, scores[pool], pool_labels),
                "verdicts+audits, slope": expit(a + b * _clipped_logit(scores[pool])),
            }
            if audit_rows.size:
                drawn = np.asarray(audit_scores)
                probabilities["audits' shift"] = _calibrated((drawn, audit_error, audit_labels), scores[pool], pool_labels)
                at_audits = _calibrated(verdicts, drawn, audit_labels)
                residual = audit_error - at_audits
                at_audits_now = _calibrated(verdicts, scores[audit_rows], audit_labels)
                residual_now = audit_error - at_audits_now
            row: dict[str, Any] = {"round": round_number, "audits": int(audit_rows.size),
                                   "audit_errors": int(audit_error.sum()), "true_left": int(wrong.sum()),
                                   "true_left_per_class": [int((wrong & (labels == c)).sum()) for c in range(n_classes)],
                                   "estimates": {}}
            for name in ESTIMATES:
                if name in ESTIMATES[3:] and audit_rows.size == 0:
                    continue
                if name == "audit ratio":
                    per_class = [float((pool_labels == c).sum() * audit_error[audit_labels == c].mean())
                                 for c in range(n_classes)]
                elif name in ("difference", "difference, scores now"):
                    of = residual if name == "difference" else residual_now
                    per_class = [max(0.0, float(probabilities["verdicts"][pool_labels == c].sum()
                                                + (pool_labels == c).sum() * of[audit_labels == c].mean()))
                                 for c in range(n_classes)]
                elif name in ("shrunk difference", "shrunk, scores now"):
                    at = at_audits if name == "shrunk difference" else at_audits_now
                    per_class = [audit_corrected_count(float(probabilities["verdicts"][pool_labels == c].sum()),
                                                       int((pool_labels == c).sum()), audit_error[audit_labels == c],
                                                       at[audit_labels == c])[0] for c in range(n_classes)]
                else:
                    per_class = [float(probabilities[name][pool_labels == c].sum()) for c in range(n_classes)]
                row["estimates"][name] = {
                    "total": float(sum(per_class)), "per_class": per_class,
                    "classes_within_bar": int(sum(within_bar(e, t) for e, t in zip(per_class, row["true_left_per_class"])))}
            rows.append(row)
            print(f"  K={audits_per_class} round {round_number}: true {row['true_left']}, "
                  + ", ".join(f"{k} {v['total']:.0f} ({v['classes_within_bar']}/{n_classes})"
                              for k, v in row["estimates"].items()), file=sys.stderr, flush=True)
    return rows


def through_the_product(dataset, noisy: np.ndarray, clean: np.ndarray, *, audit: int, rounds: int,
                        seed: int = 0) -> list[dict[str, Any]]:
    """The same session run as a user would with ``session start --audit K``: audits shown, reviewed and applied."""
    rows = []
    with CleaningSession.start(dataset.cache_dir, ":memory:", classes=list(dataset.class_names), batch_size=BATCH,
                               evaluate=False, labels=noisy, key=dataset.cache_key, random_state=seed,
                               n_threads=1, audit=audit) as session:
        reviewer = SimulatedReviewer(session.sample_ids, clean, session.class_names)
        for round_number in range(1, rounds + 1):
            session.apply(reviewer.review(session.next_batch()))
            result = session.close_round()
            labels, weights = session.labels, session.weights
            wrong = (labels != clean) & (weights > 0) & ~reviewed_rows(session.live_decisions(), labels.size)
            true = [int((wrong & (labels == c)).sum()) for c in range(len(session.class_names))]
            estimate = [float(result.errors_left_by_class[name]) for name in session.class_names]
            rows.append({"round": round_number, "true_left": int(sum(true)), "estimated_left": float(sum(estimate)),
                         "classes_within_bar": int(sum(within_bar(e, t) for e, t in zip(estimate, true))),
                         "verdict": result.verdict.summary})
            print(f"  product --audit {audit} round {round_number}: true {rows[-1]['true_left']}, estimated "
                  f"{rows[-1]['estimated_left']:.0f} ({rows[-1]['classes_within_bar']}/10)", file=sys.stderr, flush=True)
    return rows


def run(*, noises: list[str], audits: list[int], rounds: int, product: bool = True) -> dict[str, Any]:
    start = time.perf_counter()
    dataset = load_cifar10()
    label_sets = cifar10n_labels(dataset)
    clean = label_sets["clean"]
    results: dict[str, Any] = {"machine": machine_info(), "batch_per_class": BATCH, "rounds": rounds, "settings": {}}
    for noise in noises:
        noisy = label_sets[noise]
        rate = float(np.mean(noisy != clean))
        results["settings"][noise] = {
            "error_rate": rate, "audits_per_class_for_30pct_at_1se": audits_for_relative_error(rate),
            "runs": {str(k): simulate(dataset, noisy, clean, audits_per_class=k, rounds=rounds) for k in audits},
            "product": {str(k): through_the_product(dataset, noisy, clean, audit=k, rounds=rounds)
                        for k in audits if product}}
    results["wall_seconds"] = time.perf_counter() - start
    return results


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = ["# Random audits and the per-class errors-left estimate (CIFAR-10N, simulated reviewer)", "",
             f"Command: `{results.get('command', 'python -m benchmarks.audit_sampling')}`; commit {(results['machine']['git']['commit'] or '?')[:7]}; "
             f"{results['wall_seconds'] / 60:.1f} min. One all-class session, {results['batch_per_class']} ranked reviews a "
             "class a round, plus K random audits a class a round. `verdicts`: the product without audits; `shrunk, "
             "scores now`: the product's estimate with `--audit K` (audits drawn but not applied here). Cells: estimated errors left in all (classes of 10 "
             "within max(5, 30 % of true)).", ""]
    for noise, setting in results["settings"].items():
        lines += [f"## {noise} ({setting['error_rate']:.1%} wrong; one standard error within 30 % needs "
                  f"~{setting['audits_per_class_for_30pct_at_1se']:.0f} audits a class)", "",
                  "| K | round | audits | true left | " + " | ".join(ESTIMATES) + " |",
                  "|---|---|---|---|" + "---|" * len(ESTIMATES)]
        for k, rows in setting["runs"].items():
            for row in rows:
                cells = [f"{row['estimates'][name]['total']:.0f} ({row['estimates'][name]['classes_within_bar']})"
                         if name in row["estimates"] else "—" for name in ESTIMATES]
                lines.append(f"| {k} | {row['round']} | {row['audits']} | {row['true_left']} | " + " | ".join(cells) + " |")
        if setting.get("product"):
            lines += ["", "Through the product (`session start --audit K`, audits reviewed and applied):", "",
                      "| K | round | true left | estimated left (classes within bar) |", "|---|---|---|---|"]
            for k, rows in setting["product"].items():
                lines += [f"| {k} | {row['round']} | {row['true_left']} | {row['estimated_left']:.0f} "
                          f"({row['classes_within_bar']}) |" for row in rows]
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noises", nargs="+", default=["aggre", "worse"])
    parser.add_argument("--audits", nargs="+", type=int, default=[0, 5, 20])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    if not cifar_available():
        print("audit_sampling: ../shared CIFAR-10 is not here; nothing to measure.", file=sys.stderr)
        return 0
    results = run(noises=args.noises, audits=args.audits, rounds=args.rounds)
    results["command"] = " ".join(["python -m benchmarks.audit_sampling", *(sys.argv[1:] if argv is None else argv)])
    write_json(RESULTS / "audit_sampling.json", results)
    write_markdown(results, RESULTS / "audit_sampling.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What are the labels and weights now? The session's state as a fold over its decision log.

The decision log (:mod:`coreclean.sessions.store`) is the one source of truth: every label, weight
and "reviewed" flag a session shows is computed here from the start snapshot and the live
decisions, never kept beside them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["replay", "decided_before", "reviewed_rows", "audited", "TRUSTED_ACTIONS"]

TRUSTED_ACTIONS = ("keep", "relabel", "downweight")
"""Decisions after which a sample's (possibly new) label is known to be right."""


def replay(start_labels: np.ndarray, start_weights: np.ndarray, live: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels and weights after the ``live`` decisions (applied in id order) on top of the start snapshot.

    Returns new arrays; the inputs are not modified.
    """
    labels = start_labels.copy()
    weights = start_weights.copy()
    for row in live.itertuples(index=False):
        if row.action == "relabel":
            labels[row.idx] = int(row.new_label)
        elif row.action in ("drop", "downweight"):
            weights[row.idx] = float(row.weight)
    return labels, weights


def decided_before(live: pd.DataFrame, round_number: int) -> pd.DataFrame:
    """The live decisions of rounds before ``round_number`` (the closed rounds, for the open round)."""
    return live[live["round"] < round_number]


def reviewed_rows(live: pd.DataFrame, n_samples: int) -> np.ndarray:
    """Boolean mask of the samples with a live decision other than ``skip``."""
    mask = np.zeros(n_samples, dtype=bool)
    mask[live.loc[live["action"] != "skip", "idx"].to_numpy(np.int64)] = True
    return mask


def audited(decisions: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows of ``decisions`` made on random audits (none without an ``audit`` column)."""
    if "audit" not in decisions.columns:
        return np.zeros(len(decisions), dtype=bool)
    return decisions["audit"].to_numpy(bool)

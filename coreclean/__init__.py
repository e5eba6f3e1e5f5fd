"""coreclean: find and fix mislabeled images in classification datasets.

Public entry points are re-exported here lazily, so ``import coreclean`` never imports torch,
faiss or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "load_embeddings": "coreclean.embedding.cache",
    "read_samples": "coreclean.embedding.cache",
    "embed_dataset": "coreclean.embedding.embed",
    "read_manifest": "coreclean.embedding.manifest",
    "read_hf_dataset": "coreclean.formats.hf_source",
    "LabelIssueRanker": "coreclean.scoring.ranker",
    "estimate_errors_per_class": "coreclean.scoring.confident_joint",
    "estimate_noise_structure": "coreclean.scoring.noise_prior",
    "SensitivityCoreset": "coreclean.scoring.linear.coreset",
    "inject_noise": "coreclean.simulate.noise",
    "noise_impact": "coreclean.diagnostics.noise_impact",
    "CleaningSession": "coreclean.sessions.session",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'coreclean' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)

"""The exceptions coreclean raises: one hierarchy, each also a matching builtin."""

from __future__ import annotations

__all__ = [
    "CorecleanError",
    "ManifestError",
    "WeightsError",
    "CacheError",
    "CacheMismatchError",
    "InputValidationError",
    "SessionError",
    "DecisionError",
]


class CorecleanError(Exception):
    """Base class of every error coreclean raises on purpose."""


class ManifestError(CorecleanError, ValueError):
    """A dataset folder or CSV manifest cannot be read as a labelled image set."""


class WeightsError(CorecleanError, ValueError):
    """A backbone name or weights file is missing, unknown or does not fit the model."""


class CacheError(CorecleanError, RuntimeError):
    """An embedding cache is missing, unreadable or inconsistent."""


class CacheMismatchError(CacheError):
    """A cache was asked for with settings other than the ones it was built with."""


class InputValidationError(CorecleanError, ValueError):
    """Arrays handed to a scorer are malformed (shape, NaN, unknown label, ...)."""


class SessionError(CorecleanError, RuntimeError):
    """A cleaning session cannot do what was asked (wrong cache, no such class, ...)."""


class DecisionError(SessionError, ValueError):
    """A batch of review decisions is invalid; nothing of it was applied."""

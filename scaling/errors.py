"""The project's error hierarchy: what a user can fix (hard) versus what a fit can survive (soft).

Every `ScalingError` message is one line that names the problem and the fix; the CLI prints it
and exits 2. Anything else is a bug and is left to raise with its traceback.
"""

from __future__ import annotations


class ScalingError(Exception):
    """A problem the user can fix: bad config, bad input table, impossible request."""


class ConfigError(ScalingError):
    """An impossible or unknown configuration value (caught before any training starts)."""


class DataError(ScalingError):
    """An input table, log or text source that cannot be read or lacks what is needed."""


class FitError(ScalingError):
    """A fit that cannot be attempted at all (too few points, a single model size, ...)."""


class FitWarning(UserWarning):
    """A soft failure: the fit ran but its answer deserves suspicion (bound hit, edge minimum)."""

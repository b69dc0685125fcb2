"""Exception types raised by radharmony.

Every error names what went wrong, where (case, file, column, row) and how to fix it.
They all derive from :class:`RadharmonyError` so scripts can catch the package's own errors
separately from programming errors.
"""

from __future__ import annotations


class RadharmonyError(Exception):
    """Base class of every error raised on purpose by radharmony."""


class ManifestError(RadharmonyError, ValueError):
    """A cohort manifest is malformed (missing column, missing file, duplicate, empty value)."""


class ImageReadError(RadharmonyError, OSError):
    """An image or mask file cannot be read (missing, truncated, corrupt or unsupported)."""


class GeometryMismatchError(RadharmonyError, ValueError):
    """An image and its mask do not share the same voxel grid."""


class EmptyMaskError(RadharmonyError, ValueError):
    """A mask holds no lesion voxels (after removing lesions below the minimum size)."""


class SettingsError(RadharmonyError, ValueError):
    """Extraction settings are invalid (unknown key, bad value, unknown preset)."""


class HarmonizationError(RadharmonyError, ValueError):
    """Harmonisation cannot be fitted or applied to the given data."""


class ModelError(RadharmonyError, ValueError):
    """A model cannot be built, evaluated or explained on the given data."""

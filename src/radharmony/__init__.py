"""radharmony: IBSI-compliant radiomics, leak-free ComBat harmonisation and explainable models.

The data flow is one-way: images -> lesions -> features -> harmonised features -> model ->
explanations -> report. Each stage is a module; the public API is re-exported here.
"""

from __future__ import annotations

from radharmony._version import __version__
from radharmony.errors import (
    EmptyMaskError,
    GeometryMismatchError,
    HarmonizationError,
    ImageReadError,
    ManifestError,
    ModelError,
    RadharmonyError,
    SettingsError,
)

__all__ = [
    "__version__",
    "EmptyMaskError",
    "GeometryMismatchError",
    "HarmonizationError",
    "ImageReadError",
    "ManifestError",
    "ModelError",
    "RadharmonyError",
    "SettingsError",
]

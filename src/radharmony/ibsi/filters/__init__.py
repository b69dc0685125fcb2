"""IBSI 2 standardised convolutional filters: mean, LoG, Laws, Gabor, separable and Simoncelli
wavelets, and Riesz-transformed LoG and Simoncelli filters.

Filters are settings objects (:class:`ImageFilter` subclasses) listed in the ``filters`` of the
extraction settings; :func:`filter_image` applies one to a whole image and
:func:`filtered_feature_dictionary` describes the columns filters add to an extraction. The
implementation reproduces every published IBSI 2 phase-1 consensus response map and the
phase-2 reference values of configuration A (see :mod:`radharmony.ibsi.filters.ibsi2`). Conventions: arrays are (z, y, x); kernel letters,
sub-band letters and Riesz orders refer to x, y, z; IBSI boundary conditions ``zero``,
``nearest``, ``periodic`` and ``mirror`` (the edge voxel repeated: ``abc|cba``).
"""

from __future__ import annotations

from radharmony.ibsi.filters._base import (
    BOUNDARIES,
    FILTERED_FEATURE_CLASSES,
    ImageFilter,
    number_token,
)
from radharmony.ibsi.filters._families import (
    FILTER_FAMILIES,
    GaborFilter,
    LawsFilter,
    LoGFilter,
    MeanFilter,
    SimoncelliFilter,
    WaveletFilter,
)
from radharmony.ibsi.filters._image import filter_image
from radharmony.ibsi.filters._parse import filter_from_mapping, resolve_filters
from radharmony.ibsi.filters.dictionary import filtered_feature_dictionary

__all__ = [
    "BOUNDARIES",
    "FILTERED_FEATURE_CLASSES",
    "FILTER_FAMILIES",
    "GaborFilter",
    "ImageFilter",
    "LawsFilter",
    "LoGFilter",
    "MeanFilter",
    "SimoncelliFilter",
    "WaveletFilter",
    "filter_from_mapping",
    "filter_image",
    "filtered_feature_dictionary",
    "number_token",
    "resolve_filters",
]

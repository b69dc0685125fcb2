"""Reading the ``filters:`` list of the extraction settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from radharmony.errors import SettingsError
from radharmony.ibsi.filters._base import ImageFilter
from radharmony.ibsi.filters._families import FILTER_FAMILIES


def filter_from_mapping(values: Mapping[str, Any], position: int | None = None) -> ImageFilter:
    """Build a filter from a settings mapping such as ``{"filter": "log", "sigma_mm": 1.5}``.

    Parameters
    ----------
    values : mapping
        ``filter`` names the family (``mean``, ``log``, ``laws``, ``gabor``, ``wavelet``,
        ``simoncelli``); the other keys are that family's parameters.
    position : int, optional
        Position in the ``filters`` list, quoted in error messages.

    Returns
    -------
    ImageFilter
    """
    where = "filter" if position is None else f"filters[{position}]"
    if isinstance(values, ImageFilter):
        return values
    if not isinstance(values, Mapping):
        raise SettingsError(
            f"{where} must be a mapping such as {{filter: log, sigma_mm: 1.5}}, "
            f"got {type(values).__name__}"
        )
    params = dict(values)
    family = params.pop("filter", None)
    if family not in FILTER_FAMILIES:
        raise SettingsError(
            f"{where}: 'filter' must name one of {sorted(FILTER_FAMILIES)}, got {family!r}"
        )
    cls = FILTER_FAMILIES[family]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise SettingsError(
            f"{where} ({family}): unknown key(s) {unknown}; valid keys are {sorted(known)}"
        )
    for key in ("features", "riesz_order"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    missing = sorted(
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in params
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise SettingsError(f"{where} ({family}): missing required key(s) {missing}")
    try:
        return cls(**params)
    except SettingsError as err:
        raise SettingsError(f"{where}: {err}") from err
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{where} ({family}): invalid value: {err}") from err


def resolve_filters(filters: Sequence[Any], settings_dimension: str) -> tuple[ImageFilter, ...]:
    """Parse ``filters`` and fix each dimension left open from the settings' dimension.

    Raises
    ------
    SettingsError
        For an invalid filter, or when two filters would write the same columns.
    """
    if isinstance(filters, Mapping | str):
        raise SettingsError("filters must be a list of mappings, one per filter")
    default = "3D" if settings_dimension == "3D" else "2D"
    resolved = []
    for position, values in enumerate(filters):
        image_filter = filter_from_mapping(values, position)
        if image_filter.dimension is None:
            dimension = image_filter._inferred_dimension() or default
            image_filter = dataclasses.replace(image_filter, dimension=dimension)
        resolved.append(image_filter)
    labels = [f.label for f in resolved]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise SettingsError(
            f"filters {duplicated} are listed twice (same family and parameters); remove the "
            "copies or give them different 'name's"
        )
    return tuple(resolved)

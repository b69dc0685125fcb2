"""Allow-list check of the types a skops file may rebuild (models and detectors alike)."""

from __future__ import annotations

import importlib


def is_trusted_type(name: str, trusted_types: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    """Return True for an allow-listed name or an estimator class of a trusted package.

    Parameters
    ----------
    name : str
        Fully qualified type name reported by ``skops.io.get_untrusted_types``.
    trusted_types : frozenset of str
        Names accepted as they are.
    prefixes : tuple of str
        Module prefixes whose classes are accepted; a ``sklearn.`` class must also be a
        scikit-learn estimator.

    Returns
    -------
    bool
    """
    if name in trusted_types:
        return True
    module_name, _, attribute = name.rpartition(".")
    if not name.startswith(prefixes) or not module_name:
        return False
    try:
        # Importing a module of an installed, trusted package runs only that package's code.
        obj = getattr(importlib.import_module(module_name), attribute, None)
    except Exception:
        return False
    # Only a class defined under that very name: an alias such as a re-exported function or a
    # class from another package imported into a trusted module does not qualify.
    if not isinstance(obj, type) or f"{obj.__module__}.{obj.__qualname__}" != name:
        return False
    if name.startswith("sklearn."):
        from sklearn.base import BaseEstimator

        return issubclass(obj, BaseEstimator)
    return True

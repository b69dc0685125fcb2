"""Input/output: images, masks and cohort manifests."""

from __future__ import annotations

from radharmony.io._images import check_geometry, read_image
from radharmony.io._manifest import REQUIRED_COLUMNS, read_manifest

__all__ = ["REQUIRED_COLUMNS", "check_geometry", "read_image", "read_manifest"]

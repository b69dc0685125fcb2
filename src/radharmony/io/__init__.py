"""Input/output: images, masks and cohort manifests."""

from __future__ import annotations

from radharmony.io._channels import CHANNEL_PATH_COLUMNS, read_channel_manifest
from radharmony.io._images import check_geometry, read_image
from radharmony.io._manifest import REQUIRED_COLUMNS, read_manifest

__all__ = [
    "CHANNEL_PATH_COLUMNS",
    "REQUIRED_COLUMNS",
    "check_geometry",
    "read_channel_manifest",
    "read_image",
    "read_manifest",
]

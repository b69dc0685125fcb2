"""Input/output: images, masks (label images, DICOM RTSTRUCT/SEG), manifests and BIDS."""

from __future__ import annotations

from radharmony.io._bids import read_bids, write_bids_derivatives
from radharmony.io._channels import CHANNEL_PATH_COLUMNS, read_channel_manifest
from radharmony.io._dicom_masks import DicomMask, read_dicom_mask, read_mask
from radharmony.io._images import check_geometry, read_image
from radharmony.io._manifest import REQUIRED_COLUMNS, read_manifest

__all__ = [
    "CHANNEL_PATH_COLUMNS",
    "REQUIRED_COLUMNS",
    "DicomMask",
    "check_geometry",
    "read_bids",
    "read_channel_manifest",
    "read_dicom_mask",
    "read_image",
    "read_manifest",
    "read_mask",
    "write_bids_derivatives",
]

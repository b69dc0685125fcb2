"""Feature columns: names, units, descriptions and their IBSI tags and permanent codes.

This table is the single source of the mapping from radharmony column names
(``<family>_<Feature>``) to IBSI reference tags; the compliance check and the data dictionary
(``data_dictionary/features.csv``) are both derived from it. IBSI tags of texture features carry
the dimension (``3D``, ``2_5D``, ``2D``) and, for GLCM and GLRLM, the aggregation (``avg``,
``comb``), so a column maps to a different tag depending on the settings.

pyradiomics columns are ``<class>_<Feature>``; columns of the IBSI families computed by
:mod:`radharmony.ibsi.families` are the IBSI tags without their dimension suffix (``ih_mean``,
``dzm_sde``, ``morph_moran_i``), listed in :mod:`radharmony.ibsi._ibsi_table`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from radharmony.ibsi._ibsi_table import IBSI_FAMILY_TABLE
from radharmony.ibsi.settings import ExtractionSettings

# Families whose IBSI tag carries the dimension, and those that also carry the aggregation.
_DIMENSIONAL = frozenset({"glcm", "glrlm", "glszm", "gldm", "ngtdm", "gldzm", "ngldm"})
_AGGREGATED = frozenset({"glcm", "glrlm"})
_DIMENSION_SUFFIX = {"3D": "3D", "2.5D": "2_5D", "2D": "2D"}


@dataclass(frozen=True)
class FeatureInfo:
    """One output column and what IBSI says about it.

    Attributes
    ----------
    column : str
        Column name (``<family>_<Feature>``).
    unit : str
        Unit of the value (``dimensionless`` when it has none).
    description : str
        What the value measures.
    ibsi_stems : tuple of str
        IBSI tags without dimension/aggregation suffix (several when IBSI defines identical
        features, e.g. difference average and dissimilarity); empty if not IBSI-defined.
    ibsi_codes : tuple of str
        IBSI permanent codes matching ``ibsi_stems``.
    notes : str
        Correction applied to the engine's value, or why the feature is not IBSI-defined.
    feature_class : str
        Feature family (an entry of ``feature_classes``) when it is not the column prefix.
    """

    column: str
    unit: str
    description: str
    ibsi_stems: tuple[str, ...] = ()
    ibsi_codes: tuple[str, ...] = ()
    notes: str = ""
    feature_class: str = ""

    @property
    def family(self) -> str:
        """Feature family: the entry of ``feature_classes`` that computes this column."""
        return self.feature_class or self.column.split("_", 1)[0]

    def ibsi_tags(self, settings: ExtractionSettings) -> tuple[str, ...]:
        """IBSI reference tags of this column under ``settings`` (empty if not IBSI)."""
        return tuple(_tag(stem, self.family, settings) for stem in self.ibsi_stems)


def _tag(stem: str, family: str, settings: ExtractionSettings) -> str:
    if family not in _DIMENSIONAL:
        return stem
    dimension = _DIMENSION_SUFFIX[settings.dimension]
    if family not in _AGGREGATED:
        return f"{stem}_{dimension}"
    aggregation = "avg" if settings.texture_aggregation == "averaged" else "comb"
    return f"{stem}_{dimension}_{aggregation}"


# One line per column: name | unit | IBSI tag stems | IBSI codes | description | notes.
# Stems and codes are space-separated (several where IBSI defines identical features). In notes,
# {V} stands for "verified against the IBSI reference values", {N} for "not defined by IBSI" and
# {PCA} for the principal-axis correction.
_TABLE = """
shape_MeshVolume | mm^3 | morph_volume | RNU0 | Volume enclosed by the marching-cubes mesh of the ROI | {V}
shape_VoxelVolume | mm^3 | morph_vol_approx | YEKZ | Number of ROI voxels times the voxel volume | {V}
shape_SurfaceArea | mm^2 | morph_area_mesh | C0JK | Area of the marching-cubes mesh of the ROI | {V}
shape_SurfaceVolumeRatio | 1/mm | morph_av | 2PR5 | Mesh surface area divided by mesh volume | {V}
shape_Sphericity | dimensionless | morph_sphericity | QCFX | Surface of the sphere of equal volume divided by the mesh surface | {V}
shape_Maximum3DDiameter | mm | morph_diam | L0JK | Largest distance between two mesh vertices | {V}
shape_MajorAxisLength | mm | morph_pca_maj_axis | TDIC | 4 sqrt(largest eigenvalue) of the covariance of voxel positions | {PCA}
shape_MinorAxisLength | mm | morph_pca_min_axis | P9VJ | 4 sqrt(second eigenvalue) of the covariance of voxel positions | {PCA}
shape_LeastAxisLength | mm | morph_pca_least_axis | 7J51 | 4 sqrt(smallest eigenvalue) of the covariance of voxel positions | {PCA}
shape_Elongation | dimensionless | morph_pca_elongation | Q3CK | sqrt(minor / major eigenvalue) of the voxel-position covariance | {V}
shape_Flatness | dimensionless | morph_pca_flatness | N17B | sqrt(least / major eigenvalue) of the voxel-position covariance | {V}
shape_Maximum2DDiameterSlice | mm |  |  | Largest mesh diameter within an axial plane | {N}
shape_Maximum2DDiameterColumn | mm |  |  | Largest mesh diameter within a coronal plane | {N}
shape_Maximum2DDiameterRow | mm |  |  | Largest mesh diameter within a sagittal plane | {N}
firstorder_Mean | intensity | stat_mean | Q4LE | Mean intensity | {V}
firstorder_Variance | intensity^2 | stat_var | ECT3 | Intensity variance (divided by N) | {V}
firstorder_Skewness | dimensionless | stat_skew | KE2A | Intensity skewness | {V}
firstorder_Kurtosis | dimensionless | stat_kurt | IPH6 | Excess intensity kurtosis | pyradiomics reports IBSI kurtosis + 3; 3 subtracted (corrected)
firstorder_Median | intensity | stat_median | Y12H | Median intensity | {V}
firstorder_Minimum | intensity | stat_min | 1GSF | Minimum intensity | {V}
firstorder_10Percentile | intensity | stat_p10 | QG58 | 10th intensity percentile | {V}
firstorder_90Percentile | intensity | stat_p90 | 8DWT | 90th intensity percentile | {V}
firstorder_Maximum | intensity | stat_max | 84IY | Maximum intensity | {V}
firstorder_InterquartileRange | intensity | stat_iqr | SALO | 75th minus 25th intensity percentile | {V}
firstorder_Range | intensity | stat_range | 2OJQ | Maximum minus minimum intensity | {V}
firstorder_MeanAbsoluteDeviation | intensity | stat_mad | 4FUA | Mean absolute deviation from the mean | {V}
firstorder_RobustMeanAbsoluteDeviation | intensity | stat_rmad | 1128 | Mean absolute deviation of the intensities between the 10th and 90th percentiles | {V}
firstorder_Energy | intensity^2 | stat_energy | N8CA | Sum of squared intensities | {V}; no intensity shift (voxelArrayShift = 0)
firstorder_TotalEnergy | intensity^2 mm^3 |  |  | Energy times the voxel volume | {N}
firstorder_RootMeanSquared | intensity | stat_rms | 5ZWQ | Root mean square intensity | {V}; no intensity shift (voxelArrayShift = 0)
firstorder_Entropy | bits | ih_entropy | TLU2 | Entropy (log2) of the discretised intensity histogram | {V}; computed on the IBSI-discretised grey levels
firstorder_Uniformity | dimensionless | ih_uniformity | BJ5W | Sum of squared discretised histogram probabilities | {V}; computed on the IBSI-discretised grey levels
glcm_MaximumProbability | dimensionless | cm_joint_max | GYBY | Largest joint probability | {V}
glcm_JointAverage | grey level | cm_joint_avg | 60VM | Grey level average of the joint distribution | {V}
glcm_SumSquares | grey level^2 | cm_joint_var | UR99 | Joint variance | {V}
glcm_JointEntropy | bits | cm_joint_entr | TU9B | Joint entropy | {V}
glcm_DifferenceAverage | grey level | cm_diff_avg cm_dissimilarity | TF7R 8S9J | Mean of the grey level difference distribution; IBSI defines dissimilarity identically | {V}; also IBSI dissimilarity (cm_dissimilarity, 8S9J), identical by definition
glcm_DifferenceVariance | grey level^2 | cm_diff_var | D3YU | Variance of the grey level difference distribution | {V}
glcm_DifferenceEntropy | bits | cm_diff_entr | NTRS | Entropy of the grey level difference distribution | {V}
glcm_SumAverage | grey level | cm_sum_avg | ZGXS | Mean of the grey level sum distribution | {V}
glcm_SumEntropy | bits | cm_sum_entr | P6QZ | Entropy of the grey level sum distribution | {V}
glcm_JointEnergy | dimensionless | cm_energy | 8ZQL | Angular second moment (sum of squared joint probabilities) | {V}
glcm_Contrast | grey level^2 | cm_contrast | ACUI | Contrast | {V}
glcm_Id | dimensionless | cm_inv_diff | IB1Z | Inverse difference | {V}
glcm_Idn | dimensionless | cm_inv_diff_norm | NDRX | Normalised inverse difference | {V}
glcm_Idm | dimensionless | cm_inv_diff_mom | WF0Z | Inverse difference moment | {V}
glcm_Idmn | dimensionless | cm_inv_diff_mom_norm | 1QCO | Normalised inverse difference moment | {V}
glcm_InverseVariance | dimensionless | cm_inv_var | E8JP | Inverse variance | {V}
glcm_Correlation | dimensionless | cm_corr | NI2N | Correlation | {V}
glcm_Autocorrelation | grey level^2 | cm_auto_corr | QWB0 | Autocorrelation | {V}
glcm_ClusterTendency | grey level^2 | cm_clust_tend cm_sum_var | DG8W OEEB | Cluster tendency; IBSI defines sum variance identically | {V}; also IBSI sum variance (cm_sum_var, OEEB), identical by definition
glcm_ClusterShade | grey level^3 | cm_clust_shade | 7NFM | Cluster shade | {V}
glcm_ClusterProminence | grey level^4 | cm_clust_prom | AE86 | Cluster prominence | {V}
glcm_Imc1 | dimensionless | cm_info_corr1 | R8DG | First information correlation | {V}
glcm_Imc2 | dimensionless | cm_info_corr2 | JN9H | Second information correlation | {V}
glcm_MCC | dimensionless |  |  | Maximal correlation coefficient | {N}; not computed for dimension 2D
glrlm_ShortRunEmphasis | dimensionless | rlm_sre | 22OV | Short runs emphasis | {V}
glrlm_LongRunEmphasis | dimensionless | rlm_lre | W4KF | Long runs emphasis | {V}
glrlm_LowGrayLevelRunEmphasis | dimensionless | rlm_lgre | V3SW | Low grey level run emphasis | {V}
glrlm_HighGrayLevelRunEmphasis | dimensionless | rlm_hgre | G3QZ | High grey level run emphasis | {V}
glrlm_ShortRunLowGrayLevelEmphasis | dimensionless | rlm_srlge | HTZT | Short run low grey level emphasis | {V}
glrlm_ShortRunHighGrayLevelEmphasis | dimensionless | rlm_srhge | GD3A | Short run high grey level emphasis | {V}
glrlm_LongRunLowGrayLevelEmphasis | dimensionless | rlm_lrlge | IVPO | Long run low grey level emphasis | {V}
glrlm_LongRunHighGrayLevelEmphasis | dimensionless | rlm_lrhge | 3KUM | Long run high grey level emphasis | {V}
glrlm_GrayLevelNonUniformity | dimensionless | rlm_glnu | R5YN | Grey level non-uniformity | {V}
glrlm_GrayLevelNonUniformityNormalized | dimensionless | rlm_glnu_norm | OVBL | Normalised grey level non-uniformity | {V}
glrlm_RunLengthNonUniformity | dimensionless | rlm_rlnu | W92Y | Run length non-uniformity | {V}
glrlm_RunLengthNonUniformityNormalized | dimensionless | rlm_rlnu_norm | IC23 | Normalised run length non-uniformity | {V}
glrlm_RunPercentage | dimensionless | rlm_r_perc | 9ZK5 | Runs per voxel | {V}
glrlm_GrayLevelVariance | grey level^2 | rlm_gl_var | 8CE5 | Grey level variance of the runs | {V}
glrlm_RunVariance | dimensionless | rlm_rl_var | SXLW | Run length variance | {V}
glrlm_RunEntropy | bits | rlm_rl_entr | HJ9O | Run entropy | {V}
glszm_SmallAreaEmphasis | dimensionless | szm_sze | 5QRC | Small zone emphasis | {V}
glszm_LargeAreaEmphasis | dimensionless | szm_lze | 48P8 | Large zone emphasis | {V}
glszm_LowGrayLevelZoneEmphasis | dimensionless | szm_lgze | XMSY | Low grey level zone emphasis | {V}
glszm_HighGrayLevelZoneEmphasis | dimensionless | szm_hgze | 5GN9 | High grey level zone emphasis | {V}
glszm_SmallAreaLowGrayLevelEmphasis | dimensionless | szm_szlge | 5RAI | Small zone low grey level emphasis | {V}
glszm_SmallAreaHighGrayLevelEmphasis | dimensionless | szm_szhge | HW1V | Small zone high grey level emphasis | {V}
glszm_LargeAreaLowGrayLevelEmphasis | dimensionless | szm_lzlge | YH51 | Large zone low grey level emphasis | {V}
glszm_LargeAreaHighGrayLevelEmphasis | dimensionless | szm_lzhge | J17V | Large zone high grey level emphasis | {V}
glszm_GrayLevelNonUniformity | dimensionless | szm_glnu | JNSA | Grey level non-uniformity | {V}
glszm_GrayLevelNonUniformityNormalized | dimensionless | szm_glnu_norm | Y1RO | Normalised grey level non-uniformity | {V}
glszm_SizeZoneNonUniformity | dimensionless | szm_zsnu | 4JP3 | Zone size non-uniformity | {V}
glszm_SizeZoneNonUniformityNormalized | dimensionless | szm_zsnu_norm | VB3A | Normalised zone size non-uniformity | {V}
glszm_ZonePercentage | dimensionless | szm_z_perc | P30P | Zones per voxel | {V}
glszm_GrayLevelVariance | grey level^2 | szm_gl_var | BYLV | Grey level variance of the zones | {V}
glszm_ZoneVariance | dimensionless | szm_zs_var | 3NSA | Zone size variance | {V}
glszm_ZoneEntropy | bits | szm_zs_entr | GU8N | Zone size entropy | {V}
gldm_SmallDependenceEmphasis | dimensionless | ngl_lde | SODN | Low dependence emphasis | {V}
gldm_LargeDependenceEmphasis | dimensionless | ngl_hde | IMOQ | High dependence emphasis | {V}
gldm_LowGrayLevelEmphasis | dimensionless | ngl_lgce | TL9H | Low grey level count emphasis | {V}
gldm_HighGrayLevelEmphasis | dimensionless | ngl_hgce | OAE7 | High grey level count emphasis | {V}
gldm_SmallDependenceLowGrayLevelEmphasis | dimensionless | ngl_ldlge | EQ3F | Low dependence low grey level emphasis | {V}
gldm_SmallDependenceHighGrayLevelEmphasis | dimensionless | ngl_ldhge | JA6D | Low dependence high grey level emphasis | {V}
gldm_LargeDependenceLowGrayLevelEmphasis | dimensionless | ngl_hdlge | NBZI | High dependence low grey level emphasis | {V}
gldm_LargeDependenceHighGrayLevelEmphasis | dimensionless | ngl_hdhge | 9QMG | High dependence high grey level emphasis | {V}
gldm_GrayLevelNonUniformity | dimensionless | ngl_glnu | FP8K | Grey level non-uniformity | {V}
gldm_DependenceNonUniformity | dimensionless | ngl_dcnu | Z87G | Dependence count non-uniformity | {V}
gldm_DependenceNonUniformityNormalized | dimensionless | ngl_dcnu_norm | OKJI | Normalised dependence count non-uniformity | {V}
gldm_GrayLevelVariance | grey level^2 | ngl_gl_var | 1PFV | Grey level variance | {V}
gldm_DependenceVariance | dimensionless | ngl_dc_var | DNX2 | Dependence count variance | {V}
gldm_DependenceEntropy | bits | ngl_dc_entr | FCBV | Dependence count entropy | {V}
ngtdm_Coarseness | dimensionless | ngt_coarseness | QCDE | Coarseness | {V}
ngtdm_Contrast | dimensionless | ngt_contrast | 65HE | Contrast | {V}
ngtdm_Busyness | dimensionless | ngt_busyness | NQ30 | Busyness | {V}
ngtdm_Complexity | dimensionless | ngt_complexity | HDEZ | Complexity | {V}
ngtdm_Strength | dimensionless | ngt_strength | 1X9X | Strength | {V}
"""

_NOTE_TOKENS = {
    "{V}": "verified against the IBSI reference values",
    "{N}": "not defined by IBSI",
    "{PCA}": (
        "pyradiomics divides the covariance of voxel positions by N, IBSI by N - 1: "
        "multiplied by sqrt(N / (N - 1)) with N the voxels of the morphological mask (corrected)"
    ),
}


def _parse_table(table: str, with_class: bool = False) -> tuple[FeatureInfo, ...]:
    infos = []
    for line in table.strip().splitlines():
        parts = [part.strip() for part in line.split("|")]
        feature_class = parts.pop(0) if with_class else ""
        column, unit, stems, codes, description, notes = parts
        for token, text in _NOTE_TOKENS.items():
            notes = notes.replace(token, text)
        infos.append(
            FeatureInfo(
                column,
                unit,
                description,
                tuple(stems.split()),
                tuple(codes.split()),
                notes,
                feature_class,
            )
        )
    return tuple(infos)


FEATURES: tuple[FeatureInfo, ...] = _parse_table(_TABLE) + _parse_table(
    IBSI_FAMILY_TABLE, with_class=True
)

FEATURES_BY_COLUMN: dict[str, FeatureInfo] = {f.column: f for f in FEATURES}

_PYRADIOMICS_TEXTURE = frozenset({"glcm", "glrlm", "glszm", "gldm", "ngtdm"})


def is_dimensional(family: str) -> bool:
    """Whether the IBSI tags of a family's columns depend on the texture dimension."""
    return family in _DIMENSIONAL


def family_columns(family: str) -> list[str]:
    """Return the columns of one feature family, in dictionary order.

    Parameters
    ----------
    family : str
        Entry of ``FEATURE_CLASSES``.

    Returns
    -------
    list of str
    """
    return [f.column for f in FEATURES if f.family == family]


def column_to_tags(columns: list[str], settings: ExtractionSettings) -> dict[str, str]:
    """Map IBSI reference tags to the columns that compute them under ``settings``.

    Parameters
    ----------
    columns : list of str
        Column names returned by the engine.
    settings : ExtractionSettings
        Settings used for the extraction (dimension and aggregation select the tags).

    Returns
    -------
    dict
        IBSI tag -> column name, for every IBSI-defined column among ``columns``.
    """
    mapping: dict[str, str] = {}
    for column in columns:
        info = FEATURES_BY_COLUMN.get(column)
        if info is not None:
            for tag in info.ibsi_tags(settings):
                mapping[tag] = column
    return mapping


def feature_dictionary() -> pd.DataFrame:
    """Return the data dictionary of the per-lesion feature columns.

    Columns are ``name,type,unit,family,description,ibsi_tag,ibsi_code,notes``. The IBSI tag
    is given for the default 3D, direction-averaged setting; ``notes`` says how it changes.

    Returns
    -------
    pandas.DataFrame
    """
    default = ExtractionSettings(name="dictionary", dimension="3D", texture_aggregation="averaged")
    rows = []
    for info in FEATURES:
        tags = info.ibsi_tags(default)
        notes = info.notes
        if info.family in _DIMENSIONAL and tags:
            suffix = "_3D_avg" if info.family in _AGGREGATED else "_3D"
            variants = "2_5D, 2D" if info.family not in _AGGREGATED else "2_5D, 2D, avg/comb"
            notes = (
                f"{notes}; tag shown for dimension 3D"
                f"{', texture_aggregation averaged' if info.family in _AGGREGATED else ''}"
                f" ('{suffix}'); other settings give the {variants} tags"
            )
            if info.family in _PYRADIOMICS_TEXTURE:
                notes += (
                    "; dimension 2D (per-slice features averaged over slices) is computed by "
                    "radharmony.ibsi.families, as pyradiomics has no per-slice aggregation"
                )
        rows.append(
            {
                "name": info.column,
                "type": "float",
                "unit": info.unit,
                "family": info.family,
                "description": info.description,
                "ibsi_tag": tags[0] if tags else "",
                "ibsi_code": info.ibsi_codes[0] if info.ibsi_codes else "",
                "notes": notes,
            }
        )
    return pd.DataFrame(rows)

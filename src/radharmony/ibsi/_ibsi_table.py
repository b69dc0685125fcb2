"""Columns of the IBSI families computed by :mod:`radharmony.ibsi.families`.

Column names are the IBSI tags without the dimension suffix, which the settings define (see
:mod:`radharmony.ibsi.names`). One line per column:
feature class | column | unit | IBSI stems | IBSI codes | description | notes.
Codes are the permanent IBSI identifiers of the reference manual, chapter "Image features".
In notes, {V} stands for "verified against the IBSI reference values".
"""

from __future__ import annotations

IBSI_FAMILY_TABLE = """
morphology | morph_comp_1 | dimensionless | morph_comp_1 | SKGS | Compactness 1: mesh volume / (sqrt(pi) area^(3/2)) | {V}
morphology | morph_comp_2 | dimensionless | morph_comp_2 | BQWJ | Compactness 2: 36 pi volume^2 / area^3 | {V}
morphology | morph_sph_dispr | dimensionless | morph_sph_dispr | KRCK | Spherical disproportion: mesh area / area of the sphere of equal volume | {V}
morphology | morph_asphericity | dimensionless | morph_asphericity | 25C7 | Asphericity: spherical disproportion - 1 | {V}
morphology | morph_com | mm | morph_com | KLMA | Distance between the geometric centre of the morphological mask and the intensity-weighted centre of the intensity mask | {V}
morphology | morph_vol_dens_aabb | dimensionless | morph_vol_dens_aabb | PBX1 | Mesh volume / volume of the axis-aligned bounding box of the mesh | {V}
morphology | morph_area_dens_aabb | dimensionless | morph_area_dens_aabb | R59B | Mesh area / area of the axis-aligned bounding box of the mesh | {V}
morphology | morph_vol_dens_aee | dimensionless | morph_vol_dens_aee | 6BDE | Mesh volume / volume of the approximate enclosing ellipsoid (semi-axes from the principal axes) | {V}
morphology | morph_area_dens_aee | dimensionless | morph_area_dens_aee | RDD2 | Mesh area / area of the approximate enclosing ellipsoid (IBSI Legendre series, 20 terms) | {V}
morphology | morph_vol_dens_conv_hull | dimensionless | morph_vol_dens_conv_hull | R3ER | Mesh volume / volume of the convex hull of the mesh | {V}
morphology | morph_area_dens_conv_hull | dimensionless | morph_area_dens_conv_hull | 7T7F | Mesh area / area of the convex hull of the mesh | {V}
morphology | morph_integ_int | intensity mm^3 | morph_integ_int | 99N0 | Integrated intensity: mesh volume times the mean intensity of the intensity mask | {V}
spatial_autocorrelation | morph_moran_i | dimensionless | morph_moran_i | N365 | Moran's I, inverse-distance weights over all pairs of ROI voxels | {V}; opt-in outside the IBSI presets (all voxel pairs: seconds on large lesions); add 'spatial_autocorrelation' to feature_classes
spatial_autocorrelation | morph_geary_c | dimensionless | morph_geary_c | NPT7 | Geary's C, inverse-distance weights over all pairs of ROI voxels | {V}; opt-in outside the IBSI presets (all voxel pairs: seconds on large lesions); add 'spatial_autocorrelation' to feature_classes
local_intensity | loc_peak_loc | intensity | loc_peak_loc | VJGA | Local intensity peak: highest mean image intensity in a 1 cm^3 sphere centred on a voxel of maximum ROI intensity | {V}; the sphere includes image voxels outside the ROI
local_intensity | loc_peak_glob | intensity | loc_peak_glob | 0F91 | Global intensity peak: highest mean image intensity in a 1 cm^3 sphere centred on any ROI voxel | {V}; the sphere includes image voxels outside the ROI
statistics | stat_medad | intensity | stat_medad | N72L | Mean absolute deviation from the median intensity | {V}
statistics | stat_cov | dimensionless | stat_cov | 7TET | Coefficient of variation: standard deviation / mean intensity | {V}
statistics | stat_qcod | dimensionless | stat_qcod | 9S40 | Quartile coefficient of dispersion: (P75 - P25) / (P75 + P25) | {V}
intensity_histogram | ih_mean | grey level | ih_mean | X6K6 | Mean discretised intensity | {V}
intensity_histogram | ih_var | grey level^2 | ih_var | CH89 | Discretised intensity variance (divided by N) | {V}
intensity_histogram | ih_skew | dimensionless | ih_skew | 88K1 | Discretised intensity skewness | {V}
intensity_histogram | ih_kurt | dimensionless | ih_kurt | C3I7 | Excess discretised intensity kurtosis | {V}
intensity_histogram | ih_median | grey level | ih_median | WIFQ | Median discretised intensity | {V}
intensity_histogram | ih_min | grey level | ih_min | 1PR8 | Minimum discretised intensity | {V}
intensity_histogram | ih_p10 | grey level | ih_p10 | 1PR8 | 10th discretised intensity percentile | {V}; the reference manual gives this feature the same code as ih_min
intensity_histogram | ih_p90 | grey level | ih_p90 | GPMT | 90th discretised intensity percentile | {V}
intensity_histogram | ih_max | grey level | ih_max | 3NCY | Maximum discretised intensity | {V}
intensity_histogram | ih_mode | grey level | ih_mode | AMMC | Most frequent grey level (ties: the one closest to the mean, then the lowest) | {V}
intensity_histogram | ih_iqr | grey level | ih_iqr | WR0O | Discretised intensity interquartile range | {V}
intensity_histogram | ih_range | grey level | ih_range | 5Z3W | Discretised intensity range | {V}
intensity_histogram | ih_mad | grey level | ih_mad | D2ZX | Mean absolute deviation of the grey levels from their mean | {V}
intensity_histogram | ih_rmad | grey level | ih_rmad | WRZB | Mean absolute deviation of the grey levels between the 10th and 90th percentiles | {V}
intensity_histogram | ih_medad | grey level | ih_medad | 4RNL | Mean absolute deviation of the grey levels from their median | {V}
intensity_histogram | ih_cov | dimensionless | ih_cov | CWYJ | Grey level coefficient of variation | {V}
intensity_histogram | ih_qcod | dimensionless | ih_qcod | SLWD | Grey level quartile coefficient of dispersion | {V}
intensity_histogram | ih_max_grad | voxels | ih_max_grad | 12CE | Maximum of the histogram gradient (over all bins, empty ones included) | {V}; IBSI entropy and uniformity are firstorder_Entropy and firstorder_Uniformity
intensity_histogram | ih_max_grad_g | grey level | ih_max_grad_g | 8E6O | Grey level of the maximum histogram gradient | {V}
intensity_histogram | ih_min_grad | voxels | ih_min_grad | VQB3 | Minimum of the histogram gradient (over all bins, empty ones included) | {V}
intensity_histogram | ih_min_grad_g | grey level | ih_min_grad_g | RHQZ | Grey level of the minimum histogram gradient | {V}
ivh | ivh_v10 | dimensionless | ivh_v10 | BC2M | Volume fraction with at least 10 % of the IVH intensity range | {V}; IVH discretisation set by ivh_discretisation
ivh | ivh_v90 | dimensionless | ivh_v90 | BC2M | Volume fraction with at least 90 % of the IVH intensity range | {V}; IVH discretisation set by ivh_discretisation
ivh | ivh_i10 | intensity | ivh_i10 | GBPN | Lowest intensity held by at most 10 % of the volume | {V}; IVH discretisation set by ivh_discretisation
ivh | ivh_i90 | intensity | ivh_i90 | GBPN | Lowest intensity held by at most 90 % of the volume | {V}; IVH discretisation set by ivh_discretisation
ivh | ivh_diff_v10_v90 | dimensionless | ivh_diff_v10_v90 | DDTU | ivh_v10 - ivh_v90 | {V}
ivh | ivh_diff_i10_i90 | intensity | ivh_diff_i10_i90 | CNV2 | ivh_i10 - ivh_i90 | {V}
gldzm | dzm_sde | dimensionless | dzm_sde | 0GBI | Small distance emphasis | {V}
gldzm | dzm_lde | dimensionless | dzm_lde | MB4I | Large distance emphasis | {V}
gldzm | dzm_lgze | dimensionless | dzm_lgze | S1RA | Low grey level zone emphasis | {V}
gldzm | dzm_hgze | dimensionless | dzm_hgze | K26C | High grey level zone emphasis | {V}
gldzm | dzm_sdlge | dimensionless | dzm_sdlge | RUVG | Small distance low grey level emphasis | {V}
gldzm | dzm_sdhge | dimensionless | dzm_sdhge | DKNJ | Small distance high grey level emphasis | {V}
gldzm | dzm_ldlge | dimensionless | dzm_ldlge | A7WM | Large distance low grey level emphasis | {V}
gldzm | dzm_ldhge | dimensionless | dzm_ldhge | KLTH | Large distance high grey level emphasis | {V}
gldzm | dzm_glnu | dimensionless | dzm_glnu | VFT7 | Grey level non-uniformity | {V}
gldzm | dzm_glnu_norm | dimensionless | dzm_glnu_norm | 7HP3 | Normalised grey level non-uniformity | {V}
gldzm | dzm_zdnu | dimensionless | dzm_zdnu | V294 | Zone distance non-uniformity | {V}
gldzm | dzm_zdnu_norm | dimensionless | dzm_zdnu_norm | IATH | Normalised zone distance non-uniformity | {V}
gldzm | dzm_z_perc | dimensionless | dzm_z_perc | VIWW | Zones per voxel | {V}
gldzm | dzm_gl_var | grey level^2 | dzm_gl_var | QK93 | Grey level variance of the zones | {V}
gldzm | dzm_zd_var | dimensionless | dzm_zd_var | 7WT1 | Zone distance variance | {V}
gldzm | dzm_zd_entr | bits | dzm_zd_entr | GBDU | Zone distance entropy | {V}
ngldm | ngl_glnu_norm | dimensionless | ngl_glnu_norm | 5SPA | Normalised grey level non-uniformity of the dependence matrix | {V}
ngldm | ngl_dc_perc | dimensionless | ngl_dc_perc | 6XV8 | Dependence count percentage (neighbourhoods per voxel) | {V}
ngldm | ngl_dc_energy | dimensionless | ngl_dc_energy | CAS9 | Dependence count energy | {V}
"""

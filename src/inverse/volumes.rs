//! Reconstructions of a volume written back as a volume.
//!
//! A ground-truth volume (NIfTI, a 3-D NPY stack, a DICOM series) is reconstructed slice by
//! slice: case `{stem}_z{K}` is slice `K`. A study folder records which of its cases are
//! slices of which volume in `volumes.json` ([`VolumeManifest`]); when a folder holds every
//! slice of a volume, [`write_volumes`] stacks the per-slice reconstructions
//! `{case}_{method}.npy` into `{stem}_{method}.nii.gz` (float32, the input's voxel spacing and
//! sform, adjusted for `--size`). `scoreinv reconstruct` calls it on its output folder and
//! `scoreinv merge` on the merged shards ([`merge_manifests`]), so the volume of a sharded
//! study is built from the same per-slice files as the unsharded one: equal bit for bit.
use crate::io;
use crate::io::output::OutputDir;
use crate::{Error, Result};
use ndarray::{Array3, ArrayD, Axis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the manifest in a study folder.
pub const MANIFEST: &str = "volumes.json";

/// A source volume and the slices of it that a study reconstructed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeEntry {
    /// Output name stem: volumes are written as `{stem}_{method}.nii.gz`.
    pub stem: String,
    /// Number of slices of the whole volume.
    pub depth: usize,
    /// Voxel size `[dz, dy, dx]` in mm of the reconstructed grid (after `--size`).
    pub spacing: Option<[f64; 3]>,
    /// Voxel-to-world affine of the reconstructed grid (the input's sform, adjusted for
    /// `--size`).
    pub affine: Option<[[f64; 4]; 4]>,
    /// `(slice index, case name)` of the slices in this study.
    pub slices: Vec<(usize, String)>,
    /// Reconstruction methods (file name suffixes).
    pub methods: Vec<String>,
}

/// The `volumes.json` of a study folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeManifest {
    pub volumes: Vec<VolumeEntry>,
}

impl VolumeManifest {
    /// Reads `dir/volumes.json`; an empty manifest when the folder has none.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not a volume manifest: {e}")))
    }

    /// Writes `dir/volumes.json` atomically (nothing when there are no volumes).
    pub fn write(&self, dir: &mut OutputDir) -> Result<()> {
        if self.volumes.is_empty() {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("volume manifest: {e}")))?;
        let path = dir.file(MANIFEST)?;
        io::atomic::write_bytes(&path, text.as_bytes())
    }
}

pub use crate::data::cases::resized_geometry;

/// Joins the manifests of several study folders (shards): entries of the same `stem` must
/// describe the same volume (depth, geometry, methods); a slice may appear only once.
pub fn merge_manifests(parts: &[VolumeManifest]) -> Result<VolumeManifest> {
    let mut by_stem: BTreeMap<String, VolumeEntry> = BTreeMap::new();
    for m in parts {
        for v in &m.volumes {
            match by_stem.get_mut(&v.stem) {
                None => {
                    by_stem.insert(v.stem.clone(), v.clone());
                }
                Some(e) => {
                    if e.depth != v.depth
                        || e.spacing != v.spacing
                        || e.affine != v.affine
                        || e.methods != v.methods
                    {
                        return Err(Error::Invalid(format!(
                            "volume '{}': the studies disagree on its depth, geometry or methods \
                             (depth {} vs {}, methods {:?} vs {:?}); merge shards of one study only",
                            v.stem, e.depth, v.depth, e.methods, v.methods
                        )));
                    }
                    for s in &v.slices {
                        if e.slices.iter().any(|(z, _)| *z == s.0) {
                            return Err(Error::Invalid(format!(
                                "volume '{}': slice {} appears twice",
                                v.stem, s.0
                            )));
                        }
                        e.slices.push(s.clone());
                    }
                }
            }
        }
    }
    let mut volumes: Vec<VolumeEntry> = by_stem.into_values().collect();
    for v in &mut volumes {
        v.slices.sort();
    }
    Ok(VolumeManifest { volumes })
}

/// For every volume of `manifest` whose slices are all in `dir`, stacks `{case}_{method}.npy`
/// (each `[1, H, W]`) into `dir/{stem}_{method}.nii.gz`. Returns the files written; volumes
/// with missing slices (one shard of a study) are skipped.
pub fn write_volumes(out: &mut OutputDir, manifest: &VolumeManifest) -> Result<Vec<PathBuf>> {
    let dir = out.path().to_path_buf();
    let mut written = Vec::new();
    for v in &manifest.volumes {
        let complete =
            v.slices.len() == v.depth && v.slices.iter().enumerate().all(|(i, (z, _))| *z == i);
        if !complete {
            continue;
        }
        for m in &v.methods {
            // Filled slice by slice: one output volume in memory, not the slices and their stack.
            let mut vol: Option<Array3<f32>> = None;
            for (z, case) in &v.slices {
                let p = dir.join(format!("{case}_{m}.npy"));
                let a: ArrayD<f32> = ndarray_npy::read_npy(&p)
                    .map_err(|e| Error::format(&p, format!("reconstruction slice: {e}")))?;
                let a = a.into_dimensionality::<ndarray::Ix3>().map_err(|_| {
                    Error::format(&p, "expected a [1, H, W] reconstruction".to_string())
                })?;
                if a.shape()[0] != 1 {
                    return Err(Error::format(
                        &p,
                        format!("expected one channel, got shape {:?}", a.shape()),
                    ));
                }
                let sl = a.index_axis_move(Axis(0), 0);
                let vol =
                    vol.get_or_insert_with(|| Array3::zeros((v.depth, sl.nrows(), sl.ncols())));
                if sl.dim() != (vol.shape()[1], vol.shape()[2]) {
                    return Err(Error::Invalid(format!(
                        "volume '{}' ({m}): slices differ in size: {:?} vs {:?}",
                        v.stem,
                        sl.dim(),
                        &vol.shape()[1..]
                    )));
                }
                vol.index_axis_mut(Axis(0), *z).assign(&sl);
            }
            let Some(vol) = vol else { continue };
            let path = out.file(&format!("{}_{m}.nii.gz", v.stem))?;
            io::nifti::write_nifti(&path, &vol, v.spacing, v.affine)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The manifest of a study that reconstructed the cases for which `in_study` holds, with
/// `methods`: one entry per source volume with at least one slice in the study.
pub fn study_manifest(
    sources: &[crate::data::cases::SourceVolume],
    in_study: &dyn Fn(&str) -> bool,
    methods: &[String],
) -> VolumeManifest {
    let volumes = sources
        .iter()
        .filter_map(|v| {
            let slices: Vec<(usize, String)> = v
                .case_names
                .iter()
                .enumerate()
                .filter(|(_, n)| in_study(n))
                .map(|(z, n)| (z, n.clone()))
                .collect();
            (!slices.is_empty()).then(|| VolumeEntry {
                stem: v.stem.clone(),
                depth: v.case_names.len(),
                spacing: v.spacing,
                affine: v.affine,
                slices,
                methods: methods.to_vec(),
            })
        })
        .collect();
    VolumeManifest { volumes }
}

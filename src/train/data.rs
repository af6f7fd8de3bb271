//! Training data: in-memory datasets in model space, a deterministic held-out split, random
//! flips, and the sources `scoreinv train --data` accepts.
//!
//! Sources (`SOURCE` on the command line), in the grammar `--ground-truth` shares
//! ([`crate::data::spec`]; `SEL` is `N` = the first N, `A..B` or `A..B:STEP`):
//! * `gaussian2d[:N]`: N (default 10 000) samples of the 2-D Gaussian [`Gaussian2d::toy`];
//! * `fashion-mnist` (the Debian `dataset-fashion-mnist` folder
//!   `/usr/share/datasets/fashion-mnist`) or any folder with `train-images-idx3-ubyte[.gz]`
//!   (and optionally `train-labels-idx1-ubyte[.gz]`), or a single IDX image file;
//! * `fashion-mnist[:train|:test][:SEL]`: rows SEL of the training set, or of the 10 000 test
//!   images and labels of that package (`t10k-*`); an
//!   `X-images-idx3-ubyte[.gz]` file takes its labels from `X-labels-idx1-ubyte[.gz]` beside it;
//! * a `.npy` stack `[N, D]` (vectors), `[N, H, W]` or `[N, C, H, W]` (images) of u8, f32 or f64;
//! * a folder of PNG/TIFF/JPEG images of one size;
//! * `phantom:ellipses:SEL`: random-ellipse phantoms SEL (Adler & Öktem 2018 distribution, one
//!   ChaCha8 stream seeded [`TRAIN_PHANTOM_SEED`], so disjoint from the evaluation phantoms of
//!   `reconstruct --ground-truth phantom:ellipses:SEL`), rendered at `--size` (default 64);
//! * `invesalius[:FILE.inv3]`: the real head CT of Debian `invesalius-examples` (or any
//!   InVesalius project) through the default HU window, in three orientations with the held-out
//!   block [`HELD_OUT_AXIAL`](crate::data::ct_slices::HELD_OUT_AXIAL) removed (see
//!   [`crate::data::ct_slices::training_slices`]).
//! * `nifti:A.nii.gz[,B.nii…]`: the axial (`z`) slices of NIfTI volumes (e.g. the MNI152 T1
//!   template of the nilearn wheel), each slice min–max normalised to [0, 1] as
//!   `reconstruct --ground-truth VOLUME#z=K` does, and resized to `--size` × `--size` (default
//!   64; non-square slices are stretched, as evaluation cases are); slices that are mostly background (mean below 0.1) are dropped.
//! * `nifti-crop:A.nii.gz[,…]`: the same after cropping each volume in-plane to its foreground
//!   bounding box ([`foreground_box`]: voxels above 5 % of the volume's range, 2 % margin), so a
//!   template with a wide empty field of view (MNI152) gives brains of the extent of a scan
//!   cropped to the head (the held-out Colin27).
//!
//! * `photos:N:PATH[,PATH…]`: N random multi-scale square crops (see [`photos`]) of the colour
//!   photos named by image files, folders or `.txt` lists (e.g. `data/color-photos.txt`),
//!   rendered at `--size` (default 64).
//!
//! * `A+B[+…]`: several of these sources joined, their samples concatenated in order (e.g. a
//!   template's slices plus a scan series: `nifti-crop:MNI.nii.gz+dicom:SERIES_DIR`; repeating a
//!   part oversamples it); the parts must give the same sample shape and value range.
//!
//! `scoreinv train --size S` resamples any image source to `S × S`.
//!
//! Images are mapped to `[0, 1]` (u8 by /255; float stacks by their min/max unless already in
//! `[0, 1]`) and to `[-1, 1]` with `data.centered`; vectors are used as they are. The mapping
//! is recorded in [`DataInfo`] and saved with the model.
//!
//! [`Gaussian2d`] also gives the exact score of the perturbed distribution: for
//! `x₀ ~ N(μ, Σ)` and `x_t = m(t) x₀ + s(t) z`, `p_t = N(m μ, C)` with `C = m²Σ + s²I` and
//! `∇ log p_t(x) = −C⁻¹(x − m μ)`.

pub mod folder;
pub use crate::data::{find_idx, idx, FASHION_MNIST_DIR};
pub mod photos;

use super::rng::{Purpose, Stream};
use crate::data::spec::{Sel, Spec, Split};
use crate::models::model_dir::DataInfo;
use crate::sde::Sde;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// A dataset in model space, on the CPU, f32, shape `[N] ++ info.shape`.
pub struct Dataset {
    pub data: Tensor,
    pub labels: Option<Vec<u8>>,
    pub info: DataInfo,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("info", &self.info)
            .finish()
    }
}

impl Dataset {
    /// Wraps model-space data, checking its shape against `info` and that it is finite.
    pub fn new(data: Tensor, labels: Option<Vec<u8>>, info: DataInfo) -> Result<Self> {
        let size = data.size();
        if size.len() != info.shape.len() + 1 || size[1..] != info.shape[..] {
            return Err(Error::Shape {
                what: "dataset".into(),
                expected: format!("[N] ++ {:?}", info.shape),
                actual: format!("{size:?}"),
            });
        }
        if size[0] == 0 {
            return Err(Error::Invalid(format!(
                "dataset '{}' is empty",
                info.source
            )));
        }
        if let Some(l) = &labels {
            if l.len() as i64 != size[0] {
                return Err(Error::Invalid(format!(
                    "dataset '{}': {} labels for {} samples",
                    info.source,
                    l.len(),
                    size[0]
                )));
            }
        }
        let data = data
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous();
        let finite = data.isfinite().flatten(1, -1).all_dim(1, false);
        let bad = finite.logical_not().nonzero();
        if bad.size()[0] > 0 {
            let i = bad.int64_value(&[0, 0]);
            return Err(Error::NonFinite(format!(
                "dataset '{}' (sample {i} and {} others)",
                info.source,
                bad.size()[0] - 1
            )));
        }
        Ok(Self { data, labels, info })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.data.size()[0] as usize
    }

    /// Whether there are no samples (never true for a constructed dataset).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples `idx` as a `[B, ...]` tensor.
    pub fn gather(&self, idx: &[i64]) -> Tensor {
        self.data.index_select(0, &Tensor::from_slice(idx))
    }

    /// Deterministic split `(train, held_out)`: a permutation by a fixed key (independent of the
    /// training seed, so every run on the same data holds out the same samples); the last
    /// `round(N·fraction)` (at least 1 when `fraction > 0`, at most N − 1) are held out.
    pub fn split(&self, fraction: f64) -> Result<(Dataset, Option<Dataset>)> {
        let n = self.len();
        if fraction <= 0.0 {
            return Ok((self.subset(&(0..n as i64).collect::<Vec<_>>())?, None));
        }
        if n < 2 {
            return Err(Error::Invalid(format!(
                "dataset '{}' has {n} sample(s); a held-out split needs at least 2 (or set data.heldout_fraction = 0)",
                self.info.source
            )));
        }
        let k = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
        let perm = Stream::new(0x5eed, n as u64, Purpose::Split).permutation(n);
        let (tr, ho) = perm.split_at(n - k);
        let mut tr = tr.to_vec();
        let mut ho = ho.to_vec();
        tr.sort_unstable();
        ho.sort_unstable();
        Ok((self.subset(&tr)?, Some(self.subset(&ho)?)))
    }

    fn subset(&self, idx: &[i64]) -> Result<Dataset> {
        Ok(Dataset {
            data: self.gather(idx),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i as usize]).collect()),
            info: self.info.clone(),
        })
    }
}

/// Flips the samples of an image batch `[B, C, H, W]` horizontally where `coins` is true.
pub fn random_flip(x: &Tensor, coins: &[bool]) -> Tensor {
    if x.dim() < 3 {
        return x.shallow_clone();
    }
    x.flip([-1]).where_self(&sample_mask(coins, x), x)
}

/// A boolean tensor broadcastable against the batch `x` that is true on the samples flagged.
fn sample_mask(flags: &[bool], x: &Tensor) -> Tensor {
    let mask: Vec<f32> = flags.iter().map(|&c| if c { 1.0 } else { 0.0 }).collect();
    crate::sde::bcast(&Tensor::from_slice(&mask).to_device(x.device()), x).to_kind(Kind::Bool)
}

/// `K`, the number of random knots of [`random_contrast`]'s curves (knots at `k/K`, `k = 0..K`,
/// the one at 0 fixed).
pub const CONTRAST_KNOTS: usize = 6;

/// Random intensity remapping of an image batch `[B, C, H, W]` in model space `[0, 1]`
/// (`centered`: `[-1, 1]`, mapped there and back): sample `b` is passed through the
/// piecewise-linear curve with knots `(k/K, y_k)`, `k = 0..K`, `K` = [`CONTRAST_KNOTS`], where
/// `y_0 = 0` (background stays dark, as in every MR weighting) and
/// `y_k = 0.1 + 0.9·u[b·K + k − 1]` rescaled so that `max_k y_k = 1`; the curve need not be
/// monotone, so the tissue order changes (T1's CSF < GM < WM can become FLAIR's WM < GM or
/// T2's CSF > GM > WM); values outside the model space are clamped into it first. Samples
/// whose `apply[b]` is false are returned bit for bit. This is the random
/// contrast augmentation of domain-randomised MRI training (Billot et al. 2023, *SynthSeg*,
/// Med. Image Anal. 86; here a smooth curve over intensities instead of a label map).
/// `u` must hold `B·K` uniforms in `[0, 1)`.
pub fn random_contrast(x: &Tensor, apply: &[bool], u: &[f64], centered: bool) -> Tensor {
    if x.dim() < 3 || !apply.iter().any(|&a| a) {
        return x.shallow_clone();
    }
    let k = CONTRAST_KNOTS;
    let b = x.size()[0];
    let mut table = Vec::with_capacity(apply.len() * (k + 1));
    for (i, &a) in apply.iter().enumerate() {
        if a {
            let ys: Vec<f64> = u[i * k..(i + 1) * k]
                .iter()
                .map(|v| 0.1 + 0.9 * v)
                .collect();
            let top = ys.iter().cloned().fold(f64::MIN, f64::max);
            table.push(0.0f32);
            table.extend(ys.iter().map(|y| (y / top) as f32));
        } else {
            // Identity (the sample is restored below, values outside [0, 1] included).
            table.extend((0..=k).map(|j| (j as f64 / k as f64) as f32));
        }
    }
    let table = Tensor::from_slice(&table)
        .reshape([b, k as i64 + 1])
        .to_device(x.device());
    let shape = x.size();
    let flat = x.to_kind(Kind::Float).reshape([b, -1]);
    let v = if centered { (flat + 1.0) * 0.5 } else { flat }.clamp(0.0, 1.0) * k as f64;
    let lo = v.floor().clamp(0.0, k as f64 - 1.0);
    let frac = &v - &lo;
    let lo = lo.to_kind(Kind::Int64);
    let y0 = table.gather(1, &lo, false);
    let y1 = table.gather(1, &(lo + 1), false);
    let y = &y0 + (y1 - &y0) * frac;
    let y = if centered { y * 2.0 - 1.0 } else { y };
    let y = y.reshape(shape).to_kind(x.kind());
    y.where_self(&sample_mask(apply, x), x)
}

/// A training-data source.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// `n` samples of [`Gaussian2d::toy`].
    Gaussian2d { n: usize },
    /// IDX images (and optional labels).
    Idx {
        images: PathBuf,
        labels: Option<PathBuf>,
    },
    /// A `.npy` stack.
    Npy(PathBuf),
    /// A folder of images.
    Folder(PathBuf),
    /// `n` random-ellipse phantoms.
    Ellipses { n: usize },
    /// The modified Shepp–Logan phantom (one image: for smoke runs and overfitting checks).
    SheppLogan,
    /// Training slices of an InVesalius CT project.
    Invesalius(PathBuf),
    /// Axial slices of NIfTI volumes; `crop`: each volume cropped in-plane to its foreground
    /// bounding box first (`nifti-crop:`).
    Nifti { paths: Vec<PathBuf>, crop: bool },
    /// Slices of DICOM series (folders) or single DICOM files: CT through the HU window, other
    /// modalities (MR) min–max normalised per slice.
    Dicom(Vec<PathBuf>),
    /// `n` random multi-scale crops of colour photos: `paths` as given (files, folders, `.txt`
    /// lists), `files` the images they name (expanded once, when parsed).
    Photos {
        n: usize,
        paths: Vec<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// Several sources (`A+B`), their samples concatenated in order.
    Concat(Vec<DataSource>),
    /// The samples of a source at these indices, in this order (`fashion-mnist:0..1000`,
    /// `phantom:ellipses:100..200`).
    Rows(Box<DataSource>, Vec<usize>),
}

/// Seed of the random-ellipse training stream (evaluation phantoms use small seeds, one stream
/// each).
pub const TRAIN_PHANTOM_SEED: u64 = 0x7261_696e_0000_0001;

impl DataSource {
    /// The files and folders the source reads (none for synthetic data), so that outputs can
    /// be kept apart from them.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            DataSource::Gaussian2d { .. }
            | DataSource::Ellipses { .. }
            | DataSource::SheppLogan => Vec::new(),
            DataSource::Idx { images, labels } => std::iter::once(images.clone())
                .chain(labels.clone())
                .collect(),
            DataSource::Npy(p) | DataSource::Folder(p) | DataSource::Invesalius(p) => {
                vec![p.clone()]
            }
            DataSource::Nifti { paths, .. } | DataSource::Dicom(paths) => paths.clone(),
            DataSource::Photos { paths, files, .. } => {
                paths.iter().chain(files.iter()).cloned().collect()
            }
            DataSource::Concat(parts) => parts.iter().flat_map(|p| p.paths()).collect(),
            DataSource::Rows(src, _) => src.paths(),
        }
    }

    /// Parses a `--data` argument through the shared grammar [`Spec::parse`] (see
    /// [`crate::data::spec`]), then checks that the files it names exist.
    pub fn parse(spec: &str) -> Result<Self> {
        let parsed = Spec::parse(spec).map_err(|e| Error::Invalid(format!("`data` {e}")))?;
        Self::from_spec(&parsed, spec)
    }

    fn from_spec(parsed: &Spec, spec: &str) -> Result<Self> {
        let bad = |msg: String| Error::Invalid(format!("`data` {spec}: {msg}"));
        Ok(match parsed {
            Spec::Join(parts) => DataSource::Concat(
                parts
                    .iter()
                    .map(|p| Self::from_spec(p, spec))
                    .collect::<Result<_>>()?,
            ),
            Spec::Gaussian2d(n) => DataSource::Gaussian2d {
                n: n.unwrap_or(10_000),
            },
            Spec::SheppLogan => DataSource::SheppLogan,
            Spec::Ellipses(sel) => {
                let rows = sel.count_or_range();
                if rows.is_empty() {
                    return Err(bad("no phantoms selected".into()));
                }
                let n = rows.iter().max().map_or(0, |m| m + 1);
                let all = DataSource::Ellipses { n };
                if matches!(sel, Sel::One(_)) {
                    all
                } else {
                    DataSource::Rows(Box::new(all), rows)
                }
            }
            Spec::Nifti { paths, crop } => {
                if let Some(p) = paths.iter().find(|p| !p.is_file()) {
                    return Err(bad(format!("no such file {}", p.display())));
                }
                DataSource::Nifti {
                    paths: paths.clone(),
                    crop: *crop,
                }
            }
            Spec::Dicom(paths) => {
                if let Some(p) = paths.iter().find(|p| !p.exists()) {
                    return Err(bad(format!(
                        "no such DICOM file or series folder {}",
                        p.display()
                    )));
                }
                DataSource::Dicom(paths.clone())
            }
            Spec::Photos { n, paths } => {
                // Checks every path now (missing files, empty lists), before any training starts.
                let files = photos::expand_paths(paths)?;
                DataSource::Photos {
                    n: *n,
                    paths: paths.clone(),
                    files,
                }
            }
            Spec::Invesalius { file, z } => {
                if z.is_some() {
                    return Err(bad(
                        "z= selects evaluation slices (`ground_truth`); a training set is the \
                         slices outside the held-out axial block, so drop z="
                            .into(),
                    ));
                }
                DataSource::Invesalius(
                    file.clone()
                        .unwrap_or_else(|| PathBuf::from(crate::data::invesalius::CRANIUM_INV3)),
                )
            }
            Spec::FashionMnist { split, sel } => {
                let dir = Path::new(FASHION_MNIST_DIR);
                let stem = match split {
                    Some(Split::Test) => "t10k",
                    _ => "train",
                };
                let images =
                    find_idx(dir, &format!("{stem}-images-idx3-ubyte")).ok_or_else(|| {
                        bad(format!(
                            "no {stem}-images-idx3-ubyte[.gz] in {FASHION_MNIST_DIR} (install the \
                         Debian package dataset-fashion-mnist, or pass the folder with the IDX \
                         files)"
                        ))
                    })?;
                let labels = find_idx(dir, &format!("{stem}-labels-idx1-ubyte"));
                let all = DataSource::Idx { images, labels };
                match sel {
                    Some(sel) => DataSource::Rows(Box::new(all), sel.count_or_range()),
                    None => all,
                }
            }
            Spec::Path(p) => Self::from_path(p, spec)?,
        })
    }

    fn from_path(p: &str, spec: &str) -> Result<Self> {
        let path = PathBuf::from(p);
        if !path.exists() {
            let hint = if p.contains('#') {
                " (FILE#z=K selects evaluation slices of `ground_truth`; a training set takes \
                 the whole file)"
            } else {
                ""
            };
            return Err(Error::Invalid(format!(
                "`data` {spec}: no such file or folder {}{hint}",
                path.display()
            )));
        }
        if path.is_dir() {
            if let Some(images) = find_idx(&path, "train-images-idx3-ubyte") {
                let labels = find_idx(&path, "train-labels-idx1-ubyte");
                return Ok(DataSource::Idx { images, labels });
            }
            return Ok(DataSource::Folder(path));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if name.ends_with(".npy") {
            Ok(DataSource::Npy(path))
        } else if name.contains("idx3-ubyte") || name.contains("idx") {
            // `X-images-idx3-ubyte[.gz]` takes its labels from `X-labels-idx1-ubyte[.gz]` beside it.
            let labels = name.find("-images-idx3-ubyte").and_then(|i| {
                let stem = format!("{}-labels-idx1-ubyte", &name[..i]);
                find_idx(path.parent()?, &stem)
            });
            Ok(DataSource::Idx {
                images: path,
                labels,
            })
        } else {
            Err(Error::Invalid(format!(
                "`data` {}: not a .npy stack, IDX file, or folder",
                path.display()
            )))
        }
    }

    /// The image side at which the source holds its images at full resolution, for sources
    /// that are otherwise resampled to a default (`invesalius`: the volume's in-plane size);
    /// `None` for sources that are loaded as stored (files, folders, IDX). Sources without a
    /// native resolution (phantoms, photo crops, NIfTI and DICOM slices, which are resampled)
    /// are an error that asks for a size.
    pub fn native_side(&self) -> Result<Option<i64>> {
        match self {
            DataSource::Invesalius(p) => {
                let vol = crate::data::invesalius::read_inv3(p)?;
                let (_, ny, nx) = vol.hu.dim();
                Ok(Some(ny.max(nx) as i64))
            }
            DataSource::Concat(parts) => {
                let sides = parts
                    .iter()
                    .map(|p| p.native_side())
                    .collect::<Result<Vec<_>>>()?;
                let mut known = sides.iter().flatten();
                match known.next() {
                    Some(&s) if known.all(|&o| o == s) => Ok(Some(s)),
                    Some(_) => Err(Error::Config(format!(
                        "the joined sources have different native sizes {sides:?}: give one \
                         with `size`"
                    ))),
                    None => Ok(None),
                }
            }
            DataSource::Rows(src, _) => src.native_side(),
            DataSource::Ellipses { .. }
            | DataSource::SheppLogan
            | DataSource::Photos { .. }
            | DataSource::Nifti { .. }
            | DataSource::Dicom(_) => Err(Error::Config(
                "this data source renders or resamples its images and has no native size: give \
                 one with `size` (e.g. 256)"
                    .into(),
            )),
            DataSource::Gaussian2d { .. }
            | DataSource::Idx { .. }
            | DataSource::Npy(_)
            | DataSource::Folder(_) => Ok(None),
        }
    }

    /// Loads the source into model space (`centered` applies to images).
    pub fn load(&self, centered: bool) -> Result<Dataset> {
        self.load_sized(centered, None)
    }

    /// [`DataSource::load`], with images centre-cropped to a square and resampled to
    /// `size × size` (antialiased when shrinking; phantoms are rendered at that size, default 64).
    pub fn load_sized(&self, centered: bool, size: Option<i64>) -> Result<Dataset> {
        if let Some(s) = size {
            if s < 2 {
                return Err(Error::Config(format!("`size` must be at least 2, got {s}")));
            }
        }
        let d = self.load_native(centered, size)?;
        match (size, d.info.shape.as_slice()) {
            (Some(s), [c, h, w]) if (*h, *w) != (s, s) => {
                let (lo, hi) = if d.info.centered {
                    (-1.0, 1.0)
                } else {
                    (0.0, 1.0)
                };
                // Centre crop to a square first (score_sde's `central_crop`), so non-square
                // images keep their aspect ratio.
                let m = (*h).min(*w);
                let x = d.data.narrow(2, (h - m) / 2, m).narrow(3, (w - m) / 2, m);
                let x = crate::data::ct_slices::resize(&x, s, s)?.clamp(lo, hi);
                let mut info = d.info.clone();
                info.shape = vec![*c, s, s];
                if h != w {
                    info.source = format!("{} (centre-cropped {m}x{m})", info.source);
                }
                Dataset::new(x, d.labels, info)
            }
            (Some(_), [_]) => Err(Error::Invalid(format!(
                "`size` applies to images; '{}' holds vectors",
                d.info.source
            ))),
            _ => Ok(d),
        }
    }

    fn load_native(&self, centered: bool, size: Option<i64>) -> Result<Dataset> {
        match self {
            DataSource::Concat(parts) => {
                let sets = parts
                    .iter()
                    .map(|p| p.load_sized(centered, size))
                    .collect::<Result<Vec<_>>>()?;
                let first = &sets[0].info;
                for d in &sets[1..] {
                    if d.info.shape != first.shape || d.info.data_range != first.data_range {
                        return Err(Error::Shape {
                            what: format!("joined data source '{}'", d.info.source),
                            expected: format!(
                                "samples of shape {:?}, raw range {:?} (as '{}')",
                                first.shape, first.data_range, first.source
                            ),
                            actual: format!(
                                "shape {:?}, raw range {:?}",
                                d.info.shape, d.info.data_range
                            ),
                        });
                    }
                }
                let labels = sets
                    .iter()
                    .map(|d| d.labels.clone())
                    .collect::<Option<Vec<_>>>()
                    .map(|l| l.concat());
                let x = Tensor::cat(&sets.iter().map(|d| &d.data).collect::<Vec<_>>(), 0);
                let mut info = first.clone();
                info.source = sets
                    .iter()
                    .map(|d| d.info.source.as_str())
                    .collect::<Vec<_>>()
                    .join(" + ");
                // A pixel spacing only when every part has the same one: a join of a CT volume
                // (known spacing) and arrays (none, or another) has no single spacing, and a
                // model trained on it must not claim the first part's.
                info.spacing_mm = first
                    .spacing_mm
                    .filter(|s| sets[1..].iter().all(|d| d.info.spacing_mm == Some(*s)));
                Dataset::new(x, labels, info)
            }
            DataSource::Ellipses { n } => {
                let s = size.unwrap_or(64) as usize;
                let cfg = crate::data::phantom::RandomEllipsesConfig::default();
                let x = crate::data::phantom::random_ellipses_tensor(
                    *n,
                    s,
                    &cfg,
                    TRAIN_PHANTOM_SEED,
                    Kind::Float,
                    Device::Cpu,
                )?;
                let info = DataInfo {
                    spacing_mm: None,
                    shape: vec![1, s as i64, s as i64],
                    centered,
                    data_range: Some((0.0, 1.0)),
                    source: format!("random-ellipse phantoms ({n} at {s}x{s})"),
                };
                Dataset::new(info.normalize(&x), None, info)
            }
            DataSource::SheppLogan => {
                let s = size.unwrap_or(64) as usize;
                let x = crate::data::phantom::shepp_logan_tensor(s, 4, Kind::Float, Device::Cpu)?
                    .clamp(0.0, 1.0);
                let info = DataInfo {
                    spacing_mm: None,
                    shape: vec![1, s as i64, s as i64],
                    centered,
                    data_range: Some((0.0, 1.0)),
                    source: format!("modified Shepp-Logan phantom at {s}x{s}"),
                };
                Dataset::new(info.normalize(&x), None, info)
            }
            DataSource::Nifti { paths, crop } => {
                let note = if *crop {
                    ", cropped to each volume's foreground"
                } else {
                    ""
                };
                slice_dataset(paths, size, centered, *crop, "axial slices", note, |p| {
                    crate::io::nifti::read_nifti(p)
                })
            }
            DataSource::Dicom(paths) => {
                let w = crate::data::ct_slices::HuWindow::default();
                let note = format!(
                    ", CT through the HU window [{}, {}], other modalities min–max per slice",
                    w.lo, w.hi
                );
                slice_dataset(paths, size, centered, false, "DICOM slices", &note, |p| {
                    crate::io::read_image_file(p)
                })
            }
            DataSource::Photos { n, paths, files } => {
                let s = size.unwrap_or(64);
                let x = photos::photo_crops(files, *n, s as u32, photos::TRAIN_CROP_SEED)?;
                let info = DataInfo {
                    spacing_mm: None,
                    shape: vec![3, s, s],
                    centered,
                    data_range: Some((0.0, 1.0)),
                    source: format!(
                        "{n} random crops at {s}x{s} of {} photos ({})",
                        files.len(),
                        paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                Dataset::new(info.normalize(&x), None, info)
            }
            DataSource::Invesalius(p) => {
                let s = size.unwrap_or(64);
                let vol = crate::data::invesalius::read_inv3(p)?;
                let x = crate::data::ct_slices::training_slices(
                    &vol,
                    crate::data::ct_slices::HuWindow::default(),
                    s,
                )?;
                let n = x.size()[0];
                let (_, ny, nx) = vol.hu.dim();
                let info = DataInfo {
                    // Axial slices of `ny × nx` voxels resampled to `s × s`.
                    spacing_mm: Some([
                        vol.spacing_mm[1] * ny as f64 / s as f64,
                        vol.spacing_mm[2] * nx as f64 / s as f64,
                    ]),
                    shape: vec![1, s, s],
                    centered,
                    data_range: Some((0.0, 1.0)),
                    source: format!("{} ({n} slices at {s}x{s})", p.display()),
                };
                Dataset::new(info.normalize(&x), None, info)
            }
            DataSource::Gaussian2d { n } => {
                let g = Gaussian2d::toy();
                let x = g.sample(*n, 0);
                Dataset::new(
                    x,
                    None,
                    DataInfo::vectors(2, format!("gaussian2d ({n} samples)")),
                )
            }
            DataSource::Idx { images, labels } => {
                let im = idx::read_idx(images)?;
                if im.dims.len() != 3 {
                    return Err(Error::format(
                        images,
                        format!(
                            "expected IDX images [N, H, W], got dimensions {:?}",
                            im.dims
                        ),
                    ));
                }
                let (n, h, w) = (im.dims[0], im.dims[1] as i64, im.dims[2] as i64);
                let labels = match labels {
                    Some(p) => {
                        let l = idx::read_idx(p)?;
                        if l.dims != [n] {
                            return Err(Error::format(
                                p,
                                format!("labels have dimensions {:?}, the images are {n}", l.dims),
                            ));
                        }
                        Some(l.data)
                    }
                    None => None,
                };
                let raw = Tensor::from_slice(&im.data)
                    .to_kind(Kind::Float)
                    .reshape([n as i64, 1, h, w]);
                let info = DataInfo {
                    spacing_mm: None,
                    shape: vec![1, h, w],
                    centered,
                    data_range: Some((0.0, 255.0)),
                    source: format!("{} ({n} images)", images.display()),
                };
                Dataset::new(info.normalize(&raw), labels, info)
            }
            DataSource::Npy(p) => load_npy(p, centered),
            DataSource::Rows(src, rows) => {
                let d = src.load_native(centered, size)?;
                let n = d.data.size()[0] as usize;
                if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
                    return Err(Error::Invalid(format!(
                        "`data`: index {bad} is past the {n} samples of {}",
                        d.info.source
                    )));
                }
                let idx = Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>());
                let labels = d
                    .labels
                    .as_ref()
                    .map(|l| rows.iter().map(|&r| l[r]).collect::<Vec<_>>());
                let mut info = d.info.clone();
                info.source = format!("{} (rows {})", d.info.source, describe_rows(rows));
                Dataset::new(d.data.index_select(0, &idx), labels, info)
            }
            DataSource::Folder(p) => {
                let (data, [c, h, w]) = folder::load_folder(p)?;
                let n = data.len() as i64 / (c * h * w);
                let info = DataInfo {
                    spacing_mm: None,
                    shape: vec![c, h, w],
                    centered,
                    data_range: Some((0.0, 1.0)),
                    source: format!("{} ({n} images)", p.display()),
                };
                let raw = Tensor::from_slice(&data).reshape([n, c, h, w]);
                Dataset::new(info.normalize(&raw), None, info)
            }
        }
    }
}

/// `A..B` for consecutive rows, else the count.
fn describe_rows(rows: &[usize]) -> String {
    match (rows.first(), rows.last()) {
        (Some(&a), Some(&b)) if rows.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{a}..{}", b + 1)
        }
        _ => format!("{} selected", rows.len()),
    }
}

/// Mean (after per-slice min–max normalisation) below which a NIfTI slice counts as background.
const MIN_SLICE_MEAN: f64 = 0.1;

/// Foreground of `nifti-crop:`: voxels above this fraction of the volume's value range.
pub const FOREGROUND_FRACTION: f32 = 0.05;
/// Margin kept around the foreground box by `nifti-crop:`, as a fraction of its extent per side.
pub const FOREGROUND_MARGIN: f64 = 0.02;

/// The in-plane (`H`, `W`) index ranges of the voxels of a `[D, H, W]` volume above
/// `lo + fraction·(hi − lo)` (its value range), each widened by `margin` of its extent per side
/// and clipped to the volume; `None` when no voxel is above it.
///
/// Why: a template such as MNI152 sits in its field of view with a wide empty margin, while a
/// scan cropped to the head (Colin27's `ch2better`) fills it; resizing both to `s × s` would
/// show the prior brains about 1.3× smaller than those it is asked to reconstruct.
pub fn foreground_box(
    vol: &ndarray::Array3<f32>,
    fraction: f32,
    margin: f64,
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let (lo, hi) = crate::io::value_range(vol);
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return None;
    }
    let t = lo + fraction * (hi - lo);
    let (_, h, w) = vol.dim();
    let (mut y0, mut y1, mut x0, mut x1) = (usize::MAX, 0, usize::MAX, 0);
    for ((_, y, x), &v) in vol.indexed_iter() {
        if v > t {
            (y0, y1, x0, x1) = (y0.min(y), y1.max(y), x0.min(x), x1.max(x));
        }
    }
    if y0 == usize::MAX {
        return None;
    }
    let widen = |a: usize, b: usize, n: usize| {
        let m = ((b - a + 1) as f64 * margin).round() as usize;
        a.saturating_sub(m)..(b + 1 + m).min(n)
    };
    Some((widen(y0, y1, h), widen(x0, x1, w)))
}

/// The slices of the volumes `paths` (read by `read`) as a dataset of `[1, s, s]` images in
/// [0, 1] (default `s` 64; see [`volume_slices`]), each volume first cropped to
/// [`foreground_box`] when `crop`; `what` and `note` describe them in its source string.
fn slice_dataset(
    paths: &[PathBuf],
    size: Option<i64>,
    centered: bool,
    crop: bool,
    what: &str,
    note: &str,
    read: impl Fn(&Path) -> Result<crate::io::Image>,
) -> Result<Dataset> {
    let s = size.unwrap_or(64);
    let mut all = Vec::new();
    for p in paths {
        let mut img = read(p)?;
        if crop {
            let (h, w) = foreground_box(&img.data, FOREGROUND_FRACTION, FOREGROUND_MARGIN)
                .ok_or_else(|| {
                    Error::Invalid(format!("{}: no foreground to crop to", p.display()))
                })?;
            img.data = img.data.slice(ndarray::s![.., h, w]).to_owned();
        }
        all.push(volume_slices(p, &img, s)?);
    }
    let x = Tensor::cat(&all, 0);
    let n = x.size()[0];
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, s, s],
        centered,
        data_range: Some((0.0, 1.0)),
        source: format!("{} ({n} {what} at {s}x{s}{note})", names.join(", ")),
    };
    Dataset::new(info.normalize(&x), None, info)
}

/// Slices `[N, 1, s, s]` along the first axis of a volume read from `path`: CT data in HU
/// through the HU window of the shipped CT priors (as the ground-truth cases of
/// `reconstruct`), anything else min–max normalised per slice; resized straight to `s × s`
/// (as `reconstruct --ground-truth VOLUME#z=K --size s` does); slices with almost no
/// foreground are skipped.
fn volume_slices(path: &Path, img: &crate::io::Image, s: i64) -> Result<Tensor> {
    let window =
        (img.meta.units.as_deref() == Some("HU")).then(crate::data::ct_slices::HuWindow::default);
    let (nz, h, w) = img.data.dim();
    let mut out = Vec::new();
    for z in 0..nz {
        let sl = img.data.index_axis(ndarray::Axis(0), z);
        let v: Vec<f32> = match window {
            Some(win) => sl.iter().map(|&v| win.apply(v)).collect(),
            None => {
                let (lo, hi) = crate::io::value_range(sl);
                if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                    continue;
                }
                sl.iter().map(|&v| (v - lo) / (hi - lo)).collect()
            }
        };
        let t = Tensor::from_slice(&v).reshape([1, 1, h as i64, w as i64]);
        if t.mean(Kind::Double).double_value(&[]) < MIN_SLICE_MEAN {
            continue;
        }
        out.push(crate::data::ct_slices::resize(&t, s, s)?.clamp(0.0, 1.0));
    }
    if out.is_empty() {
        let inside = if window.is_some() {
            " inside the HU window"
        } else {
            ""
        };
        return Err(Error::Invalid(format!(
            "{}: no slice with enough foreground{inside}",
            path.display()
        )));
    }
    Ok(Tensor::cat(&out, 0))
}

fn load_npy(p: &Path, centered: bool) -> Result<Dataset> {
    use ndarray::ArrayD;
    use ndarray_npy::read_npy;
    let (vals, shape, is_u8): (Vec<f32>, Vec<usize>, bool) =
        if let Ok(a) = read_npy::<_, ArrayD<f32>>(p) {
            (a.iter().copied().collect(), a.shape().to_vec(), false)
        } else if let Ok(a) = read_npy::<_, ArrayD<f64>>(p) {
            (
                a.iter().map(|&v| v as f32).collect(),
                a.shape().to_vec(),
                false,
            )
        } else {
            match read_npy::<_, ArrayD<u8>>(p) {
                Ok(a) => (
                    a.iter().map(|&v| v as f32).collect(),
                    a.shape().to_vec(),
                    true,
                ),
                Err(e) => {
                    return Err(Error::format(
                        p,
                        format!("cannot read as a u8, f32 or f64 .npy array: {e}"),
                    ))
                }
            }
        };
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let (n, sample): (i64, Vec<i64>) = match shape.len() {
        2 => (shape[0], vec![shape[1]]),
        3 => (shape[0], vec![1, shape[1], shape[2]]),
        4 => (shape[0], shape[1..].to_vec()),
        _ => {
            return Err(Error::format(
                p,
                format!("expected [N, D], [N, H, W] or [N, C, H, W], got shape {shape:?}"),
            ))
        }
    };
    let mut full = vec![n];
    full.extend(&sample);
    let raw = Tensor::from_slice(&vals).reshape(full.as_slice());
    let is_image = sample.len() == 3;
    let data_range = if !is_image {
        None
    } else if is_u8 {
        Some((0.0, 255.0))
    } else {
        if vals.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("{}", p.display())));
        }
        let lo = vals.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        let hi = vals.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        if lo >= 0.0 && hi <= 1.0 {
            Some((0.0, 1.0))
        } else if hi > lo {
            Some((lo, hi))
        } else {
            return Err(Error::Invalid(format!(
                "{}: every value equals {lo}; nothing to learn",
                p.display()
            )));
        }
    };
    let info = DataInfo {
        spacing_mm: None,
        shape: sample,
        centered: centered && is_image,
        data_range,
        source: format!("{} ({n} samples)", p.display()),
    };
    Dataset::new(info.normalize(&raw), None, info)
}

/// A 2-D Gaussian `N(μ, Σ)` with its exact perturbed scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaussian2d {
    pub mu: [f64; 2],
    pub cov: [[f64; 2]; 2],
}

impl Gaussian2d {
    /// Checks that Σ is symmetric positive definite.
    pub fn new(mu: [f64; 2], cov: [[f64; 2]; 2]) -> Result<Self> {
        let det = cov[0][0] * cov[1][1] - cov[0][1] * cov[1][0];
        if cov[0][1] != cov[1][0] || cov[0][0] <= 0.0 || det <= 0.0 {
            return Err(Error::Config(format!(
                "covariance {cov:?} is not symmetric positive definite"
            )));
        }
        Ok(Self { mu, cov })
    }

    /// The toy distribution `μ = (1, −0.5)`, `Σ = [[1, 0.6], [0.6, 0.5]]` (correlated,
    /// eigenvalues ≈ 1.28 and 0.22).
    pub fn toy() -> Self {
        Self {
            mu: [1.0, -0.5],
            cov: [[1.0, 0.6], [0.6, 0.5]],
        }
    }

    /// `n` samples `[n, 2]` (f32), from the stream `(seed, 0, Synthetic)`, by the Cholesky
    /// factor of Σ.
    pub fn sample(&self, n: usize, seed: u64) -> Tensor {
        let z = Stream::new(seed, 0, Purpose::Synthetic).normal_vec(2 * n);
        let l00 = self.cov[0][0].sqrt();
        let l10 = self.cov[1][0] / l00;
        let l11 = (self.cov[1][1] - l10 * l10).sqrt();
        let mut v = Vec::with_capacity(2 * n);
        for i in 0..n {
            let (a, b) = (z[2 * i] as f64, z[2 * i + 1] as f64);
            v.push((self.mu[0] + l00 * a) as f32);
            v.push((self.mu[1] + l10 * a + l11 * b) as f32);
        }
        Tensor::from_slice(&v).reshape([n as i64, 2])
    }

    /// `(m(t), C(t) = m²Σ + s²I)` of `p_t`.
    pub fn perturbed(&self, sde: &dyn Sde, t: f64) -> (f64, [[f64; 2]; 2]) {
        let (m, s) = sde.mean_coeff_std(t);
        (m, self.cov_with(m, s))
    }

    /// Exact score of `p_t` at `x` `[B, 2]`, for per-sample times `t` `[B]`:
    /// `−C(t)⁻¹ (x − m(t) μ)`. Differentiable in `x`.
    pub fn perturbed_score(&self, sde: &dyn Sde, x: &Tensor, t: &Tensor) -> Tensor {
        let ts: Vec<f64> =
            Vec::try_from(&t.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
        let ms: Vec<(f64, f64)> = ts.iter().map(|&ti| sde.mean_coeff_std(ti)).collect();
        self.score_with(x, &ms)
    }

    /// Score of `N(m μ, m²Σ + s²I)` at `x` `[B, 2]` with per-sample `(m, s)`.
    pub fn score_with(&self, x: &Tensor, ms: &[(f64, f64)]) -> Tensor {
        let mut rows = Vec::with_capacity(ms.len() * 6);
        for &(m, s) in ms {
            let c = self.cov_with(m, s);
            let det = c[0][0] * c[1][1] - c[0][1] * c[1][0];
            // C⁻¹ row-major and the mean.
            rows.extend_from_slice(&[
                c[1][1] / det,
                -c[0][1] / det,
                -c[1][0] / det,
                c[0][0] / det,
                m * self.mu[0],
                m * self.mu[1],
            ]);
        }
        let p = Tensor::from_slice(&rows)
            .reshape([ms.len() as i64, 6])
            .to_kind(x.kind())
            .to_device(x.device());
        let d0 = x.select(1, 0) - p.select(1, 4);
        let d1 = x.select(1, 1) - p.select(1, 5);
        let s0 = -(p.select(1, 0) * &d0 + p.select(1, 1) * &d1);
        let s1 = -(p.select(1, 2) * &d0 + p.select(1, 3) * &d1);
        Tensor::stack(&[s0, s1], 1)
    }

    /// `m²Σ + s²I`.
    pub fn cov_with(&self, m: f64, s: f64) -> [[f64; 2]; 2] {
        [
            [m * m * self.cov[0][0] + s * s, m * m * self.cov[0][1]],
            [m * m * self.cov[1][0], m * m * self.cov[1][1] + s * s],
        ]
    }

    /// Minimum of the per-sample DSM objective `E‖s(t)·∇log p_t(x_t) + z‖²` at time t, reached
    /// by the exact score: `d − s² tr(C⁻¹)` (derivation in the loss tests).
    pub fn dsm_minimum(&self, sde: &dyn Sde, t: f64) -> f64 {
        let (m, s) = sde.mean_coeff_std(t);
        self.dsm_minimum_with(m, s)
    }

    /// `d − s² tr(C⁻¹)` with `C = m²Σ + s²I`.
    pub fn dsm_minimum_with(&self, m: f64, s: f64) -> f64 {
        let c = self.cov_with(m, s);
        let det = c[0][0] * c[1][1] - c[0][1] * c[1][0];
        let tr_inv = (c[0][0] + c[1][1]) / det;
        2.0 - s * s * tr_inv
    }
}

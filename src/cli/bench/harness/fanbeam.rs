//! Fan-beam benchmarks: [`FanBeam`] forward projection `A x` and its exact adjoint `Aᵀ y`
//! against ASTRA Toolbox's CPU projector `line_fanflat` (`reference.py fanbeam_astra`, run by
//! the interpreter of a separate environment with `astra-toolbox`), timed in the same run.
//! Each figure is seconds per batch, and the set-up of each operator (its tables) once.
//!
//! Geometry: the clinical-like scanner of `data/geometry/clinical_curved.toml` (source to
//! isocentre 595 mm, source to detector 1085 mm, a 28.125° fan, 360 views over 360°, 256²
//! images of 1 mm) and its *flat twin*: the same distances, bins and fan on a flat detector
//! (400 bins of 1.36 mm, `2·1085·tan(14.0625°)/400` = 1.359 mm rounded). ASTRA's 2-D CPU
//! projectors model flat detectors only (`line_fanflat`, `strip_fanflat`; its curved
//! `cyl_cone_vec` geometry is 3-D and CUDA-only), so the speed comparison and the agreement
//! check run on the flat twin; the curved row times scoreinv on the curved scanner next to
//! ASTRA on the flat twin (the same number of rays through the same field of view).
//!
//! Before the speed is compared, both projections of the bench input are compared:
//! `‖A x − A_astra x‖₂ / ‖A_astra x‖₂` (and the same for the back-projection of one
//! sinogram), after mapping ASTRA's conventions onto scoreinv's (`astra_fan` in
//! `scripts/bench/reference.py`: source angle `t = β − 180°`, bins reversed, the volume window
//! centred on pixel `N/2`). Above [`AGREEMENT_TOL`] the two do not compute the same
//! projections and the row carries no reference figure (the difference is still reported).
//!
//! ASTRA's 2-D API projects one image per call (no batched 2-D projection), and its CPU
//! projectors run on one thread: the reference is `astra.create_sino` /
//! `astra.create_backprojection` per image in a Python loop, as ASTRA users write it.

use super::operators::{disc, disc_images};
use super::{field, time, BenchContext, Measurement, ASTRA_PYTHON_ENV};
use ndarray::Array3;
use scoreinv::io::npy::{read_npy_f32, write_npy};
use scoreinv::operators::fanbeam::fan_sparse_memory;
use scoreinv::operators::{
    DetectorShape, FanBackend, FanBeam, FanGeometry, FanGeometryConfig, LinearOperator,
};
use scoreinv::runtime::{peak_host_memory, reset_peak_host_memory, resident_host_memory};
use scoreinv::{Error, Result};
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Largest relative L2 difference from ASTRA at which the two count as computing the same
/// projections: the tolerance of the ASTRA check of the fan-beam operator (2 %; the two
/// discretise a line integral differently: bilinear samples every half pixel against ASTRA's
/// line-length kernel).
pub const AGREEMENT_TOL: f64 = 0.02;

/// Largest relative L2 difference between two backends of scoreinv (the same discretisation
/// in f32, summed in different orders).
const BACKEND_TOL: f64 = 1e-4;

/// Source to isocentre, mm (the clinical-like scanner).
const SOURCE_TO_ISOCENTER_MM: f64 = 595.0;
/// Source to detector, mm.
const SOURCE_TO_DETECTOR_MM: f64 = 1085.0;
/// Fan angle of the whole detector, degrees.
const FAN_DEG: f64 = 28.125;

/// Sizes of the fan-beam suite: `n²` images of `pixel_mm` (a 256 mm field of view), `n_det`
/// bins, `views` source angles over 360°, `batch` images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanSize {
    pub n: usize,
    pub pixel_mm: f64,
    pub n_det: usize,
    pub views: usize,
    pub batch: usize,
    /// Bin pitch of the flat twin, mm (the curved detector's fan, rounded to 0.01 mm).
    pub flat_pitch_mm: f64,
}

impl FanSize {
    /// 256² of 1 mm, 400 bins, 360 views, batch 8 (`clinical_curved.toml`); `quick`: 64² of
    /// 4 mm, 100 bins, 360 views, batch 2 (`clinical_curved_64.toml`).
    pub fn for_run(quick: bool) -> Self {
        if quick {
            Self {
                n: 64,
                pixel_mm: 4.0,
                n_det: 100,
                views: 360,
                batch: 2,
                flat_pitch_mm: 5.44,
            }
        } else {
            Self {
                n: 256,
                pixel_mm: 1.0,
                n_det: 400,
                views: 360,
                batch: 8,
                flat_pitch_mm: 1.36,
            }
        }
    }

    fn angles_deg(&self) -> Vec<f64> {
        (0..self.views)
            .map(|i| i as f64 * 360.0 / self.views as f64)
            .collect()
    }

    /// The clinical-like scanner: curved detector, `n_det` bins over a 28.125° fan.
    pub fn curved(&self) -> FanGeometryConfig {
        FanGeometryConfig {
            source_to_isocenter_mm: SOURCE_TO_ISOCENTER_MM,
            source_to_detector_mm: SOURCE_TO_DETECTOR_MM,
            n_detectors: self.n_det,
            detector: DetectorShape::Curved,
            detector_pitch: FAN_DEG / self.n_det as f64,
            detector_offset: 0.0,
            angles_deg: self.angles_deg(),
            image_size: self.n,
            pixel_spacing_mm: self.pixel_mm,
        }
    }

    /// Its flat twin (the geometry ASTRA's CPU projector models).
    pub fn flat(&self) -> FanGeometryConfig {
        FanGeometryConfig {
            detector: DetectorShape::Flat,
            detector_pitch: self.flat_pitch_mm,
            ..self.curved()
        }
    }

    fn tag(&self, detector: DetectorShape) -> String {
        format!(
            "{0}x{0} {1} views {2} {3} bins batch {4}",
            self.n,
            self.views,
            detector.name(),
            self.n_det,
            self.batch
        )
    }
}

/// The name of a resolved fan-beam backend in row names.
fn backend_label(backend: FanBackend) -> &'static str {
    match backend {
        FanBackend::Sparse => "sparse CSR",
        FanBackend::Reference => "ndarray/rayon",
        FanBackend::Auto => "auto",
    }
}

/// The bench input: uniform noise in `[0, 1)` plus a Gaussian bump of height 2 and width
/// `n/10` centred off the isocentre at `(0.3 n, 0.65 n)` (row, column), zero outside the disc
/// of [`disc_images`]. The noise gives every ray its own value; the bump breaks the disc's
/// symmetry, so that a flipped, rotated or shifted convention shows in the comparison with
/// ASTRA.
pub fn fan_images(batch: usize, n: usize, device: Device) -> Tensor {
    let nf = n as f64;
    let bump: Vec<f32> = (0..n * n)
        .map(|i| {
            let (r, c) = ((i / n) as f64 - 0.3 * nf, (i % n) as f64 - 0.65 * nf);
            let w = 0.1 * nf;
            (2.0 * (-(r * r + c * c) / (2.0 * w * w)).exp()) as f32
        })
        .collect();
    let bump = Tensor::from_slice(&bump).reshape([1, 1, n as i64, n as i64]);
    (disc_images(batch, n, Device::Cpu) + bump * disc(n)).to_device(device)
}

/// `‖a − b‖₂ / ‖b‖₂` in f64; an error for different lengths or `b = 0`.
pub fn rel_l2(a: &[f32], b: &[f32]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::Invalid(format!(
            "relative L2 difference of {} and {} values",
            a.len(),
            b.len()
        )));
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        num += (x - y) * (x - y);
        den += y * y;
    }
    if !(den > 0.0 && den.is_finite() && num.is_finite()) {
        return Err(Error::NonFinite(format!(
            "relative L2 difference: reference norm² {den}, difference norm² {num}"
        )));
    }
    Ok((num / den).sqrt())
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))
        .map_err(|e| Error::Invalid(format!("bench: reading a tensor to the host: {e}")))
}

/// Writes a `[B, 1, d1, d2]` tensor as an NPY `[B, d1, d2]` float32 array.
fn write_batch(t: &Tensor, path: &Path) -> Result<()> {
    let s = t.size();
    let dims = (s[0] as usize, s[2] as usize, s[3] as usize);
    let a = Array3::from_shape_vec(dims, host_f32(t)?)
        .map_err(|e| Error::Invalid(format!("bench: batch buffer: {e}")))?;
    write_npy(path, &a)
}

/// ASTRA's figures on the flat twin: seconds per batch and the agreement with scoreinv.
#[derive(Debug, Clone, PartialEq)]
pub struct AstraRun {
    pub version: String,
    /// `astra.create_projector` (geometry set-up; ASTRA computes its weights on the fly).
    pub setup_s: f64,
    pub forward_s: f64,
    pub adjoint_s: f64,
    /// Relative L2 difference of the projections of the bench images.
    pub forward_rel_l2: f64,
    /// Relative L2 difference of the back-projections of scoreinv's sinograms.
    pub adjoint_rel_l2: f64,
}

/// Runs `reference.py fanbeam_astra` on images `x` `[B, 1, N, N]` and sinograms `y`
/// `[B, 1, n_det, A]` of `geometry` (flat), compares ASTRA's outputs with `ax` = `A x` and
/// `aty` = `Aᵀ y`. `None` (with a note on stderr) without an ASTRA interpreter or when the
/// script fails.
pub fn astra_reference(
    ctx: &BenchContext,
    geometry: &FanGeometryConfig,
    (x, ax): (&Tensor, &Tensor),
    (y, aty): (&Tensor, &Tensor),
) -> Result<Option<AstraRun>> {
    let Some(python) = ctx.astra_python.as_deref() else {
        eprintln!(
            "note: fanbeam: no ASTRA reference (${ASTRA_PYTHON_ENV} unset and no \
             .venv-astra/bin/python here); set it up with `python3 -m venv .venv-astra && \
             .venv-astra/bin/pip install astra-toolbox==2.5.0 numpy`"
        );
        return Ok(None);
    };
    let dir = &ctx.work_dir;
    let p = |name: &str| dir.join(name);
    let geom_path = p("fanbeam_geometry.json");
    let text = serde_json::to_string_pretty(geometry)
        .map_err(|e| Error::Invalid(format!("fan geometry to JSON: {e}")))?;
    std::fs::write(&geom_path, text).map_err(|e| Error::io(&geom_path, e))?;
    write_batch(x, &p("fanbeam_images.npy"))?;
    write_batch(y, &p("fanbeam_sinograms.npy"))?;
    let (out_sino, out_bp) = (p("fanbeam_astra_sino.npy"), p("fanbeam_astra_bp.npy"));
    let arg = |path: &Path| path.display().to_string();
    let args = vec![
        "fanbeam_astra".to_string(),
        "--batch".into(),
        x.size()[0].to_string(),
        "--geometry".into(),
        arg(&geom_path),
        "--images".into(),
        arg(&p("fanbeam_images.npy")),
        "--sinograms".into(),
        arg(&p("fanbeam_sinograms.npy")),
        "--out-sinograms".into(),
        arg(&out_sino),
        "--out-backprojections".into(),
        arg(&out_bp),
    ];
    let Some(v) = ctx.reference_with(python, &args) else {
        return Ok(None);
    };
    let compare = |ours: &Tensor, path: &Path| -> Result<f64> {
        let theirs = read_npy_f32(path)?;
        let ours_shape: Vec<usize> = ours.size().iter().map(|&d| d as usize).collect();
        let expect = [ours_shape[0], ours_shape[2], ours_shape[3]];
        if theirs.shape() != expect {
            return Err(Error::Invalid(format!(
                "{}: ASTRA output of shape {:?}, expected {expect:?}",
                path.display(),
                theirs.shape()
            )));
        }
        let theirs: Vec<f32> = theirs.iter().copied().collect();
        rel_l2(&host_f32(ours)?, &theirs)
    };
    Ok(Some(AstraRun {
        version: v["astra_version"].as_str().unwrap_or("?").to_string(),
        setup_s: field(&v, "setup")?,
        forward_s: field(&v, "forward")?,
        adjoint_s: field(&v, "adjoint")?,
        forward_rel_l2: compare(ax, &out_sino)?,
        adjoint_rel_l2: compare(aty, &out_bp)?,
    }))
}

/// The reference figure of a compared row: `None` (and a warning) when the outputs differ by
/// more than [`AGREEMENT_TOL`].
fn checked(what: &str, seconds: f64, rel: f64) -> Option<f64> {
    if rel <= AGREEMENT_TOL {
        Some(seconds)
    } else {
        eprintln!(
            "warning: fanbeam {what}: scoreinv and ASTRA differ by {rel:.3e} (relative L2) > \
             {AGREEMENT_TOL}: not the same projections, no speed ratio reported"
        );
        None
    }
}

/// Runs the fan-beam suite.
pub fn run(ctx: &BenchContext, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>> {
    let r = ctx.repeats();
    let dev = ctx.device;
    let s = FanSize::for_run(ctx.quick);
    let flat = s.flat();
    let tag = s.tag(DetectorShape::Flat);
    let x = fan_images(s.batch, s.n, dev);

    progress(&format!("fanbeam {tag}: building the default operator"));
    let peak_reset = reset_peak_host_memory();
    let rss0 = resident_host_memory();
    let t0 = Instant::now();
    let op = FanBeam::new(flat.clone(), Kind::Float, dev)?;
    let build_default = t0.elapsed().as_secs_f64();
    // The resident memory the default operator added (with the CLI's allocator, which keeps
    // freed memory for reuse, about its build peak) and the peak while it was built, next to
    // the estimate Auto decided on.
    let gb = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9;
    let grown = match (rss0, resident_host_memory()) {
        (Some(a), Some(b)) => Some(gb(a, b)),
        _ => None,
    };
    let build_peak = match (peak_reset, rss0, peak_host_memory()) {
        (true, Some(a), Some(b)) => format!("build peak {:.2} GB", gb(a, b)),
        _ => "build peak not measured".to_string(),
    };
    let default = op.backend();
    let ax = op.forward(&x)?;
    // One sinogram batch to back-project on both sides (scoreinv's projections, scaled).
    let y = &ax / ax.abs().max();
    let aty = op.adjoint(&y)?;

    progress(&format!("fanbeam {tag}: ASTRA reference"));
    // A failing reference costs its rows their ratio, never the bench.
    let astra = astra_reference(ctx, &flat, (&x, &ax), (&y, &aty)).unwrap_or_else(|e| {
        eprintln!("warning: fanbeam: ASTRA reference: {e}");
        None
    });
    let version = astra
        .as_ref()
        .map(|a| a.version.clone())
        .unwrap_or_else(|| "2.5.0".into());
    let astra_name =
        |what: &str| format!("ASTRA {version} line_fanflat {what} (CPU, one thread), per image");
    let ref_setup = astra.as_ref().map(|a| a.setup_s);
    let (ref_fwd, ref_adj, rel_fwd, rel_adj) = match &astra {
        Some(a) => (
            checked("forward", a.forward_s, a.forward_rel_l2),
            checked("adjoint", a.adjoint_s, a.adjoint_rel_l2),
            Some(a.forward_rel_l2),
            Some(a.adjoint_rel_l2),
        ),
        None => (None, None, None, None),
    };

    // The default backend first, then the other CPU backend (the sparse one is the only one
    // off the CPU).
    let mut ops = vec![(op, true, build_default)];
    if dev == Device::Cpu {
        let other = match default {
            FanBackend::Sparse => FanBackend::Reference,
            _ => FanBackend::Sparse,
        };
        progress(&format!(
            "fanbeam {tag}: building the {} operator",
            backend_label(other)
        ));
        let t0 = Instant::now();
        let op = FanBeam::new_with_backend(flat.clone(), Kind::Float, dev, other)?;
        ops.push((op, false, t0.elapsed().as_secs_f64()));
    }
    let mut rows = Vec::new();
    if let (Some(gb), Device::Cpu) = (grown, dev) {
        let g = FanGeometry::new(flat.clone())?;
        let est = fan_sparse_memory(&g, &g, Kind::Float);
        let what = match default {
            FanBackend::Sparse => format!(
                "resident growth; {build_peak}; estimate (fan_sparse_memory): build peak {:.2} \
                 GB, resident {:.2} GB of which FBP {:.2} GB (built on the first FBP)",
                est.peak() / 1e9,
                est.resident() / 1e9,
                est.fbp / 1e9
            ),
            _ => format!("resident growth; {build_peak}; tables of the reference kernels"),
        };
        rows.push(Measurement::new(
            format!(
                "fanbeam operator host memory {tag} [{}, default]",
                backend_label(default)
            ),
            dev,
            "GB",
            gb,
            what,
            None,
        )?);
    }
    for (op, is_default, build_s) in &ops {
        let label = if *is_default {
            format!("{}, default", backend_label(op.backend()))
        } else {
            backend_label(op.backend()).to_string()
        };
        progress(&format!("fanbeam {tag}: scoreinv ({label})"));
        let t_fwd = time(r, dev, &mut || {
            op.forward(&x).map(drop).map_err(Error::from)
        })?;
        let t_adj = time(r, dev, &mut || {
            op.adjoint(&y).map(drop).map_err(Error::from)
        })?;
        // The default backend's outputs went to ASTRA; the others must compute the same.
        if !*is_default {
            let same = rel_l2(&host_f32(&op.forward(&x)?)?, &host_f32(&ax)?)?
                .max(rel_l2(&host_f32(&op.adjoint(&y)?)?, &host_f32(&aty)?)?);
            if same > BACKEND_TOL {
                return Err(Error::Invalid(format!(
                    "fanbeam bench: the {label} backend differs from the default by {same:.2e} \
                     (relative L2)"
                )));
            }
        }
        // Built once (no repeats): the tables of the sparse backend take seconds.
        rows.push(Measurement::new(
            format!("fanbeam operator set-up {tag} [{label}]"),
            dev,
            "s",
            *build_s,
            format!("ASTRA {version} create_projector line_fanflat"),
            ref_setup,
        )?);
        rows.push(
            Measurement::new(
                format!("fanbeam forward {tag} [{label}]"),
                dev,
                "s",
                t_fwd.median_s,
                astra_name("create_sino"),
                ref_fwd,
            )?
            .with_rel_l2_diff(rel_fwd),
        );
        rows.push(
            Measurement::new(
                format!("fanbeam adjoint {tag} [{label}]"),
                dev,
                "s",
                t_adj.median_s,
                astra_name("create_backprojection"),
                ref_adj,
            )?
            .with_rel_l2_diff(rel_adj),
        );
    }

    // The curved scanner itself, next to ASTRA on its flat twin.
    let curved = s.curved();
    let ctag = s.tag(DetectorShape::Curved);
    progress(&format!("fanbeam {ctag}: scoreinv (default)"));
    let op = FanBeam::new(curved, Kind::Float, dev)?;
    let label = format!("{}, default", backend_label(op.backend()));
    let t = time(r, dev, &mut || {
        op.forward(&x).map(drop).map_err(Error::from)
    })?;
    rows.push(Measurement::new(
        format!("fanbeam forward {ctag} [{label}]"),
        dev,
        "s",
        t.median_s,
        format!(
            "{} on the flat twin (ASTRA has no curved-detector CPU projector)",
            astra_name("create_sino")
        ),
        ref_fwd,
    )?);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scoreinv::inverse::tasks::ct::read_geometry_file;
    use std::path::PathBuf;

    #[test]
    fn rel_l2_is_the_relative_euclidean_distance() {
        // ‖(3, 4) − (0, 0)‖ / ‖(0, 5)‖... with b = (3, 4): a = (3, 4) + (0.3, 0.4) → 0.1.
        let d = rel_l2(&[3.3, 4.4], &[3.0, 4.0]).unwrap();
        assert!((d - 0.1).abs() < 1e-6, "{d}");
        assert_eq!(rel_l2(&[1.0, 2.0], &[1.0, 2.0]).unwrap(), 0.0);
        assert!(rel_l2(&[1.0], &[1.0, 2.0]).is_err());
        assert!(rel_l2(&[1.0], &[0.0]).is_err());
    }

    /// A compared row carries `rel_l2_diff` in its JSON and reads back; other rows omit it.
    #[test]
    fn rel_l2_diff_is_written_only_where_compared() {
        let m = Measurement::new("a", Device::Cpu, "s", 1.0, "r", Some(2.0)).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert!(v.get("rel_l2_diff").is_none(), "{v}");
        let m = m.with_rel_l2_diff(Some(0.0125));
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["rel_l2_diff"].as_f64(), Some(0.0125));
        let back: Measurement = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    /// The bench's curved scanners are the shipped `clinical_curved.toml` (full size) and
    /// `clinical_curved_64.toml` (quick); the flat twin spans the same fan within 0.05° (its
    /// pitch is rounded to 0.01 mm).
    #[test]
    fn bench_geometries_are_the_shipped_scanners_and_their_flat_twins() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/geometry");
        let full = FanSize::for_run(false);
        let shipped = read_geometry_file(&root.join("clinical_curved.toml")).unwrap();
        assert_eq!(full.curved(), shipped);
        let quick = FanSize::for_run(true);
        let shipped64 = read_geometry_file(&root.join("clinical_curved_64.toml")).unwrap();
        assert_eq!(quick.curved(), shipped64);
        for s in [full, quick] {
            let f = s.flat();
            let half = (s.n_det as f64 / 2.0 * f.detector_pitch / f.source_to_detector_mm)
                .atan()
                .to_degrees();
            // 1.36 mm for 1.3589 mm: 28.147° for 28.125°.
            assert!((2.0 * half - FAN_DEG).abs() < 0.05, "{half}");
            // Valid geometries (the fan covers the field of view).
            scoreinv::operators::FanGeometry::new(f).unwrap();
        }
    }

    /// The suite runs without ASTRA (its rows carry no reference) and gives positive times;
    /// quick sizes.
    #[test]
    fn suite_runs_without_astra() {
        let ctx = BenchContext::quick_cpu();
        let rows = run(&ctx, &|_| {}).unwrap();
        // The default backend's host memory (where the kernel reports it), then 7 timings.
        let rows = match rows.first() {
            Some(r) if r.unit == "GB" => {
                assert!(r.value >= 0.0 && r.value.is_finite(), "{r:?}");
                assert!(r.name.contains("host memory"), "{}", r.name);
                &rows[1..]
            }
            _ => &rows[..],
        };
        assert_eq!(rows.len(), 7);
        for r in rows {
            assert!(r.value > 0.0 && r.value.is_finite(), "{r:?}");
            assert!(
                r.reference_value.is_none() && r.rel_l2_diff.is_none(),
                "{r:?}"
            );
            assert!(r.name.contains("64x64 360 views"), "{}", r.name);
        }
        assert!(rows[0].name.ends_with(", default]"), "{}", rows[0].name);
        assert!(
            rows[0].name.starts_with("fanbeam operator set-up"),
            "{}",
            rows[0].name
        );
        assert!(rows[6].name.contains("curved 100 bins"), "{}", rows[6].name);
    }
}

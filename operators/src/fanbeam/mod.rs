//! Fan-beam CT transform `A x` (sinogram), its exact adjoint `Aᵀ y`, and fan-beam FBP as
//! `A⁺`, on `tch` tensors `[B, C, N, N]` → `[B, C, n_detectors, n_angles]` (the layout of
//! [`crate::radon::ParallelBeamRadon`]: detector bins, then source angles).
//!
//! Geometry, units and conventions are those of [`crate::geometry::fan`]: for source angle `a`
//! and detector bin `k`, the ray from the source through the bin centre is sampled every half
//! pixel and
//!
//! ```text
//! y[k, a] = Σ_j bilinear(x, sample j) · 0.5 · pixel_spacing_mm
//! ```
//!
//! (image values per mm ⇒ dimensionless line integrals). The adjoint scatters with the same
//! weights, so `⟨A x, y⟩ = ⟨x, Aᵀ y⟩` holds to rounding. `pseudo_inverse` is the weighted
//! fan-beam FBP of [`crate::fan_fbp`] (cosine pre-weight, ramp-family filter, distance
//! weight, Parker weights for short scans).
//!
//! Sparse-view fan-beam CT is [`Decomposed`] exactly as the parallel-beam operator is, for the
//! projection sampler of Song et al. 2022 ("Solving inverse problems in medical imaging with
//! score-based generative models", ICLR): `T` is the transform on the full angle grid, `T⁻¹`
//! its FBP, and `Λ` keeps the measured angle columns.
//!
//! [`FanBeam`] is a façade over two backends that compute the same discretisation from the
//! shared geometry: [`FanBackend::Reference`] (`reference.rs`: the rayon kernels of
//! [`crate::reference::fan`], CPU tensors, no autograd) and [`FanBackend::Sparse`]
//! (`sparse.rs`: CSR matrices assembled by the same builder as the parallel-beam sparse
//! backend, any device, records autograd).
mod reference;
mod sparse;

use tch::{Device, Kind, Tensor};

use crate::fan_fbp::{covers_full_circle, FanFbp, ScanWeighting};
use crate::fbp::FbpFilter;
use crate::geometry::{sparse_view_indices, FanGeometry, FanGeometryConfig};
use crate::radon::{
    available_host_memory, sparse_cpu_limit_bytes, AngleSet, Shared, SPARSE_AUTO_LIMIT_BYTES,
};
use crate::{check_batch_shape, Decomposed, LinearOperator, OperatorError, Result};

/// Which implementation computes fan-beam projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FanBackend {
    /// On the CPU `Sparse` while building its matrices ([`FanSparseMemory::peak`]) takes at
    /// most a quarter of the host's available memory, clamped to 1–4 GiB
    /// ([`fan_auto_backend_cpu`], [`sparse_cpu_limit_bytes`]), `Reference` beyond; on a GPU
    /// `Sparse` (the only GPU backend), and an error when its matrices
    /// ([`FanSparseMemory::resident`]) pass [`SPARSE_AUTO_LIMIT_BYTES`].
    #[default]
    Auto,
    /// The ndarray/rayon kernels (CPU tensors only, no autograd).
    Reference,
    /// Sparse CSR matrices + sparse × dense products (any device, autograd).
    Sparse,
}

/// Stored entries of `R` per ray sample ([`FanGeometry::ray_samples`], step ½ pixel): the
/// 4 bilinear corners of consecutive samples overlap, and merged they leave about 1.15 pixels
/// per sample (1.149–1.152 counted on curved and flat detectors, fans 1.1–2.1 × as wide as
/// the image).
pub const FAN_ENTRIES_PER_SAMPLE: f64 = 1.15;

/// Host memory of the sparse backend ([`FanBackend::Sparse`]) for a geometry, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanSparseMemory {
    /// `R` and `Rᵀ` of the full and (when different) measured angle sets.
    pub projection: f64,
    /// The FBP back-projection matrices of both sets (built on the first FBP of each).
    pub fbp: f64,
    /// The largest `R` of one set (the transient copy while it becomes a tensor).
    pub largest_projection: f64,
}

impl FanSparseMemory {
    /// Held once every matrix is built: `projection + fbp`.
    pub fn resident(&self) -> f64 {
        self.projection + self.fbp
    }

    /// The most held at once while building: the matrices of the earlier sets, plus either
    /// `R`, `Rᵀ` and one tensor copy of the set being built, or one back-projection matrix and
    /// its copy: `projection + max(largest_projection, 2·fbp)` (bounded above by summing every
    /// back-projection matrix). Under the CLI's allocator, which keeps freed memory for reuse,
    /// this is also what stays resident.
    pub fn peak(&self) -> f64 {
        self.projection + self.largest_projection.max(2.0 * self.fbp)
    }
}

/// The memory of the sparse backend for the `full` and `measured` angle sets of elements of
/// `kind`, at `4 + s` bytes per stored entry (int32 column, element size `s`): `R` holds
/// [`FAN_ENTRIES_PER_SAMPLE`] entries per ray sample (the samples are counted over every ray,
/// which costs no more than listing the rays), and `B` 2 per view and pixel of the inscribed
/// circle (`2·A·π/4·N²`, two detector interpolation weights).
pub fn fan_sparse_memory(
    full: &FanGeometry,
    measured: &FanGeometry,
    kind: Kind,
) -> FanSparseMemory {
    let e = if kind == Kind::Double { 12.0 } else { 8.0 };
    let r_entries = |g: &FanGeometry| -> f64 {
        let mut samples = 0usize;
        for a in 0..g.n_angles() {
            for k in 0..g.n_detectors() {
                let s = g.ray_samples(a, k);
                samples += (s.j_hi - s.j_lo).max(0) as usize;
            }
        }
        FAN_ENTRIES_PER_SAMPLE * samples as f64
    };
    let b_entries =
        |g: &FanGeometry| 2.0 * std::f64::consts::FRAC_PI_4 * (g.n() * g.n() * g.n_angles()) as f64;
    let r_full = r_entries(full);
    let (r, b, largest) = if measured.n_angles() == full.n_angles() {
        (r_full, b_entries(full), r_full)
    } else {
        let r_meas = r_entries(measured);
        (
            r_full + r_meas,
            b_entries(full) + b_entries(measured),
            r_full.max(r_meas),
        )
    };
    FanSparseMemory {
        projection: 2.0 * r * e,
        fbp: b * e,
        largest_projection: largest * e,
    }
}

/// The backend [`FanBackend::Auto`] resolves to on the CPU, given the sparse backend's build
/// peak ([`FanSparseMemory::peak`]) and the host's available memory in bytes (`None`:
/// unknown): `Sparse` while `peak ≤ sparse_cpu_limit_bytes(available)` (a quarter of the
/// available memory, between 1 and 4 GiB), else `Reference`.
pub fn fan_auto_backend_cpu(peak_bytes: f64, available: Option<u64>) -> FanBackend {
    if peak_bytes <= sparse_cpu_limit_bytes(available) {
        FanBackend::Sparse
    } else {
        FanBackend::Reference
    }
}

/// Per-angle-set FBP: the plan and its weights and filter as tensors on the device.
struct FbpPlan {
    plan: FanFbp,
    /// `[n_det, A]` view weights.
    view_weights: Shared,
    /// `[P/2 + 1]` filter half spectrum.
    spectrum: Shared,
}

impl FbpPlan {
    fn new(
        geom: &FanGeometry,
        filter: FbpFilter,
        weighting: ScanWeighting,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let plan = FanFbp::new(geom, filter, weighting)?;
        let to = |v: &[f64]| -> Result<Shared> {
            Ok(Shared(
                Tensor::f_from_slice(v)?
                    .f_to_kind(kind)?
                    .f_to_device(device)?,
            ))
        };
        let view_weights = Shared(
            to(plan.view_weights())?
                .f_reshape([geom.n_detectors() as i64, geom.n_angles() as i64])?,
        );
        let spectrum = to(plan.half_spectrum())?;
        Ok(FbpPlan {
            plan,
            view_weights,
            spectrum,
        })
    }
}

/// What a backend computes, on flattened batches of the operator's kind and device: images
/// `[m, N, N]` (m ≥ 1) and sinograms `[m, n_det, A]` of the angle set's `A` angles.
trait Kernels: Send + Sync {
    /// Projection `[m, N, N]` → `[m, n_det, A]`.
    fn project(&self, set: AngleSet, x: &Tensor) -> Result<Tensor>;
    /// Exact adjoint of [`Kernels::project`].
    fn backproject(&self, set: AngleSet, y: &Tensor) -> Result<Tensor>;
    /// FBP `[m, n_det, A]` → `[m, N, N]` with `plan`.
    fn fbp(&self, set: AngleSet, y: &Tensor, plan: &FbpPlan) -> Result<Tensor>;
    /// Whether the kernels are libtorch ops that autograd records.
    fn records_autograd(&self) -> bool;
}

/// Fan-beam CT operator (see the module documentation).
pub struct FanBeam {
    channels: i64,
    full: FanGeometry,
    meas: FanGeometry,
    kept: Vec<usize>,
    kept_index: Shared,
    kind: Kind,
    device: Device,
    filter: FbpFilter,
    weighting: ScanWeighting,
    full_fbp: FbpPlan,
    meas_fbp: FbpPlan,
    backend: FanBackend,
    kernels: Box<dyn Kernels>,
}

impl std::fmt::Debug for FanBeam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanBeam")
            .field("geometry", self.full.config())
            .field("channels", &self.channels)
            .field("n_angles_measured", &self.meas.n_angles())
            .field("kind", &self.kind)
            .field("device", &self.device)
            .field("filter", &self.filter)
            .field("weighting", &self.weighting)
            .field("backend", &self.backend)
            .finish()
    }
}

impl FanBeam {
    /// Fan-beam transform measuring every angle of `geometry`, one channel, FBP with the ramp
    /// filter and [`ScanWeighting::Auto`]. `kind` is `Float` or `Double`.
    pub fn new(geometry: FanGeometryConfig, kind: Kind, device: Device) -> Result<Self> {
        Self::new_with_backend(geometry, kind, device, FanBackend::Auto)
    }

    /// As [`FanBeam::new`], computed by `backend` (unlike `new(..).with_backend(..)`, nothing
    /// is built for [`FanBackend::Auto`] first).
    pub fn new_with_backend(
        geometry: FanGeometryConfig,
        kind: Kind,
        device: Device,
        backend: FanBackend,
    ) -> Result<Self> {
        let kept = (0..geometry.angles_deg.len()).collect();
        Self::subset_with_backend(geometry, kept, kind, device, backend)
    }

    /// Measures only the angles `kept` (indices into `geometry.angles_deg`, the full grid of
    /// the [`Decomposed`] transform, strictly increasing).
    pub fn subset(
        geometry: FanGeometryConfig,
        kept: Vec<usize>,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        Self::subset_with_backend(geometry, kept, kind, device, FanBackend::Auto)
    }

    /// Sparse view: `n_views` of the `A` angles of `geometry` (the full grid), spread evenly:
    /// `round(i · A / n_views)` when the grid goes round the whole circle
    /// ([`covers_full_circle`]: the first and last angles are neighbours, so
    /// `linspace(0, A − 1)` would put two views next to each other), otherwise
    /// [`sparse_view_indices`] (`round(linspace(0, A − 1, n_views))`, both ends of an arc, as
    /// the parallel-beam operator on its 180°).
    pub fn sparse_view(
        geometry: FanGeometryConfig,
        n_views: usize,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let kept = Self::sparse_view_kept(&geometry.angles_deg, n_views)?;
        Self::subset(geometry, kept, kind, device)
    }

    /// The indices into `angles_deg` that [`FanBeam::sparse_view`] keeps for `n_views`.
    pub fn sparse_view_kept(angles_deg: &[f64], n_views: usize) -> Result<Vec<usize>> {
        let n_full = angles_deg.len();
        if n_views == 0 || n_views > n_full {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: n_views must be in 1..={n_full} (the number of angles_deg), got \
                 {n_views}"
            )));
        }
        if covers_full_circle(angles_deg) {
            Ok((0..n_views)
                .map(|i| ((i * n_full) as f64 / n_views as f64).round_ties_even() as usize)
                .collect())
        } else {
            sparse_view_indices(n_views, n_full)
        }
    }

    /// As [`FanBeam::subset`], computed by `backend` (nothing is built for
    /// [`FanBackend::Auto`] first).
    pub fn subset_with_backend(
        geometry: FanGeometryConfig,
        kept: Vec<usize>,
        kind: Kind,
        device: Device,
        backend: FanBackend,
    ) -> Result<Self> {
        Self::build(
            geometry,
            kept,
            kind,
            device,
            backend,
            FbpFilter::Ramp,
            ScanWeighting::Auto,
        )
    }

    /// The same operator computed by `backend` (rebuilds its tables).
    pub fn with_backend(self, backend: FanBackend) -> Result<Self> {
        let mut op = Self::build(
            self.full.config().clone(),
            self.kept.clone(),
            self.kind,
            self.device,
            backend,
            self.filter,
            self.weighting,
        )?;
        op.channels = self.channels;
        Ok(op)
    }

    /// The FBP filter of `pseudo_inverse` and `inverse_transform` (default ramp).
    pub fn with_filter(self, filter: FbpFilter) -> Result<Self> {
        let weighting = self.weighting;
        self.with_fbp(filter, weighting)
    }

    /// The view weighting of FBP (default [`ScanWeighting::Auto`]); [`ScanWeighting::Parker`]
    /// fails when the full or the measured angles do not span one arc of at least 180°.
    pub fn with_scan_weighting(self, weighting: ScanWeighting) -> Result<Self> {
        let filter = self.filter;
        self.with_fbp(filter, weighting)
    }

    fn with_fbp(mut self, filter: FbpFilter, weighting: ScanWeighting) -> Result<Self> {
        self.full_fbp = FbpPlan::new(&self.full, filter, weighting, self.kind, self.device)?;
        self.meas_fbp = FbpPlan::new(&self.meas, filter, weighting, self.kind, self.device)?;
        self.filter = filter;
        self.weighting = weighting;
        Ok(self)
    }

    /// Number of channels `C` of inputs `[B, C, N, N]` (default 1; each projected alone).
    pub fn with_channels(mut self, channels: i64) -> Result<Self> {
        if channels < 1 {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: channels must be at least 1, got {channels}"
            )));
        }
        self.channels = channels;
        Ok(self)
    }

    fn build(
        geometry: FanGeometryConfig,
        kept: Vec<usize>,
        kind: Kind,
        device: Device,
        backend: FanBackend,
        filter: FbpFilter,
        weighting: ScanWeighting,
    ) -> Result<Self> {
        if !matches!(kind, Kind::Float | Kind::Double) {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: kind must be Float (f32) or Double (f64), got {kind:?}"
            )));
        }
        let full = FanGeometry::new(geometry)?;
        if kept.is_empty() {
            return Err(OperatorError::Invalid(
                "fanbeam: at least one measured angle is required".into(),
            ));
        }
        if let Some(w) = kept.windows(2).find(|w| w[0] >= w[1]) {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: measured angle indices must be strictly increasing, got {} then {}",
                w[0], w[1]
            )));
        }
        if let Some(&bad) = kept.iter().find(|&&i| i >= full.n_angles()) {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: measured angle index {bad} is out of range for {} angles_deg",
                full.n_angles()
            )));
        }
        let meas = full.with_angles(kept.iter().map(|&i| full.angles_deg()[i]).collect())?;
        let backend = match (backend, device) {
            (FanBackend::Auto, Device::Cpu) => fan_auto_backend_cpu(
                fan_sparse_memory(&full, &meas, kind).peak(),
                available_host_memory(),
            ),
            (FanBackend::Auto, _) => {
                let bytes = fan_sparse_memory(&full, &meas, kind).resident();
                if bytes > SPARSE_AUTO_LIMIT_BYTES {
                    return Err(OperatorError::Invalid(format!(
                        "fanbeam: the sparse backend (the only one off the CPU) would take about \
                         {:.1} GB for this geometry, over the {:.1} GB limit",
                        bytes / 1e9,
                        SPARSE_AUTO_LIMIT_BYTES / 1e9
                    )));
                }
                FanBackend::Sparse
            }
            (FanBackend::Reference, Device::Cpu) => FanBackend::Reference,
            (FanBackend::Reference, d) => {
                return Err(OperatorError::Invalid(format!(
                    "fanbeam: the reference backend runs on CPU tensors only, device is {d:?}"
                )))
            }
            (FanBackend::Sparse, _) => FanBackend::Sparse,
        };
        let kept_i64: Vec<i64> = kept.iter().map(|&i| i as i64).collect();
        let kept_index = Shared(Tensor::f_from_slice(&kept_i64)?.f_to_device(device)?);
        let full_fbp = FbpPlan::new(&full, filter, weighting, kind, device)?;
        let meas_fbp = FbpPlan::new(&meas, filter, weighting, kind, device)?;
        let kernels: Box<dyn Kernels> = match backend {
            FanBackend::Sparse => {
                Box::new(sparse::SparseMatrices::new(&full, &meas, kind, device)?)
            }
            _ => Box::new(reference::Reference::new(&full, &meas, kind)),
        };
        Ok(FanBeam {
            channels: 1,
            full,
            meas,
            kept,
            kept_index,
            kind,
            device,
            filter,
            weighting,
            full_fbp,
            meas_fbp,
            backend,
            kernels,
        })
    }

    /// The full-grid geometry (all of `angles_deg`; the `T` of [`Decomposed`]).
    pub fn geometry(&self) -> &FanGeometry {
        &self.full
    }

    /// The geometry of the measured angles.
    pub fn measured_geometry(&self) -> &FanGeometry {
        &self.meas
    }

    /// Indices of the measured angles in the full grid.
    pub fn kept_indices(&self) -> &[usize] {
        &self.kept
    }

    /// The FBP filter.
    pub fn filter(&self) -> FbpFilter {
        self.filter
    }

    /// The FBP view weighting as requested.
    pub fn scan_weighting(&self) -> ScanWeighting {
        self.weighting
    }

    /// Whether the FBP of the measured angles uses Parker weights.
    pub fn uses_parker(&self) -> bool {
        self.meas_fbp.plan.uses_parker()
    }

    /// The resolved backend (`Sparse` or `Reference`).
    pub fn backend(&self) -> FanBackend {
        self.backend
    }

    /// Element kind (`Float` or `Double`).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Device of the operator's tables; inputs must live there.
    pub fn device(&self) -> Device {
        self.device
    }

    fn check_tensor(&self, t: &Tensor, what: &str) -> Result<()> {
        if !self.kernels.records_autograd() && t.requires_grad() {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: {what} requires grad, but the reference (CPU) backend does not record \
                 autograd; build the operator with .with_backend(FanBackend::Sparse) to \
                 differentiate through it"
            )));
        }
        if t.device() != self.device {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: {what} is on {:?} but the operator was built for {:?}; move it with \
                 to_device",
                t.device(),
                self.device
            )));
        }
        if t.kind() != self.kind {
            return Err(OperatorError::Invalid(format!(
                "fanbeam: {what} has kind {:?} but the operator was built for {:?}",
                t.kind(),
                self.kind
            )));
        }
        Ok(())
    }

    fn image_shape(&self) -> Vec<i64> {
        let n = self.full.n() as i64;
        vec![self.channels, n, n]
    }

    fn sino_shape(&self, set: AngleSet) -> Vec<i64> {
        let g = set.pick(&self.full, &self.meas);
        vec![self.channels, g.n_detectors() as i64, g.n_angles() as i64]
    }

    /// Checks a batch `t` of shape `[B] ++ per_sample` and runs `kernel` on it flattened to
    /// `[B·C, d1, d2]`; the result is returned as `[B, C] ++ out`. An empty batch gives zeros.
    fn run(
        &self,
        t: &Tensor,
        what: &str,
        per_sample: &[i64],
        out: [i64; 2],
        kernel: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        check_batch_shape("fanbeam", what, per_sample, t)?;
        self.check_tensor(t, what)?;
        let b = t.size()[0];
        let m = b * self.channels;
        let shape = [b, self.channels, out[0], out[1]];
        if m == 0 {
            return Ok(Tensor::f_zeros(shape, (self.kind, self.device))?);
        }
        let flat = t.f_reshape([m, per_sample[1], per_sample[2]])?;
        Ok(kernel(&flat)?.f_reshape(shape)?)
    }

    fn project(&self, x: &Tensor, set: AngleSet) -> Result<Tensor> {
        let s = self.sino_shape(set);
        self.run(x, "image", &self.image_shape(), [s[1], s[2]], |xm| {
            self.kernels.project(set, xm)
        })
    }

    fn backproject(&self, y: &Tensor, set: AngleSet) -> Result<Tensor> {
        let n = self.full.n() as i64;
        self.run(y, "sinogram", &self.sino_shape(set), [n, n], |ym| {
            self.kernels.backproject(set, ym)
        })
    }

    fn fbp(&self, y: &Tensor, set: AngleSet) -> Result<Tensor> {
        let n = self.full.n() as i64;
        let plan = set.pick(&self.full_fbp, &self.meas_fbp);
        self.run(y, "sinogram", &self.sino_shape(set), [n, n], |ym| {
            self.kernels.fbp(set, ym, plan)
        })
    }

    /// Exact adjoint of the full-view transform `T` (not part of the [`Decomposed`] trait).
    pub fn transform_adjoint(&self, z: &Tensor) -> Result<Tensor> {
        self.backproject(z, AngleSet::Full)
    }
}

impl LinearOperator for FanBeam {
    fn name(&self) -> &str {
        "fanbeam"
    }

    fn input_shape(&self) -> Vec<i64> {
        self.image_shape()
    }

    fn output_shape(&self) -> Vec<i64> {
        self.sino_shape(AngleSet::Measured)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.project(x, AngleSet::Measured)
    }

    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.backproject(y, AngleSet::Measured)
    }

    /// Fan-beam FBP over the measured angles (an approximate inverse, see
    /// [`crate::fan_fbp`]).
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.fbp(y, AngleSet::Measured)
    }

    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        Some(self)
    }
}

impl Decomposed for FanBeam {
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        self.project(x, AngleSet::Full)
    }

    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        self.fbp(z, AngleSet::Full)
    }

    fn transformed_shape(&self) -> Vec<i64> {
        self.sino_shape(AngleSet::Full)
    }

    /// `[1, 1, 1, n_angles_full]`: 1 at the measured angle columns.
    fn mask(&self, device: Device) -> Tensor {
        let mut mask = Tensor::zeros([1, 1, 1, self.full.n_angles() as i64], (self.kind, device));
        let idx = self.kept_index.to_device(device);
        let _ = mask.index_fill_(3, &idx, 1.0);
        mask
    }

    fn subsample(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(
            "fanbeam",
            "full-view sinogram",
            &self.sino_shape(AngleSet::Full),
            z,
        )?;
        self.check_tensor(z, "full-view sinogram")?;
        Ok(z.f_index_select(3, &self.kept_index)?)
    }

    fn embed(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.check_tensor(y, "sinogram")?;
        let mut shape = y.size();
        shape[3] = self.full.n_angles() as i64;
        Ok(
            Tensor::f_zeros(shape.as_slice(), (self.kind, self.device))?.f_index_copy(
                3,
                &self.kept_index,
                y,
            )?,
        )
    }
}

//! Parallel-beam Radon transform `A x` (sinogram), its exact adjoint `Aᵀ y`, and filtered
//! back-projection as `A⁺`, on `tch` tensors `[B, C, N, N]` → `[B, C, N, n_angles]`.
//!
//! Geometry and discretisation are those of scikit-image `radon(image, theta, circle=True)`
//! ([`crate::geometry::parallel`]): the image is rotated about pixel `(N/2, N/2)` with bilinear
//! interpolation (zero outside the grid) and summed along columns, i.e. for detector bin `k`
//! (`s = k - N/2`), ray sample `j` (`t = j - N/2`) and angle `θ` (degrees in `[0, 180)`),
//!
//! ```text
//! R[k, θ] = Σ_j bilinear(x, row = N/2 - s sin θ + t cos θ, col = N/2 + s cos θ + t sin θ)
//! ```
//!
//! (line integrals in units of pixel lengths). The adjoint scatters with the same bilinear
//! weights, so `⟨A x, y⟩ = ⟨x, Aᵀ y⟩` holds to rounding. FBP follows [`crate::fbp`].
//!
//! For the projection sampler of Song et al. 2022 ("Solving inverse problems in medical imaging
//! with score-based generative models", ICLR), sparse-view CT is [`Decomposed`]: `T` is the
//! full-view Radon transform on the full angle grid, `T⁻¹` the full-view FBP, and `Λ` keeps the
//! measured angle columns (`round(linspace(0, n_full - 1, n_views))`, as in that paper's code).
//!
//! [`ParallelBeamRadon`] is a façade: it checks shapes, kinds and devices, flattens `[B, C]`
//! and hands `[m, N, N]` images / `[m, N, A]` sinograms to one of three backends, one file
//! each, that compute the same discretisation from the shared ray geometry
//! ([`crate::geometry`]):
//! * [`RadonBackend::Sparse`] (`sparse.rs`, any device): the transform, its transpose and the
//!   FBP back-projection as sparse CSR matrices built once, applied with one sparse × dense
//!   product per call (cuSPARSE SpMM on CUDA).
//! * [`RadonBackend::Reference`] (`reference.rs`, CPU tensors): the rayon kernels of
//!   [`crate::reference::radon`], which compute interpolation weights on the fly.
//! * [`RadonBackend::TensorOps`] (`tensor_ops.rs`, any device): interpolation tables built once
//!   at construction (`[n_angles, N·N]` corner indices and 4 bilinear weights per sample)
//!   applied with batched `index_select` (forward) and `index_add_` (adjoint), processed in
//!   angle chunks to bound temporaries.
//!
//! The two tensor backends share the FBP filtering step (`filtering.rs`: `fft_rfft`/`fft_irfft`
//! with the half-spectrum filters of [`crate::fbp`]).
//!
//! [`RadonBackend::Auto`] plans: `Sparse` while its matrices stay under a quarter of the
//! host's available memory (clamped to 1–4 GiB, [`sparse_cpu_limit_bytes`]) on the CPU and
//! [`SPARSE_AUTO_LIMIT_BYTES`] on a GPU ([`auto_backend`]). `Sparse` and `TensorOps` record autograd (the
//! reference backend refuses inputs that require grad). Inputs must be on the operator's
//! device and of its kind; NaN values are not checked (they propagate). Sparse matrices take
//! about `2 · 1.95·A·N²·(4 + s) + 2·A·π/4·N²·(4 + s)` bytes for `A` angles and element size
//! `s` (≈ 0.5 GB for N = 256, A = 180, f32, plus up to as much again for a measured subset);
//! tensor-ops tables about `A·N²·(8 + 4·s) + A·π/4·N²·(8 + 2·s)` (≈ 0.45 GB), built once.
mod filtering;
mod reference;
mod sparse;
mod tensor_ops;

use tch::{Device, Kind, Tensor};

pub use crate::geometry::{full_view_angles, sparse_view_indices};

use crate::fbp::FbpFilter;
use crate::geometry::ParallelGeometry;
use crate::{check_batch_shape, Decomposed, LinearOperator, OperatorError, Result};

/// Largest estimated size of the sparse backend's matrices that [`RadonBackend::Auto`] builds
/// on a GPU (4 GiB: e.g. N = 512 with 360 full-view angles, about 4.1 GB in f32, fits; 720 does
/// not).
pub const SPARSE_AUTO_LIMIT_BYTES: f64 = 4.0 * (1u64 << 30) as f64;

/// The least the CPU plans for (1 GiB: N = 256 with 180 angles, about 0.6 GB, is built; N =
/// 512, about 2.3 GB, is not): the limit on a machine with at most 4 GiB available, or where
/// the available memory is unknown ([`sparse_cpu_limit_bytes`]), so that a 512² slice
/// reconstructs in 2 GB of host memory on a small machine.
pub const SPARSE_AUTO_LIMIT_BYTES_CPU: f64 = (1u64 << 30) as f64;

/// The most [`sparse_cpu_limit_bytes`] plans for on any host (the GPU limit, 4 GiB).
pub const SPARSE_AUTO_LIMIT_BYTES_CPU_MAX: f64 = SPARSE_AUTO_LIMIT_BYTES;

/// Host memory the `Auto` backends of [`crate::radon`] and [`crate::fanbeam`] let the sparse
/// matrices take on the CPU, given the host's available memory in bytes:
/// `clamp(available / 4, 1 GiB, 4 GiB)`, and 1 GiB when `available` is unknown. A quarter
/// leaves room for the rest of a reconstruction (network, batches, the allocator's cache) and
/// for other processes.
pub fn sparse_cpu_limit_bytes(available: Option<u64>) -> f64 {
    match available {
        Some(b) => {
            (b as f64 / 4.0).clamp(SPARSE_AUTO_LIMIT_BYTES_CPU, SPARSE_AUTO_LIMIT_BYTES_CPU_MAX)
        }
        None => SPARSE_AUTO_LIMIT_BYTES_CPU,
    }
}

/// The host's available memory in bytes: `MemAvailable` of `/proc/meminfo` (Linux ≥ 3.14, the
/// kernel's estimate of what can be allocated without swapping); `None` elsewhere.
pub fn available_host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&info)
}

/// `MemAvailable:  123456 kB` → bytes.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

/// Estimated bytes of the sparse backend for `N = n`, `a_full` full-grid and `a_meas` measured
/// angles: `R` and `Rᵀ` with ≈ 1.95·A·N² stored entries each (bilinear corners of N samples per
/// ray, shared corners merged, rays outside the circle partly empty; measured 1.95 at N = 64 and
/// 256) and `B` with ≈ 2·A·π/4·N², for both angle sets, at `4 + s` bytes per entry (int32
/// column index, element size `s`).
pub fn sparse_bytes_estimate(n: usize, a_full: usize, a_meas: usize, kind: Kind) -> f64 {
    let s = if kind == Kind::Double { 8.0 } else { 4.0 };
    let n2 = (n * n) as f64;
    let per_angle = 2.0 * 1.95 * n2 + 2.0 * std::f64::consts::FRAC_PI_4 * n2;
    let angles = if a_meas == a_full {
        a_full
    } else {
        a_full + a_meas
    } as f64;
    angles * per_angle * (4.0 + s)
}

/// The backend [`RadonBackend::Auto`] resolves to on this host (see there).
pub fn auto_backend(
    n: usize,
    a_full: usize,
    a_meas: usize,
    kind: Kind,
    device: Device,
) -> RadonBackend {
    let available = if device == Device::Cpu {
        available_host_memory()
    } else {
        None
    };
    auto_backend_with_memory(n, a_full, a_meas, kind, device, available)
}

/// The backend [`RadonBackend::Auto`] resolves to on a host with `available` bytes of memory
/// (`None`: unknown; ignored off the CPU).
pub fn auto_backend_with_memory(
    n: usize,
    a_full: usize,
    a_meas: usize,
    kind: Kind,
    device: Device,
    available: Option<u64>,
) -> RadonBackend {
    let limit = if device == Device::Cpu {
        sparse_cpu_limit_bytes(available)
    } else {
        SPARSE_AUTO_LIMIT_BYTES
    };
    if sparse_bytes_estimate(n, a_full, a_meas, kind) <= limit {
        RadonBackend::Sparse
    } else if device == Device::Cpu {
        RadonBackend::Reference
    } else {
        RadonBackend::TensorOps
    }
}

/// Which implementation computes projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RadonBackend {
    /// `Sparse` while its matrices stay under a quarter of the host's available memory,
    /// clamped to 1–4 GiB, on the CPU ([`sparse_cpu_limit_bytes`]) and under
    /// [`SPARSE_AUTO_LIMIT_BYTES`] elsewhere; beyond that `Reference` on the CPU (no tables at
    /// all) and `TensorOps` elsewhere.
    #[default]
    Auto,
    /// The ndarray/rayon kernels (CPU tensors only).
    Reference,
    /// Precomputed tables + `index_select` / `index_add_` (any device).
    TensorOps,
    /// Sparse CSR matrices + sparse × dense products (any device).
    Sparse,
}

/// A tensor read concurrently but never mutated after construction.
pub(crate) struct Shared(pub(crate) Tensor);

// SAFETY: the wrapped tensors are created in the constructor and afterwards only passed by
// shared reference to libtorch ops that read them (index_select, mul, mm, narrow views), which
// libtorch supports from several threads at once.
unsafe impl Sync for Shared {}

impl std::ops::Deref for Shared {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// Which angle set a kernel works on: the full grid (`T`) or the measured angles (`A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AngleSet {
    Full,
    Measured,
}

impl AngleSet {
    /// `full` or `measured`, whichever this set is.
    pub(crate) fn pick<'a, T>(self, full: &'a T, measured: &'a T) -> &'a T {
        match self {
            AngleSet::Full => full,
            AngleSet::Measured => measured,
        }
    }
}

/// What a backend computes, on flattened batches of the operator's kind and device: images
/// `[m, N, N]` (m ≥ 1) and sinograms `[m, N, A]` of the angle set's `A` angles.
trait Kernels: Send + Sync {
    /// Projection `[m, N, N]` → `[m, N, A]`.
    fn project(&self, set: AngleSet, x: &Tensor) -> Result<Tensor>;
    /// Exact adjoint of [`Kernels::project`]: `[m, N, A]` → `[m, N, N]`.
    fn backproject(&self, set: AngleSet, y: &Tensor) -> Result<Tensor>;
    /// FBP with `filter`: `[m, N, A]` → `[m, N, N]`.
    fn fbp(&self, set: AngleSet, y: &Tensor, filter: FbpFilter) -> Result<Tensor>;
    /// Whether the kernels are libtorch ops that autograd records.
    fn records_autograd(&self) -> bool;
}

/// Parallel-beam Radon transform with scikit-image's `circle=True` geometry.
pub struct ParallelBeamRadon {
    n: usize,
    channels: i64,
    full: ParallelGeometry,
    meas: ParallelGeometry,
    kept: Vec<usize>,
    kept_index: Shared,
    kind: Kind,
    device: Device,
    filter: FbpFilter,
    backend: RadonBackend,
    kernels: Box<dyn Kernels>,
}

impl std::fmt::Debug for ParallelBeamRadon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelBeamRadon")
            .field("n", &self.n)
            .field("channels", &self.channels)
            .field("n_angles_full", &self.full.n_angles())
            .field("n_angles_measured", &self.meas.n_angles())
            .field("kind", &self.kind)
            .field("device", &self.device)
            .field("filter", &self.filter)
            .field("backend", &self.backend)
            .finish()
    }
}

impl ParallelBeamRadon {
    /// Radon transform of `n × n` images at `angles_deg` (degrees), one channel, FBP with the
    /// ramp filter. `kind` is `Float` or `Double`.
    pub fn new(n: usize, angles_deg: Vec<f64>, kind: Kind, device: Device) -> Result<Self> {
        let m = angles_deg.len();
        Self::build(
            n,
            angles_deg,
            (0..m).collect(),
            kind,
            device,
            RadonBackend::Auto,
        )
    }

    /// Full view: `n_angles` angles `linspace(0, 180, n_angles, endpoint=false)`.
    pub fn full_view(n: usize, n_angles: usize, kind: Kind, device: Device) -> Result<Self> {
        if n_angles == 0 {
            return Err(OperatorError::Invalid(
                "radon: n_angles must be at least 1, got 0".into(),
            ));
        }
        Self::new(n, full_view_angles(n_angles), kind, device)
    }

    /// Sparse view: `n_views` of the full grid of `n_angles_full` angles (see
    /// [`sparse_view_indices`]); e.g. 23 of 180.
    pub fn sparse_view(
        n: usize,
        n_views: usize,
        n_angles_full: usize,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        if n_angles_full == 0 {
            return Err(OperatorError::Invalid(
                "radon: n_angles_full must be at least 1, got 0".into(),
            ));
        }
        let kept = sparse_view_indices(n_views, n_angles_full)?;
        Self::build(
            n,
            full_view_angles(n_angles_full),
            kept,
            kind,
            device,
            RadonBackend::Auto,
        )
    }

    /// Measures only the angles `kept` (indices into `full_angles_deg`, strictly increasing).
    pub fn subset(
        n: usize,
        full_angles_deg: Vec<f64>,
        kept: Vec<usize>,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        Self::build(n, full_angles_deg, kept, kind, device, RadonBackend::Auto)
    }

    /// The same operator computed by `backend` (rebuilds tables when needed).
    pub fn with_backend(self, backend: RadonBackend) -> Result<Self> {
        Self::build(
            self.n,
            self.full.angles_deg().to_vec(),
            self.kept.clone(),
            self.kind,
            self.device,
            backend,
        )
        .map(|op| {
            op.with_filter(self.filter)
                .with_channels_unchecked(self.channels)
        })
    }

    /// The FBP filter used by `pseudo_inverse` and `inverse_transform` (default ramp).
    pub fn with_filter(mut self, filter: FbpFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Number of channels `C` of inputs `[B, C, N, N]` (default 1; each channel is projected
    /// independently).
    pub fn with_channels(self, channels: i64) -> Result<Self> {
        if channels < 1 {
            return Err(OperatorError::Invalid(format!(
                "radon: channels must be at least 1, got {channels}"
            )));
        }
        Ok(self.with_channels_unchecked(channels))
    }

    fn with_channels_unchecked(mut self, channels: i64) -> Self {
        self.channels = channels;
        self
    }

    fn build(
        n: usize,
        full_angles_deg: Vec<f64>,
        kept: Vec<usize>,
        kind: Kind,
        device: Device,
        backend: RadonBackend,
    ) -> Result<Self> {
        if !matches!(kind, Kind::Float | Kind::Double) {
            return Err(OperatorError::Invalid(format!(
                "radon: kind must be Float (f32) or Double (f64), got {kind:?}"
            )));
        }
        let full = ParallelGeometry::new(n, full_angles_deg)?;
        if kept.is_empty() {
            return Err(OperatorError::Invalid(
                "radon: at least one measured angle is required".into(),
            ));
        }
        if let Some(w) = kept.windows(2).find(|w| w[0] >= w[1]) {
            return Err(OperatorError::Invalid(format!(
                "radon: measured angle indices must be strictly increasing, got {} then {}",
                w[0], w[1]
            )));
        }
        if let Some(&bad) = kept.iter().find(|&&i| i >= full.n_angles()) {
            return Err(OperatorError::Invalid(format!(
                "radon: measured angle index {bad} is out of range for {} full-grid angles",
                full.n_angles()
            )));
        }
        let meas = ParallelGeometry::new(n, kept.iter().map(|&i| full.angles_deg()[i]).collect())?;
        let backend = match (backend, device) {
            (RadonBackend::Auto, d) => auto_backend(n, full.n_angles(), meas.n_angles(), kind, d),
            (RadonBackend::Sparse, _) => RadonBackend::Sparse,
            (RadonBackend::Reference, Device::Cpu) => RadonBackend::Reference,
            (RadonBackend::Reference, d) => {
                return Err(OperatorError::Invalid(format!(
                    "radon: the reference backend runs on CPU tensors only, device is {d:?}"
                )))
            }
            (RadonBackend::TensorOps, _) => RadonBackend::TensorOps,
        };
        let kept_i64: Vec<i64> = kept.iter().map(|&i| i as i64).collect();
        let kept_index = Shared(Tensor::f_from_slice(&kept_i64)?.f_to_device(device)?);
        let kernels: Box<dyn Kernels> = match backend {
            RadonBackend::TensorOps => Box::new(tensor_ops::TensorOps::new(
                &full,
                &meas,
                &kept_index,
                kind,
                device,
            )?),
            RadonBackend::Sparse => {
                Box::new(sparse::SparseMatrices::new(&full, &meas, kind, device)?)
            }
            _ => Box::new(reference::Reference::new(&full, &meas, kind)),
        };
        Ok(ParallelBeamRadon {
            n,
            channels: 1,
            full,
            meas,
            kept,
            kept_index,
            kind,
            device,
            filter: FbpFilter::Ramp,
            backend,
            kernels,
        })
    }

    /// Image side `N` (also the detector count).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Measured angles (degrees).
    pub fn angles_deg(&self) -> &[f64] {
        self.meas.angles_deg()
    }

    /// Angles of the full grid (degrees) that `transform` projects onto.
    pub fn full_angles_deg(&self) -> &[f64] {
        self.full.angles_deg()
    }

    /// Indices of the measured angles in the full grid.
    pub fn kept_indices(&self) -> &[usize] {
        &self.kept
    }

    /// The FBP filter.
    pub fn filter(&self) -> FbpFilter {
        self.filter
    }

    /// The resolved backend (`Sparse`, `Reference` or `TensorOps`).
    pub fn backend(&self) -> RadonBackend {
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
                "radon: {what} requires grad, but the reference (CPU) backend does not record \
                 autograd; build the operator with .with_backend(RadonBackend::Sparse) to \
                 differentiate through it"
            )));
        }
        if t.device() != self.device {
            return Err(OperatorError::Invalid(format!(
                "radon: {what} is on {:?} but the operator was built for {:?}; move it with to_device",
                t.device(),
                self.device
            )));
        }
        if t.kind() != self.kind {
            return Err(OperatorError::Invalid(format!(
                "radon: {what} has kind {:?} but the operator was built for {:?}",
                t.kind(),
                self.kind
            )));
        }
        Ok(())
    }

    fn image_shape(&self) -> Vec<i64> {
        vec![self.channels, self.n as i64, self.n as i64]
    }

    fn sino_shape(&self, geom: &ParallelGeometry) -> Vec<i64> {
        vec![self.channels, self.n as i64, geom.n_angles() as i64]
    }

    /// The geometry of an angle set.
    fn geometry(&self, set: AngleSet) -> &ParallelGeometry {
        set.pick(&self.full, &self.meas)
    }

    /// Checks a batch `t` of shape `[B] ++ per_sample` (`per_sample = [C, N, d]`) and runs
    /// `kernel` on it flattened to `[B·C, N, d]`; the result (`B·C·N·out_last` elements) is
    /// returned as `[B, C, N, out_last]`. An empty batch gives zeros without calling `kernel`.
    fn run(
        &self,
        t: &Tensor,
        what: &str,
        per_sample: &[i64],
        out_last: i64,
        kernel: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        check_batch_shape("radon", what, per_sample, t)?;
        self.check_tensor(t, what)?;
        let b = t.size()[0];
        let n = self.n as i64;
        let m = b * self.channels;
        if m == 0 {
            return Ok(Tensor::f_zeros(
                [b, self.channels, n, out_last],
                (self.kind, self.device),
            )?);
        }
        let flat = t.f_reshape([m, n, per_sample[2]])?;
        Ok(kernel(&flat)?.f_reshape([b, self.channels, n, out_last])?)
    }

    /// Projects `x` `[B, C, N, N]` onto the angles of `set`.
    fn project(&self, x: &Tensor, set: AngleSet) -> Result<Tensor> {
        let na = self.geometry(set).n_angles() as i64;
        self.run(x, "image", &self.image_shape(), na, |xm| {
            self.kernels.project(set, xm)
        })
    }

    /// Exact adjoint of [`Self::project`].
    fn backproject(&self, y: &Tensor, set: AngleSet) -> Result<Tensor> {
        let shape = self.sino_shape(self.geometry(set));
        self.run(y, "sinogram", &shape, self.n as i64, |ym| {
            self.kernels.backproject(set, ym)
        })
    }

    /// FBP of `y` `[B, C, N, A]` with the angles of `set` and the operator's filter.
    fn fbp(&self, y: &Tensor, set: AngleSet) -> Result<Tensor> {
        let shape = self.sino_shape(self.geometry(set));
        self.run(y, "sinogram", &shape, self.n as i64, |ym| {
            self.kernels.fbp(set, ym, self.filter)
        })
    }
}

impl LinearOperator for ParallelBeamRadon {
    fn name(&self) -> &str {
        "radon"
    }

    fn input_shape(&self) -> Vec<i64> {
        self.image_shape()
    }

    fn output_shape(&self) -> Vec<i64> {
        self.sino_shape(&self.meas)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.project(x, AngleSet::Measured)
    }

    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.backproject(y, AngleSet::Measured)
    }

    /// FBP over the measured angles (an approximate inverse; exact only in the continuum
    /// limit of full angular sampling).
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.fbp(y, AngleSet::Measured)
    }

    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        Some(self)
    }
}

impl ParallelBeamRadon {
    /// Exact adjoint of the full-view transform `T` (not part of the [`Decomposed`] trait).
    pub fn transform_adjoint(&self, z: &Tensor) -> Result<Tensor> {
        self.backproject(z, AngleSet::Full)
    }
}

impl Decomposed for ParallelBeamRadon {
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        self.project(x, AngleSet::Full)
    }

    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        self.fbp(z, AngleSet::Full)
    }

    fn transformed_shape(&self) -> Vec<i64> {
        self.sino_shape(&self.full)
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
            "radon",
            "full-view sinogram",
            &self.sino_shape(&self.full),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let info = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(parse_mem_available(info), Some(22_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: 12 MB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: x kB\n"), None);
    }
}

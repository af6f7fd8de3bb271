//! Parallel-beam Radon transform `A x` (sinogram), its exact adjoint `Aᵀ y`, and filtered
//! back-projection as `A⁺`, on `tch` tensors `[B, C, N, N]` → `[B, C, N, n_angles]`.
//!
//! Geometry and discretisation are those of scikit-image `radon(image, theta, circle=True)`:
//! the image is rotated about pixel `(N/2, N/2)` with bilinear interpolation (zero outside the
//! grid) and summed along columns, i.e. for detector bin `k` (`s = k - N/2`), ray sample `j`
//! (`t = j - N/2`) and angle `θ` (degrees in `[0, 180)`),
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
//! Three backends compute the same discretisation:
//! * [`RadonBackend::Sparse`] (any device, the default): the transform, its transpose and the
//!   FBP back-projection as sparse CSR matrices built once ([`crate::radon_sparse`]), applied
//!   with one sparse × dense product per call (cuSPARSE SpMM on CUDA).
//! * [`RadonBackend::Reference`] (CPU tensors): the rayon kernels of
//!   [`crate::reference::radon`], which compute interpolation weights on the fly.
//! * [`RadonBackend::TensorOps`] (any device): interpolation tables built once at construction
//!   (`[n_angles, N·N]` corner indices and 4 bilinear weights per sample) applied with batched
//!   `index_select` (forward) and `index_add_` (adjoint), processed in angle chunks to bound
//!   temporaries. FBP filtering uses `fft_rfft`/`fft_irfft`.
//!
//! [`RadonBackend::Auto`] picks `Sparse`. `Sparse` and `TensorOps` record autograd (the
//! reference backend refuses inputs that require grad). Inputs must be on the operator's
//! device and of its kind; NaN values are not checked (they propagate). Sparse matrices take
//! about `2 · 1.95·A·N²·(4 + s) + 2·A·π/4·N²·(4 + s)` bytes for `A` angles and element size
//! `s` (≈ 0.5 GB for N = 256, A = 180, f32, plus up to as much again for a measured subset);
//! tensor-ops tables about `A·N²·(8 + 4·s) + A·π/4·N²·(8 + 2·s)` (≈ 0.45 GB), built once.
use ndarray::{Array3, ArrayView3};
use tch::{Device, Kind, Tensor};

use crate::fbp::{fbp_scale, half_spectrum_filter, FbpFilter, FbpPadding};
use crate::reference::radon::{self as reference, ParallelGeometry, Real};
use crate::{check_batch_shape, radon_sparse, Decomposed, LinearOperator, OperatorError, Result};

/// Largest number of elements a chunked temporary of the tensor backend may hold.
const CHUNK_ELEMENTS: i64 = 1 << 24;

/// Largest estimated size of the sparse backend's matrices that [`RadonBackend::Auto`] builds
/// (4 GiB: e.g. N = 512 with 360 full-view angles, about 4.1 GB in f32, fits; 720 does not).
pub const SPARSE_AUTO_LIMIT_BYTES: f64 = 4.0 * (1u64 << 30) as f64;

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

/// The backend [`RadonBackend::Auto`] resolves to (see there).
pub fn auto_backend(
    n: usize,
    a_full: usize,
    a_meas: usize,
    kind: Kind,
    device: Device,
) -> RadonBackend {
    if sparse_bytes_estimate(n, a_full, a_meas, kind) <= SPARSE_AUTO_LIMIT_BYTES {
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
    /// `Sparse` on every device while its matrices stay under [`SPARSE_AUTO_LIMIT_BYTES`];
    /// beyond that `Reference` on the CPU (no tables at all) and `TensorOps` elsewhere.
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
struct Shared(Tensor);

// SAFETY: the wrapped tensors are created in the constructor and afterwards only passed by
// shared reference to libtorch ops that read them (index_select, mul, narrow views), which
// libtorch supports from several threads at once.
unsafe impl Sync for Shared {}

impl std::ops::Deref for Shared {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// Forward-projection tables for one angle set: corner index into the `(N+2)²` zero-padded
/// image and the four bilinear weights (00, 01, 10, 11) of every sample `(angle, k, j)`.
struct ProjTables {
    idx: Shared, // [A, N·N] i64
    w4: Shared,  // [A, N·N, 4]
}

/// Back-projection tables of FBP for one angle set: index into the flattened filtered
/// sinogram `[A·D]` and the two linear-interpolation weights, per (angle, pixel in circle).
struct BpTables {
    idx: Shared, // [A, n_pix] i64
    w2: Shared,  // [A, n_pix, 2]
}

/// Sparse matrices of the [`RadonBackend::Sparse`] backend (see [`crate::radon_sparse`]).
struct SparseTables {
    full_fwd: Shared, // [N·A, N²]
    full_adj: Shared, // [N², N·A]
    meas_fwd: Shared,
    meas_adj: Shared,
    full_bp: Shared, // [N², A·D]
    meas_bp: Shared,
    /// FBP half-spectrum filters `[P/2 + 1]`, one per [`FbpFilter::ALL`] entry.
    filters: Vec<Shared>,
}

/// What the resolved backend precomputed.
enum Tables {
    Reference,
    Ops(TensorTables),
    Sparse(SparseTables),
}

impl Tables {
    fn records_autograd(&self) -> bool {
        !matches!(self, Tables::Reference)
    }

    fn filter(&self, f: FbpFilter) -> Option<&Tensor> {
        let list = match self {
            Tables::Reference => return None,
            Tables::Ops(t) => &t.filters,
            Tables::Sparse(t) => &t.filters,
        };
        let i = FbpFilter::ALL.iter().position(|&g| g == f).unwrap_or(0);
        Some(&list[i])
    }
}

struct TensorTables {
    full_proj: ProjTables,
    meas_proj: ProjTables,
    full_bp: BpTables,
    meas_bp: BpTables,
    /// Flat indices of the pixels inside the inscribed circle.
    pix: Shared,
    /// FBP half-spectrum filters `[P/2 + 1]`, one per [`FbpFilter::ALL`] entry.
    filters: Vec<Shared>,
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
    tables: Tables,
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

/// `n` angles `linspace(0, 180, n, endpoint=false)` in degrees.
pub fn full_view_angles(n_angles: usize) -> Vec<f64> {
    (0..n_angles)
        .map(|i| 180.0 * i as f64 / n_angles as f64)
        .collect()
}

/// Indices of `n_views` angles spread uniformly over a grid of `n_full`:
/// `round(linspace(0, n_full - 1, n_views))` (round half to even, as NumPy; Song et al. 2022).
pub fn sparse_view_indices(n_views: usize, n_full: usize) -> Result<Vec<usize>> {
    if n_views == 0 || n_views > n_full {
        return Err(OperatorError::Invalid(format!(
            "radon: n_views must be in 1..={n_full} (the full angle count), got {n_views}"
        )));
    }
    if n_views == 1 {
        return Ok(vec![0]);
    }
    let step = (n_full - 1) as f64 / (n_views - 1) as f64;
    Ok((0..n_views)
        .map(|i| (i as f64 * step).round_ties_even() as usize)
        .collect())
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
        let tables = match backend {
            RadonBackend::TensorOps => {
                Tables::Ops(build_tables(&full, &meas, &kept_index, kind, device)?)
            }
            RadonBackend::Sparse => Tables::Sparse(build_sparse(&full, &meas, kind, device)?),
            _ => Tables::Reference,
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
            tables,
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
        if !self.tables.records_autograd() && t.requires_grad() {
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

    /// Projects `x` `[B, C, N, N]` onto the angles of `geom` (`full` or `meas`).
    fn project(&self, x: &Tensor, full: bool) -> Result<Tensor> {
        let geom = if full { &self.full } else { &self.meas };
        check_batch_shape("radon", "image", &self.image_shape(), x)?;
        self.check_tensor(x, "image")?;
        let b = x.size()[0];
        let (n, na) = (self.n as i64, geom.n_angles() as i64);
        let m = b * self.channels;
        if m == 0 {
            return Ok(Tensor::f_zeros(
                [b, self.channels, n, na],
                (self.kind, self.device),
            )?);
        }
        let xm = x.f_reshape([m, n, n])?;
        let out = match &self.tables {
            Tables::Reference => self.with_reference(
                &xm,
                [m, n, n],
                |v: ArrayView3<'_, f64>| reference::forward(geom, v),
                |v: ArrayView3<'_, f32>| reference::forward(geom, v),
            )?,
            Tables::Ops(t) => {
                let pt = if full { &t.full_proj } else { &t.meas_proj };
                project_ops(pt, &xm, self.n as i64, self.kind)?
            }
            Tables::Sparse(t) => {
                let r = if full { &t.full_fwd } else { &t.meas_fwd };
                sparse_apply(r, &xm.f_reshape([m, n * n])?)?
            }
        };
        Ok(out.f_reshape([b, self.channels, n, na])?)
    }

    /// Exact adjoint of [`Self::project`].
    fn backproject(&self, y: &Tensor, full: bool) -> Result<Tensor> {
        let geom = if full { &self.full } else { &self.meas };
        check_batch_shape("radon", "sinogram", &self.sino_shape(geom), y)?;
        self.check_tensor(y, "sinogram")?;
        let b = y.size()[0];
        let (n, na) = (self.n as i64, geom.n_angles() as i64);
        let m = b * self.channels;
        if m == 0 {
            return Ok(Tensor::f_zeros(
                [b, self.channels, n, n],
                (self.kind, self.device),
            )?);
        }
        let ym = y.f_reshape([m, n, na])?;
        let out = match &self.tables {
            Tables::Reference => self.with_reference(
                &ym,
                [m, n, na],
                |v: ArrayView3<'_, f64>| reference::adjoint(geom, v),
                |v: ArrayView3<'_, f32>| reference::adjoint(geom, v),
            )?,
            Tables::Ops(t) => {
                let pt = if full { &t.full_proj } else { &t.meas_proj };
                backproject_ops(pt, &ym, self.n as i64, self.kind)?
            }
            Tables::Sparse(t) => {
                let rt = if full { &t.full_adj } else { &t.meas_adj };
                sparse_apply(rt, &ym.f_reshape([m, n * na])?)?
            }
        };
        Ok(out.f_reshape([b, self.channels, n, n])?)
    }

    /// FBP of `y` `[B, C, N, A]` with the angles of `geom`.
    fn fbp(&self, y: &Tensor, full: bool) -> Result<Tensor> {
        let geom = if full { &self.full } else { &self.meas };
        check_batch_shape("radon", "sinogram", &self.sino_shape(geom), y)?;
        self.check_tensor(y, "sinogram")?;
        let b = y.size()[0];
        let (n, na) = (self.n as i64, geom.n_angles() as i64);
        let m = b * self.channels;
        if m == 0 {
            return Ok(Tensor::f_zeros(
                [b, self.channels, n, n],
                (self.kind, self.device),
            )?);
        }
        let ym = y.f_reshape([m, n, na])?;
        let filter = self.filter;
        let out = match (&self.tables, self.tables.filter(filter)) {
            (Tables::Ops(t), Some(fh)) => {
                let bp = if full { &t.full_bp } else { &t.meas_bp };
                fbp_ops(bp, &t.pix, fh, &ym, self.n as i64, na, self.kind)?
            }
            (Tables::Sparse(t), Some(fh)) => {
                let bp = if full { &t.full_bp } else { &t.meas_bp };
                let f = filtered_sinogram(&ym, fh, n, self.kind)?; // [m, A, D]
                sparse_apply(bp, &f.f_reshape([m, -1])?)?
            }
            _ => self.with_reference(
                &ym,
                [m, n, na],
                |v: ArrayView3<'_, f64>| reference::fbp(geom, v, filter),
                |v: ArrayView3<'_, f32>| reference::fbp(geom, v, filter),
            )?,
        };
        Ok(out.f_reshape([b, self.channels, n, n])?)
    }

    /// Runs a reference kernel on a CPU tensor `[m, d1, d2]` of this operator's kind.
    fn with_reference(
        &self,
        t: &Tensor,
        shape: [i64; 3],
        f64_fn: impl Fn(ArrayView3<'_, f64>) -> Result<Array3<f64>>,
        f32_fn: impl Fn(ArrayView3<'_, f32>) -> Result<Array3<f32>>,
    ) -> Result<Tensor> {
        match self.kind {
            Kind::Double => run_reference::<f64>(t, shape, f64_fn),
            _ => run_reference::<f32>(t, shape, f32_fn),
        }
    }
}

fn run_reference<T: Real>(
    t: &Tensor,
    shape: [i64; 3],
    f: impl Fn(ArrayView3<'_, T>) -> Result<Array3<T>>,
) -> Result<Tensor> {
    let t = t.f_contiguous()?;
    let numel = t.numel();
    let mut data = vec![T::zero(); numel];
    t.f_copy_data(&mut data, numel)?;
    let dims = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
    let view = ArrayView3::from_shape(dims, &data)
        .map_err(|e| OperatorError::Invalid(format!("radon: internal shape error: {e}")))?;
    let out = f(view)?;
    let s: Vec<i64> = out.shape().iter().map(|&d| d as i64).collect();
    let flat = out
        .as_slice()
        .ok_or_else(|| OperatorError::Invalid("radon: non-contiguous reference output".into()))?;
    Ok(Tensor::f_from_slice(flat)?.f_reshape(s)?)
}

/// The half-spectrum filters of every [`FbpFilter::ALL`] entry, in that order.
fn filter_tensors(n: usize, kind: Kind, device: Device) -> Result<Vec<Shared>> {
    FbpFilter::ALL
        .iter()
        .map(|&f| filter_tensor(n, f, kind, device).map(Shared))
        .collect()
}

fn filter_tensor(n: usize, filter: FbpFilter, kind: Kind, device: Device) -> Result<Tensor> {
    let pad = FbpPadding::new(n);
    let h = half_spectrum_filter(pad.fft_len, filter);
    Ok(Tensor::f_from_slice(&h)?
        .f_to_kind(kind)?
        .f_to_device(device)?)
}

fn proj_tables(geom: &ParallelGeometry, kind: Kind, device: Device) -> Result<ProjTables> {
    let n = geom.n();
    let w = (n + 2) as i64;
    let na = geom.n_angles();
    let mut idx = vec![0i64; na * n * n];
    let mut w4 = vec![0f64; na * n * n * 4];
    for a in 0..na {
        for k in 0..n {
            for j in 0..n {
                let s = (a * n + k) * n + j;
                let (row, col) = geom.sample_coords(a, k, j);
                let (r0, c0) = (row.floor(), col.floor());
                if r0 < -1.0 || c0 < -1.0 || r0 >= n as f64 || c0 >= n as f64 {
                    continue; // all four corners outside the image: contributes nothing
                }
                let (fr, fc) = (row - r0, col - c0);
                idx[s] = (r0 as i64 + 1) * w + (c0 as i64 + 1);
                w4[4 * s] = (1.0 - fr) * (1.0 - fc);
                w4[4 * s + 1] = (1.0 - fr) * fc;
                w4[4 * s + 2] = fr * (1.0 - fc);
                w4[4 * s + 3] = fr * fc;
            }
        }
    }
    let nn = (n * n) as i64;
    Ok(ProjTables {
        idx: Shared(
            Tensor::f_from_slice(&idx)?
                .f_reshape([na as i64, nn])?
                .f_to_device(device)?,
        ),
        w4: Shared(
            Tensor::f_from_slice(&w4)?
                .f_reshape([na as i64, nn, 4])?
                .f_to_kind(kind)?
                .f_to_device(device)?,
        ),
    })
}

fn circle_pixels(n: usize) -> Vec<(usize, usize)> {
    let radius = (n / 2) as isize;
    let mut pix = Vec::new();
    for r in 0..n {
        for c in 0..n {
            let (xr, yc) = (r as isize - radius, c as isize - radius);
            if xr * xr + yc * yc <= radius * radius {
                pix.push((r, c));
            }
        }
    }
    pix
}

fn bp_tables(geom: &ParallelGeometry, kind: Kind, device: Device) -> Result<BpTables> {
    let n = geom.n();
    let pad = FbpPadding::new(n);
    let d = pad.diagonal;
    let half_d = (d / 2) as f64;
    let pix = circle_pixels(n);
    let na = geom.n_angles();
    let mut idx = vec![0i64; na * pix.len()];
    let mut w2 = vec![0f64; na * pix.len() * 2];
    for a in 0..na {
        for (q, &(r, c)) in pix.iter().enumerate() {
            let s = a * pix.len() + q;
            let u = geom.pixel_detector_coord(a, r, c) + half_d;
            if u < 0.0 || u > (d - 1) as f64 {
                continue; // numpy.interp left = right = 0
            }
            let i0 = u.floor();
            let w = u - i0;
            idx[s] = (a * d) as i64 + i0 as i64;
            w2[2 * s] = 1.0 - w;
            w2[2 * s + 1] = w;
        }
    }
    let np = pix.len() as i64;
    Ok(BpTables {
        idx: Shared(
            Tensor::f_from_slice(&idx)?
                .f_reshape([na as i64, np])?
                .f_to_device(device)?,
        ),
        w2: Shared(
            Tensor::f_from_slice(&w2)?
                .f_reshape([na as i64, np, 2])?
                .f_to_kind(kind)?
                .f_to_device(device)?,
        ),
    })
}

fn build_tables(
    full: &ParallelGeometry,
    meas: &ParallelGeometry,
    kept_index: &Tensor,
    kind: Kind,
    device: Device,
) -> Result<TensorTables> {
    let full_proj = proj_tables(full, kind, device)?;
    let same = full.n_angles() == meas.n_angles();
    let meas_proj = if same {
        ProjTables {
            idx: Shared(full_proj.idx.shallow_clone()),
            w4: Shared(full_proj.w4.shallow_clone()),
        }
    } else {
        ProjTables {
            idx: Shared(full_proj.idx.f_index_select(0, kept_index)?),
            w4: Shared(full_proj.w4.f_index_select(0, kept_index)?),
        }
    };
    let full_bp = bp_tables(full, kind, device)?;
    let meas_bp = if same {
        BpTables {
            idx: Shared(full_bp.idx.shallow_clone()),
            w2: Shared(full_bp.w2.shallow_clone()),
        }
    } else {
        bp_tables(meas, kind, device)?
    };
    let n = full.n();
    let pix: Vec<i64> = circle_pixels(n)
        .iter()
        .map(|&(r, c)| (r * n + c) as i64)
        .collect();
    Ok(TensorTables {
        full_proj,
        meas_proj,
        full_bp,
        meas_bp,
        pix: Shared(Tensor::f_from_slice(&pix)?.f_to_device(device)?),
        filters: filter_tensors(n, kind, device)?,
    })
}

fn build_sparse(
    full: &ParallelGeometry,
    meas: &ParallelGeometry,
    kind: Kind,
    device: Device,
) -> Result<SparseTables> {
    let to = |m: &radon_sparse::Csr| m.to_tensor(kind, device).map(Shared);
    let r_full = radon_sparse::projection_matrix(full)?;
    let full_fwd = to(&r_full)?;
    let full_adj = to(&r_full.transpose())?;
    drop(r_full);
    let full_bp = to(&radon_sparse::backprojection_matrix(
        full,
        fbp_scale(full.n_angles()),
    )?)?;
    let (meas_fwd, meas_adj, meas_bp) = if full.n_angles() == meas.n_angles() {
        (
            Shared(full_fwd.shallow_clone()),
            Shared(full_adj.shallow_clone()),
            Shared(full_bp.shallow_clone()),
        )
    } else {
        let r = radon_sparse::projection_matrix(meas)?;
        (
            to(&r)?,
            to(&r.transpose())?,
            to(&radon_sparse::backprojection_matrix(
                meas,
                fbp_scale(meas.n_angles()),
            )?)?,
        )
    };
    let n = full.n();
    Ok(SparseTables {
        full_fwd,
        full_adj,
        meas_fwd,
        meas_adj,
        full_bp,
        meas_bp,
        filters: filter_tensors(n, kind, device)?,
    })
}

/// Angles per chunk so that a `[m, chunk · per_angle]` temporary stays under CHUNK_ELEMENTS.
fn chunk_angles(m: i64, per_angle: i64, na: i64) -> i64 {
    (CHUNK_ELEMENTS / (m * per_angle).max(1)).clamp(1, na)
}

/// Stack of the four bilinear neighbours of every padded pixel: `[m, W², 4]` with
/// `[..., q] = xp[p + off_q]`, `off = (0, 1, W, W + 1)` (zero beyond the end).
fn neighbour_stack(xp: &Tensor, w: i64) -> Result<Tensor> {
    let ww = w * w;
    let xe = xp.f_constant_pad_nd([0, w + 1])?;
    let parts = [
        xe.f_narrow(1, 0, ww)?,
        xe.f_narrow(1, 1, ww)?,
        xe.f_narrow(1, w, ww)?,
        xe.f_narrow(1, w + 1, ww)?,
    ];
    Ok(Tensor::f_stack(&parts, 2)?)
}

fn project_ops(t: &ProjTables, x: &Tensor, n: i64, kind: Kind) -> Result<Tensor> {
    let m = x.size()[0];
    let w = n + 2;
    let na = t.idx.size()[0];
    let xp = x.f_constant_pad_nd([1, 1, 1, 1])?.f_reshape([m, w * w])?;
    let x4 = neighbour_stack(&xp, w)?;
    let chunk = chunk_angles(m, n * n * 4, na);
    let mut outs = Vec::new();
    let mut a0 = 0;
    while a0 < na {
        let len = chunk.min(na - a0);
        let idx = t.idx.f_narrow(0, a0, len)?.f_reshape([-1])?;
        let w4 = t.w4.f_narrow(0, a0, len)?.f_reshape([1, -1, 4])?;
        let g = x4.f_index_select(1, &idx)?.f_mul(&w4)?; // [m, len·N·N, 4]
        outs.push(g.f_reshape([m, len, n, n * 4])?.f_sum_dim_intlist(
            [-1i64].as_slice(),
            false,
            kind,
        )?);
        a0 += len;
    }
    // [m, A, N_det] → [m, N_det, A]
    Ok(Tensor::f_cat(&outs, 1)?
        .f_permute([0, 2, 1])?
        .f_contiguous()?)
}

fn backproject_ops(t: &ProjTables, y: &Tensor, n: i64, kind: Kind) -> Result<Tensor> {
    let m = y.size()[0];
    let w = n + 2;
    let ww = w * w;
    let na = t.idx.size()[0];
    let yt = y.f_permute([0, 2, 1])?; // [m, A, N_det]
    let mut grad4 = Tensor::f_zeros([m, ww, 4], (kind, y.device()))?;
    let chunk = chunk_angles(m, n * n * 4, na);
    let mut a0 = 0;
    while a0 < na {
        let len = chunk.min(na - a0);
        let idx = t.idx.f_narrow(0, a0, len)?.f_reshape([-1])?;
        let w4 = t.w4.f_narrow(0, a0, len)?.f_reshape([1, len, n, n, 4])?;
        let ys = yt.f_narrow(1, a0, len)?.f_unsqueeze(-1)?.f_unsqueeze(-1)?; // [m, len, N_det, 1, 1]
        let contrib = ys.f_mul(&w4)?.f_reshape([m, -1, 4])?;
        let _ = grad4.f_index_add_(1, &idx, &contrib)?;
        a0 += len;
    }
    // Transpose of neighbour_stack: add each neighbour slot back at its offset.
    let ge = Tensor::f_zeros([m, ww + w + 1], (kind, y.device()))?;
    for (q, off) in [0, 1, w, w + 1].into_iter().enumerate() {
        let mut dst = ge.f_narrow(1, off, ww)?;
        let _ = dst.f_add_(&grad4.f_select(2, q as i64)?)?;
    }
    Ok(ge
        .f_narrow(1, 0, ww)?
        .f_reshape([m, w, w])?
        .f_narrow(1, 1, n)?
        .f_narrow(2, 1, n)?
        .f_contiguous()?)
}

/// `M vᵀ` for each row `v` of `x` `[m, cols]` with the sparse `M` `[rows, cols]`: `[m, rows]`.
/// The dense operand is made row-major `[cols, m]` first, so that every stored entry of `M`
/// reads `m` contiguous values (with a column-major operand cuSPARSE SpMM is ~4× slower).
fn sparse_apply(mat: &Tensor, x: &Tensor) -> Result<Tensor> {
    let xt = x.f_transpose(0, 1)?.f_contiguous()?;
    Ok(mat.f_mm(&xt)?.f_transpose(0, 1)?.f_contiguous()?)
}

/// The filtering step of FBP: `y` `[m, N_det, A]` → `[m, A, D]`, each projection zero-padded
/// to the FFT length (scikit-image's padding), filtered by `filter_half` (the half spectrum)
/// and cut to the diagonal width `D`.
fn filtered_sinogram(y: &Tensor, filter_half: &Tensor, n: i64, kind: Kind) -> Result<Tensor> {
    let pad = FbpPadding::new(n as usize);
    let (d, p, before) = (
        pad.diagonal as i64,
        pad.fft_len as i64,
        pad.pad_before as i64,
    );
    let padded = y
        .f_permute([0, 2, 1])? // [m, A, N_det]
        .f_constant_pad_nd([before, p - n - before])?;
    Ok(padded
        .f_fft_rfft(p, -1, "backward")?
        .f_mul(filter_half)?
        .f_fft_irfft(p, -1, "backward")?
        .f_narrow(2, 0, d)?
        .f_to_kind(kind)?)
}

fn fbp_ops(
    bp: &BpTables,
    pix: &Tensor,
    filter_half: &Tensor,
    y: &Tensor,
    n: i64,
    na: i64,
    kind: Kind,
) -> Result<Tensor> {
    let m = y.size()[0];
    let d = FbpPadding::new(n as usize).diagonal as i64;
    let filtered = filtered_sinogram(y, filter_half, n, kind)?;
    let ad = na * d;
    let fe = filtered.f_reshape([m, ad])?.f_constant_pad_nd([0, 1])?;
    let f2 = Tensor::f_stack(&[fe.f_narrow(1, 0, ad)?, fe.f_narrow(1, 1, ad)?], 2)?; // [m, A·D, 2]
    let npix = pix.size()[0];
    let mut acc = Tensor::f_zeros([m, npix], (kind, y.device()))?;
    let chunk = chunk_angles(m, npix * 2, na);
    let mut a0 = 0;
    while a0 < na {
        let len = chunk.min(na - a0);
        let idx = bp.idx.f_narrow(0, a0, len)?.f_reshape([-1])?;
        let w2 = bp.w2.f_narrow(0, a0, len)?.f_reshape([1, -1, 2])?;
        let g = f2.f_index_select(1, &idx)?.f_mul(&w2)?; // [m, len·npix, 2]
        let part =
            g.f_reshape([m, len, npix, 2])?
                .f_sum_dim_intlist([1i64, 3].as_slice(), false, kind)?;
        let _ = acc.f_add_(&part)?;
        a0 += len;
    }
    let acc = acc.f_mul_scalar(fbp_scale(na as usize))?;
    Ok(Tensor::f_zeros([m, n * n], (kind, y.device()))?
        .f_index_copy(1, pix, &acc)?
        .f_reshape([m, n, n])?)
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
        self.project(x, false)
    }

    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.backproject(y, false)
    }

    /// FBP over the measured angles (an approximate inverse; exact only in the continuum
    /// limit of full angular sampling).
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.fbp(y, false)
    }
}

impl ParallelBeamRadon {
    /// Exact adjoint of the full-view transform `T` (not part of the [`Decomposed`] trait).
    pub fn transform_adjoint(&self, z: &Tensor) -> Result<Tensor> {
        self.backproject(z, true)
    }
}

impl Decomposed for ParallelBeamRadon {
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        self.project(x, true)
    }

    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        self.fbp(z, true)
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

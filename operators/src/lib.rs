//! # scoreinv-operators
//!
//! Forward operators for imaging inverse problems, `y = A x + n`, on `tch::Tensor` batches
//! `[B, C, H, W]` on any device, in f32 and f64: masking, grayscale, blur, parallel-beam
//! ([`ParallelBeamRadon`]) and fan-beam ([`FanBeam`]) CT, single- and multi-coil MRI. The crate knows nothing about diffusion: a
//! score-based solver, a TV solver or a user script all see the same [`LinearOperator`].
//!
//! Operators that the projection sampler of Song et al. 2022 ("Solving inverse problems in
//! medical imaging with score-based generative models", ICLR) needs also implement
//! [`Decomposed`]: `A = P(Λ) · T`, with `T` an invertible transform and `P(Λ)` acting
//! diagonally in the transformed domain (a subsampling mask, or a transfer function for
//! deblurring), reachable from any operator through [`LinearOperator::as_decomposed`].

pub mod blur;
mod csr;
pub mod error;
pub mod espirit;
pub mod fan_fbp;
pub mod fan_rebin;
pub mod fanbeam;
pub mod fbp;
pub mod gaussian_noise;
pub mod geometry;
pub mod grayscale;
pub mod masking;
pub mod masks;
pub mod mri;
pub mod noise;
pub mod radon;
pub mod reference;

pub use blur::{Blur, Boundary};
pub use error::{OperatorError, Result};
pub use fan_fbp::ScanWeighting;
pub use fanbeam::{FanBackend, FanBeam};
pub use fbp::FbpFilter;
pub use gaussian_noise::{GaussianNoise, NoiseModel};
pub use geometry::{DetectorShape, FanGeometry, FanGeometryConfig};
pub use grayscale::Grayscale;
pub use masking::{InpaintMask, Masking};
pub use masks::{MaskSpec, SamplingMask};
pub use mri::{fft2c, ifft2c, synthetic_coil_maps, CoilMaps, ImageDomain, MriFourier, SenseMri};
pub use noise::PoissonNoise;
pub use radon::{ParallelBeamRadon, RadonBackend};

use tch::Tensor;

/// A linear forward operator `A : X → Y` acting on batches.
///
/// Shapes exclude the batch dimension: an input batch has shape `[B] ++ input_shape()`,
/// an output batch `[B] ++ output_shape()`. Complex-valued measurements (k-space) are
/// complex tensors.
///
/// Every implementation must pass the dot-product test `⟨A x, y⟩ = ⟨x, Aᴴ y⟩`.
pub trait LinearOperator: Send + Sync {
    /// Short name used in messages, e.g. `"radon"`.
    fn name(&self) -> &str;

    /// Per-sample input shape, e.g. `[C, H, W]`.
    fn input_shape(&self) -> Vec<i64>;

    /// Per-sample output (measurement) shape, e.g. `[C, n_det, n_angles]`.
    fn output_shape(&self) -> Vec<i64>;

    /// `A x` for a batch `x` of shape `[B] ++ input_shape()`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;

    /// `Aᴴ y` (exact adjoint of the discretised forward) for `y` of shape `[B] ++ output_shape()`.
    fn adjoint(&self, y: &Tensor) -> Result<Tensor>;

    /// `A⁺ y`: the pseudo-inverse, or a documented approximation of it (e.g. FBP for Radon).
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor>;

    /// Checks that `x` is a batch of inputs: `[B] ++ input_shape()`.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        check_batch_shape(self.name(), "input", &self.input_shape(), x)
    }

    /// Checks that `y` is a batch of measurements: `[B] ++ output_shape()`.
    fn check_output(&self, y: &Tensor) -> Result<()> {
        check_batch_shape(self.name(), "measurement", &self.output_shape(), y)
    }

    /// This operator as a [`Decomposed`] one, when it has that decomposition: then the
    /// projection and replacement samplers apply, and a caller holding only a
    /// `&dyn LinearOperator` (or an `Arc<dyn LinearOperator>`) reaches the decomposition
    /// without being handed the operator twice. `None` (the default) otherwise.
    ///
    /// Every implementation of [`Decomposed`] overrides this to return `Some(self)`, or `Some`
    /// of an equivalent operator (the same `A`, shapes and name), as [`Blur`] does for circular
    /// boundary only.
    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        None
    }
}

/// The decomposition `A = P(Λ) · T` used by the projection sampler of Song et al. 2022
/// ("Solving inverse problems in medical imaging with score-based generative models", ICLR).
///
/// * `T` ([`Decomposed::transform`]) is invertible ([`Decomposed::inverse_transform`]): full-view
///   Radon / FBP for CT (FBP inverts only approximately), orthonormal FFT for MRI and for
///   circular deblurring, identity for inpainting, the orthonormal colour decoupling for
///   colorization.
/// * `P(Λ)` ([`Decomposed::subsample`]) maps the transformed domain to measurements,
///   `A x = subsample(transform(x))`, and acts diagonally: each measured value depends on one
///   entry of `T x`. Either it selects entries (CT angles, MRI k-space points, pixels, a colour
///   channel) or, for [`Blur`], it scales every Fourier coefficient by the transfer function
///   and transforms back, `y = F⁻¹(Ĥ ⊙ T x)`.
/// * [`Decomposed::embed`] places a measurement in the transformed domain: the entries of `T x`
///   that `y` determines, 0 where it determines nothing. It is a right inverse of `subsample` on
///   the range of `A`, `subsample(embed(A x)) = A x`: the transpose `P(Λ)ᵀ` (zero fill) for a
///   selection, `F y ⊙ Ĥ⁻¹` (0 where `Ĥ = 0`) for a transfer function.
/// * `Λ` ([`Decomposed::mask`]) is a real weight in `[0, 1]` per entry of `T x`, 0 where the
///   measurement determines nothing, with which data consistency moves `T x` towards the
///   measurement (the projection of Song et al. 2022 with their weight `λ`; their sampler uses
///   `embed(y)` noised to the current diffusion time):
///
///   ```text
///   T x ← T x + λ Λ ⊙ (embed(y) − T x)
///   ```
///
///   For a selection `Λ` is its 0/1 mask and the step replaces the measured entries. For a
///   transfer function `Ĥ` it is the Wiener gain `|Ĥ|² / (|Ĥ|² + ε)`: with `λ = 1` the step is
///   then the regularised projection `argmin_z ‖Ĥ ⊙ z − F y‖² + ε ‖z − T x‖²` onto
///   `{A x = y}` (the spectral view of deblurring of DDRM, Kawar et al. 2022, "Denoising
///   diffusion restoration models", NeurIPS: `V = F`, singular values `|Ĥ|`), and `ε → 0` the
///   exact projection. `embed(y)` may be large where `Λ` is small: only `Λ ⊙ embed(y)` is meant
///   to be used.
pub trait Decomposed: LinearOperator {
    /// `T x`, shape `[B] ++ transformed_shape()`.
    fn transform(&self, x: &Tensor) -> Result<Tensor>;
    /// `T⁻¹ z`.
    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor>;
    /// Per-sample shape of `T x`.
    fn transformed_shape(&self) -> Vec<i64>;
    /// `Λ`: real weights in `[0, 1]` (0/1 for a selection), broadcastable to
    /// `[B] ++ transformed_shape()`, on `device`.
    fn mask(&self, device: tch::Device) -> Tensor;
    /// `P(Λ) z`: the measurement of the transformed-domain `z`, so that
    /// `A x = subsample(transform(x))`.
    fn subsample(&self, z: &Tensor) -> Result<Tensor>;
    /// A measurement placed in the transformed domain: the entries of `T x` it determines, 0
    /// elsewhere (`subsample(embed(y)) = y` for `y` in the range of `A`).
    fn embed(&self, y: &Tensor) -> Result<Tensor>;
}

/// Checks `t.size() == [B] ++ per_sample` and names the operator and both shapes if not.
pub fn check_batch_shape(op: &str, what: &str, per_sample: &[i64], t: &Tensor) -> Result<()> {
    let got = t.size();
    if got.len() != per_sample.len() + 1 || got[1..] != *per_sample {
        let mut expected = vec![-1];
        expected.extend_from_slice(per_sample);
        return Err(OperatorError::Shape {
            op: op.to_string(),
            what: what.to_string(),
            expected: format_shape(&expected),
            actual: format_shape(&got),
        });
    }
    Ok(())
}

/// `[B, 1, 64, 64]`-style formatting; `-1` prints as `B`.
pub fn format_shape(s: &[i64]) -> String {
    let parts: Vec<String> = s
        .iter()
        .map(|&d| {
            if d < 0 {
                "B".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

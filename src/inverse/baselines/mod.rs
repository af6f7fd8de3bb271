//! Classical reconstructions that every score-based method is compared against.
//!
//! * `fbp`: `A⁺ y` through [`LinearOperator::pseudo_inverse`] — filtered back-projection for the
//!   Radon operator, zero-filled inverse FFT for MRI, the masked image for inpainting.
//! * `zero-filled`: `Aᴴ y`, the adjoint (for undersampled MRI with an orthonormal FFT, the
//!   inverse FFT of the zero-filled k-space); complex results are turned into magnitude images
//!   (the usual display of a zero-filled MRI reconstruction) or real parts ([`ComplexPart`]).
//! * `tv`: `min_x ½‖Ax − y‖² + λ TV(x)` by PDHG (Chambolle & Pock 2011), see [`tv`]; with a
//!   0/1 diagonal `A` this is TV inpainting (Chan & Shen 2002). The same problem is also solved
//!   by FISTA with an inner dual TV solver ([`fista`], Beck & Teboulle 2009).
//! * `gray`: for colorization, the RGB image whose channels all equal the gray level that
//!   reproduces `y`: `x_c = y / A(1)` for every channel `c`, with `A(1)` the gray value of a
//!   white image (so `A x = y` exactly for any per-pixel channel combination; for weights that
//!   sum to one this is plain replication of the gray channel).
//!
//! [`tv_preset`] and the `TV_LAMBDA_*` weights are the TV settings of the tasks (images in
//! `[0, 1]`).
pub mod fista;
pub mod norm;
pub mod tv;

pub use fista::{tv_fista, FistaConfig};
pub use norm::{operator_norm, PowerIteration};
pub use tv::{
    gradient, gradient_adjoint, total_variation, tv_pdhg, tv_pdhg_from, Constraint, Init,
    LambdaScaling, TvConfig, TvHistory, TvResult,
};

use crate::{Error, Result};
use scoreinv_operators::{format_shape, LinearOperator};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tch::Tensor;

/// `Re(t)` for complex tensors, `t` itself (shallow copy) otherwise.
pub fn real_part(t: &Tensor) -> Tensor {
    if t.is_complex() {
        t.real()
    } else {
        t.shallow_clone()
    }
}

/// How a complex reconstruction becomes an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplexPart {
    /// `|z|`.
    #[default]
    Magnitude,
    /// `Re z`.
    Real,
}

impl ComplexPart {
    fn apply(self, t: Tensor) -> Tensor {
        if !t.is_complex() {
            return t;
        }
        match self {
            ComplexPart::Magnitude => t.abs(),
            ComplexPart::Real => t.real(),
        }
    }
}

/// `A⁺ y` (FBP for Radon), complex results mapped by `part`.
pub fn fbp(op: &dyn LinearOperator, y: &Tensor, part: ComplexPart) -> Result<Tensor> {
    op.check_output(y)?;
    Ok(part.apply(op.pseudo_inverse(y)?))
}

/// `Aᴴ y` (zero-filled MRI), complex results mapped by `part`.
pub fn zero_filled(op: &dyn LinearOperator, y: &Tensor, part: ComplexPart) -> Result<Tensor> {
    op.check_output(y)?;
    Ok(part.apply(op.adjoint(y)?))
}

/// Gray-to-RGB baseline for an operator `[C, H, W] → [1, H, W]` that combines channels pixel by
/// pixel: every channel of the result is `y / A(1)`.
pub fn gray(op: &dyn LinearOperator, y: &Tensor) -> Result<Tensor> {
    op.check_output(y)?;
    let in_shape = op.input_shape();
    let out_shape = op.output_shape();
    if in_shape.len() != 3
        || out_shape.len() != 3
        || out_shape[0] != 1
        || in_shape[1..] != out_shape[1..]
    {
        return Err(Error::Shape {
            what: format!("gray baseline: operator '{}'", op.name()),
            expected: "input [C, H, W] and output [1, H, W]".into(),
            actual: format!("{} → {}", format_shape(&in_shape), format_shape(&out_shape)),
        });
    }
    let mut ones_shape = vec![1i64];
    ones_shape.extend(&in_shape);
    let kind = if y.is_complex() {
        return Err(Error::Invalid("gray baseline: y is complex".into()));
    } else {
        y.kind()
    };
    let white = op.forward(&Tensor::ones(ones_shape.as_slice(), (kind, y.device())))?;
    let min_abs = white.abs().min().double_value(&[]);
    if min_abs.is_nan() || min_abs <= 1e-12 {
        return Err(Error::Invalid(format!(
            "gray baseline: operator '{}' maps a white image to a gray level of {min_abs} \
             somewhere; it is not a per-pixel channel combination",
            op.name()
        )));
    }
    let level = y / white;
    let mut target = vec![y.size()[0]];
    target.extend(&in_shape);
    Ok(level.expand(target.as_slice(), false).contiguous())
}

/// The baseline methods by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// `fbp`: the operator's pseudo-inverse.
    Fbp,
    /// `tv`: TV-regularised least squares (PDHG).
    Tv,
    /// `zero-filled`: the adjoint.
    ZeroFilled,
    /// `gray`: replicate the gray level to every channel.
    Gray,
}

impl Baseline {
    /// Every baseline, in the order of the names.
    pub const ALL: [Baseline; 4] = [
        Baseline::Fbp,
        Baseline::Tv,
        Baseline::ZeroFilled,
        Baseline::Gray,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Fbp => "fbp",
            Baseline::Tv => "tv",
            Baseline::ZeroFilled => "zero-filled",
            Baseline::Gray => "gray",
        }
    }

    /// Runs the baseline on a batch `y`; TV uses `tv_cfg`, complex results become magnitudes
    /// (`fbp`, `zero-filled`) or real parts (`tv`, by construction).
    pub fn reconstruct(
        self,
        op: &dyn LinearOperator,
        y: &Tensor,
        tv_cfg: &TvConfig,
    ) -> Result<Tensor> {
        match self {
            Baseline::Fbp => fbp(op, y, ComplexPart::Magnitude),
            Baseline::ZeroFilled => zero_filled(op, y, ComplexPart::Magnitude),
            Baseline::Gray => gray(op, y),
            Baseline::Tv => Ok(tv_pdhg(op, y, tv_cfg)?.x),
        }
    }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        let t = if t == "zerofilled" {
            "zero-filled".to_string()
        } else {
            t
        };
        Baseline::ALL
            .into_iter()
            .find(|b| b.name() == t)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown baseline '{s}'; expected one of: {}",
                    Baseline::ALL.map(|b| b.name()).join(", ")
                ))
            })
    }
}

// The TV weights below were chosen on validation data that no reported evaluation uses
// (`scripts/eval/tune_tv`, table in docs/results/tv-lambda-validation-3000-iters.txt): mean PSNR of
// `--method tv` at `TV_ITERS` iterations over a grid of weights, per task.

/// TV weight for CT, relative to `‖A‖²` (the Radon norm grows with the image size and the
/// number of angles; the relative weight does not), for images in `[0, 1]`. Chosen on
/// validation data, 23 of 180 views with 0.5 % noise: ellipse phantoms of seeds 2000–2006 (best
/// 3e-5: 42.94 dB, 1e-5: 42.83) and training slices of the InVesalius head (best 3e-5: 30.14
/// dB); the earlier untuned 1e-3 gave 34.50 / 27.36 dB there.
pub const TV_LAMBDA_CT: f64 = 3e-5;
/// TV weight for MRI (orthonormal FFT, `‖A‖ = 1`, so relative = absolute), magnitude images in
/// `[0, 1]`, at moderate acceleration (true `H·W / n_sampled` below
/// [`MRI_HIGH_ACCELERATION`], e.g. fastMRI 4×, true 5.3× at 64²). On MNI152 template slices
/// (validation) at 4× the best PSNR is at 2e-3 (25.90 dB; this value 25.71, within 0.2 dB).
pub const TV_LAMBDA_MRI: f64 = 5e-3;
/// TV weight for MRI at high acceleration (true acceleration ≥ [`MRI_HIGH_ACCELERATION`], e.g.
/// fastMRI 8×). On the MNI152 validation slices at 8× PSNR rises with the weight up to 1e-1
/// (19.22 dB; 2e-1: 18.87), 5e-2 gives 19.15 dB with a far better SSIM (0.566 vs 0.499) — the
/// 4× weight gives 17.48 dB there, 1.7 dB short of TV's best.
pub const TV_LAMBDA_MRI_HIGH: f64 = 5e-2;
/// True acceleration from which MRI uses [`TV_LAMBDA_MRI_HIGH`] (between the true 5.3× of
/// fastMRI 4× and the true acceleration of fastMRI 8× masks).
pub const MRI_HIGH_ACCELERATION: f64 = 7.0;

/// The MRI TV weight for a mask of true acceleration `acceleration` (`H·W / n_sampled`).
pub fn mri_tv_lambda(acceleration: f64) -> f64 {
    if acceleration >= MRI_HIGH_ACCELERATION {
        TV_LAMBDA_MRI_HIGH
    } else {
        TV_LAMBDA_MRI
    }
}
/// TV weight for inpainting (`‖A‖ = 1`): measured pixels are (almost) kept, missing ones are
/// filled by the TV prior. Best on Fashion-MNIST test images 1000–1031 (validation; the
/// evaluations use 0–15) for the centre box (18.56 dB) and 50 % random pixels.
pub const TV_LAMBDA_INPAINTING: f64 = 1e-2;
/// TV weight for colorization, were TV used there (the default baseline is `gray`); not tuned.
pub const TV_LAMBDA_COLORIZATION: f64 = 1e-2;
/// PDHG iterations of the task presets. 500 (the generic default of [`TvConfig`]) left TV
/// short of its minimiser on these tasks: a box hole is filled by slow diffusion of the TV
/// flow (Fashion-MNIST box: 14.3 dB at 500, 18.7 at 5 000, 18.8 at 20 000 iterations), and
/// MRI at 8× gained 0.7 dB from 500 to 3 000; CT gains 0.15 dB.
pub const TV_ITERS: usize = 3000;

/// The TV baseline of a task with weight `lambda` (relative to `‖A‖²`): images constrained to
/// `[0, 1]`, [`TV_ITERS`] PDHG iterations started from `A⁺y`. The tasks
/// ([`crate::inverse::tasks`]) pass their weights above; MRI chooses its weight by the mask's
/// true acceleration ([`mri_tv_lambda`]).
pub fn tv_preset(lambda: f64) -> TvConfig {
    TvConfig {
        lambda,
        lambda_scaling: LambdaScaling::OperatorNormSquared,
        constraint: Constraint::Box { lo: 0.0, hi: 1.0 },
        n_iter: TV_ITERS,
        ..TvConfig::default()
    }
}

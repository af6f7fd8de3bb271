//! Colorization: `y = A x` = the gray channel of the orthonormal colour decoupling of
//! score_sde_pytorch's `get_pc_colorizer` (Song et al. 2021, "Score-based generative modeling
//! through stochastic differential equations", ICLR, appendix I.3).
//!
//! score_sde decouples an RGB image with `decouple(x) = einsum('bihw,ij->bjhw', x, M)`, i.e.
//! per pixel `z_j = Σ_i x_i M[i, j]` (`z = Mᵀ x`), for the orthonormal matrix whose *columns*
//! are
//!
//! ```text
//! m0 = (1, 1, 1)/√3,   m1 = (−2, 1, 1)/√6,   m2 = (0, 1, −1)/√2
//! M  = [[0.57735, −0.81650,  0      ],
//!       [0.57735,  0.40825,  0.70711],
//!       [0.57735,  0.40825, −0.70711]]
//! ```
//!
//! (score_sde stores these to float32 precision; we use the exact values). The measurement is
//! the first decoupled channel `y = z_0 = (R + G + B)/√3 = √3 · mean(R, G, B)`, shape
//! `[B, 1, H, W]`. `A Aᵀ = m0ᵀ m0 = 1`, so `A⁺ = Aᵀ`: `Aᵀ y = y · m0` (the gray value spread
//! equally over R, G, B). In the decomposition of Song et al. 2022, `T = Mᵀ` (orthonormal,
//! `T⁻¹ = M`) and `Λ` keeps channel 0. A conventional gray image `g = mean(R, G, B)` is the
//! measurement `√3 · g` ([`Grayscale::measurement_from_gray`]).
use tch::{Device, Tensor};

use crate::mri::real_kind;
use crate::{check_batch_shape, Decomposed, LinearOperator, OperatorError, Result};

/// The decoupling matrix `M` (rows: input colour `i`, columns: decoupled channel `j`).
pub fn decoupling_matrix() -> [[f64; 3]; 3] {
    let a = 1.0 / 3f64.sqrt();
    let b = 1.0 / 6f64.sqrt();
    let c = 1.0 / 2f64.sqrt();
    [[a, -2.0 * b, 0.0], [a, b, c], [a, b, -c]]
}

/// The colorization operator `[B, 3, H, W] → [B, 1, H, W]`.
#[derive(Debug, Clone)]
pub struct Grayscale {
    h: i64,
    w: i64,
}

impl Grayscale {
    /// For `H × W` RGB images.
    pub fn new(h: usize, w: usize) -> Result<Self> {
        if h == 0 || w == 0 {
            return Err(OperatorError::Invalid(format!(
                "grayscale: image size {h}x{w} must be positive"
            )));
        }
        Ok(Self {
            h: h as i64,
            w: w as i64,
        })
    }

    /// `M` as a `[3, 3]` tensor of the real kind matching `like`, on its device.
    fn matrix_like(&self, like: &Tensor) -> Result<Tensor> {
        let rk = real_kind(self.name(), like.kind())?;
        let m = decoupling_matrix();
        let flat: Vec<f64> = m.iter().flatten().copied().collect();
        Ok(Tensor::from_slice(&flat)
            .view([3, 3])
            .f_to_kind(rk)?
            .f_to_device(like.device())?)
    }

    /// `√3 · g`: the measurement for a conventional gray image `g = mean(R, G, B)`.
    pub fn measurement_from_gray(&self, gray: &Tensor) -> Result<Tensor> {
        check_batch_shape(self.name(), "gray image", &self.output_shape(), gray)?;
        Ok(gray.f_mul_scalar(3f64.sqrt())?)
    }

    /// `y / √3`: the conventional gray image `mean(R, G, B)` of a measurement.
    pub fn gray_from_measurement(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        Ok(y.f_div_scalar(3f64.sqrt())?)
    }

    fn m0_like(&self, like: &Tensor) -> Result<Tensor> {
        // Column 0 of M as [1, 3, 1, 1].
        Ok(self
            .matrix_like(like)?
            .f_narrow(1, 0, 1)?
            .f_view([1, 3, 1, 1])?)
    }
}

impl LinearOperator for Grayscale {
    fn name(&self) -> &str {
        "grayscale"
    }

    fn input_shape(&self) -> Vec<i64> {
        vec![3, self.h, self.w]
    }

    fn output_shape(&self) -> Vec<i64> {
        vec![1, self.h, self.w]
    }

    /// `z_0 = Σ_i M[i, 0] x_i`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let m0 = self.m0_like(x)?;
        Ok(x.f_mul(&m0)?
            .f_sum_dim_intlist(Some(&[1i64][..]), true, None)?)
    }

    /// `Aᵀ y = y · m0`.
    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        let m0 = self.m0_like(y)?;
        Ok(y.f_mul(&m0)?)
    }

    /// `A⁺ = Aᵀ` since `A Aᵀ = I`.
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.adjoint(y)
    }

    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        Some(self)
    }
}

impl Decomposed for Grayscale {
    /// score_sde's `decouple`: `einsum('bihw,ij->bjhw', x, M)`.
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let m = self.matrix_like(x)?;
        Ok(Tensor::f_einsum("bihw,ij->bjhw", &[x, &m], None::<&[i64]>)?)
    }

    /// score_sde's `couple` with `M⁻¹ = Mᵀ`: `x_i = Σ_j M[i, j] z_j`.
    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(self.name(), "decoupled image", &self.transformed_shape(), z)?;
        let m = self.matrix_like(z)?;
        Ok(Tensor::f_einsum("bjhw,ij->bihw", &[z, &m], None::<&[i64]>)?)
    }

    fn transformed_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    /// `[3, 1, 1]` f32: `(1, 0, 0)`.
    fn mask(&self, device: Device) -> Tensor {
        Tensor::from_slice(&[1f32, 0.0, 0.0])
            .view([3, 1, 1])
            .to_device(device)
    }

    /// Channel 0 of the decoupled image, `[B, 1, H, W]`.
    fn subsample(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(self.name(), "decoupled image", &self.transformed_shape(), z)?;
        Ok(z.f_narrow(1, 0, 1)?)
    }

    /// `(y, 0, 0)` as a decoupled image `[B, 3, H, W]`.
    fn embed(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        let zeros = y.f_zeros_like()?;
        Ok(Tensor::f_cat(&[y, &zeros, &zeros], 1)?)
    }
}

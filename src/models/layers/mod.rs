//! Building blocks of NCSN++ / DDPM++ (score_sde_pytorch `models/layers.py`, `layerspp.py`,
//! `up_or_down_sampling.py`; Song et al. 2021 and Ho et al. 2020).
//!
//! Every layer is created on a [`tch::nn::Path`] with the parameter names of the PyTorch
//! module (`weight`/`bias` for convolutions, linears and GroupNorm; `W`/`b` for `NIN`; `W` for
//! the Gaussian Fourier projection) so a `VarStore` maps one-to-one onto the upstream
//! `state_dict`. Initialisation follows upstream (`default_init` = variance scaling, fan_avg,
//! uniform), which only matters when training from scratch.

pub mod layerspp;
pub mod up_or_down_sampling;

use crate::error::{Error, Result};
use crate::models::config::Nonlinearity;
use tch::nn::{Init, Path};
use tch::Tensor;

/// upstream `default_init(scale)`: `U(−a, a)` with `a = √(3·scale / ((fan_in + fan_out)/2))`,
/// scale 0 meaning 1e-10. `fan_in = shape[1]·rf`, `fan_out = shape[0]·rf`, rf = ∏ shape[2..].
pub fn default_init(scale: f64, shape: &[i64]) -> Init {
    let scale = if scale == 0.0 { 1e-10 } else { scale };
    let rf: i64 = shape[2..].iter().product();
    let fan_in = (shape[1] * rf) as f64;
    let fan_out = (shape[0] * rf) as f64;
    let a = (3.0 * scale / ((fan_in + fan_out) / 2.0)).sqrt();
    Init::Uniform { lo: -a, up: a }
}

/// The activation `act(x)`.
pub fn act(nl: Nonlinearity, x: &Tensor) -> Tensor {
    match nl {
        Nonlinearity::Swish => x.silu(),
        Nonlinearity::Elu => x.elu(),
        Nonlinearity::Relu => x.relu(),
        Nonlinearity::Lrelu => x.where_self(&x.gt(0.0), &(x * 0.2)),
    }
}

/// `nn.Conv2d` with bias, `weight: [out, in, k, k]` (upstream `ddpm_conv3x3`/`ddpm_conv1x1`).
#[derive(Debug)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv2d {
    /// `ddpm_conv{k}x{k}(cin, cout, stride, padding, init_scale)`.
    pub fn new(
        p: &Path,
        cin: i64,
        cout: i64,
        k: i64,
        stride: i64,
        padding: i64,
        init_scale: f64,
    ) -> Self {
        let shape = [cout, cin, k, k];
        let weight = p.var("weight", &shape, default_init(init_scale, &shape));
        let bias = p.var("bias", &[cout], Init::Const(0.0));
        Conv2d {
            weight,
            bias,
            stride,
            padding,
        }
    }
    /// conv3x3 with padding 1, stride 1.
    pub fn conv3x3(p: &Path, cin: i64, cout: i64, init_scale: f64) -> Self {
        Self::new(p, cin, cout, 3, 1, 1, init_scale)
    }
    /// conv1x1.
    pub fn conv1x1(p: &Path, cin: i64, cout: i64) -> Self {
        Self::new(p, cin, cout, 1, 1, 0, 1.0)
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            Some(&self.bias),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// `nn.Linear`: `y = x Wᵀ + b`, `weight: [out, in]`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(p: &Path, cin: i64, cout: i64) -> Self {
        let shape = [cout, cin];
        Linear {
            weight: p.var("weight", &shape, default_init(1.0, &shape)),
            bias: p.var("bias", &[cout], Init::Const(0.0)),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

/// `nn.GroupNorm(num_groups = min(C/4, 32), C, eps = 1e-6)` as used throughout NCSN++:
/// `y = (x − μ_g) / √(σ²_g + ε) · γ + β` per group of channels.
#[derive(Debug)]
pub struct GroupNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub num_groups: i64,
}

/// GroupNorm epsilon used by every NCSN++ normalisation.
pub const GROUP_NORM_EPS: f64 = 1e-6;

impl GroupNorm {
    /// NCSN++'s GroupNorm for `c` channels: `groups = min(c / 4, 32)`.
    pub fn ncsnpp(p: &Path, c: i64) -> Result<Self> {
        let num_groups = (c / 4).min(32);
        if num_groups < 1 || c % num_groups != 0 {
            return Err(Error::Config(format!(
                "GroupNorm at {}: {c} channels cannot be split into min({c}/4, 32) = {num_groups} \
                 groups (channel counts must be >= 4 and divisible by the group count)",
                p.path("weight")
            )));
        }
        Ok(GroupNorm {
            weight: p.var("weight", &[c], Init::Const(1.0)),
            bias: p.var("bias", &[c], Init::Const(0.0)),
            num_groups,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.group_norm(
            self.num_groups,
            Some(&self.weight),
            Some(&self.bias),
            GROUP_NORM_EPS,
            true,
        )
    }
}

/// `NIN`: a per-pixel linear map over channels, `y[b,:,h,w] = x[b,:,h,w]·W + b` with
/// `W: [in, out]` (upstream stores it transposed with respect to `nn.Linear`).
#[derive(Debug)]
pub struct Nin {
    pub w: Tensor,
    pub b: Tensor,
}

impl Nin {
    pub fn new(p: &Path, cin: i64, cout: i64, init_scale: f64) -> Self {
        let shape = [cin, cout];
        Nin {
            w: p.var("W", &shape, default_init(init_scale, &shape)),
            b: p.var("b", &[cout], Init::Const(0.0)),
        }
    }
    /// On `[B, C_in, N]` (flattened pixels): `[B, C_out, N]`.
    pub fn forward_flat(&self, x: &Tensor) -> Tensor {
        // Wᵀ [out, in] @ x [B, in, N] + b[:, None]
        self.w.tr().matmul(x) + self.b.unsqueeze(1)
    }
    /// On `[B, C_in, H, W]`: `[B, C_out, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, h, w) = x.size4().expect("NIN expects [B, C, H, W]");
        let _ = c;
        self.forward_flat(&x.reshape([b, -1, h * w]))
            .reshape([b, -1, h, w])
    }
}

/// `GaussianFourierProjection`: `[sin(2π c W), cos(2π c W)]` for a `[B]` input `c` (upstream
/// feeds `log σ`); `W ~ N(0, scale²)` of length `embedding_size`, not trained.
#[derive(Debug)]
pub struct GaussianFourierProjection {
    pub w: Tensor,
}

impl GaussianFourierProjection {
    pub fn new(p: &Path, embedding_size: i64, scale: f64) -> Self {
        // Upstream: nn.Parameter(randn(embedding_size) * scale, requires_grad=False), so it is
        // registered as a non-trainable variable (still saved, loaded and cast with the store).
        let w = Tensor::randn([embedding_size], (p.kind(), p.device())) * scale;
        let w = p.add("W", w, false);
        GaussianFourierProjection { w }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        // Same association as upstream: ((x W) · 2) · π.
        let proj = (x.unsqueeze(1) * self.w.unsqueeze(0)) * 2.0 * std::f64::consts::PI;
        Tensor::cat(&[proj.sin(), proj.cos()], -1)
    }
}

/// Transformer sinusoidal embedding (`layers.get_timestep_embedding`, max_positions 10000):
/// `[sin(t·f_k), cos(t·f_k)]`, `f_k = exp(−k·ln(10000)/(d/2 − 1))`, `k < d/2`, zero-padded
/// to `d` when `d` is odd. Computed in the kind of `t`.
pub fn timestep_embedding(t: &Tensor, dim: i64) -> Tensor {
    let half = dim / 2;
    let emb = (10000f64).ln() / (half - 1) as f64;
    let freqs = (Tensor::arange(half, (t.kind(), t.device())) * (-emb)).exp();
    let args = t.unsqueeze(1) * freqs.unsqueeze(0);
    let out = Tensor::cat(&[args.sin(), args.cos()], 1);
    if dim % 2 == 1 {
        out.constant_pad_nd([0, 1])
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::VarStore, Device, Kind};

    #[test]
    fn group_norm_normalises_each_group() {
        let vs = VarStore::new(Device::Cpu);
        let gn = GroupNorm::ncsnpp(&vs.root(), 16).unwrap();
        assert_eq!(gn.num_groups, 4);
        let x = Tensor::randn([2, 16, 5, 5], (Kind::Double, Device::Cpu)) * 3.0 + 7.0;
        let y = gn.forward(&x.to_kind(Kind::Float)).to_kind(Kind::Double);
        let g = y.reshape([2, 4, -1]);
        let mean = g
            .mean_dim(2, false, None::<Kind>)
            .abs()
            .max()
            .double_value(&[]);
        let var = g.var_dim(2, false, false);
        // Biased variance of a normalised group is σ²/(σ²+ε) ≈ 1 − ε/σ²; f32 rounding ~1e-6.
        let verr = (var - 1.0).abs().max().double_value(&[]);
        assert!(mean < 1e-5, "{mean}");
        assert!(verr < 1e-5, "{verr}");
        assert!(GroupNorm::ncsnpp(&(vs.root() / "x"), 3).is_err());
        assert!(GroupNorm::ncsnpp(&(vs.root() / "y"), 18).is_err());
    }

    #[test]
    fn timestep_embedding_values() {
        let t = Tensor::from_slice(&[0.0f64, 2.0]);
        let e = timestep_embedding(&t, 6);
        // d = 6: half 3, freqs = [1, 10000^(-1/2), 10000^(-1)].
        let f = [1.0f64, 0.01, 1e-4];
        for (k, fk) in f.iter().enumerate() {
            let s = e.double_value(&[1, k as i64]);
            let c = e.double_value(&[1, 3 + k as i64]);
            assert!((s - (2.0 * fk).sin()).abs() < 1e-12);
            assert!((c - (2.0 * fk).cos()).abs() < 1e-12);
        }
        assert_eq!(e.double_value(&[0, 0]), 0.0);
        assert_eq!(e.double_value(&[0, 3]), 1.0);
        assert_eq!(timestep_embedding(&t, 7).size(), vec![2, 7]);
    }

    #[test]
    fn nin_is_channel_matmul() {
        let vs = VarStore::new(Device::Cpu);
        let nin = Nin::new(&vs.root(), 3, 2, 1.0);
        let x = Tensor::randn([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        let y = nin.forward(&x);
        let want = x.permute([0, 2, 3, 1]).matmul(&nin.w) + &nin.b;
        let d = (y - want.permute([0, 3, 1, 2]))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-6);
    }
}

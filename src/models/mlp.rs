//! A small time-conditioned MLP `F_θ(x, c)` for low-dimensional data (2-D toy distributions,
//! tiny images flattened to vectors).
//!
//! The conditioning scalar `c` (σ(t) for VE, 999·t for VP/sub-VP, see
//! [`crate::models::score_net`]) is embedded by sinusoids `[sin(ω_k u), cos(ω_k u)]` of
//! `u = ln c` with `ω_k` geometric in `[1/4, 32]` ("fourier", the role of NCSN++'s Gaussian
//! Fourier features of log σ, with deterministic frequencies so that nothing random lives outside
//! the weights) or of `u = c` with `ω_k = 10000^{−k/(K−1)}` ("positional", DDPM's embedding).
//! Layers: `h₀ = SiLU(W_x x + U₀ e)`, `h_{l+1} = SiLU(W_l h_l + U_{l+1} e)`, output `W_o h_L`,
//! where `e = SiLU(W_e γ(c))` is the embedded condition injected at every layer (the toy
//! Gaussian score is linear in x with a t-dependent matrix, so x and c must interact
//! multiplicatively, which per-layer injection plus SiLU provides).

use super::TimeConditionedNet;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

/// How the conditioning scalar is turned into features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CondEmbedding {
    /// Sinusoids of `ln c` (VE models, where `c = σ` spans orders of magnitude).
    Fourier,
    /// DDPM sinusoids of `c` (VP/sub-VP models, `c = 999·t`).
    Positional,
}

fn default_hidden() -> i64 {
    128
}
fn default_layers() -> usize {
    3
}
fn default_embed() -> i64 {
    32
}

/// Hyper-parameters of [`Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Width of the hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden: i64,
    /// Number of hidden layers (≥ 1).
    #[serde(default = "default_layers")]
    pub n_layers: usize,
    /// Number of sinusoidal features of the condition (even, ≥ 2).
    #[serde(default = "default_embed")]
    pub embed_dim: i64,
    /// Condition embedding; `None` picks Fourier for VE and positional for VP/sub-VP.
    #[serde(default)]
    pub embedding: Option<CondEmbedding>,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: default_hidden(),
            n_layers: default_layers(),
            embed_dim: default_embed(),
            embedding: None,
        }
    }
}

/// The MLP; input and output have `dim` features per sample (`x` is flattened).
#[derive(Debug)]
pub struct Mlp {
    dim: i64,
    embedding: CondEmbedding,
    freqs: Tensor,
    embed: nn::Linear,
    input: nn::Linear,
    layers: Vec<nn::Linear>,
    cond_proj: Vec<nn::Linear>,
    output: nn::Linear,
}

impl Mlp {
    /// Builds the MLP's variables under `path` for samples of `dim` features.
    pub fn new(
        path: &nn::Path,
        dim: i64,
        cfg: &MlpConfig,
        embedding: CondEmbedding,
    ) -> Result<Self> {
        if dim < 1
            || cfg.hidden < 1
            || cfg.n_layers < 1
            || cfg.embed_dim < 2
            || cfg.embed_dim % 2 != 0
        {
            return Err(Error::Config(format!(
                "MLP needs dim >= 1, hidden >= 1, n_layers >= 1 and an even embed_dim >= 2; got dim={dim}, hidden={}, n_layers={}, embed_dim={}",
                cfg.hidden, cfg.n_layers, cfg.embed_dim
            )));
        }
        let half = cfg.embed_dim / 2;
        let (lo, hi): (f64, f64) = match embedding {
            CondEmbedding::Fourier => (0.25f64.ln(), 32f64.ln()),
            CondEmbedding::Positional => ((1e-4f64).ln(), 0.0),
        };
        let freqs: Vec<f32> = (0..half)
            .map(|k| {
                let a = if half == 1 {
                    0.0
                } else {
                    k as f64 / (half - 1) as f64
                };
                (lo + (hi - lo) * a).exp() as f32
            })
            .collect();
        let freqs = Tensor::from_slice(&freqs).to_device(path.device());
        let h = cfg.hidden;
        let embed = nn::linear(path / "embed", cfg.embed_dim, h, Default::default());
        let input = nn::linear(path / "input", dim, h, Default::default());
        let layers = (1..cfg.n_layers)
            .map(|i| nn::linear(path / format!("layer{i}"), h, h, Default::default()))
            .collect();
        let cond_proj = (0..cfg.n_layers)
            .map(|i| nn::linear(path / format!("cond{i}"), h, h, Default::default()))
            .collect();
        let output = nn::linear(path / "output", h, dim, Default::default());
        Ok(Self {
            dim,
            embedding,
            freqs,
            embed,
            input,
            layers,
            cond_proj,
            output,
        })
    }

    /// Sinusoidal features `γ(c)`, shape `[B, embed_dim]`.
    fn features(&self, cond: &Tensor) -> Tensor {
        let u = match self.embedding {
            CondEmbedding::Fourier => cond.log(),
            CondEmbedding::Positional => cond.shallow_clone(),
        };
        let arg = u.to_kind(Kind::Float).unsqueeze(1) * self.freqs.unsqueeze(0);
        Tensor::cat(&[arg.sin(), arg.cos()], 1)
    }
}

impl TimeConditionedNet for Mlp {
    fn forward_t(&self, x: &Tensor, cond: &Tensor, _train: bool) -> Tensor {
        let shape = x.size();
        let xf = x.flatten(1, -1);
        debug_assert_eq!(xf.size()[1], self.dim);
        let e = self
            .embed
            .forward(&self.features(cond).to_kind(xf.kind()))
            .silu();
        let mut h = (self.input.forward(&xf) + self.cond_proj[0].forward(&e)).silu();
        for (layer, proj) in self.layers.iter().zip(&self.cond_proj[1..]) {
            h = (layer.forward(&h) + proj.forward(&e)).silu();
        }
        self.output.forward(&h).reshape(shape.as_slice())
    }
}

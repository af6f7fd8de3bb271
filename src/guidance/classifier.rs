//! Time-dependent classifiers `p_t(y | x(t))` for classifier guidance (Song et al. 2021, §5 and
//! App. I.4; Dhariwal & Nichol 2021 use the same construction for ADM).
//!
//! A [`TimeDependentClassifier`] maps a batch `x(t)` and its times `t` to logits `[B, K]`; the
//! class posterior is `p_t(y | x) = softmax(logits)_y`. Networks see the same conditioning
//! scalar as the score model of the same SDE (score_sde_pytorch's `get_score_fn`):
//! `c = σ(t)` for VE, `c = 999·t` for VP and sub-VP.
//!
//! * [`MlpClassifierNet`]: for low-dimensional data, the layer stack of
//!   [`crate::models::mlp`] (`h₀ = SiLU(W_x x + U₀ e)`, `h_{l+1} = SiLU(W_l h_l + U_{l+1} e)`,
//!   `e = SiLU(W_e γ(c))`, sinusoids of `ln c` for VE / of `c` for VP) with a `K`-way head.
//! * [`ConvClassifierNet`]: for images, the encoder half of NCSN++/DDPM++ (the
//!   `ResnetBlockDDPMpp` residual blocks of [`crate::models::layers`], GroupNorm, time embedding
//!   injected in every block; Gaussian Fourier features of `ln σ` for VE, the transformer
//!   sinusoidal embedding of `999 t` for VP), 2× average-pool downsampling between levels,
//!   GroupNorm + SiLU, global average pooling and a linear head — the "WideResNet-style"
//!   time-dependent classifier of score_sde's class-conditional CIFAR-10 experiment in a small
//!   form.
//! * [`AnalyticClassifier`]: the exact `log p_t(k | x)` of a Gaussian mixture pushed through an
//!   SDE ([`PerturbedMixture::class_log_posterior`]), for acceptance tests.

use crate::models::analytic::PerturbedMixture;
use crate::models::config::Nonlinearity;
use crate::models::layers::layerspp::{BlockOpts, ResnetBlockDdpmpp};
use crate::models::layers::{
    act, timestep_embedding, Conv2d, GaussianFourierProjection, GroupNorm, Linear,
};
use crate::models::mlp::CondEmbedding;
use crate::models::score_net::VP_TIME_SCALE;
use crate::models::TimeConditionedNet;
use crate::sde::{Sde, SdeConfig, SdeKind};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

/// `p_t(y | x(t))` as logits.
///
/// `x` is `[B] ++ sample_shape`, `t` is `[B]` (dtype/device of `x`); the result is `[B, K]`.
/// Must be differentiable in `x` (guidance back-propagates through it).
pub trait TimeDependentClassifier: Send + Sync {
    /// Logits `[B, K]` of `p_t(· | x)`.
    fn logits(&self, x: &Tensor, t: &Tensor) -> Tensor;
    /// Number of classes `K`.
    fn n_classes(&self) -> i64;
    /// Per-sample shape this classifier accepts, if fixed.
    fn sample_shape(&self) -> Option<Vec<i64>> {
        None
    }
}

impl<T: TimeDependentClassifier + ?Sized> TimeDependentClassifier for &T {
    fn logits(&self, x: &Tensor, t: &Tensor) -> Tensor {
        (**self).logits(x, t)
    }
    fn n_classes(&self) -> i64 {
        (**self).n_classes()
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        (**self).sample_shape()
    }
}

impl<T: TimeDependentClassifier + ?Sized> TimeDependentClassifier for Box<T> {
    fn logits(&self, x: &Tensor, t: &Tensor) -> Tensor {
        (**self).logits(x, t)
    }
    fn n_classes(&self) -> i64 {
        (**self).n_classes()
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        (**self).sample_shape()
    }
}

/// The exact time-dependent classifier of a Gaussian mixture: logits `= log p_t(k | x)`.
pub struct AnalyticClassifier {
    /// The perturbed mixture whose component posterior is the classifier.
    pub mixture: PerturbedMixture,
}

impl AnalyticClassifier {
    /// Wraps the exact class posterior of `mixture`.
    pub fn new(mixture: PerturbedMixture) -> Self {
        Self { mixture }
    }
}

impl TimeDependentClassifier for AnalyticClassifier {
    fn logits(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self.mixture.class_log_posterior(x, t)
    }
    fn n_classes(&self) -> i64 {
        self.mixture.mixture.n_components() as i64
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        crate::models::ScoreModel::sample_shape(&self.mixture)
    }
}

fn d_hidden() -> i64 {
    128
}
fn d_layers() -> usize {
    3
}
fn d_embed() -> i64 {
    32
}
fn d_nf() -> i64 {
    32
}
fn d_ch_mult() -> Vec<i64> {
    vec![1, 2, 2]
}
fn d_blocks() -> usize {
    1
}
fn d_fourier_scale() -> f64 {
    16.0
}

/// Hyper-parameters of [`MlpClassifierNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpClassifierConfig {
    /// Width of the hidden layers.
    #[serde(default = "d_hidden")]
    pub hidden: i64,
    /// Number of hidden layers (≥ 1).
    #[serde(default = "d_layers")]
    pub n_layers: usize,
    /// Number of sinusoidal features of the condition (even, ≥ 2).
    #[serde(default = "d_embed")]
    pub embed_dim: i64,
}

impl Default for MlpClassifierConfig {
    fn default() -> Self {
        Self {
            hidden: d_hidden(),
            n_layers: d_layers(),
            embed_dim: d_embed(),
        }
    }
}

/// Hyper-parameters of [`ConvClassifierNet`] (names of score_sde's `model.*` fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvClassifierConfig {
    /// Base channel count (`model.nf`); must be a multiple of 4 (GroupNorm groups).
    #[serde(default = "d_nf")]
    pub nf: i64,
    /// Channel multiplier per resolution (`model.ch_mult`); one 2× downsampling between levels.
    #[serde(default = "d_ch_mult")]
    pub ch_mult: Vec<i64>,
    /// Residual blocks per resolution (`model.num_res_blocks`).
    #[serde(default = "d_blocks")]
    pub num_res_blocks: usize,
    /// Dropout inside the residual blocks during training.
    #[serde(default)]
    pub dropout: f64,
    /// Scale of the Gaussian Fourier features of `ln σ` (VE), `model.fourier_scale`.
    #[serde(default = "d_fourier_scale")]
    pub fourier_scale: f64,
}

impl Default for ConvClassifierConfig {
    fn default() -> Self {
        Self {
            nf: d_nf(),
            ch_mult: d_ch_mult(),
            num_res_blocks: d_blocks(),
            dropout: 0.0,
            fourier_scale: d_fourier_scale(),
        }
    }
}

/// Which classifier network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClassifierConfig {
    /// [`MlpClassifierNet`] for vectors (2-D toy data).
    Mlp(MlpClassifierConfig),
    /// [`ConvClassifierNet`] for images `[C, H, W]`.
    Conv(ConvClassifierConfig),
}

impl ClassifierConfig {
    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            ClassifierConfig::Mlp(_) => "mlp",
            ClassifierConfig::Conv(_) => "conv",
        }
    }

    /// Builds the network's variables under `path` for samples of `shape` and `n_classes`
    /// classes, conditioned as the score model of an SDE of kind `sde`.
    pub fn build(
        &self,
        path: &nn::Path,
        shape: &[i64],
        n_classes: i64,
        sde: SdeKind,
    ) -> Result<Box<dyn TimeConditionedNet>> {
        if n_classes < 2 {
            return Err(Error::Config(format!(
                "a classifier needs at least 2 classes, got {n_classes}"
            )));
        }
        match self {
            ClassifierConfig::Mlp(c) => {
                let dim: i64 = shape.iter().product();
                Ok(Box::new(MlpClassifierNet::new(
                    path, dim, n_classes, c, sde,
                )?))
            }
            ClassifierConfig::Conv(c) => {
                let [ch, h, w] = shape[..] else {
                    return Err(Error::Config(format!(
                        "the conv classifier needs images [C, H, W], the data has per-sample shape {shape:?} (use the mlp classifier for vectors)"
                    )));
                };
                Ok(Box::new(ConvClassifierNet::new(
                    path,
                    (ch, h, w),
                    n_classes,
                    c,
                    sde,
                )?))
            }
        }
    }
}

/// Embedding kind of an SDE, as [`crate::models::mlp`] picks it.
fn embedding_for(sde: SdeKind) -> CondEmbedding {
    match sde {
        SdeKind::Ve => CondEmbedding::Fourier,
        SdeKind::Vp | SdeKind::SubVp => CondEmbedding::Positional,
    }
}

/// The MLP classifier: [`crate::models::mlp`]'s conditioned stack with a `K`-way head.
#[derive(Debug)]
pub struct MlpClassifierNet {
    dim: i64,
    embedding: CondEmbedding,
    freqs: Tensor,
    embed: nn::Linear,
    input: nn::Linear,
    layers: Vec<nn::Linear>,
    cond_proj: Vec<nn::Linear>,
    head: nn::Linear,
}

impl MlpClassifierNet {
    /// Variables under `path` for `dim` input features and `n_classes` outputs.
    pub fn new(
        path: &nn::Path,
        dim: i64,
        n_classes: i64,
        cfg: &MlpClassifierConfig,
        sde: SdeKind,
    ) -> Result<Self> {
        if dim < 1
            || cfg.hidden < 1
            || cfg.n_layers < 1
            || cfg.embed_dim < 2
            || cfg.embed_dim % 2 != 0
        {
            return Err(Error::Config(format!(
                "MLP classifier needs dim >= 1, hidden >= 1, n_layers >= 1 and an even embed_dim >= 2; got dim={dim}, hidden={}, n_layers={}, embed_dim={}",
                cfg.hidden, cfg.n_layers, cfg.embed_dim
            )));
        }
        let embedding = embedding_for(sde);
        // Same frequencies as models::mlp: geometric in [1/4, 32] for ln σ, DDPM's
        // 10000^{-k/(K-1)} for 999 t.
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
        let h = cfg.hidden;
        Ok(Self {
            dim,
            embedding,
            freqs: Tensor::from_slice(&freqs).to_device(path.device()),
            embed: nn::linear(path / "embed", cfg.embed_dim, h, Default::default()),
            input: nn::linear(path / "input", dim, h, Default::default()),
            layers: (1..cfg.n_layers)
                .map(|i| nn::linear(path / format!("layer{i}"), h, h, Default::default()))
                .collect(),
            cond_proj: (0..cfg.n_layers)
                .map(|i| nn::linear(path / format!("cond{i}"), h, h, Default::default()))
                .collect(),
            head: nn::linear(path / "head", h, n_classes, Default::default()),
        })
    }
}

impl TimeConditionedNet for MlpClassifierNet {
    fn forward_t(&self, x: &Tensor, cond: &Tensor, _train: bool) -> Tensor {
        let xf = x.flatten(1, -1);
        debug_assert_eq!(xf.size()[1], self.dim);
        let u = match self.embedding {
            CondEmbedding::Fourier => cond.log(),
            CondEmbedding::Positional => cond.shallow_clone(),
        };
        let arg = u.to_kind(Kind::Float).unsqueeze(1) * self.freqs.unsqueeze(0);
        let feats = Tensor::cat(&[arg.sin(), arg.cos()], 1).to_kind(xf.kind());
        let e = self.embed.forward(&feats).silu();
        let mut h = (self.input.forward(&xf) + self.cond_proj[0].forward(&e)).silu();
        for (layer, proj) in self.layers.iter().zip(&self.cond_proj[1..]) {
            h = (layer.forward(&h) + proj.forward(&e)).silu();
        }
        self.head.forward(&h)
    }
}

/// The convolutional classifier (encoder of NCSN++/DDPM++ + pooling + linear head).
#[derive(Debug)]
pub struct ConvClassifierNet {
    sde: SdeKind,
    nf: i64,
    fourier: Option<GaussianFourierProjection>,
    dense0: Linear,
    dense1: Linear,
    conv_in: Conv2d,
    /// Blocks per level; a 2× average pool follows every level but the last.
    levels: Vec<Vec<ResnetBlockDdpmpp>>,
    norm_out: GroupNorm,
    head: Linear,
}

impl ConvClassifierNet {
    /// Variables under `path` for images `(C, H, W)` and `n_classes` outputs.
    pub fn new(
        path: &nn::Path,
        (ch, h, w): (i64, i64, i64),
        n_classes: i64,
        cfg: &ConvClassifierConfig,
        sde: SdeKind,
    ) -> Result<Self> {
        if cfg.nf < 4 || cfg.nf % 4 != 0 || cfg.ch_mult.is_empty() || cfg.num_res_blocks < 1 {
            return Err(Error::Config(format!(
                "conv classifier needs nf a positive multiple of 4, a non-empty ch_mult and num_res_blocks >= 1; got {cfg:?}"
            )));
        }
        if cfg.ch_mult.iter().any(|&m| m < 1) || !(0.0..1.0).contains(&cfg.dropout) {
            return Err(Error::Config(format!(
                "conv classifier: ch_mult entries must be >= 1 and 0 <= dropout < 1; got {cfg:?}"
            )));
        }
        let down = 1i64 << (cfg.ch_mult.len() - 1);
        if ch < 1 || h < down || w < down {
            return Err(Error::Config(format!(
                "conv classifier with {} levels halves the image {} times; images {ch}×{h}×{w} are too small",
                cfg.ch_mult.len(),
                cfg.ch_mult.len() - 1
            )));
        }
        let nf = cfg.nf;
        let temb_dim = 4 * nf;
        let fourier = (sde == SdeKind::Ve)
            .then(|| GaussianFourierProjection::new(&(path / "fourier"), nf, cfg.fourier_scale));
        let emb_in = 2 * nf;
        let dense0 = Linear::new(&(path / "temb0"), emb_in, temb_dim);
        let dense1 = Linear::new(&(path / "temb1"), temb_dim, temb_dim);
        let conv_in = Conv2d::conv3x3(&(path / "conv_in"), ch, nf, 1.0);
        let opts = BlockOpts {
            act: Nonlinearity::Swish,
            dropout: cfg.dropout,
            skip_rescale: true,
            init_scale: 0.0,
            temb_dim,
        };
        let mut levels = Vec::with_capacity(cfg.ch_mult.len());
        let mut cin = nf;
        for (l, &mult) in cfg.ch_mult.iter().enumerate() {
            let cout = nf * mult;
            let mut blocks = Vec::with_capacity(cfg.num_res_blocks);
            for b in 0..cfg.num_res_blocks {
                blocks.push(ResnetBlockDdpmpp::new(
                    &(path / format!("level{l}") / format!("block{b}")),
                    cin,
                    cout,
                    opts,
                )?);
                cin = cout;
            }
            levels.push(blocks);
        }
        let norm_out = GroupNorm::ncsnpp(&(path / "norm_out"), cin)?;
        let head = Linear::new(&(path / "head"), cin, n_classes);
        Ok(Self {
            sde,
            nf,
            fourier,
            dense0,
            dense1,
            conv_in,
            levels,
            norm_out,
            head,
        })
    }

    /// Time embedding `[B, 4 nf]` of the condition (σ for VE, 999 t for VP).
    fn temb(&self, cond: &Tensor, kind: Kind) -> Tensor {
        let feats = match (&self.fourier, self.sde) {
            (Some(f), SdeKind::Ve) => f.forward(&cond.to_kind(Kind::Float).log()),
            _ => timestep_embedding(&cond.to_kind(Kind::Float), 2 * self.nf),
        }
        .to_kind(kind);
        let e = self.dense0.forward(&feats);
        self.dense1.forward(&act(Nonlinearity::Swish, &e))
    }
}

impl TimeConditionedNet for ConvClassifierNet {
    fn forward_t(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        let temb = self.temb(cond, x.kind());
        let mut h = self.conv_in.forward(x);
        let n = self.levels.len();
        for (l, blocks) in self.levels.iter().enumerate() {
            for b in blocks {
                h = b.forward(&h, Some(&temb), train);
            }
            if l + 1 < n {
                h = h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
            }
        }
        let h = act(Nonlinearity::Swish, &self.norm_out.forward(&h));
        let pooled = h.mean_dim([2i64, 3].as_slice(), false, h.kind());
        self.head.forward(&pooled)
    }
}

/// A classifier network plus the SDE that defines its conditioning: a
/// [`TimeDependentClassifier`].
pub struct NetClassifier {
    net: Box<dyn TimeConditionedNet>,
    sde: Box<dyn Sde>,
    sde_config: SdeConfig,
    n_classes: i64,
    sample_shape: Vec<i64>,
    /// Keeps the variables alive when the classifier owns them (loaded from disk).
    _vs: Option<nn::VarStore>,
}

// SAFETY: `TimeDependentClassifier` requires `Sync`. The only shared state is the network's
// parameter tensors, which `forward_t(&self, ..)` only reads; libtorch supports concurrent
// reads of a tensor (the same argument as `NetScore`).
unsafe impl Sync for NetClassifier {}

impl NetClassifier {
    /// Wraps `net` (outputs `[B, n_classes]`) for `sde`; `sample_shape` is the per-sample shape.
    pub fn new(
        net: Box<dyn TimeConditionedNet>,
        sde: SdeConfig,
        n_classes: i64,
        sample_shape: Vec<i64>,
    ) -> Result<Self> {
        Ok(Self {
            net,
            sde: sde.build()?,
            sde_config: sde,
            n_classes,
            sample_shape,
            _vs: None,
        })
    }

    /// Transfers ownership of the variable store holding the network's weights.
    pub fn with_var_store(mut self, vs: nn::VarStore) -> Self {
        self._vs = Some(vs);
        self
    }

    /// The SDE configuration.
    pub fn sde_config(&self) -> SdeConfig {
        self.sde_config
    }

    /// Conditioning `c(t)`: σ(t) for VE, 999·t for VP/sub-VP; `[B]`.
    pub fn cond(&self, x: &Tensor, t: &Tensor) -> Tensor {
        match self.sde.kind() {
            SdeKind::Ve => self.sde.marginal_prob(x, t).1.to_kind(x.kind()),
            SdeKind::Vp | SdeKind::SubVp => t * VP_TIME_SCALE,
        }
    }

    /// Logits with dropout on when `train`.
    pub fn logits_train(&self, x: &Tensor, t: &Tensor, train: bool) -> Tensor {
        self.net.forward_t(x, &self.cond(x, t), train)
    }

    /// Logits of clean data: the network at the smallest sampling time `sde.sampling_eps()`
    /// (how a `--clean` classifier is trained and used).
    pub fn clean_logits(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0];
        let t = Tensor::full([b], self.sde.sampling_eps(), (x.kind(), x.device()));
        self.logits_train(x, &t, false)
    }
}

impl TimeDependentClassifier for NetClassifier {
    fn logits(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self.logits_train(x, t, false)
    }
    fn n_classes(&self) -> i64 {
        self.n_classes
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        Some(self.sample_shape.clone())
    }
}

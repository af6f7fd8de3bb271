//! score_sde_pytorch configurations of the NCSN++ / DDPM++ network (`config.model`,
//! `config.data`, `config.training` of Song et al. 2021, "Score-Based Generative Modeling
//! through Stochastic Differential Equations", reference code score_sde_pytorch).
//!
//! Field names are exactly those of score_sde_pytorch's ml_collections configs, so a config
//! dumped from Python (`config.to_dict()` written as JSON) deserialises directly. Defaults are
//! the published `configs/ve/cifar10_ncsnpp_continuous.py` values (NCSN++ cont., VE, 32×32×3).
//! Fields the network does not read (optimiser, sampling, eval …) are ignored. String choices are
//! case-insensitive, as upstream lower-cases them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Residual block flavour (`config.model.resblock_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResblockType {
    /// `ResnetBlockBigGANpp`: resampling inside the block (FIR or naive), 1×1 conv shortcut.
    Biggan,
    /// `ResnetBlockDDPMpp` with separate `Downsample` / `Upsample` modules, NIN shortcut.
    Ddpm,
}

/// Output pyramid (`config.model.progressive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progressive {
    None,
    OutputSkip,
    Residual,
}

/// Input pyramid (`config.model.progressive_input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressiveInput {
    None,
    InputSkip,
    Residual,
}

/// How the input pyramid is merged (`config.model.progressive_combine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressiveCombine {
    Sum,
    Cat,
}

/// Noise-level embedding (`config.model.embedding_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingType {
    /// Gaussian Fourier features of `log σ` (continuous VE models).
    Fourier,
    /// Transformer sinusoidal embedding of the label (`999·t` for VP).
    Positional,
}

/// Activation (`config.model.nonlinearity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nonlinearity {
    Elu,
    Relu,
    /// Leaky ReLU with slope 0.2.
    Lrelu,
    /// SiLU `x·sigmoid(x)`.
    Swish,
}

macro_rules! parse_choice {
    ($ty:ty, $field:literal, $($s:literal => $v:expr),+ $(,)?) => {
        impl std::str::FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($v),)+
                    other => Err(Error::Config(format!(
                        "model.{} = '{}' is not supported; expected one of {}",
                        $field, other, [$($s),+].map(|x| format!("'{x}'")).join(", ")
                    ))),
                }
            }
        }
    };
}
parse_choice!(ResblockType, "resblock_type", "biggan" => ResblockType::Biggan, "ddpm" => ResblockType::Ddpm);
parse_choice!(Progressive, "progressive", "none" => Progressive::None,
    "output_skip" => Progressive::OutputSkip, "residual" => Progressive::Residual);
parse_choice!(ProgressiveInput, "progressive_input", "none" => ProgressiveInput::None,
    "input_skip" => ProgressiveInput::InputSkip, "residual" => ProgressiveInput::Residual);
parse_choice!(ProgressiveCombine, "progressive_combine", "sum" => ProgressiveCombine::Sum,
    "cat" => ProgressiveCombine::Cat);
parse_choice!(EmbeddingType, "embedding_type", "fourier" => EmbeddingType::Fourier,
    "positional" => EmbeddingType::Positional);
parse_choice!(Nonlinearity, "nonlinearity", "elu" => Nonlinearity::Elu, "relu" => Nonlinearity::Relu,
    "lrelu" => Nonlinearity::Lrelu, "swish" => Nonlinearity::Swish);

fn d_name() -> String {
    "ncsnpp".into()
}
fn d_nf() -> usize {
    128
}
fn d_ch_mult() -> Vec<usize> {
    vec![1, 2, 2, 2]
}
fn d_num_res_blocks() -> usize {
    4
}
fn d_attn() -> Vec<usize> {
    vec![16]
}
fn d_dropout() -> f64 {
    0.1
}
fn d_true() -> bool {
    true
}
fn d_fir_kernel() -> Vec<f64> {
    vec![1.0, 3.0, 3.0, 1.0]
}
fn d_biggan() -> String {
    "biggan".into()
}
fn d_none() -> String {
    "none".into()
}
fn d_residual() -> String {
    "residual".into()
}
fn d_sum() -> String {
    "sum".into()
}
fn d_ddpm() -> String {
    "ddpm".into()
}
fn d_zero() -> f64 {
    0.0
}
fn d_fourier_scale() -> f64 {
    16.0
}
fn d_fourier() -> String {
    "fourier".into()
}
fn d_conv_size() -> usize {
    3
}
fn d_swish() -> String {
    "swish".into()
}
fn d_groupnorm() -> String {
    "GroupNorm".into()
}
fn d_sigma_min() -> f64 {
    0.01
}
fn d_sigma_max() -> f64 {
    50.0
}
fn d_num_scales() -> usize {
    1000
}
fn d_beta_min() -> f64 {
    0.1
}
fn d_beta_max() -> f64 {
    20.0
}
fn d_image_size() -> usize {
    32
}
fn d_num_channels() -> usize {
    3
}

/// `config.model` of score_sde_pytorch for `model.name = 'ncsnpp'`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NcsnppConfig {
    /// Registered model name; only `ncsnpp` is supported.
    #[serde(default = "d_name")]
    pub name: String,
    /// Base channel count.
    #[serde(default = "d_nf")]
    pub nf: usize,
    /// Channel multiplier per resolution level.
    #[serde(default = "d_ch_mult")]
    pub ch_mult: Vec<usize>,
    /// Residual blocks per level on the way down (one more on the way up).
    #[serde(default = "d_num_res_blocks")]
    pub num_res_blocks: usize,
    /// Spatial resolutions (feature-map widths) that get self-attention.
    #[serde(default = "d_attn")]
    pub attn_resolutions: Vec<usize>,
    /// Dropout probability inside residual blocks (active only when training).
    #[serde(default = "d_dropout")]
    pub dropout: f64,
    /// Learned convolutions in `Upsample` / `Downsample`.
    #[serde(default = "d_true")]
    pub resamp_with_conv: bool,
    /// Time/noise conditioning through the embedding MLP.
    #[serde(default = "d_true")]
    pub conditional: bool,
    /// FIR (StyleGAN2) resampling instead of nearest / average pooling.
    #[serde(default = "d_true")]
    pub fir: bool,
    /// 1-D separable FIR kernel.
    #[serde(default = "d_fir_kernel")]
    pub fir_kernel: Vec<f64>,
    /// Divide every residual sum by √2.
    #[serde(default = "d_true")]
    pub skip_rescale: bool,
    /// `biggan` or `ddpm`.
    #[serde(default = "d_biggan")]
    pub resblock_type: String,
    /// `none`, `output_skip` or `residual`.
    #[serde(default = "d_none")]
    pub progressive: String,
    /// `none`, `input_skip` or `residual`.
    #[serde(default = "d_residual")]
    pub progressive_input: String,
    /// `sum` or `cat`.
    #[serde(default = "d_sum")]
    pub progressive_combine: String,
    /// Only `ddpm` exists in score_sde_pytorch.
    #[serde(default = "d_ddpm")]
    pub attention_type: String,
    /// Scale of the variance-scaling init of output layers (0 means 1e-10).
    #[serde(default = "d_zero")]
    pub init_scale: f64,
    /// Standard deviation of the Gaussian Fourier projection `W`.
    #[serde(default = "d_fourier_scale")]
    pub fourier_scale: f64,
    /// `fourier` or `positional`.
    #[serde(default = "d_fourier")]
    pub embedding_type: String,
    /// Divide the output by the noise level σ.
    #[serde(default = "d_true")]
    pub scale_by_sigma: bool,
    /// Convolution size; NCSNpp always uses 3×3, so only 3 is accepted.
    #[serde(default = "d_conv_size")]
    pub conv_size: usize,
    /// `swish`, `elu`, `relu` or `lrelu`.
    #[serde(default = "d_swish")]
    pub nonlinearity: String,
    /// Not read by NCSNpp (it always uses GroupNorm); kept for round trips.
    #[serde(default = "d_groupnorm")]
    pub normalization: String,
    /// σ_min of the `sigmas` buffer (used with positional embedding and `scale_by_sigma`).
    #[serde(default = "d_sigma_min")]
    pub sigma_min: f64,
    /// σ_max of the `sigmas` buffer.
    #[serde(default = "d_sigma_max")]
    pub sigma_max: f64,
    /// Length of the `sigmas` buffer.
    #[serde(default = "d_num_scales")]
    pub num_scales: usize,
    /// VP β_min (not used by the network; kept for round trips).
    #[serde(default = "d_beta_min")]
    pub beta_min: f64,
    /// VP β_max (not used by the network; kept for round trips).
    #[serde(default = "d_beta_max")]
    pub beta_max: f64,
}

impl Default for NcsnppConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all fields have defaults")
    }
}

/// `config.data` fields the network reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// Training image side length.
    #[serde(default = "d_image_size")]
    pub image_size: usize,
    /// Image channels.
    #[serde(default = "d_num_channels")]
    pub num_channels: usize,
    /// Data in `[-1, 1]` (true) or `[0, 1]` (false: the network maps `x ↦ 2x − 1` first).
    #[serde(default)]
    pub centered: bool,
    /// Conditioning channels after the image channels in the network's input (2 for a patch
    /// model: the row and column position, [`crate::models::patch`]); the output has
    /// `num_channels`. Not in score_sde_pytorch; 0 there.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extra_input_channels: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for DataConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all fields have defaults")
    }
}

/// `config.training` fields the network reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// Continuous-time training (required by the Fourier embedding).
    #[serde(default = "d_true")]
    pub continuous: bool,
    /// `vesde`, `vpsde` or `subvpsde` (informative; not read by the network).
    #[serde(default)]
    pub sde: Option<String>,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all fields have defaults")
    }
}

/// The parts of a score_sde_pytorch config that define an NCSN++ network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreSdeConfig {
    #[serde(default)]
    pub model: NcsnppConfig,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub training: TrainingConfig,
}

/// The validated, typed architecture derived from a [`ScoreSdeConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct NcsnppArch {
    pub nf: i64,
    pub ch_mult: Vec<i64>,
    pub num_res_blocks: usize,
    pub attn_resolutions: Vec<i64>,
    pub dropout: f64,
    pub resamp_with_conv: bool,
    pub conditional: bool,
    pub fir: bool,
    pub fir_kernel: Vec<f64>,
    pub skip_rescale: bool,
    pub resblock_type: ResblockType,
    pub progressive: Progressive,
    pub progressive_input: ProgressiveInput,
    pub progressive_combine: ProgressiveCombine,
    pub init_scale: f64,
    pub fourier_scale: f64,
    pub embedding_type: EmbeddingType,
    pub scale_by_sigma: bool,
    pub nonlinearity: Nonlinearity,
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub num_scales: usize,
    pub image_size: i64,
    pub num_channels: i64,
    /// Conditioning input channels after the image channels ([`DataConfig`]).
    pub extra_input_channels: i64,
    pub centered: bool,
}

impl ScoreSdeConfig {
    /// Reads a config from JSON: either the config object itself (with `model` / `data` /
    /// `training` sub-objects, as in the parity fixtures' `config`), or a model-directory file
    /// `{"format": "score_sde", "config": {...}}`.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::Config("score_sde config: expected a JSON object".to_string()))?;
        let inner = match obj.get("format") {
            Some(f) if f.as_str() == Some("score_sde") => obj.get("config").ok_or_else(|| {
                Error::Config(
                    "score_sde config: format 'score_sde' without a 'config' object".into(),
                )
            })?,
            Some(f) => {
                return Err(Error::Config(format!(
                    "config format {f} is not 'score_sde'"
                )))
            }
            None => value,
        };
        if inner.get("model").is_none() {
            return Err(Error::Config(
                "score_sde config: no 'model' object (expected model/data/training sub-objects)"
                    .into(),
            ));
        }
        let cfg: ScoreSdeConfig = serde_json::from_value(inner.clone())
            .map_err(|e| Error::Config(format!("score_sde config: {e}")))?;
        cfg.arch()?;
        Ok(cfg)
    }

    /// Reads [`ScoreSdeConfig::from_json_value`] from a file.
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?;
        Self::from_json_value(&value)
    }

    /// Validates every field the network reads and returns the typed architecture.
    pub fn arch(&self) -> Result<NcsnppArch> {
        let m = &self.model;
        let d = &self.data;
        let bad = |msg: String| Err(Error::Config(msg));
        if !m.name.eq_ignore_ascii_case("ncsnpp") {
            return bad(format!(
                "model.name = '{}' is not supported; only 'ncsnpp' (NCSN++ / DDPM++) is",
                m.name
            ));
        }
        if m.nf == 0 {
            return bad("model.nf must be positive".into());
        }
        if m.ch_mult.is_empty() || m.ch_mult.contains(&0) {
            return bad(format!(
                "model.ch_mult = {:?} must be non-empty and positive",
                m.ch_mult
            ));
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return bad(format!("model.dropout = {} must lie in [0, 1)", m.dropout));
        }
        if m.fir_kernel.is_empty()
            || m.fir_kernel.iter().any(|v| !v.is_finite())
            || m.fir_kernel.iter().sum::<f64>() == 0.0
        {
            return bad(format!(
                "model.fir_kernel = {:?} must be non-empty, finite, with a non-zero sum",
                m.fir_kernel
            ));
        }
        if !m.attention_type.eq_ignore_ascii_case("ddpm") {
            return bad(format!(
                "model.attention_type = '{}' is not supported; only 'ddpm'",
                m.attention_type
            ));
        }
        if m.conv_size != 3 {
            return bad(format!(
                "model.conv_size = {} is not supported: NCSNpp always uses 3x3 convolutions",
                m.conv_size
            ));
        }
        // The init draws U(±√(3·init_scale/fan)) and W ~ N(0, fourier_scale²) in float32: beyond
        // 1e6 the bounds leave float32's range (libtorch refuses the draw), and no published
        // config comes near (score_sde: 0 and 16).
        if !(m.init_scale.is_finite() && (0.0..=1e6).contains(&m.init_scale)) {
            return bad(format!(
                "model.init_scale must lie in [0, 1e6], got {}",
                m.init_scale
            ));
        }
        if !(m.fourier_scale.is_finite() && m.fourier_scale.abs() <= 1e6) {
            return bad(format!(
                "model.fourier_scale must be finite with |fourier_scale| <= 1e6, got {}",
                m.fourier_scale
            ));
        }
        let embedding_type: EmbeddingType = m.embedding_type.parse()?;
        if embedding_type == EmbeddingType::Fourier && !self.training.continuous {
            return bad(
                "model.embedding_type = 'fourier' requires training.continuous = true".into(),
            );
        }
        if embedding_type == EmbeddingType::Positional && m.nf < 4 {
            return bad(format!(
                "model.nf = {} too small for the positional embedding (needs nf >= 4)",
                m.nf
            ));
        }
        if !(m.sigma_min > 0.0
            && m.sigma_max > 0.0
            && m.sigma_min.is_finite()
            && m.sigma_max.is_finite()
            && m.num_scales > 0)
        {
            return bad(
                "model.sigma_min, sigma_max and num_scales must be positive (and the \
                        sigmas finite)"
                    .into(),
            );
        }
        if d.num_channels == 0 {
            return bad("data.num_channels must be positive".into());
        }
        // Sizes become i64 tensor dimensions; far beyond any real network, refuse them here
        // rather than let them wrap (the memory a valid config needs is checked by
        // `check_size`).
        const MAX_SIZE: usize = 1 << 31;
        for (name, v) in [
            ("model.nf", m.nf),
            ("data.image_size", d.image_size),
            ("data.num_channels", d.num_channels),
            ("model.num_res_blocks", m.num_res_blocks),
            ("model.num_scales", m.num_scales),
        ]
        .into_iter()
        .chain(m.ch_mult.iter().map(|&c| ("model.ch_mult", c)))
        {
            if v > MAX_SIZE {
                return bad(format!("{name} = {v} is too large (at most {MAX_SIZE})"));
            }
        }
        if m.ch_mult.len() > 32 || m.fir_kernel.len() > 1024 {
            return bad(format!(
                "model.ch_mult has {} levels and model.fir_kernel {} taps: at most 32 and 1024",
                m.ch_mult.len(),
                m.fir_kernel.len()
            ));
        }
        let levels = m.ch_mult.len() as u32;
        let div = 1usize << (levels - 1);
        if d.image_size == 0 || !d.image_size.is_multiple_of(div) {
            return bad(format!(
                "data.image_size = {} must be a positive multiple of 2^(len(ch_mult)-1) = {div}",
                d.image_size
            ));
        }
        Ok(NcsnppArch {
            nf: m.nf as i64,
            ch_mult: m.ch_mult.iter().map(|&c| c as i64).collect(),
            num_res_blocks: m.num_res_blocks,
            attn_resolutions: m.attn_resolutions.iter().map(|&c| c as i64).collect(),
            dropout: m.dropout,
            resamp_with_conv: m.resamp_with_conv,
            conditional: m.conditional,
            fir: m.fir,
            fir_kernel: m.fir_kernel.clone(),
            skip_rescale: m.skip_rescale,
            resblock_type: m.resblock_type.parse()?,
            progressive: m.progressive.parse()?,
            progressive_input: m.progressive_input.parse()?,
            progressive_combine: m.progressive_combine.parse()?,
            init_scale: m.init_scale,
            fourier_scale: m.fourier_scale,
            embedding_type,
            scale_by_sigma: m.scale_by_sigma,
            nonlinearity: m.nonlinearity.parse()?,
            sigma_min: m.sigma_min,
            sigma_max: m.sigma_max,
            num_scales: m.num_scales,
            image_size: d.image_size as i64,
            num_channels: d.num_channels as i64,
            extra_input_channels: d.extra_input_channels as i64,
            centered: d.centered,
        })
    }
}

impl NcsnppArch {
    /// An upper bound on the number of parameters (and buffers) of the network, computed
    /// without building it: per resolution level, every residual block is counted with the
    /// largest channel counts it can have there (skip concatenations included), every
    /// attention block where the level's resolution gets one. Computed in f64, so absurd
    /// sizes give a huge bound rather than an overflow.
    pub fn parameter_bound(&self) -> u128 {
        let nf = self.nf.max(0) as f64;
        let cat = if self.progressive_input == ProgressiveInput::InputSkip
            && self.progressive_combine == ProgressiveCombine::Cat
        {
            2.0
        } else {
            1.0
        };
        let mult: Vec<f64> = self.ch_mult.iter().map(|&c| c.max(1) as f64).collect();
        let levels = mult.len();
        let max_of = |m: &[f64]| m.iter().copied().fold(1.0, f64::max);
        let b = self.num_res_blocks as f64;
        let temb = 4.0 * nf;
        let block = |cin: f64, cout: f64| {
            9.0 * cin * cout + 9.0 * cout * cout + cin * cout + temb * cout + 2.0 * cin + 6.0 * cout
        };
        let attn = |c: f64| 4.0 * c * c + 6.0 * c;
        let mut total = 0.0;
        for l in 0..levels {
            let lo = l.saturating_sub(1);
            let hi = (l + 1).min(levels - 1);
            let m = nf * max_of(&mult[lo..=hi]);
            let res = self.image_size >> l.min(62);
            let attns = if self.attn_resolutions.contains(&res) {
                2.0 * b + 1.0
            } else {
                0.0
            };
            // down: blocks (the first may take a concatenated input pyramid), transition and
            // pyramid; up: blocks on concatenated skips, the up-sampling op and the pyramid head
            total += b * block(cat * m, m) + block(m, m) + 9.0 * cat * m * m;
            total += (b + 1.0) * block((1.0 + cat) * m, m) + block(m, m) + 9.0 * m * m;
            total += attns * attn(m);
        }
        let top = nf * mult.last().copied().unwrap_or(1.0);
        total += 2.0 * block(top, top) + attn(top);
        let ch = self.num_channels.max(0) as f64;
        let wide = nf * max_of(&mult) * cat;
        // embedding MLP, Fourier features, input and output convolutions
        total += 2.0 * nf * temb + temb * temb + 2.0 * temb + nf + 18.0 * ch * wide + wide;
        // the σ table and the FIR kernels, in f64 (2 f32 each)
        let k = self.fir_kernel.len() as f64;
        total += 2.0 * self.num_scales as f64 + 4.0 * k * k;
        total as u128 // saturating
    }

    /// Bytes of the largest activation of a batch-1 forward pass (a full-resolution feature
    /// map of the widest level, f32).
    pub fn activation_bound(&self) -> u128 {
        let s = self.image_size.max(0) as f64;
        let wide = self.nf.max(0) as f64 * self.ch_mult.iter().copied().max().unwrap_or(1) as f64;
        (s * s * wide.max(self.num_channels.max(0) as f64) * 2.0 * 4.0) as u128
    }
}

impl ScoreSdeConfig {
    /// Refuses a config whose network would not fit in the memory budget
    /// ([`crate::io::budget`]): its parameters (held twice while weights are loaded into
    /// them) and one batch-1 activation, bounded by [`NcsnppArch::parameter_bound`] and
    /// [`NcsnppArch::activation_bound`]. A corrupted config must not allocate terabytes.
    pub fn check_size(&self) -> Result<()> {
        let a = self.arch()?;
        let bytes = a
            .parameter_bound()
            .saturating_mul(8)
            .saturating_add(a.activation_bound());
        crate::io::budget::check_alloc(
            bytes,
            &format!(
                "the NCSN++ network of this config (nf = {}, ch_mult = {:?}, num_res_blocks = {}, \
                 image_size = {}, num_channels = {})",
                a.nf, a.ch_mult, a.num_res_blocks, a.image_size, a.num_channels
            ),
        )
        .map_err(|e| Error::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_cifar10_ncsnpp_continuous() {
        let c = ScoreSdeConfig::default();
        let a = c.arch().unwrap();
        assert_eq!(a.nf, 128);
        assert_eq!(a.ch_mult, vec![1, 2, 2, 2]);
        assert_eq!(a.num_res_blocks, 4);
        assert_eq!(a.progressive_input, ProgressiveInput::Residual);
        assert_eq!(a.embedding_type, EmbeddingType::Fourier);
        assert_eq!(a.image_size, 32);
        assert!(!a.centered);
    }

    #[test]
    fn unsupported_values_are_config_errors() {
        let v = serde_json::json!({"model": {"resblock_type": "ResNet"}});
        let e = ScoreSdeConfig::from_json_value(&v).unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        assert!(e.to_string().contains("resblock_type"), "{e}");
        let v = serde_json::json!({"model": {"name": "ddpm"}});
        assert!(ScoreSdeConfig::from_json_value(&v)
            .unwrap_err()
            .to_string()
            .contains("only 'ncsnpp'"));
        let v = serde_json::json!({"model": {"embedding_type": "fourier"}, "training": {"continuous": false}});
        assert!(ScoreSdeConfig::from_json_value(&v).is_err());
        let v = serde_json::json!({"model": {"ch_mult": [1, 2, 2]}, "data": {"image_size": 6}});
        assert!(ScoreSdeConfig::from_json_value(&v).is_err());
        // Upstream lower-cases choices.
        let v = serde_json::json!({"format": "score_sde", "config": {"model": {"resblock_type": "BigGAN"}}});
        assert_eq!(
            ScoreSdeConfig::from_json_value(&v)
                .unwrap()
                .arch()
                .unwrap()
                .resblock_type,
            ResblockType::Biggan
        );
    }
}

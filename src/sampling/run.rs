//! Running the samplers on a trained model directory: what `scoreinv sample`, `likelihood`,
//! `encode`, `decode` and `interpolate` do, as library functions (the CLI only parses flags and
//! draws progress bars).
//!
//! * [`load`]: a model directory (or a training run folder holding `model/`) onto a device.
//! * [`SamplerOptions`] → a [`Sampler`] ([`build_sampler`], through the registry
//!   [`super::registry::SAMPLERS`]): the sampler, its configuration and the SDE discretisation
//!   (`steps` re-discretises the SDE as score_sde's `sde.N`).
//! * [`sample_model`]: `n` samples in batches, in model space. Any [`ScoreModel`] can be passed,
//!   so a conditional score (e.g. classifier guidance, `s(x, t) + w ∇ₓ log p(y | x, t)`) plugs in
//!   here by wrapping the loaded model.
//! * [`read_samples`]: `.npy` stacks or image files in the data's raw range, checked against the
//!   model's per-sample shape; [`SampleWriter`]: `samples.npy` + `grid.png` written atomically.
//! * [`encode`] / [`decode`] / [`interpolate_latents`]: the probability-flow ODE as a bijection
//!   data ⇄ latent `z = x(T)` (Song et al. 2021, §4.3), with spherical interpolation of latents.
//! * [`dataset_likelihood`]: bits/dim over a dataset, mean ± standard error, with score_sde's
//!   uniform dequantisation `(255 x + u)/256` for 8-bit data (see [`super::likelihood`]).
//!
//! Conventions: samples are returned in model space (`DataInfo::normalize` of the raw data) and
//! written in the raw data range (`DataInfo::denormalize`), so that `samples.npy` can be fed
//! back to `encode` or `likelihood`. Image files (PNG/TIFF with an integer bit depth) hold the
//! unit range `[0, 1]`, which is mapped onto the model's raw `data_range` before normalising.

use super::likelihood::{
    log_likelihood_with_progress, uniform_dequantize, BpdConvention, Divergence, LikelihoodConfig,
};
use super::ode::{interpolate, IntegratorConfig, OdeConfig, OdeSampler, OdeSolver, ODE_TICKS};
use crate::io::{self, GridOptions};
use crate::models::model_dir::{load_model_dir, DataInfo, ModelDirConfig};
use crate::models::ScoreModel;
use crate::sde::SdeConfig;
use crate::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// A model directory loaded onto a device.
pub struct LoadedModel {
    pub model: Box<dyn ScoreModel>,
    pub sde: SdeConfig,
    pub config: ModelDirConfig,
    /// The folder that holds `config.json` and `model.safetensors`.
    pub dir: PathBuf,
}

impl LoadedModel {
    /// What the model was trained on (shape, range, centring).
    pub fn data(&self) -> &DataInfo {
        &self.config.data
    }
}

/// `path` itself if it holds `config.json`, else `path/model` (the model directory a training
/// run writes), else an error naming both.
pub fn resolve_model_dir(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "`model` {}: no such folder (expected a model directory with config.json and \
             model.safetensors, or a training run folder with model/)",
            path.display()
        )));
    }
    if path.join("config.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let inner = path.join("model");
    if inner.join("config.json").is_file() {
        return Ok(inner);
    }
    Err(Error::Invalid(format!(
        "`model` {}: neither {} nor {} exists (is this a finished training run?)",
        path.display(),
        path.join("config.json").display(),
        inner.join("config.json").display()
    )))
}

/// Loads a model directory or training run folder ([`resolve_model_dir`]) onto `device`.
pub fn load(path: &Path, device: Device) -> Result<LoadedModel> {
    let dir = resolve_model_dir(path)?;
    let (model, sde, config) = load_model_dir(&dir, device)?;
    Ok(LoadedModel {
        model,
        sde,
        config,
        dir,
    })
}

pub use super::registry::{build_sampler, Sampler, SamplerOptions};

/// Samples and what they cost.
#[derive(Debug)]
pub struct SampleRun {
    /// `[n] ++ shape` in model space, f32 on the CPU.
    pub x: Tensor,
    /// Score evaluations summed over the batches.
    pub nfe: usize,
    /// Number of batches.
    pub batches: usize,
    /// Wall-clock seconds of the sampling loops.
    pub seconds: f64,
}

/// Draws `n` samples of per-sample `shape` in batches of at most `batch`, seeding libtorch's
/// generator with `seed` first. `progress(done, total)` counts [`Sampler::progress_units`]
/// units over all batches.
#[allow(clippy::too_many_arguments)]
pub fn sample_model(
    model: &dyn ScoreModel,
    sampler: &dyn Sampler,
    shape: &[i64],
    n: usize,
    batch: usize,
    seed: u64,
    device: Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SampleRun> {
    if n == 0 || batch == 0 {
        return Err(Error::Config(format!(
            "`n` and `batch` must be at least 1, got n = {n}, batch = {batch}"
        )));
    }
    let sde = sampler.sde().build()?;
    let sde = sde.as_ref();
    tch::manual_seed(seed as i64);
    let per = sampler.progress_units();
    let n_batches = n.div_ceil(batch);
    let total = per * n_batches as u64;
    let options = (Kind::Float, device);
    let start = Instant::now();
    let mut parts = Vec::with_capacity(n_batches);
    let mut nfe = 0;
    for b in 0..n_batches {
        let bs = batch.min(n - b * batch) as i64;
        let base = per * b as u64;
        let out = sampler.sample(model, sde, bs, shape, options, &mut |i| {
            progress(base + i, total)
        })?;
        let (x, used) = (out.x, out.nfe);
        nfe += used;
        parts.push(x.to_device(Device::Cpu).to_kind(Kind::Float));
    }
    let x = Tensor::cat(&parts, 0);
    Ok(SampleRun {
        x,
        nfe,
        batches: n_batches,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The raw values `(lo, hi)` that map to `[0, 1]` (the grid's black and white).
pub fn raw_range(info: &DataInfo) -> (f64, f64) {
    info.data_range.unwrap_or((0.0, 1.0))
}

fn shape_usize(s: &[i64]) -> Vec<usize> {
    s.iter().map(|&d| d as usize).collect()
}

/// Reads samples in the data's raw range as `[N] ++ info.shape` f32 on the CPU:
/// * `.npy`: `[N] ++ shape` or one sample `shape` (single-channel images may omit the channel:
///   `[H, W]`, `[N, H, W]`);
/// * image files (PNG, TIFF, NIfTI/DICOM slices via `#z=K`): one `[C, H, W]` picture; integer
///   PNG/TIFF values (`[0, 1]` after reading) are mapped onto the model's raw range.
///
/// A shape that does not fit the model is an error naming both shapes; NaN/Inf are refused.
pub fn read_samples(path: &Path, info: &DataInfo) -> Result<Tensor> {
    let (file, _) = io::split_selector(path)?;
    let is_npy = file
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase().ends_with(".npy"))
        .unwrap_or(false);
    let want = shape_usize(&info.shape);
    let (data, shape): (ArrayD<f32>, Vec<usize>) = if is_npy {
        let a = io::npy::read_npy_f32(&file)?;
        let s = a.shape().to_vec();
        let full = if s == want {
            Some([vec![1], want.clone()].concat())
        } else if s.len() == want.len() + 1 && s[1..] == want[..] {
            Some(s.clone())
        } else if want.len() == 3 && want[0] == 1 && s[..] == want[1..] {
            Some([vec![1, 1], want[1..].to_vec()].concat())
        } else if want.len() == 3 && want[0] == 1 && s.len() == 3 && s[1..] == want[1..] {
            Some(vec![s[0], 1, want[1], want[2]])
        } else {
            None
        };
        let Some(full) = full else {
            return Err(Error::Shape {
                what: format!(
                    "{} (the model was trained on samples of shape {:?})",
                    file.display(),
                    info.shape
                ),
                expected: format!("{:?} or [N] ++ {:?}", info.shape, info.shape),
                actual: format!("{s:?}"),
            });
        };
        if full[0] == 0 {
            return Err(Error::Invalid(format!(
                "{} holds no samples",
                file.display()
            )));
        }
        let a = a
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&full))
            .map_err(|e| Error::format(&file, format!("reshaping to {full:?}: {e}")))?;
        (a, full)
    } else {
        if want.len() != 3 {
            return Err(Error::Invalid(format!(
                "{}: the model works on vectors of shape {:?}; give them as a .npy [N, D] array, \
                 not an image file",
                path.display(),
                info.shape
            )));
        }
        let img = io::read_image(path)?;
        let s = img.data.shape().to_vec();
        if s != want {
            return Err(Error::Shape {
                what: format!(
                    "image {} for a model trained on {:?} images",
                    path.display(),
                    info.shape
                ),
                expected: format!("{:?}", info.shape),
                actual: format!("{s:?}"),
            });
        }
        let mut a = img.data.into_dyn();
        if img.meta.bit_depth.is_some() {
            let (lo, hi) = raw_range(info);
            a.mapv_inplace(|v| (lo + v as f64 * (hi - lo)) as f32);
        }
        let full = [vec![1], s].concat();
        let a = a
            .into_shape_with_order(IxDyn(&full))
            .map_err(|e| Error::format(path, format!("reshaping to {full:?}: {e}")))?;
        (a, full)
    };
    io::ensure_finite(&data, &format!("input {}", path.display()))?;
    let t = io::array_to_tensor(&data);
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Ok(t.reshape(dims.as_slice()).to_kind(Kind::Float))
}

/// Raw samples → model space (checked finite), on `device`.
pub fn to_model_space(raw: &Tensor, info: &DataInfo, device: Device) -> Tensor {
    info.normalize(&raw.to_device(device))
}

/// Writes several files so that either all of them end up on disk or none: each is written
/// atomically, and the ones already written are removed if a later one fails.
#[derive(Default)]
pub struct SampleWriter {
    written: Vec<PathBuf>,
}

impl SampleWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn step(&mut self, path: PathBuf, res: Result<()>) -> Result<()> {
        match res {
            Ok(()) => {
                self.written.push(path);
                Ok(())
            }
            Err(e) => {
                for p in self.written.drain(..) {
                    let _ = std::fs::remove_file(p);
                }
                Err(e)
            }
        }
    }

    /// `path` ← model-space samples `x` `[N] ++ info.shape`, as f32 in the raw data range.
    pub fn npy(&mut self, path: PathBuf, x: &Tensor, info: &DataInfo) -> Result<()> {
        let raw = info.denormalize(&x.to_device(Device::Cpu).to_kind(Kind::Float));
        let res = io::tensor_to_array::<f32>(&raw).and_then(|a| {
            io::ensure_finite(&a, &format!("samples for {}", path.display()))?;
            io::npy::write_npy(&path, &a)
        });
        self.step(path, res)
    }

    /// `path` ← a torchvision-style grid of model-space images (raw range → [0, 1]), `nrow`
    /// per row. Returns `false` (and writes nothing) for vector data.
    pub fn grid(
        &mut self,
        path: PathBuf,
        x: &Tensor,
        info: &DataInfo,
        nrow: usize,
    ) -> Result<bool> {
        if info.shape.len() != 3 || !(info.shape[0] == 1 || info.shape[0] == 3) {
            return Ok(false);
        }
        let raw = info.denormalize(&x.to_device(Device::Cpu).to_kind(Kind::Float));
        let opts = GridOptions {
            nrow: nrow.max(1),
            range: Some(raw_range(info)),
            ..GridOptions::default()
        };
        let res = io::save_grid_png(&path, &raw, &opts);
        self.step(path, res).map(|_| true)
    }

    /// Files written so far.
    pub fn written(&self) -> &[PathBuf] {
        &self.written
    }
}

/// Refuses non-finite model output before anything is written.
pub fn ensure_finite_tensor(x: &Tensor, what: &str) -> Result<()> {
    let bad = x.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
    if bad > 0 {
        return Err(Error::NonFinite(format!(
            "{what} ({}; the sampler diverged — try more steps or another sampler; nothing \
             was written)",
            crate::io::nonfinite_summary(x)
        )));
    }
    Ok(())
}

/// Probability-flow ODE settings for encoding/decoding: score_sde's RK45 with `rtol`/`atol`,
/// no final denoising step unless `denoise` (the step is not part of the bijection).
pub fn latent_ode_config(rtol: f64, atol: f64, denoise: bool) -> OdeConfig {
    OdeConfig {
        integrator: IntegratorConfig {
            solver: OdeSolver::Rk45,
            rtol,
            atol,
            ..IntegratorConfig::default()
        },
        eps: None,
        noise_removal: denoise,
        temperature: 1.0,
    }
}

/// Latents and their cost.
#[derive(Debug)]
pub struct LatentRun {
    pub x: Tensor,
    pub nfe: usize,
    pub seconds: f64,
}

/// Model-space data `x` → latents `z = x(T)` by the probability-flow ODE.
pub fn encode(
    m: &LoadedModel,
    x: &Tensor,
    cfg: &OdeConfig,
    progress: &mut dyn FnMut(f64),
) -> Result<LatentRun> {
    let sde = m.sde.build()?;
    let s = OdeSampler::new(sde.as_ref(), *cfg)?;
    let start = Instant::now();
    let out = s.encode(m.model.as_ref(), x, progress)?;
    ensure_finite_tensor(&out.x, "latents")?;
    Ok(LatentRun {
        x: out.x,
        nfe: out.nfe,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Latents `z` → model-space data by the probability-flow ODE.
pub fn decode(
    m: &LoadedModel,
    z: &Tensor,
    cfg: &OdeConfig,
    progress: &mut dyn FnMut(f64),
) -> Result<LatentRun> {
    let sde = m.sde.build()?;
    let s = OdeSampler::new(sde.as_ref(), *cfg)?;
    let start = Instant::now();
    let out = s.decode(m.model.as_ref(), z, progress)?;
    ensure_finite_tensor(&out.x, "decoded samples")?;
    Ok(LatentRun {
        x: out.x,
        nfe: out.nfe,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Reads a latent `.npy` (`[N] ++ shape` or one `shape`) as model-space f32 on `device`.
pub fn read_latents(path: &Path, info: &DataInfo, device: Device) -> Result<Tensor> {
    let latent_info = DataInfo {
        spacing_mm: None,
        data_range: None,
        centered: false,
        ..info.clone()
    };
    let is_npy = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase().ends_with(".npy"))
        .unwrap_or(false);
    if !is_npy {
        return Err(Error::Invalid(format!(
            "latents {}: expected a .npy file written by `scoreinv encode`",
            path.display()
        )));
    }
    Ok(read_samples(path, &latent_info)?.to_device(device))
}

/// `k` spherical interpolants between each pair of latents `(z0[i], z1[i])`, ordered pair by
/// pair: `[B·k] ++ shape`.
pub fn interpolate_latents(z0: &Tensor, z1: &Tensor, k: usize) -> Result<Tensor> {
    let path = interpolate(z0, z1, k)?;
    // [k, B, ...] → [B, k, ...] → [B·k, ...]
    let stacked = Tensor::stack(&path, 1);
    Ok(stacked.flatten(0, 1))
}

/// Likelihood evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodOptions {
    pub divergence: Divergence,
    pub integrator: IntegratorConfig,
    /// Samples per ODE solve.
    pub batch: usize,
    /// Dequantise (8-bit data); `None` = when every value is a multiple of 1/255.
    pub dequantize: Option<bool>,
    pub seed: u64,
}

impl Default for LikelihoodOptions {
    fn default() -> Self {
        Self {
            divergence: Divergence::Rademacher,
            integrator: IntegratorConfig::default(),
            batch: 64,
            dequantize: None,
            seed: 0,
        }
    }
}

/// Bits/dim over a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodSummary {
    pub n: usize,
    pub bpd_mean: f64,
    /// Standard error of the mean, `std(bpd, ddof = 1)/√n` (`None` for one sample).
    pub bpd_stderr: Option<f64>,
    /// Mean negative log-likelihood in nats of the (dequantised) model-space data.
    pub nll_nats_mean: f64,
    pub dequantized: bool,
    pub convention: BpdConvention,
    pub divergence: Divergence,
    pub nfe: usize,
    pub seconds: f64,
    pub bpd: Vec<f64>,
}

/// Whether image data in `[0, 1]` sit on the 8-bit grid `k/255` (to f32 rounding).
pub fn is_8bit(unit: &Tensor) -> bool {
    let v = unit.to_kind(Kind::Double) * 255.0;
    let dev = (&v - v.round()).abs().max().double_value(&[]);
    let inside = unit.min().double_value(&[]) >= 0.0 && unit.max().double_value(&[]) <= 1.0;
    inside && dev < 1e-3
}

/// Bits/dim of `data` under the model. `data` is `[N] ++ info.shape`: images in the unit range
/// `[0, 1]` (before centring), vectors as they are. 8-bit images are dequantised with
/// `(255 x + u)/256` and reported with score_sde's offset (8 bits for `[0, 1]`, 7 for
/// centred models); everything else gets raw continuous bits/dim. `progress(done, total)` in
/// thousandths of each batch's ODE interval.
pub fn dataset_likelihood(
    m: &LoadedModel,
    data: &Tensor,
    opts: &LikelihoodOptions,
    device: Device,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<LikelihoodSummary> {
    let info = m.data();
    let size = data.size();
    if size.len() != info.shape.len() + 1 || size[1..] != info.shape[..] {
        return Err(Error::Shape {
            what: format!("likelihood data for a model trained on {:?}", info.shape),
            expected: format!("[N] ++ {:?}", info.shape),
            actual: format!("{size:?}"),
        });
    }
    if opts.batch == 0 {
        return Err(Error::Config("`batch` must be at least 1".into()));
    }
    ensure_finite_tensor(data, "likelihood data")
        .map_err(|_| Error::NonFinite("likelihood data (refusing to evaluate)".into()))?;
    let is_image = info.shape.len() == 3;
    let dequantized = match opts.dequantize {
        Some(true) if !is_image => {
            return Err(Error::Config(
                "`dequantize` applies to 8-bit images, the model works on vectors".into(),
            ))
        }
        Some(d) => d,
        None => is_image && is_8bit(data),
    };
    let convention = match (dequantized, info.centered) {
        (false, _) => BpdConvention::Raw,
        (true, false) => BpdConvention::Unit8Bit,
        (true, true) => BpdConvention::Centered8Bit,
    };
    let cfg = LikelihoodConfig {
        divergence: opts.divergence,
        integrator: opts.integrator,
        bpd: convention,
        ..LikelihoodConfig::default()
    };
    let sde = m.sde.build()?;
    tch::manual_seed(opts.seed as i64);
    let n = size[0] as usize;
    let n_batches = n.div_ceil(opts.batch);
    let total = ODE_TICKS * n_batches as u64;
    let start = Instant::now();
    let mut bpd = Vec::with_capacity(n);
    let mut nll = 0.0;
    let mut nfe = 0;
    for b in 0..n_batches {
        let lo = b * opts.batch;
        let len = opts.batch.min(n - lo);
        let xb = data
            .narrow(0, lo as i64, len as i64)
            .to_device(device)
            .to_kind(Kind::Float);
        let x = if !is_image {
            xb
        } else if dequantized {
            uniform_dequantize(&xb, info.centered)
        } else if info.centered {
            xb * 2.0 - 1.0
        } else {
            xb
        };
        let base = ODE_TICKS * b as u64;
        let out =
            log_likelihood_with_progress(sde.as_ref(), m.model.as_ref(), &x, &cfg, &mut |f| {
                progress(base + (f * ODE_TICKS as f64) as u64, total)
            })?;
        nfe += out.nfe;
        let v = Vec::<f64>::try_from(out.bpd.to_kind(Kind::Double).to_device(Device::Cpu))?;
        let l = Vec::<f64>::try_from(out.logp.to_kind(Kind::Double).to_device(Device::Cpu))?;
        if v.iter().any(|x| !x.is_finite()) {
            let zmax = out.z.abs().max().double_value(&[]);
            return Err(Error::NonFinite(format!(
                "bits/dim of batch {b} (samples {lo}..{}): the probability flow carried the data                  to latents with |z| up to {zmax:.3e} (prior log-density {:?} nats); the model's                  score is unusable here (under-trained or diverged?)",
                lo + len,
                Vec::<f64>::try_from(out.prior_logp.to_kind(Kind::Double).to_device(Device::Cpu))
                    .unwrap_or_default()
            )));
        }
        nll -= l.iter().sum::<f64>();
        bpd.extend(v);
    }
    let mean = bpd.iter().sum::<f64>() / n as f64;
    let stderr = (n > 1).then(|| {
        let var = bpd.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    });
    Ok(LikelihoodSummary {
        n,
        bpd_mean: mean,
        bpd_stderr: stderr,
        nll_nats_mean: nll / n as f64,
        dequantized,
        convention,
        divergence: opts.divergence,
        nfe,
        seconds: start.elapsed().as_secs_f64(),
        bpd,
    })
}

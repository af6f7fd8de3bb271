//! Score-network benchmarks: NCSN++ (Song et al. 2021, ICLR, Appendix H) forward and
//! forward+backward throughput, predictor-corrector sampling steps (Alg. 2/4 of the same
//! paper: reverse-diffusion predictor + Langevin corrector, `snr = 0.16`) and denoising
//! score-matching training steps (`λ(σ) = σ²`, Adam, gradient clipping 1, EMA), each against
//! the same network in PyTorch eager mode (`scripts/bench/ncsnpp_torch.py`) loaded from the
//! safetensors file written here. Before timing, the PyTorch network's output is compared with
//! scoreinv's on one input: `max|y_torch − y_rust| / max|y_rust|` must be ≤ 1e-4.

use super::{device_label, field, time, BenchContext, Measurement, Repeats};
use scoreinv::autocast::AutocastDtype;
use scoreinv::models::config::ScoreSdeConfig;
use scoreinv::models::model_dir::{DataInfo, ModelConfig};
use scoreinv::models::ncsnpp::Ncsnpp;
use scoreinv::models::score_net::{NetScore, NetScoreOptions};
use scoreinv::models::{ScoreModel, TimeConditionedNet};
use scoreinv::operators::{LinearOperator, ParallelBeamRadon};
use scoreinv::sampling::ode::{OdeConfig, OdeSampler};
use scoreinv::sampling::pc::{PcConfig, PcSampler};
use scoreinv::sde::SdeConfig;
use scoreinv::train::config::TrainConfig;
use scoreinv::train::data::Dataset;
use scoreinv::train::Trainer;
use scoreinv::{Error, Result};
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Largest relative error accepted between the PyTorch and scoreinv outputs (f32 with
/// different summation orders in convolutions and GroupNorm: ~1e-6 observed, 1e-4 leaves room
/// for other BLAS back-ends).
pub const PARITY_TOL: f64 = 1e-4;

/// Number of PC steps a full reconstruction runs (score_sde's `N = 1000`).
pub const FULL_STEPS: f64 = 1000.0;

/// The small NCSN++ of the benchmarks: `nf` base channels, one residual block per level,
/// attention at 8×8, one level per halving down to 8×8 with `ch_mult` 2 on the three coarsest
/// levels below the top (32²: `[1, 2, 2]`, 64²: `[1, 2, 2, 2]`, 128²: `[1, 1, 2, 2, 2]`), one
/// channel; everything else the published NCSN++ (VE, cont.) defaults: BigGAN
/// blocks with FIR resampling, residual input pyramid, Fourier embedding, `scale_by_sigma`.
pub fn bench_config(image_size: usize, nf: usize) -> Result<ScoreSdeConfig> {
    if image_size < 16 || !image_size.is_power_of_two() {
        return Err(Error::Invalid(format!(
            "bench network: image size {image_size} must be a power of two >= 16"
        )));
    }
    let levels = (image_size / 8).trailing_zeros() as usize + 1;
    // e.g. 32: [1, 2, 2]; 64: [1, 2, 2, 2]; 128: [1, 1, 2, 2, 2].
    let ch_mult: Vec<usize> = (0..levels)
        .map(|i| if i + 3 >= levels && i > 0 { 2 } else { 1 })
        .collect();
    let v = serde_json::json!({
        "model": {"nf": nf, "ch_mult": ch_mult, "num_res_blocks": 1, "attn_resolutions": [8]},
        "data": {"image_size": image_size, "num_channels": 1}
    });
    ScoreSdeConfig::from_json_value(&v)
}

/// A built network with its weights and config on disk for the reference.
pub struct SharedNet {
    pub vs: VarStore,
    pub net: Ncsnpp,
    pub config_path: PathBuf,
    pub weights_path: PathBuf,
}

/// Builds the network on `device`, moves every trainable weight by `N(0, 0.02²)` noise (the
/// published `init_scale = 0` makes some convolutions ~0, which would make a parity check
/// blind to them), and writes `cfg.json` and `weights.safetensors` into `dir`.
pub fn build_shared(cfg: &ScoreSdeConfig, device: Device, dir: &Path) -> Result<SharedNet> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let net = Ncsnpp::new(&vs.root(), cfg)?;
    tch::no_grad(|| {
        for mut t in vs.trainable_variables() {
            let noise = t.randn_like() * 0.02;
            t += noise;
        }
    });
    let config_path = dir.join("cfg.json");
    let text = serde_json::to_string_pretty(cfg)
        .map_err(|e| Error::Invalid(format!("bench config to JSON: {e}")))?;
    std::fs::write(&config_path, text).map_err(|e| Error::io(&config_path, e))?;
    let weights_path = dir.join("weights.safetensors");
    let vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.to_device(Device::Cpu)))
        .collect();
    Tensor::write_safetensors(&vars, &weights_path)?;
    Ok(SharedNet {
        vs,
        net,
        config_path,
        weights_path,
    })
}

/// Writes `input.x`, `input.cond` (σ) and `output.y = F_θ(x, σ)` (eval mode, CPU tensors) for
/// the reference's parity check.
pub fn write_parity_case(s: &SharedNet, batch: i64, path: &Path) -> Result<()> {
    let a = s.net.arch();
    let dev = s.vs.device();
    let x = Tensor::rand(
        [batch, a.num_channels, a.image_size, a.image_size],
        (Kind::Float, dev),
    );
    let cond = Tensor::linspace(0.05, 20.0, batch, (Kind::Float, dev));
    let y = tch::no_grad(|| s.net.forward(&x, &cond, false))?;
    let cpu = |t: &Tensor| t.to_device(Device::Cpu);
    Tensor::write_safetensors(
        &[
            ("input.x", cpu(&x)),
            ("input.cond", cpu(&cond)),
            ("output.y", cpu(&y)),
        ],
        path,
    )?;
    Ok(())
}

fn net_args(cmd: &str, config: &Path, weights: &Path, batch: usize, device: &str) -> Vec<String> {
    vec![
        cmd.into(),
        "--config".into(),
        config.display().to_string(),
        "--weights".into(),
        weights.display().to_string(),
        "--batch".into(),
        batch.to_string(),
        "--device".into(),
        device.to_string(),
    ]
}

/// Seconds per step of `reference.py CMD` (`sampler`: one PC step, `train`: one DSM step) on the
/// network in `config`/`weights` at `batch`, on the context's device; `None` without a Python.
fn reference_step(
    ctx: &BenchContext,
    cmd: &str,
    config: &Path,
    weights: &Path,
    batch: usize,
) -> Option<f64> {
    ctx.reference(&net_args(
        cmd,
        config,
        weights,
        batch,
        &device_label(ctx.device),
    ))
    .and_then(|v| field(&v, "step").ok())
}

/// Sizes and batches of the network suite: 64², 128², 256² (batches 8, 4, 2); quick: 32²
/// batch 4. `nf = 32` throughout.
pub fn network_sizes(quick: bool) -> Vec<(usize, usize)> {
    if quick {
        vec![(32, 4)]
    } else {
        vec![(64, 8), (128, 4), (256, 2)]
    }
}

/// Parity of the reference on `s`: runs `reference.py network --check` and returns the
/// reported relative error (and the reference result).
pub fn reference_with_parity(
    ctx: &BenchContext,
    s: &SharedNet,
    batch: usize,
) -> Result<Option<(f64, serde_json::Value)>> {
    let check = ctx
        .work_dir
        .join(format!("parity_{}.safetensors", s.net.arch().image_size));
    write_parity_case(s, 2, &check)?;
    let mut args = net_args(
        "network",
        &s.config_path,
        &s.weights_path,
        batch,
        &device_label(ctx.device),
    );
    args.extend(["--check".into(), check.display().to_string()]);
    Ok(ctx.reference(&args).map(|v| {
        let e = v
            .get("max_rel_err")
            .and_then(|e| e.as_f64())
            .unwrap_or(f64::NAN);
        (e, v)
    }))
}

/// Runs the network suite.
pub fn run_network(ctx: &BenchContext, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>> {
    let r = ctx.repeats();
    let dev = ctx.device;
    let mut rows = Vec::new();
    for (size, batch) in network_sizes(ctx.quick) {
        let cfg = bench_config(size, 32)?;
        let tag = format!("{size}x{size} nf 32 batch {batch}");
        progress(&format!("NCSN++ {tag}: PyTorch reference and parity"));
        let s = build_shared(&cfg, dev, &ctx.work_dir.join(format!("ncsnpp_{size}")))?;
        let reference = reference_with_parity(ctx, &s, batch)?;
        let mut refname = "PyTorch eager (same weights)".to_string();
        if let Some((e, _)) = &reference {
            let ok = *e <= PARITY_TOL;
            println!(
                "parity NCSN++ {size}x{size}: max |y_torch - y_scoreinv| / max |y_scoreinv| = \
                 {e:.2e} ({})",
                if ok { "ok, <= 1e-4" } else { "FAILED, > 1e-4" }
            );
            if !ok {
                refname.push_str(" PARITY FAILED");
            }
        }
        progress(&format!("NCSN++ {tag}: scoreinv"));
        let x = Tensor::rand(
            [batch as i64, 1, size as i64, size as i64],
            (Kind::Float, dev),
        );
        let sigma = Tensor::full([batch as i64], 0.5, (Kind::Float, dev));
        let t_fwd = tch::no_grad(|| {
            time(r, dev, &mut || {
                let _ = std::hint::black_box(s.net.forward_t(&x, &sigma, false));
                Ok(())
            })
        })?;
        let params = s.vs.trainable_variables();
        let t_bwd = time(r, dev, &mut || {
            for p in &params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            s.net
                .forward_t(&x, &sigma, true)
                .square()
                .mean(Kind::Float)
                .backward();
            Ok(())
        })?;
        let b = batch as f64;
        let rv = |k: &str| {
            reference
                .as_ref()
                .and_then(|(_, v)| field(v, k).ok())
                .map(|t| b / t)
        };
        rows.push(Measurement::new(
            format!("NCSN++ forward {tag}"),
            dev,
            "images/s",
            b / t_fwd.median_s,
            refname.clone(),
            rv("forward"),
        )?);
        rows.push(Measurement::new(
            format!("NCSN++ forward+backward {tag}"),
            dev,
            "images/s",
            b / t_bwd.median_s,
            refname,
            rv("forward_backward"),
        )?);
    }
    Ok(rows)
}

/// Sampler image size: 128² (quick 32²); batches 1 and 16.
pub fn sampler_size(quick: bool) -> usize {
    if quick {
        32
    } else {
        128
    }
}

/// Runs the sampler suite: PC steps/s at batch 1 and 16, probability-flow ODE work per sample,
/// and sparse-view CT reconstructions (`ct_rows`) at the suite's size and, in full runs, 256².
pub fn run_sampler(ctx: &BenchContext, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>> {
    let dev = ctx.device;
    let size = sampler_size(ctx.quick);
    let mut net = BenchNet::build(ctx, size)?;
    let mut rows = Vec::new();
    let mut known = Vec::new();
    for batch in [1usize, 16] {
        let tag = format!("{size}x{size} nf 32 batch {batch}");
        let (step, reference) = net.pc_step_with_reference(ctx, progress, batch)?;
        known.push((batch, step, reference));
        rows.push(Measurement::new(
            format!("PC step (reverse diffusion + Langevin) {tag}"),
            dev,
            "steps/s",
            1.0 / step,
            "PyTorch eager PC step (same weights)",
            reference.map(|t| 1.0 / t),
        )?);
    }

    // Probability-flow ODE, adaptive RK45 at score_sde's tolerances (rtol = atol = 1e-5): score
    // evaluations per sample and seconds per sample (batch 1). The network's weights are the
    // bench's random ones, so the NFE is that of this network size, not of a trained model.
    progress(&format!("probability-flow ODE {size}x{size}: scoreinv"));
    let sde = sde_with_n(&net.model, 1000)?;
    let ode = OdeSampler::new(sde.as_ref(), OdeConfig::default())?;
    let mut nfe = 0usize;
    let t_ode = tch::no_grad(|| {
        time(
            Repeats {
                warmup: 0,
                repeats: 1,
            },
            dev,
            &mut || {
                nfe = ode
                    .sample(&net.model, 1, None, (Kind::Float, dev), &mut |_| {})?
                    .nfe;
                Ok(())
            },
        )
    })?;
    let tag = format!("{size}x{size} nf 32 batch 1, RK45 rtol = atol = 1e-5");
    rows.push(Measurement::new(
        format!("probability-flow ODE sample, score evaluations per sample, {tag}"),
        dev,
        "NFE",
        nfe as f64,
        "no reference (count of work)",
        None,
    )?);
    rows.push(Measurement::new(
        format!("probability-flow ODE sample, seconds per sample, {tag}"),
        dev,
        "s",
        t_ode.median_s,
        "no reference",
        None,
    )?);

    rows.extend(ct_rows(ctx, progress, &mut net, &known)?);
    drop(net);
    if !ctx.quick {
        // The same at 256² (network rebuilt at that size).
        let mut net = BenchNet::build(ctx, 256)?;
        rows.extend(ct_rows(ctx, progress, &mut net, &[])?);
    }
    Ok(rows)
}

/// The bench network at one size as a score model, with the files the PyTorch reference loads.
pub struct BenchNet {
    _vs: VarStore,
    pub model: BenchScore,
    pub size: usize,
    config_path: PathBuf,
    weights_path: PathBuf,
}

impl BenchNet {
    /// [`bench_config`]`(size, 32)` built on the context's device (files in its work dir).
    pub fn build(ctx: &BenchContext, size: usize) -> Result<Self> {
        let cfg = bench_config(size, 32)?;
        let shared = build_shared(
            &cfg,
            ctx.device,
            &ctx.work_dir.join(format!("ncsnpp_{size}")),
        )?;
        let (config_path, weights_path) = (shared.config_path.clone(), shared.weights_path.clone());
        let (vs, model) = bench_model(shared)?;
        Ok(Self {
            _vs: vs,
            model,
            size,
            config_path,
            weights_path,
        })
    }

    /// Seconds per PC step at `batch`, scoreinv and (when a Python runs) PyTorch eager.
    fn pc_step_with_reference(
        &self,
        ctx: &BenchContext,
        progress: &dyn Fn(&str),
        batch: usize,
    ) -> Result<(f64, Option<f64>)> {
        let (size, dev) = (self.size, ctx.device);
        progress(&format!(
            "PC step {size}x{size} batch {batch}: PyTorch reference"
        ));
        let reference =
            reference_step(ctx, "sampler", &self.config_path, &self.weights_path, batch);
        progress(&format!("PC step {size}x{size} batch {batch}: scoreinv"));
        Ok((pc_step_seconds(&self.model, dev, batch as i64)?, reference))
    }
}

/// Sparse-view CT reconstruction (23 of 180 views) at the network's size, batch 1 and 16:
/// extrapolated as `1000 × (PC step + Radon forward + FBP)` against the PyTorch-eager peer (PC
/// step of the same network + `grid_sample` Radon and FBP, `reference.py radon_torch`, same
/// device), and on a GPU (full runs) also **measured** end to end with the projection sampler.
/// At batch 16 the PC step is also timed under bf16 autocast (reference: the float32 step of
/// the same run). `known`: `(batch, PC step seconds, PyTorch's)` already measured at this size.
fn ct_rows(
    ctx: &BenchContext,
    progress: &dyn Fn(&str),
    net: &mut BenchNet,
    known: &[(usize, f64, Option<f64>)],
) -> Result<Vec<Measurement>> {
    let (dev, size) = (ctx.device, net.size);
    let op = ParallelBeamRadon::full_view(size, 180, Kind::Float, dev)?;
    let mut rows = Vec::new();
    for batch in [1usize, 16] {
        let (step, ref_step) = match known.iter().find(|k| k.0 == batch) {
            Some(&(_, s, r)) => (s, r),
            None => net.pc_step_with_reference(ctx, progress, batch)?,
        };
        if batch == 16 {
            progress(&format!("PC step {size}x{size} batch 16: bf16 autocast"));
            net.model.set_autocast(Some(AutocastDtype::Bfloat16));
            let bf16 = pc_step_seconds(&net.model, dev, 16);
            net.model.set_autocast(None);
            rows.push(Measurement::new(
                format!("PC step (reverse diffusion + Langevin) {size}x{size} nf 32 batch 16, bf16 autocast"),
                dev,
                "steps/s",
                1.0 / bf16?,
                "scoreinv float32 (same run)",
                Some(1.0 / step),
            )?);
        }
        progress(&format!(
            "CT {size}x{size} batch {batch}: radon forward + FBP"
        ));
        let x = Tensor::rand(
            [batch as i64, 1, size as i64, size as i64],
            (Kind::Float, dev),
        );
        let y = op.forward(&x)?;
        let t_op = time(ctx.repeats(), dev, &mut || {
            let _ = op.forward(&x)?;
            let _ = op.pseudo_inverse(&y)?;
            Ok(())
        })?;
        let ref_op = ctx
            .reference(&super::operators::radon_torch_args(size, 180, batch, dev))
            .and_then(|v| Some(field(&v, "forward").ok()? + field(&v, "fbp").ok()?));
        let theirs = ref_step.zip(ref_op).map(|(s, o)| FULL_STEPS * (s + o));
        rows.push(Measurement::new(
            format!(
                "CT reconstruction {size}x{size} 180 angles batch {batch} (EXTRAPOLATED: 1000 x (PC step + radon + FBP))"
            ),
            dev,
            "s",
            FULL_STEPS * (step + t_op.median_s),
            "PyTorch eager PC step + grid_sample Radon/FBP, extrapolated the same way",
            theirs,
        )?);
        // Measured on GPUs, except 256² × 16 (about 4 min on an H200: extrapolated only).
        if dev != Device::Cpu && !ctx.quick && (batch == 1 || size <= 128) {
            progress(&format!(
                "CT {size}x{size} batch {batch}: one measured reconstruction, N = 1000"
            ));
            let secs = match measured_ct(&net.model, dev, 1000, batch as i64, false) {
                Ok(s) => s,
                Err(e) => {
                    // Reported, not fatal: the other rows of the suite still count.
                    eprintln!("CT {size}x{size} batch {batch}, measured run: {e}");
                    continue;
                }
            };
            rows.push(Measurement::new(
                format!(
                    "CT reconstruction {size}x{size} 23 of 180 views batch {batch}, N = 1000 + 1 corrector (MEASURED end to end, no host sync in the loop)"
                ),
                dev,
                "s",
                secs,
                "PyTorch eager, EXTRAPOLATED as above",
                theirs,
            )?);
            if scoreinv::cuda_graph::available() {
                progress(&format!(
                    "CT {size}x{size} batch {batch}: one measured reconstruction with a CUDA graph"
                ));
                match measured_ct(&net.model, dev, 1000, batch as i64, true) {
                    Ok(g) => rows.push(Measurement::new(
                        format!(
                            "CT reconstruction {size}x{size} 23 of 180 views batch {batch}, N = 1000 + 1 corrector (MEASURED, CUDA graph)"
                        ),
                        dev,
                        "s",
                        g,
                        "scoreinv eager loop (same run)",
                        Some(secs),
                    )?),
                    Err(e) => eprintln!("CT {size}x{size} batch {batch}, CUDA graph run: {e}"),
                }
            }
        }
    }
    Ok(rows)
}

/// The bench network as a score model.
pub type BenchScore = NetScore<Ncsnpp>;

/// The SDE of `model` with `n` discretisation steps.
fn sde_with_n(model: &BenchScore, n: usize) -> Result<Box<dyn scoreinv::sde::Sde>> {
    model.sde_config().with_n(n).build()
}

/// Seconds per VE PC step (reverse diffusion + Langevin) of `model` at `batch`.
fn pc_step_seconds(model: &BenchScore, dev: Device, batch: i64) -> Result<f64> {
    let sde = sde_with_n(model, 4)?;
    let pc = PcSampler::new(
        sde.as_ref(),
        PcConfig {
            noise_removal: false,
            ..PcConfig::default()
        },
    )?;
    let r = Repeats {
        warmup: 1,
        repeats: 3,
    };
    let t = tch::no_grad(|| {
        time(r, dev, &mut || {
            pc.sample(model, batch, None, (Kind::Float, dev), &mut |_| {})?;
            Ok(())
        })
    })?;
    Ok(t.median_s / 4.0)
}

/// The bench network as a VE score model (and the var store that owns its weights).
pub fn bench_model(shared: SharedNet) -> Result<(VarStore, BenchScore)> {
    let a = shared.net.arch().clone();
    let sde = SdeConfig::Ve {
        sigma_min: a.sigma_min,
        sigma_max: a.sigma_max,
        n: 1000,
    };
    let net: Box<Ncsnpp> = Box::new(shared.net);
    let model = NetScore::new(net, sde, NetScoreOptions::default())?.with_sample_shape(vec![
        1,
        a.image_size,
        a.image_size,
    ]);
    Ok((shared.vs, model))
}

/// Wall-clock seconds of one sparse-view CT reconstruction (23 of 180 views, noiseless
/// measurement of a random image) by the projection sampler of Song et al. 2022 with its CT
/// settings and `n_steps` predictor steps (one Langevin corrector step each), `batch`
/// measurements at once, on the bench network (its cost equals a trained one's).
///
/// On CUDA, steps 2…N run under libtorch's sync debug mode "error"
/// ([`scoreinv::runtime::set_cuda_sync_debug_mode`]): any op that would make the host wait for
/// the GPU inside the step loop fails the run with an error saying so (the checks before the
/// loop and the final denoising step are outside the window).
///
/// With `cuda_graph`, steps 2…N are replays of one captured CUDA graph of the step
/// ([`scoreinv::cuda_graph`]; no sync check then: a captured graph cannot synchronise).
pub fn measured_ct(
    model: &BenchScore,
    dev: Device,
    n_steps: usize,
    batch: i64,
    cuda_graph: bool,
) -> Result<f64> {
    use scoreinv::runtime::{set_cuda_sync_debug_mode, SyncDebugMode};
    let size = model
        .sample_shape()
        .map(|s| s[s.len() - 1])
        .ok_or_else(|| Error::Invalid("bench: the score model has no sample shape".into()))?
        as usize;
    let sde = sde_with_n(model, n_steps)?;
    let op = ParallelBeamRadon::sparse_view(size, 23, 180, Kind::Float, dev)?;
    let x = Tensor::rand([batch, 1, size as i64, size as i64], (Kind::Float, dev));
    let y = op.forward(&x)?;
    let cfg = scoreinv::inverse::projection::ProjectionConfig {
        cuda_graph,
        ..scoreinv::inverse::projection::ProjectionConfig::ct()
    };
    let check = dev.is_cuda() && !cuda_graph;
    let t = time(
        Repeats {
            warmup: 0,
            repeats: 1,
        },
        dev,
        &mut || {
            let mut progress = |i: usize| {
                if check && i == 1 {
                    set_cuda_sync_debug_mode(SyncDebugMode::Error);
                }
                if check && i == n_steps {
                    set_cuda_sync_debug_mode(SyncDebugMode::Disabled);
                }
            };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                scoreinv::inverse::projection::sample(
                    sde.as_ref(),
                    model,
                    &op,
                    &y,
                    &cfg,
                    &mut progress,
                )
            }));
            if check {
                set_cuda_sync_debug_mode(SyncDebugMode::Disabled);
            }
            match run {
                Ok(r) => r.map(drop),
                Err(p) => {
                    let msg = scoreinv::runtime::panic_message(p.as_ref());
                    Err(Error::Invalid(format!(
                        "bench: an op inside the projection sampler's step loop failed under \
                         libtorch's CUDA sync debug mode 'error' (a host synchronisation?): {msg}"
                    )))
                }
            }
        },
    )?;
    Ok(t.median_s)
}

/// Training image size: 64² (quick 32²), batch 16.
pub fn train_size(quick: bool) -> usize {
    if quick {
        32
    } else {
        64
    }
}

/// Runs the training suite: DSM steps of [`Trainer`] (images/s) vs a PyTorch eager step.
pub fn run_train(ctx: &BenchContext, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>> {
    let dev = ctx.device;
    let size = train_size(ctx.quick);
    let batch = 16usize;
    let cfg = bench_config(size, 32)?;
    let tag = format!("{size}x{size} nf 32 batch {batch}");
    let s = build_shared(
        &cfg,
        Device::Cpu,
        &ctx.work_dir.join(format!("ncsnpp_{size}")),
    )?;
    progress(&format!("DSM training {tag}: PyTorch reference"));
    let reference = reference_step(ctx, "train", &s.config_path, &s.weights_path, batch);
    progress(&format!("DSM training {tag}: scoreinv"));
    let mut tc = TrainConfig {
        model: ModelConfig::Ncsnpp(cfg.clone()),
        sde: SdeConfig::Ve {
            sigma_min: 0.01,
            sigma_max: 50.0,
            n: 1000,
        },
        ..TrainConfig::default()
    };
    tc.training.batch_size = batch;
    tc.data.random_flip = false;
    tc.data.heldout_fraction = 0.0;
    let data = Dataset::new(
        Tensor::rand(
            [4 * batch as i64, 1, size as i64, size as i64],
            (Kind::Float, Device::Cpu),
        ),
        None,
        DataInfo {
            spacing_mm: None,
            shape: vec![1, size as i64, size as i64],
            centered: false,
            data_range: None,
            source: "bench: uniform noise".into(),
        },
    )?;
    let mut per_tensor_cfg = tc.clone();
    per_tensor_cfg.optim.flat_buffers = false;
    let mut trainer = Trainer::new(tc, &data, dev)?;
    let t = time(ctx.repeats(), dev, &mut || {
        trainer.train_step()?;
        Ok(())
    })?;
    progress(&format!(
        "DSM training {tag}: scoreinv with the per-tensor optimiser"
    ));
    let mut per_tensor = Trainer::new(per_tensor_cfg, &data, dev)?;
    let t_per = time(ctx.repeats(), dev, &mut || {
        per_tensor.train_step()?;
        Ok(())
    })?;
    let b = batch as f64;
    Ok(vec![
        Measurement::new(
            format!("DSM training step (Adam, clip, EMA) {tag}"),
            dev,
            "images/s",
            b / t.median_s,
            "PyTorch eager step (Adam, clip, EMA)",
            reference.map(|t| b / t),
        )?,
        Measurement::new(
            format!("DSM training step, flat optimiser buffers {tag}"),
            dev,
            "images/s",
            b / t.median_s,
            "scoreinv, per-tensor Adam/clip/EMA (optim.flat_buffers = false)",
            Some(b / t_per.median_s),
        )?,
    ])
}

//! `scoreinv likelihood`: bits/dim of a dataset under a trained model's probability-flow ODE
//! (Song et al. 2021, App. D.2), mean ± standard error, with score_sde's uniform dequantisation
//! of 8-bit data.
use anyhow::{Context, Result};
use scoreinv::device::device_name;
use scoreinv::io::atomic::{check_output_dir, write_atomic};
use scoreinv::io::output::check_output_files;
use scoreinv::sampling::likelihood::Divergence;
use scoreinv::sampling::ode::IntegratorConfig;
use scoreinv::sampling::run::{dataset_likelihood, load, LikelihoodOptions};
use scoreinv::train::data::DataSource;
use std::io::Write;
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory or training run folder with model/.
    #[arg(long)]
    pub model: PathBuf,
    /// Data: fashion-mnist, a folder with IDX files or images, an IDX file, a .npy stack,
    /// gaussian2d[:N] (as `scoreinv train --data`).
    #[arg(long)]
    pub data: String,
    /// Evaluate the first N samples (default: all).
    #[arg(long)]
    pub n: Option<usize>,
    /// Divergence estimator: rademacher (Hutchinson, default), gaussian, exact.
    #[arg(long, default_value = "rademacher")]
    pub hutchinson: Divergence,
    /// Samples per ODE solve.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Dequantisation: auto (8-bit images only), on, off.
    #[arg(long, default_value = "auto")]
    pub dequantize: String,
    /// RK45 tolerances rtol = atol (score_sde: 1e-5).
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
    /// Seed of the dequantisation noise and the Hutchinson probes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the summary (and per-sample bits/dim) as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file (never an input).
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    if let Some(out) = &args.out {
        let mut inputs = vec![args.model.clone()];
        if let Ok(src) = DataSource::parse(&args.data) {
            inputs.extend(src.paths());
        }
        check_output_files(std::slice::from_ref(out), &inputs, args.overwrite).context("--out")?;
        check_output_dir(out).context("--out")?;
    }
    let dequantize = match args.dequantize.trim().to_ascii_lowercase().as_str() {
        "auto" => None,
        "on" | "yes" | "true" => Some(true),
        "off" | "no" | "false" => Some(false),
        other => anyhow::bail!("--dequantize '{other}' is not one of auto, on, off"),
    };
    let m = load(&args.model, device)?;
    let source = DataSource::parse(&args.data)?;
    // Images in [0, 1] (dequantisation and centring happen per batch); vectors as they are.
    let ds = source.load(false)?;
    let info = m.data();
    if ds.info.shape != info.shape {
        anyhow::bail!(
            "--data {}: samples have shape {:?}, but the model {} was trained on {:?}",
            args.data,
            ds.info.shape,
            m.dir.display(),
            info.shape
        );
    }
    let total = ds.len();
    let n = args.n.unwrap_or(total);
    anyhow::ensure!(n >= 1, "--n must be at least 1");
    anyhow::ensure!(
        n <= total,
        "--n {n}: the data ({}) hold only {total} samples",
        ds.info.source
    );
    let data = ds.data.narrow(0, 0, n as i64);
    let opts = LikelihoodOptions {
        divergence: args.hutchinson,
        integrator: IntegratorConfig {
            rtol: args.tol,
            atol: args.tol,
            ..IntegratorConfig::default()
        },
        batch: args.batch,
        dequantize,
        seed: args.seed,
    };
    eprintln!(
        "likelihood of {n} of {total} samples of {} under {} ({:?} divergence, batch {}) on {}",
        ds.info.source,
        m.dir.display(),
        args.hutchinson,
        args.batch,
        device_name(device)
    );
    let mut bar = super::progress::Bar::new("likelihood", 0, "ODE ticks");
    let res = dataset_likelihood(&m, &data, &opts, device, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let s = res?;
    let se = s
        .bpd_stderr
        .map_or("n/a (one sample)".to_string(), |v| format!("{v:.4}"));
    println!(
        "bits/dim  {:.4} ± {se} (standard error, n = {}){}",
        s.bpd_mean,
        s.n,
        if s.dequantized {
            format!(
                ", uniformly dequantised 8-bit data, offset {} bits ({:?})",
                s.convention.offset(),
                s.convention
            )
        } else {
            ", continuous data (no dequantisation, no offset)".to_string()
        }
    );
    println!(
        "NLL       {:.3} nats per sample;  NFE {};  {:.1} s",
        s.nll_nats_mean, s.nfe, s.seconds
    );
    if let Some(out) = &args.out {
        let json = serde_json::json!({
            "model": m.dir,
            "data": args.data,
            "summary": s,
        });
        let text = serde_json::to_string_pretty(&json)?;
        write_atomic(out, |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| scoreinv::Error::io(out, e))
        })
        .with_context(|| format!("writing {}", out.display()))?;
        println!("summary   {}", out.display());
    }
    Ok(())
}

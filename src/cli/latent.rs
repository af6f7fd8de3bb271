//! `scoreinv encode | decode | interpolate`: the probability-flow ODE as a bijection between
//! data and latents `z = x(T)` (Song et al. 2021, §4.3), solved with RK45.
use anyhow::{Context, Result};
use scoreinv::io::output::{check_output_files, OutputDir, Reuse};
use scoreinv::models::model_dir::DataInfo;
use scoreinv::sampling::run::{
    decode, encode, interpolate_latents, latent_ode_config, load, read_latents, read_samples,
    to_model_space, SampleWriter,
};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// RK45 settings shared by the three commands.
#[derive(Debug, Clone, clap::Args)]
pub struct OdeArgs {
    /// RK45 relative tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub rtol: f64,
    /// RK45 absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub atol: f64,
}

#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// Model directory or training run folder with model/.
    #[arg(long)]
    pub model: PathBuf,
    /// Data: .npy ([N] ++ shape or one sample, raw data range) or an image file.
    #[arg(long)]
    pub input: PathBuf,
    /// Latents (.npy, f32 [N] ++ shape); must not exist (unless --overwrite) or be an input.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out file (never an input).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub ode: OdeArgs,
}

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Model directory or training run folder with model/.
    #[arg(long)]
    pub model: PathBuf,
    /// Latents (.npy written by `scoreinv encode`, or any [N] ++ shape array).
    #[arg(long)]
    pub input: PathBuf,
    /// Output: .npy (raw data range) or .png (a grid of the decoded images); must not exist
    /// (unless --overwrite) or be an input.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out file (never an input).
    #[arg(long)]
    pub overwrite: bool,
    /// Finish with one noise-free reverse-diffusion step at eps (score_sde's `denoise`; not part
    /// of the bijection, so encode → decode no longer round-trips exactly).
    #[arg(long)]
    pub denoise: bool,
    #[command(flatten)]
    pub ode: OdeArgs,
}

#[derive(Debug, clap::Args)]
pub struct InterpolateArgs {
    /// Model directory or training run folder with model/.
    #[arg(long)]
    pub model: PathBuf,
    /// First end point (.npy or image file); B samples.
    #[arg(long)]
    pub a: PathBuf,
    /// Second end point, as many samples as --a.
    #[arg(long)]
    pub b: PathBuf,
    /// Points along each path, end points included.
    #[arg(long, default_value_t = 8, value_parser = super::parse::positive_usize)]
    pub steps: usize,
    /// Output folder: interpolation.npy [B·steps] ++ shape, grid.png (one row per pair); new,
    /// empty, or an earlier `interpolate` output (with --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier `scoreinv interpolate` output in --out (only the files it wrote).
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub ode: OdeArgs,
}

fn ode_bar() -> super::progress::Bar {
    super::progress::Bar::new("probability-flow ODE", 1000, "of 1000 of the interval")
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.file_name()
        .map(|n| n.to_string_lossy().to_lowercase().ends_with(ext))
        .unwrap_or(false)
}

/// Writes latents (no data mapping) to `path`.
fn write_latents(path: &Path, z: &Tensor, info: &DataInfo) -> Result<()> {
    let latent = DataInfo {
        spacing_mm: None,
        data_range: None,
        centered: false,
        ..info.clone()
    };
    SampleWriter::new().npy(path.to_path_buf(), z, &latent)?;
    Ok(())
}

pub fn run_encode(args: EncodeArgs, device: Device) -> Result<()> {
    anyhow::ensure!(
        has_ext(&args.out, ".npy"),
        "--out {}: latents are written as .npy",
        args.out.display()
    );
    let inputs = vec![args.model.clone(), args.input.clone()];
    check_output_files(std::slice::from_ref(&args.out), &inputs, args.overwrite)
        .context("--out")?;
    scoreinv::io::atomic::check_output_dir(&args.out)?;
    let m = load(&args.model, device)?;
    let raw = read_samples(&args.input, m.data())?;
    let x = to_model_space(&raw, m.data(), device);
    let cfg = latent_ode_config(args.ode.rtol, args.ode.atol, false);
    let mut bar = ode_bar();
    let res = encode(&m, &x, &cfg, &mut |f| bar.set_position((f * 1000.0) as u64));
    bar.finish_and_clear();
    let run = res?;
    write_latents(&args.out, &run.x, m.data())?;
    println!(
        "encoded {} sample(s) in {:.2} s, NFE {} → {}",
        x.size()[0],
        run.seconds,
        run.nfe,
        args.out.display()
    );
    Ok(())
}

pub fn run_decode(args: DecodeArgs, device: Device) -> Result<()> {
    let png = has_ext(&args.out, ".png");
    anyhow::ensure!(
        png || has_ext(&args.out, ".npy"),
        "--out {}: decoded samples are written as .npy or .png",
        args.out.display()
    );
    let inputs = vec![args.model.clone(), args.input.clone()];
    check_output_files(std::slice::from_ref(&args.out), &inputs, args.overwrite)
        .context("--out")?;
    scoreinv::io::atomic::check_output_dir(&args.out)?;
    let m = load(&args.model, device)?;
    let info = m.data().clone();
    anyhow::ensure!(
        !png || info.shape.len() == 3,
        "--out {}: the model's samples are {:?} vectors; write them as .npy",
        args.out.display(),
        info.shape
    );
    let z = read_latents(&args.input, &info, device)?;
    let cfg = latent_ode_config(args.ode.rtol, args.ode.atol, args.denoise);
    let mut bar = ode_bar();
    let res = decode(&m, &z, &cfg, &mut |f| bar.set_position((f * 1000.0) as u64));
    bar.finish_and_clear();
    let run = res?;
    let mut w = SampleWriter::new();
    if png {
        let wrote = w.grid(args.out.clone(), &run.x, &info, 8)?;
        anyhow::ensure!(
            wrote,
            "images with {:?} channels cannot be written as PNG",
            info.shape
        );
    } else {
        w.npy(args.out.clone(), &run.x, &info)?;
    }
    println!(
        "decoded {} sample(s) in {:.2} s, NFE {} → {}",
        z.size()[0],
        run.seconds,
        run.nfe,
        args.out.display()
    );
    Ok(())
}

pub fn run_interpolate(args: InterpolateArgs, device: Device) -> Result<()> {
    anyhow::ensure!(
        args.steps >= 2,
        "--steps must be at least 2 (the end points)"
    );
    let m = load(&args.model, device)?;
    let info = m.data().clone();
    let a = read_samples(&args.a, &info)?;
    let b = read_samples(&args.b, &info)?;
    anyhow::ensure!(
        a.size()[0] == b.size()[0],
        "--a {} holds {} sample(s) but --b {} holds {}",
        args.a.display(),
        a.size()[0],
        args.b.display(),
        b.size()[0]
    );
    let inputs = vec![args.model.clone(), args.a.clone(), args.b.clone()];
    let mut out = OutputDir::claim(
        &args.out,
        "interpolate",
        &inputs,
        Reuse::from_flag(args.overwrite),
    )
    .context("--out")?;
    let pairs = a.size()[0];
    let x = to_model_space(&Tensor::cat(&[a, b], 0), &info, device);
    let cfg = latent_ode_config(args.ode.rtol, args.ode.atol, false);
    let result = (|| -> Result<(Tensor, usize, f64)> {
        let mut bar = ode_bar();
        let enc = encode(&m, &x, &cfg, &mut |f| bar.set_position((f * 500.0) as u64));
        let enc = enc?;
        let z0 = enc.x.narrow(0, 0, pairs);
        let z1 = enc.x.narrow(0, pairs, pairs);
        let path = interpolate_latents(&z0, &z1, args.steps)?;
        let dec = decode(&m, &path, &cfg, &mut |f| {
            bar.set_position(500 + (f * 500.0) as u64)
        });
        bar.finish_and_clear();
        let dec = dec?;
        Ok((dec.x, enc.nfe + dec.nfe, enc.seconds + dec.seconds))
    })();
    let (xs, nfe, secs) = match result {
        Ok(r) => r,
        Err(e) => {
            out.abandon();
            return Err(e);
        }
    };
    let mut w = SampleWriter::new();
    let written = out
        .register(&["interpolation.npy", "grid.png"])
        .and_then(|p| {
            w.npy(p[0].clone(), &xs, &info)?;
            w.grid(p[1].clone(), &xs, &info, args.steps)
        });
    let grid = match written {
        Ok(g) => g,
        Err(e) => {
            out.abandon();
            return Err(e).context("writing the interpolation");
        }
    };
    println!(
        "{pairs} path(s) of {} points in {secs:.2} s, NFE {nfe}",
        args.steps
    );
    println!(
        "interpolation  {} ([{}] ++ {:?}, pair by pair)",
        out.path().join("interpolation.npy").display(),
        pairs as usize * args.steps,
        info.shape
    );
    if grid {
        println!("grid           {}", out.path().join("grid.png").display());
    } else {
        println!("grid           skipped: vector data");
    }
    Ok(())
}

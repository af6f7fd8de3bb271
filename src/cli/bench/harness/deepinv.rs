//! deepinv peer group (`scoreinv bench deepinv`): deepinv 0.5's DPS and DiffPIR against
//! scoreinv's validated few-step samplers (`ddim` / `diffpir` with their TV or cold start,
//! `docs/results/fewstep`) on CT (ct-ellipses, 23 of 180 views), MRI 4× (mri-brain, Colin27)
//! and box inpainting (fashion-mnist), with the same network weights and the same
//! measurements, timed in one process on the same threads (`scripts/bench/deepinv_peer.py`,
//! which also checks deepinv's `Tomography` / `MRI` / `Inpainting` against scoreinv's
//! operators and its PyTorch Tweedie denoiser against `scoreinv.Model.denoise`).
//!
//! Every deepinv row is paired with each scoreinv row of its task (K = 1 posterior sample: the
//! same NFE per case; K validated: the mean of K samples), over the cases both ran: the row's
//! figure is seconds per case (speedup = deepinv / scoreinv), with the mean PSNR / SSIM of both
//! in [`Quality`].

use super::{run_script, BenchContext, Measurement, Quality};
use scoreinv::{Error, Result};
use std::path::PathBuf;

/// Environment variable naming a folder where the peer script keeps its full output
/// (`deepinv-peer.json` with per-case figures and the operator / denoiser checks, and
/// `measurements.npz`); default: the bench's temporary folder.
pub const OUT_ENV: &str = "SCOREINV_DEEPINV_OUT";

/// Arguments of the peer script: 4 CT phantoms (1000..1004), the 4 Colin27 test slices
/// (z = 110..201:30) and 8 Fashion-MNIST test images (0..8) at 50 NFE (few cases: the study
/// runs on 2 CPU cores), DPS also at 100 NFE on the first 2 cases; `quick`: 1 case per task at
/// 10 NFE, deepinv at its defaults.
pub fn script_args(quick: bool, threads: usize, out: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["--out".into(), out.into()];
    if quick {
        a.extend(["--cases", "1", "--nfe", "10", "--no-tune"].map(String::from));
    } else {
        a.extend(
            [
                "--cases",
                "ct=4,mri=4,inpaint=8",
                "--nfe",
                "50",
                "--dps-extra-nfe",
                "100",
                "--extra-cases",
                "2",
            ]
            .map(String::from),
        );
    }
    a.extend(["--threads".into(), threads.to_string()]);
    a
}

/// One method's figures on the cases of a task.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    method: String,
    operator: String,
    samples: u64,
    nfe_per_case: f64,
    psnr: Vec<f64>,
    ssim: Vec<f64>,
    seconds: Vec<f64>,
}

fn num_list(v: &serde_json::Value, key: &str, what: &str) -> Result<Vec<f64>> {
    let list = v
        .get(key)
        .and_then(|x| x.as_array())
        .ok_or_else(|| Error::Invalid(format!("deepinv peer: {what} has no list '{key}'")))?;
    list.iter()
        .map(|x| {
            x.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                Error::Invalid(format!(
                    "deepinv peer: {what}: '{key}' holds {x}, not a number"
                ))
            })
        })
        .collect()
}

fn text(v: &serde_json::Value, key: &str, what: &str) -> Result<String> {
    v.get(key)
        .and_then(|x| x.as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid(format!("deepinv peer: {what} has no text '{key}'")))
}

fn run_of(v: &serde_json::Value, what: &str) -> Result<Run> {
    let per = v
        .get("per_case")
        .ok_or_else(|| Error::Invalid(format!("deepinv peer: {what} has no 'per_case'")))?;
    let r = Run {
        method: text(v, "method", what)?,
        operator: text(v, "operator", what)?,
        samples: v.get("samples").and_then(|x| x.as_u64()).unwrap_or(1),
        nfe_per_case: v
            .get("nfe_per_case")
            .and_then(|x| x.as_f64())
            .ok_or_else(|| Error::Invalid(format!("deepinv peer: {what} has no 'nfe_per_case'")))?,
        psnr: num_list(per, "psnr_db", what)?,
        ssim: num_list(per, "ssim", what)?,
        seconds: num_list(per, "seconds", what)?,
    };
    let n = r.psnr.len();
    if n == 0 || r.ssim.len() != n || r.seconds.len() != n {
        return Err(Error::Invalid(format!(
            "deepinv peer: {what}: per-case lists of different or zero lengths"
        )));
    }
    Ok(r)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The bench rows of the peer script's summary (its last output line): every deepinv row of a
/// task against every scoreinv row, over the first `min(cases)` cases of the two.
pub fn rows_from_summary(
    summary: &serde_json::Value,
    device: tch::Device,
) -> Result<Vec<Measurement>> {
    let tasks = summary
        .get("tasks")
        .and_then(|t| t.as_object())
        .ok_or_else(|| Error::Invalid("deepinv peer: the summary has no 'tasks' object".into()))?;
    let mut rows = Vec::new();
    for (name, t) in tasks {
        let label = t.get("label").and_then(|x| x.as_str()).unwrap_or(name);
        let list = t.get("rows").and_then(|x| x.as_array()).ok_or_else(|| {
            Error::Invalid(format!("deepinv peer: task '{name}' has no 'rows' list"))
        })?;
        let runs = list
            .iter()
            .enumerate()
            .map(|(i, r)| run_of(r, &format!("task '{name}' row {i}")))
            .collect::<Result<Vec<_>>>()?;
        let (ours, theirs): (Vec<&Run>, Vec<&Run>) =
            runs.iter().partition(|r| r.operator == "scoreinv");
        if ours.is_empty() || theirs.is_empty() {
            return Err(Error::Invalid(format!(
                "deepinv peer: task '{name}' needs scoreinv and deepinv rows"
            )));
        }
        let op_diff = t.get("operator_rel_l2_diff").and_then(|x| x.as_f64());
        for r in &theirs {
            for o in &ours {
                let n = r.psnr.len().min(o.psnr.len());
                let q = Quality {
                    cases: n,
                    nfe: o.nfe_per_case,
                    reference_nfe: r.nfe_per_case,
                    psnr_db: mean(&o.psnr[..n]),
                    ssim: mean(&o.ssim[..n]),
                    reference_psnr_db: mean(&r.psnr[..n]),
                    reference_ssim: mean(&r.ssim[..n]),
                };
                let m = Measurement::new(
                    format!(
                        "deepinv {label}: {} K={} {:.0} NFE, {n} cases",
                        o.method, o.samples, o.nfe_per_case
                    ),
                    device,
                    "s",
                    mean(&o.seconds[..n]),
                    format!(
                        "{} on {} physics, {:.0} NFE",
                        r.method,
                        if r.operator == "deepinv" {
                            "deepinv's"
                        } else {
                            "scoreinv's"
                        },
                        r.nfe_per_case
                    ),
                    Some(mean(&r.seconds[..n])),
                )?
                .with_quality(q)
                .with_rel_l2_diff(if r.operator == "deepinv" {
                    op_diff
                } else {
                    None
                });
                rows.push(m);
            }
        }
    }
    Ok(rows)
}

/// Runs the peer script and turns its summary into rows. Needs the reference interpreter (it
/// runs both sides: scoreinv through its Python module, deepinv, torch).
pub fn run(ctx: &BenchContext, progress: &dyn Fn(&str)) -> Result<Vec<Measurement>> {
    let python = ctx.python.as_deref().ok_or_else(|| {
        Error::Invalid(format!(
            "bench deepinv: no Python interpreter (.venv/bin/python or ${}) with deepinv 0.5 \
             and the scoreinv module (make python)",
            super::PYTHON_ENV
        ))
    })?;
    let out = match std::env::var_os(OUT_ENV) {
        Some(p) => PathBuf::from(p),
        None => ctx.work_dir.join("deepinv"),
    };
    let root = ctx
        .scripts
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("data/models"))
        .unwrap_or_else(|| PathBuf::from("data/models"));
    let mut args = script_args(ctx.quick, ctx.threads, &out.to_string_lossy());
    args.extend(["--models".into(), root.to_string_lossy().into_owned()]);
    progress("deepinv peer: DPS, DiffPIR and scoreinv's few-step samplers (minutes)");
    let summary = run_script(python, &ctx.scripts.join("deepinv_peer.py"), &args)?;
    rows_from_summary(&summary, tch::Device::Cpu)
}

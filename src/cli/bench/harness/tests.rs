//! Correctness of the `scoreinv bench` harness (never its speed): the ratio convention and
//! JSON schema on a fake workload with known times, the reference script's interface, and the
//! parity of the PyTorch NCSN++ re-implementation with scoreinv's network.

use super::deepinv::{rows_from_summary, script_args};
use super::fanbeam::{astra_reference, fan_images, FanSize, AGREEMENT_TOL};
use super::network::{
    bench_config, bench_model, build_shared, measured_ct, write_parity_case, PARITY_TOL,
};
use super::{
    field, median, run_reference, run_script, speedup, time_with, write_json, BenchContext,
    Direction, Measurement, Repeats, Suite,
};
use scoreinv::models::config::ScoreSdeConfig;
use scoreinv::operators::{FanBeam, LinearOperator};
use std::cell::Cell;
use std::path::PathBuf;
use std::process::Command;
use tch::{Device, Kind};

#[test]
fn fake_workload_gives_the_median_of_known_times() {
    // Each call of the workload advances a fake clock by the next duration in the list; the
    // first (warm-up) duration must not be counted.
    let durations = [100.0, 3.0, 1.0, 2.0, 50.0, 4.0];
    let now = Cell::new(0.0f64);
    let calls = Cell::new(0usize);
    let syncs = Cell::new(0usize);
    let t = time_with(
        Repeats {
            warmup: 1,
            repeats: 5,
        },
        &mut || now.get(),
        &mut || syncs.set(syncs.get() + 1),
        &mut || {
            now.set(now.get() + durations[calls.get()]);
            calls.set(calls.get() + 1);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(calls.get(), 6);
    assert_eq!(t.samples_s, vec![3.0, 1.0, 2.0, 50.0, 4.0]);
    assert_eq!(t.median_s, 3.0);
    // One sync after the warm-up, one after every timed call.
    assert_eq!(syncs.get(), 6);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]).unwrap(), 2.5);
    assert!(median(&[]).is_err());
    assert!(median(&[1.0, f64::NAN]).is_err());
    let zero = Repeats {
        warmup: 0,
        repeats: 0,
    };
    assert!(time_with(zero, &mut || 0.0, &mut || {}, &mut || Ok(())).is_err());
}

#[test]
fn speedup_above_one_means_scoreinv_is_faster() {
    // Times: 2 s for us, 6 s for the reference → 3x faster.
    assert_eq!(speedup(Direction::LowerIsBetter, 2.0, 6.0), Some(3.0));
    // Throughputs: 30 images/s for us, 10 for the reference → 3x faster.
    assert_eq!(speedup(Direction::HigherIsBetter, 30.0, 10.0), Some(3.0));
    assert_eq!(speedup(Direction::HigherIsBetter, 30.0, 0.0), None);
    assert_eq!(speedup(Direction::LowerIsBetter, f64::NAN, 1.0), None);
    assert_eq!(Direction::of_unit("s").unwrap(), Direction::LowerIsBetter);
    assert_eq!(Direction::of_unit("NFE").unwrap(), Direction::LowerIsBetter);
    assert_eq!(
        Direction::of_unit("images/s").unwrap(),
        Direction::HigherIsBetter
    );
    assert!(Direction::of_unit("ms").is_err());
}

#[test]
fn json_rows_have_the_documented_schema() {
    let rows = vec![
        Measurement::new("op", Device::Cpu, "s", 0.5, "numpy", Some(2.0)).unwrap(),
        Measurement::new("net", Device::Cuda(1), "images/s", 8.0, "torch", Some(4.0)).unwrap(),
        Measurement::new("x", Device::Cpu, "steps/s", 8.0, "torch", None).unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.json");
    write_json(&rows, &path).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let list = v.as_array().expect("a JSON list");
    assert_eq!(list.len(), 3);
    let mut keys: Vec<&str> = list[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "device",
            "name",
            "reference",
            "reference_value",
            "speedup",
            "unit",
            "value"
        ]
    );
    assert_eq!(list[0]["speedup"].as_f64(), Some(4.0));
    assert_eq!(list[1]["speedup"].as_f64(), Some(2.0));
    assert_eq!(list[1]["device"], "cuda:1");
    assert!(list[2]["reference_value"].is_null() && list[2]["speedup"].is_null());
    let back: Vec<Measurement> = serde_json::from_value(v).unwrap();
    assert_eq!(back, rows);
    assert!(Measurement::new("bad", Device::Cpu, "ms", 1.0, "r", None).is_err());
}

#[test]
fn suite_lists_parse() {
    assert_eq!(Suite::parse_list("all").unwrap(), Suite::ALL.to_vec());
    assert!(!Suite::ALL.contains(&Suite::Deepinv));
    assert_eq!(
        Suite::parse_list("train, operators,train").unwrap(),
        vec![Suite::Operators, Suite::Train]
    );
    let e = Suite::parse_list("operators,gpu").unwrap_err().to_string();
    assert!(e.contains("gpu"), "{e}");
}

/// The interpreter with torch, scikit-image and safetensors: `$SCOREINV_PYTHON`, the
/// workspace's `.venv/bin/python`, or `python` on `PATH` (as `make test` sets it up).
fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SCOREINV_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push(root.join(".venv/bin/python"));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("python")));
    }
    candidates.into_iter().find(|p| {
        p.exists()
            && Command::new(p)
                .args(["-c", "import torch, skimage, safetensors"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
    })
}

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn reference_script_parses_arguments_and_returns_times() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: no python with torch/scikit-image (run `make setup` for .venv)");
        return;
    };
    let fast = ["--warmup", "0", "--repeats", "1"];
    let mut a = s(&["radon", "--size", "16", "--angles", "8", "--batch", "2"]);
    a.extend(s(&fast));
    let v = run_reference(&py, &scripts(), &a).unwrap();
    for k in ["forward", "adjoint", "fbp"] {
        assert!(field(&v, k).unwrap() > 0.0, "{k}: {v}");
    }
    let mut a = s(&[
        "radon_torch",
        "--size",
        "16",
        "--angles",
        "8",
        "--batch",
        "2",
        "--device",
        "cpu",
    ]);
    a.extend(s(&fast));
    let v = run_reference(&py, &scripts(), &a).unwrap();
    for k in ["forward", "forward_adjoint", "fbp"] {
        assert!(field(&v, k).unwrap() > 0.0, "{k}: {v}");
    }
    let mut a = s(&["mri", "--size", "16", "--batch", "1"]);
    a.extend(s(&fast));
    let v = run_reference(&py, &scripts(), &a).unwrap();
    assert!(field(&v, "forward").unwrap() > 0.0);
    // A missing required argument is an error that names the command.
    let e = run_reference(&py, &scripts(), &s(&["radon", "--size", "16"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--angles") || e.contains("required"), "{e}");
    assert!(field(&v, "no_such_key").is_err());
}

fn tiny(extra: serde_json::Value) -> ScoreSdeConfig {
    let base = bench_config(16, 8).unwrap();
    let mut v = serde_json::to_value(&base).unwrap();
    for (k, val) in extra.as_object().unwrap() {
        v["model"][k] = val.clone();
    }
    ScoreSdeConfig::from_json_value(&v).unwrap()
}

#[test]
fn pytorch_ncsnpp_matches_scoreinv_on_tiny_configs() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: no python with torch/scikit-image (run `make setup` for .venv)");
        return;
    };
    // nf 8, 16x16: the published defaults (BigGAN + FIR + residual input pyramid, Fourier),
    // and variants covering the other blocks/pyramids/embedding of the re-implementation.
    let cases = [
        serde_json::json!({}),
        serde_json::json!({"resblock_type": "ddpm", "fir": false, "progressive": "output_skip",
            "progressive_input": "input_skip", "embedding_type": "positional"}),
        serde_json::json!({"progressive": "residual", "progressive_input": "input_skip",
            "progressive_combine": "cat", "nonlinearity": "lrelu"}),
    ];
    for (i, extra) in cases.iter().enumerate() {
        let cfg = tiny(extra.clone());
        let dir = tempfile::tempdir().unwrap();
        let shared = build_shared(&cfg, Device::Cpu, dir.path()).unwrap();
        let check = dir.path().join("check.safetensors");
        write_parity_case(&shared, 2, &check).unwrap();
        let a = vec![
            "network".to_string(),
            "--config".into(),
            shared.config_path.display().to_string(),
            "--weights".into(),
            shared.weights_path.display().to_string(),
            "--batch".into(),
            "1".into(),
            "--check".into(),
            check.display().to_string(),
            "--warmup".into(),
            "0".into(),
            "--repeats".into(),
            "1".into(),
        ];
        let v = run_reference(&py, &scripts(), &a).unwrap();
        let e = v["max_rel_err"].as_f64().unwrap();
        // f32 on both sides with different reduction orders: ~1e-7..1e-6 expected.
        assert!(e <= PARITY_TOL, "case {i} {extra}: max rel err {e:e}");
        eprintln!("case {i}: max rel err {e:e}");
        if i == 0 {
            // The check is not blind: a stored output off by 1% must read as ~1e-2.
            let mut t = tch::Tensor::read_safetensors(&check).unwrap();
            for (k, v) in t.iter_mut() {
                if k == "output.y" {
                    *v = &*v * 1.01;
                }
            }
            tch::Tensor::write_safetensors(&t, &check).unwrap();
            let v = run_reference(&py, &scripts(), &a).unwrap();
            let e = v["max_rel_err"].as_f64().unwrap();
            assert!((e - 0.01 / 1.01).abs() < 1e-4, "perturbed output: {e:e}");
        }
    }
}

/// The measured end-to-end CT row's workload runs the projection sampler for the requested
/// number of steps on the bench network (tiny here: 16², nf 8, 3 steps, batch 2).
#[test]
fn measured_ct_runs_the_projection_sampler() {
    let dir = tempfile::tempdir().unwrap();
    let shared = build_shared(&bench_config(16, 8).unwrap(), Device::Cpu, dir.path()).unwrap();
    let (_vs, model) = bench_model(shared).unwrap();
    let secs = measured_ct(&model, Device::Cpu, 3, 2, false).unwrap();
    assert!(secs > 0.0 && secs.is_finite(), "{secs}");
    // The CUDA-graph variant needs a CUDA device.
    let e = measured_ct(&model, Device::Cpu, 3, 2, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("CUDA device"), "{e}");
}

/// The interpreter with `astra-toolbox`: `$SCOREINV_ASTRA_PYTHON` or the workspace's
/// `.venv-astra/bin/python` (see `scripts/bench/reference.py fanbeam_astra`).
fn astra_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SCOREINV_ASTRA_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push(root.join(".venv-astra/bin/python"));
    candidates.into_iter().find(|p| {
        p.exists()
            && Command::new(p)
                .args(["-c", "import astra, numpy"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
    })
}

/// scoreinv's fan-beam projections and back-projections of the bench input (quick size, flat
/// twin) agree with ASTRA's `line_fanflat` within the bench's tolerance, and the check is not
/// blind: ASTRA run on the mirrored images (and bin-reversed sinograms) fails it.
#[test]
fn astra_fanbeam_reference_agrees_and_sees_a_mirror() {
    let Some(py) = astra_python() else {
        eprintln!(
            "SKIPPED: no python with astra-toolbox (python3 -m venv .venv-astra && \
             .venv-astra/bin/pip install astra-toolbox==2.5.0 numpy)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ctx = BenchContext {
        astra_python: Some(py.clone()),
        scripts: scripts(),
        work_dir: dir.path().to_path_buf(),
        ..BenchContext::quick_cpu()
    };
    let size = FanSize::for_run(true);
    let flat = size.flat();
    let op = FanBeam::new(flat.clone(), Kind::Float, Device::Cpu).unwrap();
    let x = fan_images(2, size.n, Device::Cpu);
    let ax = op.forward(&x).unwrap();
    let y = &ax / ax.abs().max();
    let aty = op.adjoint(&y).unwrap();
    let run = astra_reference(&ctx, &flat, (&x, &ax), (&y, &aty))
        .unwrap()
        .expect("the ASTRA reference ran");
    eprintln!("{run:?}");
    assert!(run.forward_rel_l2 <= AGREEMENT_TOL, "{run:?}");
    assert!(run.adjoint_rel_l2 <= AGREEMENT_TOL, "{run:?}");
    assert!(run.forward_s > 0.0 && run.adjoint_s > 0.0);
    assert!(run.version.starts_with("2.5"), "{}", run.version);
    // Control: ASTRA on the left-right mirror of the inputs.
    let mirrored = astra_reference(&ctx, &flat, (&x.flip([3]), &ax), (&y.flip([2]), &aty))
        .unwrap()
        .unwrap();
    eprintln!("mirrored: {mirrored:?}");
    assert!(
        mirrored.forward_rel_l2 > 2.0 * AGREEMENT_TOL,
        "{mirrored:?}"
    );
    assert!(
        mirrored.adjoint_rel_l2 > 2.0 * AGREEMENT_TOL,
        "{mirrored:?}"
    );
    // A curved detector is refused with a message naming it.
    let mut args = s(&["fanbeam_astra", "--batch", "1", "--geometry"]);
    let g = dir.path().join("curved.json");
    std::fs::write(&g, serde_json::to_string(&size.curved()).unwrap()).unwrap();
    args.push(g.display().to_string());
    for flag in [
        "--images",
        "--sinograms",
        "--out-sinograms",
        "--out-backprojections",
    ] {
        args.push(flag.into());
        args.push(dir.path().join("unused.npy").display().to_string());
    }
    let e = run_reference(&py, &scripts(), &args)
        .unwrap_err()
        .to_string();
    assert!(e.contains("flat detector only"), "{e}");
}

fn peer_row(method: &str, operator: &str, k: u64, psnr: &[f64], secs: &[f64]) -> serde_json::Value {
    serde_json::json!({
        "method": method, "operator": operator, "samples": k, "nfe_per_case": 50.0 * k as f64,
        "per_case": {"psnr_db": psnr, "ssim": psnr.iter().map(|p| p / 100.0).collect::<Vec<_>>(),
                     "seconds": secs}
    })
}

#[test]
fn deepinv_summary_pairs_each_deepinv_row_with_each_scoreinv_row() {
    let summary = serde_json::json!({"tasks": {"ct": {
    "label": "ct-ellipses", "operator_rel_l2_diff": 0.16,
    "rows": [
        peer_row("ddim", "scoreinv", 1, &[40.0, 42.0, 44.0], &[2.0, 2.0, 2.0]),
        peer_row("ddim", "scoreinv", 4, &[41.0, 43.0, 45.0], &[6.0, 6.0, 6.0]),
        peer_row("DPS", "deepinv", 1, &[30.0, 32.0, 34.0], &[4.0, 4.0, 4.0]),
        // an extra row on the first two cases only
        peer_row("DPS 200", "scoreinv-op", 1, &[35.0, 37.0], &[16.0, 8.0]),
    ]}}});
    let rows = rows_from_summary(&summary, Device::Cpu).unwrap();
    assert_eq!(rows.len(), 4);
    let q = rows[0].quality.as_ref().unwrap();
    assert_eq!((q.cases, q.psnr_db, q.reference_psnr_db), (3, 42.0, 32.0));
    assert!((q.ssim - 0.42).abs() < 1e-12 && (q.reference_ssim - 0.32).abs() < 1e-12);
    assert_eq!(rows[0].speedup, Some(2.0)); // 4 s for deepinv, 2 s for us
    assert_eq!(rows[0].rel_l2_diff, Some(0.16)); // deepinv's own physics
    assert_eq!(rows[1].speedup, Some(4.0 / 6.0)); // K = 4: slower than one DPS run
    assert_eq!(rows[1].quality.as_ref().unwrap().nfe, 200.0);
    // the extra row: both sides over its two cases
    let q = rows[2].quality.as_ref().unwrap();
    assert_eq!((q.cases, q.psnr_db, q.reference_psnr_db), (2, 41.0, 36.0));
    assert_eq!(rows[2].value, 2.0);
    assert_eq!(rows[2].reference_value, Some(12.0));
    assert_eq!(rows[2].rel_l2_diff, None); // scoreinv's operator: nothing to compare
    assert!(
        rows[2].reference.contains("scoreinv's physics"),
        "{}",
        rows[2].reference
    );
    // quality is written by --json and read back
    let v = serde_json::to_value(&rows).unwrap();
    assert_eq!(v[0]["quality"]["reference_psnr_db"].as_f64(), Some(32.0));
    let back: Vec<Measurement> = serde_json::from_value(v).unwrap();
    assert_eq!(back, rows);
    assert_eq!(Suite::parse_list("deepinv").unwrap(), vec![Suite::Deepinv]);
    assert!(!Suite::parse_list("all").unwrap().contains(&Suite::Deepinv));
}

#[test]
fn deepinv_summary_errors_name_what_is_missing() {
    let mut bad = peer_row("DPS", "deepinv", 1, &[30.0], &[1.0]);
    bad["per_case"].as_object_mut().unwrap().remove("seconds");
    let s = serde_json::json!({"tasks": {"mri": {"rows": [
        peer_row("ddim", "scoreinv", 1, &[20.0], &[1.0]), bad]}}});
    let e = rows_from_summary(&s, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("'seconds'") && e.contains("mri"), "{e}");
    let only_ours = serde_json::json!({"tasks": {"mri": {"rows": [
        peer_row("ddim", "scoreinv", 1, &[20.0], &[1.0])]}}});
    let e = rows_from_summary(&only_ours, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("deepinv rows"), "{e}");
    let nan = serde_json::json!({"tasks": {"mri": {"rows": [
        peer_row("ddim", "scoreinv", 1, &[20.0, 21.0], &[1.0])]}}});
    assert!(rows_from_summary(&nan, Device::Cpu).is_err()); // lists of different lengths
    assert!(rows_from_summary(&serde_json::json!({}), Device::Cpu).is_err());
}

#[test]
fn deepinv_peer_script_runs_tiny_and_its_summary_gives_rows() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: no python with torch/scikit-image (run `make setup` for .venv)");
        return;
    };
    let has = Command::new(&py)
        .args(["-c", "import deepinv, scoreinv.deepinv"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has {
        eprintln!(
            "SKIPPED: no deepinv / scoreinv module in {} (make python)",
            py.display()
        );
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut args = script_args(true, 1, &dir.path().to_string_lossy());
    assert!(args.windows(2).any(|w| w == ["--cases", "1"]));
    // Inpainting alone at 4 NFE: the tiniest run through every stage of the script.
    args.extend(s(&["--tasks", "inpaint", "--nfe", "4", "--models"]));
    args.push(root.join("data/models").to_string_lossy().into_owned());
    let v = run_script(&py, &scripts().join("deepinv_peer.py"), &args).unwrap();
    let rows = rows_from_summary(&v, Device::Cpu).unwrap();
    // scoreinv diffpir (K = 1) against deepinv's DPS and DiffPIR
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        let q = r.quality.as_ref().unwrap();
        assert_eq!((q.cases, q.nfe, q.reference_nfe), (1, 4.0, 4.0), "{r:?}");
        // (DPS at 4 steps need not reconstruct anything: only scoreinv's figure is judged)
        assert!(q.psnr_db > 12.0 && q.reference_psnr_db.is_finite(), "{q:?}");
        assert_eq!(r.rel_l2_diff, Some(0.0)); // deepinv's Inpainting is our masking operator
        assert!(r.speedup.unwrap() > 0.0);
    }
    let full = dir.path().join("deepinv-peer.json");
    assert!(full.exists() && dir.path().join("measurements.npz").exists());
    // Control: an unknown task is refused with its name, not run.
    let e = run_script(
        &py,
        &scripts().join("deepinv_peer.py"),
        &s(&["--out", &dir.path().to_string_lossy(), "--tasks", "ct,pet"]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("pet"), "{e}");
}

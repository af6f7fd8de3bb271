//! `scoreinv sample` end to end: a tiny model trained in the test, every sampler kind through
//! the library functions the CLI calls, the built binary for one run, and the bad-input cases
//! (missing model, unwritable output) that must fail clearly and write nothing.
mod latent_fixture;

use latent_fixture::{train_tiny, Flavor, SIZE};
use ndarray::ArrayD;
use ndarray_npy::read_npy;
use scoreinv::sampling::run::{build_sampler, load, sample_model, SampleWriter, SamplerOptions};
use std::path::Path;
use std::process::Command;
use tch::Device;

/// Runs one sampler through the library path of `scoreinv sample` and checks the files.
fn sample_and_check(model_dir: &Path, flags: SamplerOptions, n: usize, out: &Path) -> usize {
    let m = load(model_dir, Device::Cpu).unwrap();
    let opts = build_sampler(&flags, &m.sde).unwrap();
    let mut ticks = 0u64;
    let mut last = (0, 0);
    let run = sample_model(
        m.model.as_ref(),
        opts.as_ref(),
        &m.data().shape,
        n,
        2,
        1,
        Device::Cpu,
        &mut |d, t| {
            ticks += 1;
            last = (d, t);
        },
    )
    .unwrap();
    // The progress hook reached the end of the last batch.
    assert!(
        ticks > 0 && last.0 == last.1,
        "{:?}: progress {last:?}",
        flags.sampler
    );
    assert_eq!(run.x.size(), vec![n as i64, 1, SIZE, SIZE]);
    let mut dir = scoreinv::io::output::OutputDir::claim(
        out,
        "sample",
        &[],
        scoreinv::io::output::Reuse::Refuse,
    )
    .unwrap();
    let p = dir.register(&["samples.npy", "grid.png"]).unwrap();
    let mut w = SampleWriter::new();
    w.npy(p[0].clone(), &run.x, m.data()).unwrap();
    assert!(w.grid(p[1].clone(), &run.x, m.data(), 8).unwrap());
    let a: ArrayD<f32> = read_npy(out.join("samples.npy")).expect("samples.npy is f32");
    assert_eq!(a.shape(), &[n, 1, SIZE as usize, SIZE as usize]);
    assert!(a.iter().all(|v| v.is_finite()));
    let png = image::open(out.join("grid.png")).unwrap();
    // torchvision layout: n ≤ nrow images in one row, padding 2.
    assert_eq!(png.width() as usize, 2 + n * (SIZE as usize + 2));
    assert_eq!(png.height() as usize, 2 + SIZE as usize + 2);
    run.nfe
}

#[test]
fn every_sampler_writes_samples_and_grid() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let ve = tmp.path().join("ve");
    let vp = tmp.path().join("vp");
    train_tiny(&ve, Flavor::Ve, 5);
    train_tiny(&vp, Flavor::Vp, 5);
    // PC with 10 steps: reverse diffusion + one Langevin step = 2 evaluations per step, per
    // batch (3 samples in batches of 2 = 2 batches).
    let pc = SamplerOptions {
        sampler: "pc".into(),
        steps: Some(10),
        ..Default::default()
    };
    assert_eq!(
        sample_and_check(&ve, pc, 3, &tmp.path().join("pc")),
        2 * 10 * 2
    );
    // ODE: fixed-step Heun, 10 steps = 20 evaluations + 1 denoising step per batch.
    let ode = SamplerOptions {
        sampler: "ode".into(),
        steps: Some(10),
        ode_solver: Some(scoreinv::sampling::ode::OdeSolver::Heun),
        ..Default::default()
    };
    assert_eq!(sample_and_check(&ve, ode, 2, &tmp.path().join("ode")), 21);
    // ALD: 3 levels × 3 Langevin steps + the final denoising step.
    let ald = SamplerOptions {
        sampler: "ald".into(),
        steps: Some(3),
        n_corrector_steps: Some(3),
        ..Default::default()
    };
    assert_eq!(sample_and_check(&ve, ald, 2, &tmp.path().join("ald")), 10);
    // DDPM ancestral on the VP model: N = 25 evaluations (N must exceed β_max = 20 so that
    // every β_i = β(t_i)/N < 1).
    let mut anc = SamplerOptions {
        sampler: "ancestral".into(),
        steps: Some(25),
        ..Default::default()
    };
    assert_eq!(
        sample_and_check(&vp, anc.clone(), 2, &tmp.path().join("anc")),
        25
    );
    let mvp = load(&vp, Device::Cpu).unwrap();
    anc.steps = Some(10);
    let e = build_sampler(&anc, &mvp.sde).unwrap_err().to_string();
    assert!(e.contains("β_max/N = 2.000"), "{e}");

    // Combinations that make no sense are refused with the reason.
    let m = load(&ve, Device::Cpu).unwrap();
    let e = build_sampler(
        &SamplerOptions {
            sampler: "ancestral".into(),
            ..Default::default()
        },
        &m.sde,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("VP"), "{e}");
    let e = build_sampler(
        &SamplerOptions {
            sampler: "ode".into(),
            snr: Some(0.1),
            ..Default::default()
        },
        &m.sde,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`snr`") && e.contains("pc"), "{e}");
}

#[test]
fn binary_samples_and_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    // A training run folder: the model directory lives in run/model.
    train_tiny(&run_dir.join("model"), Flavor::Ve, 3);
    let exe = env!("CARGO_BIN_EXE_scoreinv");
    let out = tmp.path().join("samples");
    let o = Command::new(exe)
        .args(["--device", "cpu", "--threads", "1", "sample", "--model"])
        .arg(&run_dir)
        .args([
            "--n",
            "3",
            "--sampler",
            "pc",
            "--steps",
            "10",
            "--seed",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("NFE 20"), "{stdout}");
    let a: ArrayD<f32> = read_npy(out.join("samples.npy")).unwrap();
    assert_eq!(a.shape(), &[3, 1, 16, 16]);
    assert!(out.join("grid.png").is_file());
    // Raw data range: the model was trained on 0..255 values, so samples are on that scale,
    // not in [0, 1] (a loose check: some value beyond 1.5 in magnitude after 3 training steps).
    assert!(a.iter().any(|v| v.abs() > 1.5), "samples look unscaled");

    // Same seed → same samples (sampling is deterministic on the CPU).
    let out2 = tmp.path().join("samples2");
    let o = Command::new(exe)
        .args(["--device", "cpu", "--threads", "1", "sample", "--model"])
        .arg(&run_dir)
        .args(["--n", "3", "--steps", "10", "--seed", "3", "--out"])
        .arg(&out2)
        .output()
        .unwrap();
    assert!(o.status.success());
    let b: ArrayD<f32> = read_npy(out2.join("samples.npy")).unwrap();
    assert_eq!(a, b);

    // Missing model directory: clear error, no output folder.
    let bad_out = tmp.path().join("never");
    let o = Command::new(exe)
        .args(["--device", "cpu", "sample", "--model"])
        .arg(tmp.path().join("no-such-run"))
        .arg("--out")
        .arg(&bad_out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no-such-run") && err.contains("no such folder"),
        "{err}"
    );
    assert!(!bad_out.exists());

    // Output folder below a regular file: cannot be created, nothing written.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = Command::new(exe)
        .args(["--device", "cpu", "sample", "--model"])
        .arg(&run_dir)
        .args(["--n", "1", "--steps", "10", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot create output folder"), "{err}");

    // A flag of another sampler is refused before any work.
    let o = Command::new(exe)
        .args(["--device", "cpu", "sample", "--model"])
        .arg(&run_dir)
        .args(["--sampler", "ode", "--predictor", "euler-maruyama", "--out"])
        .arg(&bad_out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--predictor"), "{err}");
    assert!(!bad_out.exists());
}

/// A model of 2-D vectors: samples.npy is `[N, 2]` and no grid is written (the CLI says so).
#[test]
fn vector_model_writes_npy_without_grid() {
    use scoreinv::train::config::preset;
    use scoreinv::train::data::DataSource;
    use scoreinv::train::Trainer;
    tch::manual_seed(0);
    let tmp = tempfile::tempdir().unwrap();
    let ds = DataSource::parse("gaussian2d:256")
        .unwrap()
        .load(false)
        .unwrap();
    let mut cfg = preset("toy2d").unwrap();
    cfg.training.batch_size = 32;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    for _ in 0..5 {
        tr.train_step().unwrap();
    }
    let dir = tmp.path().join("model");
    tr.export_model_dir(&dir).unwrap();
    let out = tmp.path().join("s");
    let o = Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(["--device", "cpu", "--threads", "1", "sample", "--model"])
        .arg(&dir)
        .args([
            "--n",
            "5",
            "--sampler",
            "ald",
            "--steps",
            "3",
            "--n-corrector-steps",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("grid        skipped") && stdout.contains("NFE 7"),
        "{stdout}"
    );
    let a: ArrayD<f32> = read_npy(out.join("samples.npy")).unwrap();
    assert_eq!(a.shape(), &[5, 2]);
    assert!(!out.join("grid.png").exists());
}

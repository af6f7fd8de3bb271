//! `scoreinv likelihood` end to end on a tiny trained model: finite bits/dim with score_sde's
//! dequantisation offset for 8-bit data, the standard error, the JSON summary, and the
//! model/data shape mismatch.
mod latent_fixture;

use latent_fixture::{phantoms_u8, train_tiny, Flavor};
use ndarray::Array4;
use ndarray_npy::write_npy;
use scoreinv::sampling::likelihood::{BpdConvention, Divergence};
use scoreinv::sampling::run::{dataset_likelihood, is_8bit, load, LikelihoodOptions};
use scoreinv::train::data::DataSource;
use std::process::Command;
use tch::Device;

fn write_stack(path: &std::path::Path, n: usize, seed: u64) {
    let raw = phantoms_u8(n, seed);
    let v = Vec::<f32>::try_from(raw.flatten(0, -1)).unwrap();
    let a = Array4::from_shape_vec((n, 1, 16, 16), v.iter().map(|&x| x as u8).collect()).unwrap();
    write_npy(path, &a).unwrap();
}

#[test]
fn likelihood_of_phantoms_is_finite_and_dequantised() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    train_tiny(&dir, Flavor::Ve, 300);
    let data = tmp.path().join("x.npy");
    write_stack(&data, 4, 11);
    let m = load(&dir, Device::Cpu).unwrap();
    let ds = DataSource::parse(data.to_str().unwrap())
        .unwrap()
        .load(false)
        .unwrap();
    assert!(is_8bit(&ds.data));
    let opts = LikelihoodOptions {
        batch: 2,
        ..Default::default()
    };
    let mut last = (0, 1);
    let s =
        dataset_likelihood(&m, &ds.data, &opts, Device::Cpu, &mut |d, t| last = (d, t)).unwrap();
    eprintln!("{s:?}");
    assert_eq!(last.0, last.1);
    assert_eq!(s.n, 4);
    assert!(s.dequantized);
    assert_eq!(s.convention, BpdConvention::Unit8Bit);
    assert!(s.bpd.iter().all(|v| v.is_finite()));
    // Mean and standard error agree with the per-sample values (recomputed here).
    let mean = s.bpd.iter().sum::<f64>() / 4.0;
    let sd = (s.bpd.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
    assert!((s.bpd_mean - mean).abs() < 1e-12);
    assert!((s.bpd_stderr.unwrap() - sd / 2.0).abs() < 1e-12);
    // bpd = nll/(D ln 2) + 8 for data dequantised into [0, 1] (D = 256); bits/dim are computed
    // in f32 (relative rounding 6e-8 on values ≈ 13), hence 1e-5.
    let from_nll = s.nll_nats_mean / (256.0 * std::f64::consts::LN_2) + 8.0;
    assert!(
        (from_nll - s.bpd_mean).abs() < 1e-5,
        "{from_nll} vs {}",
        s.bpd_mean
    );
    // The exact divergence (256 backward passes per evaluation) on one sample agrees with the
    // Rademacher estimate: both estimate the same log-likelihood, differing by the Hutchinson
    // noise and another dequantisation draw (the per-sample spread above is ≈ 0.03 bit/dim);
    // a loose 0.5 bit/dim.
    let one = ds.data.narrow(0, 0, 1);
    let exact = dataset_likelihood(
        &m,
        &one,
        &LikelihoodOptions {
            divergence: Divergence::Exact,
            batch: 1,
            ..Default::default()
        },
        Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    eprintln!("exact {:?} vs hutchinson {}", exact.bpd, s.bpd[0]);
    assert!((exact.bpd[0] - s.bpd[0]).abs() < 0.1);
}

#[test]
fn cli_likelihood_writes_json_and_refuses_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    train_tiny(&dir, Flavor::Ve, 300);
    let data = tmp.path().join("x.npy");
    write_stack(&data, 3, 12);
    let exe = env!("CARGO_BIN_EXE_scoreinv");
    let json = tmp.path().join("bpd.json");
    let o = Command::new(exe)
        .args(["--device", "cpu", "--threads", "1", "likelihood", "--model"])
        .arg(&dir)
        .arg("--data")
        .arg(&data)
        .args(["--batch", "3", "--out"])
        .arg(&json)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("bits/dim") && out.contains("±"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let bpd = v["summary"]["bpd_mean"].as_f64().unwrap();
    assert!(bpd.is_finite());
    assert_eq!(v["summary"]["n"].as_u64(), Some(3));
    assert_eq!(v["summary"]["dequantized"].as_bool(), Some(true));

    // 28×28 data for the 16×16 model.
    let big = tmp.path().join("big.npy");
    write_npy(&big, &Array4::<u8>::zeros((2, 1, 28, 28))).unwrap();
    let json2 = tmp.path().join("never.json");
    let o = Command::new(exe)
        .args(["--device", "cpu", "likelihood", "--model"])
        .arg(&dir)
        .arg("--data")
        .arg(&big)
        .arg("--out")
        .arg(&json2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("[1, 28, 28]") && err.contains("[1, 16, 16]"),
        "{err}"
    );
    assert!(!json2.exists());
}

/// `scoreinv likelihood --data fashion-mnist` through the binary, with a tiny MLP trained for
/// 300 steps on 64 Fashion-MNIST images: finite bits/dim with the 8-bit offset on 4 images.
/// Needs the Debian package dataset-fashion-mnist (`scripts/setup` installs it; a missing
/// package fails). Cheap enough for CI as it stands: 4.5 s in the test profile.
#[test]
fn cli_likelihood_on_fashion_mnist() {
    use scoreinv::train::config::preset;
    use scoreinv::train::data::Dataset;
    use scoreinv::train::Trainer;
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let full = DataSource::parse("fashion-mnist")
        .and_then(|s| s.load(false))
        .unwrap_or_else(|e| {
            panic!("{e}\n(run scripts/setup, or apt-get install dataset-fashion-mnist)")
        });
    let ds = Dataset::new(full.data.narrow(0, 0, 64), None, full.info.clone()).unwrap();
    let mut cfg = preset("tiny").unwrap();
    cfg.training.n_iters = 300;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    for _ in 0..300 {
        tr.train_step().unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    // The report goes beside the model directory, not into it (an output never lies inside an
    // input).
    let model = tmp.path().join("model");
    tr.export_model_dir(&model).unwrap();
    let json = tmp.path().join("bpd.json");
    let o = Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(["--device", "cpu", "--threads", "1", "likelihood", "--model"])
        .arg(&model)
        .args([
            "--data",
            "fashion-mnist",
            "--n",
            "4",
            "--batch",
            "4",
            "--out",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!("{out}");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["summary"]["bpd_mean"].as_f64().unwrap().is_finite());
    assert_eq!(v["summary"]["dequantized"].as_bool(), Some(true));
    assert_eq!(v["summary"]["convention"].as_str(), Some("unit8-bit"));
}

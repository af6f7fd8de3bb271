//! End to end: train NCSN++-tiny for a few steps on 16×16 ellipse phantoms, export the model
//! directory, run `scoreinv reconstruct ct --model DIR --method fbp,score,dps` on 4 of 16 views
//! and check that it writes its outputs and that the score reconstruction is consistent with the
//! measurement (not its quality: the model is barely trained).
use scoreinv::data::phantom::{random_ellipses_tensor, RandomEllipsesConfig};
use scoreinv::inverse::projection::ProjectionConfig;
use scoreinv::inverse::score_method::ScoreMethod;
use scoreinv::models::model_dir::DataInfo;
use scoreinv::operators::radon::ParallelBeamRadon;
use scoreinv::operators::LinearOperator;
use scoreinv::train::config::preset;
use scoreinv::train::data::Dataset;
use scoreinv::train::Trainer;
use std::process::Command;
use std::sync::Arc;
use tch::{Device, Kind};

fn train_model(dir: &std::path::Path) {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let data = random_ellipses_tensor(
        16,
        16,
        &RandomEllipsesConfig::default(),
        0,
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, 16, 16],
        centered: false,
        data_range: None,
        source: "ellipse phantoms (test)".into(),
    };
    let ds = Dataset::new(data, None, info).unwrap();
    let mut cfg = preset("ncsnpp-tiny").unwrap();
    cfg.training.n_iters = 3;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    for _ in 0..3 {
        tr.train_step().unwrap();
    }
    tr.export_model_dir(dir).unwrap();
}

/// The simulation of the batched and model-settings tests: 16×16, 4 of 16 views, 1 % noise.
const NOISY_16: [&str; 8] = [
    "--size",
    "16",
    "--views",
    "4",
    "--angles",
    "16",
    "--noise",
    "gaussian:0.01",
];

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(["--device", "cpu", "--threads", "1"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn reconstruct_ct_with_a_trained_model() {
    let model = tempfile::tempdir().unwrap();
    train_model(model.path());
    let out = tempfile::tempdir().unwrap();
    let m = model.path().to_str().unwrap();
    let o = out.path().to_str().unwrap();
    let common = [
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:ellipses:3",
        "--views",
        "4",
        "--angles",
        "16",
        "--noise",
        "none",
        "--model",
        m,
        "--steps",
        "8",
        "--samples",
        "2",
    ];
    // Wrong size: a clear error suggesting --size.
    let mut bad = common.to_vec();
    bad.extend(["--size", "24", "--method", "score", "--out", o]);
    let r = run(&bad);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("16×16") && err.contains("--size 16"), "{err}");
    // The real run.
    let mut good = common.to_vec();
    good.extend(["--size", "16", "--method", "fbp,score,dps", "--out", o]);
    let r = run(&good);
    assert!(
        r.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    let metrics = std::fs::read_to_string(out.path().join("metrics.json")).unwrap();
    for m in ["fbp", "score", "dps"] {
        assert!(metrics.contains(&format!("\"{m}\"")), "{metrics}");
    }
    assert!(out.path().join("ellipses_3.png").is_file());
    let score: ndarray::Array3<f32> =
        ndarray_npy::read_npy(out.path().join("ellipses_3_score.npy")).unwrap();
    assert_eq!(score.dim(), (1, 16, 16));
    assert!(score.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(out.path().join("ellipses_3_dps.npy").is_file());

    // Measurement consistency of the score (projection) reconstruction before the study clamps
    // it to [0, 1]: with 100 CG iterations of the least-squares projection at the end (noiseless y), so
    // the residual is limited by CG's convergence on a 64-row system, not by the (untrained)
    // model. FBP's residual is printed for scale.
    let cases = scoreinv::data::cases::load_cases(
        "phantom:ellipses:3",
        &scoreinv::data::cases::CaseOptions {
            size: Some(16),
            ..Default::default()
        },
    )
    .unwrap();
    let op = Arc::new(ParallelBeamRadon::sparse_view(16, 4, 16, Kind::Float, Device::Cpu).unwrap());
    let y = op.forward(&cases[0].truth.unsqueeze(0)).unwrap();
    let method = ScoreMethod::from_model_dir(
        model.path(),
        Device::Cpu,
        Some(8),
        Box::new(ProjectionConfig {
            consistency_iters: 100,
            ..ProjectionConfig::ct()
        }),
        3,
    )
    .unwrap();
    let post = method.posterior(op.as_ref(), &y).unwrap();
    assert_eq!(post.samples.size(), vec![1, 3, 1, 16, 16]);
    assert_eq!(post.std.size(), vec![1, 1, 16, 16]);
    let ynorm = y.norm().double_value(&[]);
    for k in 0..3 {
        let x = post.samples.select(1, k);
        let rel = (op.forward(&x).unwrap() - &y).norm().double_value(&[]) / ynorm;
        println!(
            "sample {k}: relative residual {rel:.2e}, max abs {}",
            x.abs().max().double_value(&[])
        );
        assert!(rel < 1e-2, "sample {k}: relative residual {rel}");
    }
    let xf = op.pseudo_inverse(&y).unwrap();
    let rel_fbp = (op.forward(&xf).unwrap() - &y).norm().double_value(&[]) / ynorm;
    println!("fbp relative residual {rel_fbp:.3}");
    // Channel mismatch is refused with a clear message.
    let rgb = ParallelBeamRadon::sparse_view(16, 4, 16, Kind::Float, Device::Cpu)
        .unwrap()
        .with_channels(3)
        .unwrap();
    let e = method.check_operator(&rgb).unwrap_err().to_string();
    assert!(e.contains("1-channel") && e.contains("3-channel"), "{e}");
}

/// `--batch B` reconstructs B cases in one batched run: the baselines give exactly the
/// results of `--batch 1` (each case's noise is seeded by its index, TV is solved per case),
/// and `--shard K/N` splits whole batches, so the merged shards equal the unsharded run with the
/// same `--batch` bit for bit, score samples included.
#[test]
fn batched_reconstruction_matches_and_shards_by_batch() {
    let model = tempfile::tempdir().unwrap();
    train_model(model.path());
    let dir = tempfile::tempdir().unwrap();
    let m = model.path().to_str().unwrap();
    let common = [
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:ellipses:0..5",
    ]
    .into_iter()
    .chain(NOISY_16)
    .chain([
        "--tv-iters",
        "15",
        "--model",
        m,
        "--steps",
        "4",
        "--samples",
        "2",
        "--seed",
        "7",
    ])
    .collect::<Vec<_>>();
    let run_into = |name: &str, extra: &[&str]| -> std::path::PathBuf {
        let out = dir.path().join(name);
        let mut a = common.to_vec();
        a.extend(extra);
        a.extend(["--out", out.to_str().unwrap()]);
        let r = run(&a);
        assert!(
            r.status.success(),
            "{a:?}\n{}",
            String::from_utf8_lossy(&r.stderr)
        );
        out
    };
    let one = run_into("b1", &["--method", "fbp,tv"]);
    let full = run_into("b2", &["--method", "fbp,tv,score", "--batch", "2"]);
    let p0 = run_into(
        "p0",
        &["--method", "fbp,tv,score", "--batch", "2", "--shard", "0/2"],
    );
    let p1 = run_into(
        "p1",
        &["--method", "fbp,tv,score", "--batch", "2", "--shard", "1/2"],
    );
    // Batches {0,1} {2,3} {4}: part 0 has cases 0, 1, 4; part 1 has 2, 3.
    for (p, cases) in [(&p0, [0, 1, 4].as_slice()), (&p1, [2, 3].as_slice())] {
        for i in 0..5 {
            assert_eq!(
                p.join(format!("ellipses_{i}_score.npy")).exists(),
                cases.contains(&i),
                "case {i} in {}",
                p.display()
            );
        }
    }
    let bytes = |d: &std::path::Path, n: &str| std::fs::read(d.join(n)).unwrap();
    for i in 0..5 {
        for meth in ["fbp", "tv"] {
            let n = format!("ellipses_{i}_{meth}.npy");
            assert!(
                bytes(&one, &n) == bytes(&full, &n),
                "{n}: batch 2 ≠ batch 1"
            );
        }
        for meth in ["fbp", "tv", "score", "score_std"] {
            let n = format!("ellipses_{i}_{meth}.npy");
            let part = if [0, 1, 4].contains(&i) { &p0 } else { &p1 };
            assert!(bytes(&full, &n) == bytes(part, &n), "{n}: shard ≠ whole");
        }
    }
    // Different cases of one batch get different posterior samples.
    let a: ndarray::Array3<f32> = ndarray_npy::read_npy(full.join("ellipses_0_score.npy")).unwrap();
    let b: ndarray::Array3<f32> = ndarray_npy::read_npy(full.join("ellipses_1_score.npy")).unwrap();
    assert!(a != b);
    let metrics = scoreinv::inverse::study::read_metrics(&full).unwrap();
    assert_eq!(metrics.len(), 15);
    assert!(metrics
        .iter()
        .all(|r| r.psnr_db.is_finite() && r.seconds >= 0.0));
    // --batch 0 is refused before anything is written.
    let bad = dir.path().join("bad");
    let mut a = common.to_vec();
    a.extend([
        "--method",
        "fbp",
        "--batch",
        "0",
        "--out",
        bad.to_str().unwrap(),
    ]);
    let r = run(&a);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--batch"));
    assert!(!bad.exists());
}

/// A model's validated sampler settings (`"sampler": {"ct": {"lambda": …}}` in its
/// `config.json`) are what `--method score` uses when `--lambda` is not given: the run equals the
/// same model without them and `--lambda` set to that value, bit for bit, and differs from the
/// published λ 0.841; a flag overrides them; an out-of-range value is refused naming the file and
/// the key, before anything is written.
#[test]
fn model_sampler_settings_apply_unless_a_flag_is_given() {
    use scoreinv::models::model_dir::{read_model_config, SamplerSettings};
    let model = tempfile::tempdir().unwrap();
    train_model(model.path());
    let json = model.path().join("config.json");
    let set_lambda = |lambda: Option<f64>| {
        let mut cfg = read_model_config(model.path()).unwrap();
        cfg.sampler.clear();
        if let Some(l) = lambda {
            let s = SamplerSettings {
                lambda: Some(l),
                validated_on: Some("test".into()),
                ..Default::default()
            };
            cfg.sampler.insert("ct".into(), s);
        }
        std::fs::write(&json, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let m = model.path().to_str().unwrap().to_string();
    let run_into = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut a = vec!["reconstruct", "ct", "--ground-truth", "phantom:ellipses:2"];
        a.extend(NOISY_16);
        a.extend(["--model", &m, "--steps", "6", "--method", "score"]);
        a.extend(extra);
        let o = out.to_str().unwrap().to_string();
        a.extend(["--out", &o]);
        let r = run(&a);
        (out, r)
    };
    let score = |out: &std::path::Path| -> ndarray::Array3<f32> {
        ndarray_npy::read_npy(out.join("ellipses_2_score.npy")).unwrap()
    };
    set_lambda(Some(0.3));
    // The library's lookup, as the examples use it: the task's entry, other tasks unchanged.
    use scoreinv::inverse::projection::ProjectionConfig;
    let ct = ProjectionConfig::ct()
        .for_model(model.path(), "ct")
        .unwrap();
    assert_eq!((ct.lambda, ct.snr), (0.3, ProjectionConfig::ct().snr));
    let mri = ProjectionConfig::mri()
        .for_model(model.path(), "mri")
        .unwrap();
    assert_eq!(mri, ProjectionConfig::mri());
    let (from_model, r) = run_into("model", &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(err.contains("λ 0.3 validated for this model"), "{err}");
    let (flag_over, r) = run_into("flag_over", &["--lambda", "0.841"]);
    assert!(r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!err.contains("validated for this model"), "{err}");
    set_lambda(None);
    let (flag, r) = run_into("flag", &["--lambda", "0.3"]);
    assert!(r.status.success());
    let (published, r) = run_into("published", &[]);
    assert!(r.status.success());
    assert_eq!(score(&from_model), score(&flag));
    assert_eq!(score(&flag_over), score(&published));
    assert_ne!(score(&from_model), score(&published));

    set_lambda(Some(1.5));
    let (bad, r) = run_into("bad", &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("config.json") && err.contains("sampler.ct.lambda must lie in [0, 1]"),
        "{err}"
    );
    assert!(!bad.exists(), "nothing is written on a bad model config");
}

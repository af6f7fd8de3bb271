//! `scoreinv::inverse::tasks`: configs, operators, noise and measurement files of the tasks,
//! checked against analytic truths.
use ndarray::Array2;
use scoreinv::inverse::tasks::inpaint::inpaint_mask;
use scoreinv::inverse::tasks::mri::mri_mask;
use scoreinv::inverse::tasks::{
    self, ColorizeConfig, CtConfig, InpaintConfig, MriConfig, MriMaskKind, Task, TaskNoise,
};
use scoreinv::operators::masks::MaskSpec;
use scoreinv::operators::NoiseModel;
use tch::{Device, Kind, Tensor};

#[test]
fn configs_default_to_the_published_settings_and_round_trip() {
    let ct = tasks::from_json(serde_json::json!({"task": "ct"})).unwrap();
    assert_eq!(ct.name(), "ct");
    assert_eq!(
        (
            ct.settings()["views"].as_u64(),
            ct.settings()["angles"].as_u64()
        ),
        (Some(23), Some(180))
    );
    let mri = tasks::from_json(serde_json::json!({"task": "mri"})).unwrap();
    assert_eq!(mri.settings(), MriConfig::default().settings());
    let m = MriConfig::default();
    assert_eq!(
        (m.acceleration, m.coils, m.mask_kind),
        (4.0, 1, MriMaskKind::Random)
    );
    let colorize: Box<dyn Task> = Box::new(ColorizeConfig::default());
    for task in [ct, mri, colorize] {
        let mut tagged = task.settings();
        tagged["task"] = task.name().into();
        let back = tasks::from_json(tagged).unwrap();
        assert_eq!(
            (back.name(), back.settings()),
            (task.name(), task.settings())
        );
    }
    let err = "spiral".parse::<MriMaskKind>().unwrap_err().to_string();
    assert!(err.contains("unknown mask kind 'spiral'"), "{err}");
    assert_eq!(
        "gaussian2d".parse::<MriMaskKind>().unwrap(),
        MriMaskKind::Gaussian2d
    );
}

#[test]
fn image_shapes_are_checked_per_task() {
    let msg = |k: &dyn Task, s: &[i64]| k.check_image("x", s).unwrap_err().to_string();
    let (ct, mri) = (CtConfig::default(), MriConfig::default());
    let colorize = ColorizeConfig::default();
    assert!(msg(&ct, &[3, 8, 8]).contains("CT needs gray images"));
    assert!(msg(&ct, &[1, 8, 9]).contains("square"));
    assert!(msg(&mri, &[3, 8, 8]).contains("MRI needs gray"));
    assert!(msg(&colorize, &[1, 8, 8]).contains("colorize needs RGB"));
    assert!(InpaintConfig::default()
        .check_image("x", &[3, 8, 9])
        .is_ok());
    let err = tasks::parse_method(&colorize, "fbp")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("colorize reconstructs with gray or tv"),
        "{err}"
    );
}

#[test]
fn poisson_noise_is_ct_only_and_uses_the_lodopab_attenuation() {
    let (ct, mri) = (CtConfig::default(), MriConfig::default());
    let err = TaskNoise::parse("poisson:1000", &mri)
        .unwrap_err()
        .to_string();
    assert!(err.contains("applies only to CT"), "{err}");
    let n = TaskNoise::parse("poisson:10000", &ct).unwrap();
    assert!(n.lodopab_mu);
    let explicit = TaskNoise::parse("poisson:10000:1", &ct).unwrap();
    assert!(!explicit.lodopab_mu);
    // 64 detector bins: μ = 81.35858 · 0.26 / 64 ≈ 0.3305 per unit line integral. For y = 10,
    // λ = 1e4 · e^{-μ y} ≈ 367 photons and the log-transformed measurement has standard
    // deviation ≈ 1 / (μ √λ) ≈ 0.158 (delta method). With μ = 1 it would be ≈ 1.48.
    // 64·32 samples: the sample std is within ~2 % (1/√(2n)); assert 10 %.
    tch::manual_seed(0);
    let y = Tensor::full([1, 1, 64, 32], 10.0, (Kind::Double, Device::Cpu));
    let noisy = n.apply(&y).unwrap();
    let mu = tasks::LODOPAB_MU_MAX * tasks::LODOPAB_FOV_M / 64.0;
    let lambda = 1e4 * (-mu * 10.0).exp();
    let want = 1.0 / (mu * lambda.sqrt());
    let std = noisy.std(true).double_value(&[]);
    assert!((std / want - 1.0).abs() < 0.1, "std {std}, expected {want}");
    let mean = noisy.mean(None).double_value(&[]);
    assert!((mean - 10.0).abs() < 0.05, "mean {mean}");
    assert!(matches!(n.model, NoiseModel::Poisson(_)));
}

#[test]
fn simulated_mri_and_inpainting_noise_stays_inside_the_mask() {
    let x = Tensor::rand([1, 16, 16], (Kind::Float, Device::Cpu));
    let noise = TaskNoise::parse("gaussian:0.1", &MriConfig::default()).unwrap();
    tch::manual_seed(1);
    let tasks: [Box<dyn Task>; 2] = [
        Box::new(MriConfig::default()),
        Box::new(InpaintConfig {
            mask: "random:0.3".into(),
        }),
    ];
    for task in tasks {
        let op = task.operator(&x.size(), 0, Device::Cpu).unwrap();
        let y = tasks::simulate(op.as_ref(), &noise, &x).unwrap();
        let clean = op.op().forward(&x.unsqueeze(0)).unwrap().get(0);
        // Noise is added (σ = 0.1 of the peak) ...
        let diff = (&y - &clean).abs().max().double_value(&[]);
        assert!(diff > 1e-3, "{}: no noise", task.name());
        // ... but where A x is structurally zero (unmeasured), y is exactly zero too.
        let unmeasured = clean.abs().eq(0.0).to_kind(Kind::Float);
        let leaked = (y.abs() * unmeasured).max().double_value(&[]);
        assert_eq!(leaked, 0.0, "{}", task.name());
    }
}

#[test]
fn radial_masks_match_the_requested_acceleration_as_closely_as_possible() {
    for r in [2.0, 4.0, 8.0] {
        let cfg = MriConfig {
            acceleration: r,
            mask_kind: MriMaskKind::Radial,
            ..MriConfig::default()
        };
        let m = mri_mask(&cfg, 32, 32, 5).unwrap();
        let n: usize = m
            .description()
            .split("lines=")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap();
        for other in [n.saturating_sub(1).max(1), n + 1] {
            let o = MaskSpec::Radial { n_lines: other }
                .build(32, 32, 5)
                .unwrap();
            assert!(
                (m.acceleration() - r).abs() <= (o.acceleration() - r).abs(),
                "R={r}: {n} lines give {}, {other} give {}",
                m.acceleration(),
                o.acceleration()
            );
        }
    }
}

#[test]
fn mask_files_must_be_binary_single_channel() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.npy");
    scoreinv::io::npy::write_npy(&p, &Array2::<f32>::from_elem((4, 4), 0.5)).unwrap();
    let err = tasks::read_mask_file(&p).unwrap_err().to_string();
    assert!(err.contains("only 0 and 1, found 0.5"), "{err}");
    let p3 = dir.path().join("m3.npy");
    scoreinv::io::npy::write_npy(&p3, &ndarray::Array3::<f32>::ones((3, 4, 4))).unwrap();
    let err = tasks::read_mask_file(&p3).unwrap_err().to_string();
    assert!(err.contains("3 channels"), "{err}");
    // A mask file as the inpainting recipe.
    let ok = dir.path().join("ok.npy");
    let mut m = Array2::<f32>::ones((4, 4));
    m[[1, 2]] = 0.0;
    scoreinv::io::npy::write_npy(&ok, &m).unwrap();
    assert_eq!(inpaint_mask(ok.to_str().unwrap(), 4, 4, 0).unwrap(), m);
    let err = inpaint_mask(ok.to_str().unwrap(), 5, 4, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected shape [5, 4]"), "{err}");
}

#[test]
fn measurement_files_load_back_into_the_same_operator() {
    let dir = tempfile::tempdir().unwrap();
    let x = Tensor::rand([1, 16, 16], (Kind::Float, Device::Cpu));
    let cfg = MriConfig {
        mask_kind: MriMaskKind::Gaussian2d,
        coils: 2,
        ..MriConfig::default()
    };
    let op = cfg.operator(&x.size(), 3, Device::Cpu).unwrap();
    let none = TaskNoise::parse("none", &cfg).unwrap();
    let y = tasks::simulate(op.as_ref(), &none, &x).unwrap();
    let out = dir.path().join("k.npy");
    let written = tasks::write_measurement(op.as_ref(), &y, &out).unwrap();
    assert_eq!(written.len(), 3);
    let reader = MriConfig {
        mask_file: Some(dir.path().join("k_mask.npy")),
        coil_maps: Some(dir.path().join("k_maps.npy")),
        ..MriConfig::default()
    };
    let m = reader.read_measurement(&out, Device::Cpu).unwrap();
    // The reloaded operator applied to x reproduces the stored measurement (maps stored in
    // f32, k-space values ≤ 16: 1e-4).
    let again = m.op.op().forward(&x.unsqueeze(0)).unwrap();
    let err = (&again - &m.y).abs().max().double_value(&[]);
    assert!(err < 1e-4, "reloaded SENSE operator differs by {err}");
    assert_eq!(
        m.op.sampling_mask().unwrap().array(),
        op.sampling_mask().unwrap().array()
    );
}

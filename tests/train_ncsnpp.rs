//! NCSN++ through the whole training path: a few steps of DSM on 16×16 images, export as a model
//! directory, load it back and get the same scores as the trainer's EMA network.
use scoreinv::models::model_dir::{load_model_dir, DataInfo};
use scoreinv::models::ScoreModel;
use scoreinv::train::config::preset;
use scoreinv::train::data::Dataset;
use scoreinv::train::Trainer;
use tch::{Device, Kind, Tensor};

#[test]
fn ncsnpp_trains_exports_and_reloads() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let data = Tensor::rand([24, 1, 16, 16], (Kind::Float, Device::Cpu));
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, 16, 16],
        centered: false,
        data_range: None,
        source: "uniform noise images (test)".into(),
    };
    let ds = Dataset::new(data, None, info).unwrap();
    let mut cfg = preset("ncsnpp-tiny").unwrap();
    cfg.training.n_iters = 4;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    let mut losses = vec![];
    for _ in 0..4 {
        let s = tr.train_step().unwrap();
        losses.push(s.loss);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let dir = tempfile::tempdir().unwrap();
    tr.export_model_dir(dir.path()).unwrap();
    let (model, _sde, cfg) = load_model_dir(dir.path(), Device::Cpu).unwrap();
    assert_eq!(cfg.data.shape, vec![1, 16, 16]);
    assert_eq!(model.sample_shape(), Some(vec![1, 16, 16]));
    let x = Tensor::randn([3, 1, 16, 16], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[0.1f32, 0.5, 0.9]);
    tr.load_ema_into_model();
    let a = tch::no_grad(|| tr.model().score(&x, &t));
    let b = tch::no_grad(|| model.score(&x, &t));
    let diff = (&a - &b).abs().max().double_value(&[]);
    assert!(
        diff == 0.0,
        "reloaded NCSN++ differs from the trained one by {diff}"
    );
    // A model directory whose config asks for other images than the data is refused.
    let json = dir.path().join("config.json");
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::write(
        &json,
        text.replace("\"image_size\": 16", "\"image_size\": 32"),
    )
    .unwrap();
    let e = load_model_dir(dir.path(), Device::Cpu)
        .err()
        .expect("mismatch must fail")
        .to_string();
    assert!(
        e.contains("[1, 32, 32]") && e.contains("[1, 16, 16]"),
        "{e}"
    );
}

/// Issue #5: a small NCSN++ trained on Fashion-MNIST for 2 000 steps on the CPU lowers the
/// held-out DSM loss (EMA weights, fixed evaluation noise) below its value at step 100. Heavy
/// (minutes on 2 cores; needs the Debian package `dataset-fashion-mnist`):
/// `cargo test --release --test train_ncsnpp -- --ignored fashion --nocapture`.
#[test]
#[ignore]
fn fashion_mnist_ncsnpp_2000_steps_lowers_the_heldout_loss() {
    use scoreinv::train::data::DataSource;
    let ds = DataSource::parse("fashion-mnist")
        .expect("install dataset-fashion-mnist")
        .load_sized(false, Some(16))
        .unwrap();
    let mut cfg = preset("ncsnpp-tiny").unwrap().fitted_to(&ds.info);
    cfg.training.n_iters = 2000;
    cfg.training.batch_size = 32;
    cfg.training.eval_freq = 0;
    cfg.training.checkpoint_freq = 0;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    let started = std::time::Instant::now();
    let mut at_100 = None;
    for step in 1..=2000u64 {
        tr.train_step().unwrap();
        if step == 100 {
            at_100 = tr.heldout_loss().unwrap();
        }
    }
    let at_100 = at_100.expect("a held-out split");
    let at_2000 = tr.heldout_loss().unwrap().unwrap();
    println!(
        "held-out DSM loss: step 100 {at_100:.3}, step 2000 {at_2000:.3} ({:.0} s, {:.1} images/s)",
        started.elapsed().as_secs_f64(),
        2000.0 * 32.0 / started.elapsed().as_secs_f64()
    );
    assert!(at_2000 < at_100, "{at_2000} !< {at_100}");
}

/// The fast version of the above for CI: the same NCSN++, data and batch, 40 steps; the held-out
/// DSM loss of the EMA weights (fixed evaluation noise) ends at least 10 % below its value at step
/// 10 (measured 125.8 → 91.0, −28 %; 45–110 s in the test profile on 2 CPU cores shared with
/// other work, 23–37 s of CPU time; 150 steps reach 48.0 but take four times as long). A missing
/// dataset fails.
#[test]
fn fashion_mnist_ncsnpp_few_steps_lower_the_heldout_loss() {
    use scoreinv::train::data::DataSource;
    let ds = DataSource::parse("fashion-mnist")
        .and_then(|s| s.load_sized(false, Some(16)))
        .unwrap_or_else(|e| {
            panic!("{e}\n(run scripts/setup, or apt-get install dataset-fashion-mnist)")
        });
    let steps = 40u64;
    let mut cfg = preset("ncsnpp-tiny").unwrap().fitted_to(&ds.info);
    cfg.training.n_iters = steps;
    cfg.training.batch_size = 32;
    cfg.training.eval_freq = 0;
    cfg.training.checkpoint_freq = 0;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    let started = std::time::Instant::now();
    let mut early = None;
    for step in 1..=steps {
        tr.train_step().unwrap();
        if step == 10 {
            early = tr.heldout_loss().unwrap();
        }
    }
    let early = early.expect("a held-out split");
    let last = tr.heldout_loss().unwrap().unwrap();
    println!(
        "held-out DSM loss: step 10 {early:.3}, step {steps} {last:.3} ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(last < 0.9 * early, "{last} !< 0.9 × {early}");
}

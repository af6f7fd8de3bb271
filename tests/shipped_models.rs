//! Every directory under `data/models/` loads (score models with `load_model_dir`, classifiers
//! with `load_classifier_dir`), has a model card, evaluates to a finite score on a batch in its
//! own data range, and `data/` stays under the 150 MB budget.
use scoreinv::guidance::{load_classifier_dir, TimeDependentClassifier};
use scoreinv::models::model_dir::load_model_dir;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn model_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.join("config.json").is_file());
    v.sort();
    v
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn shipped_models_load_and_have_cards() {
    let dirs = model_dirs();
    for d in &dirs {
        let card = d.join("MODEL_CARD.md");
        assert!(card.is_file(), "{} has no MODEL_CARD.md", d.display());
        let text = std::fs::read_to_string(d.join("config.json")).unwrap();
        tch::manual_seed(0);
        if text.contains("scoreinv-classifier/") {
            let (clf, cfg) = load_classifier_dir(d, Device::Cpu).unwrap();
            let mut shape = vec![2];
            shape.extend(&cfg.data.shape);
            let x = Tensor::rand(shape.as_slice(), (Kind::Float, Device::Cpu));
            let t = Tensor::from_slice(&[0.1f32, 0.9]);
            let logits = clf.logits(&x, &t);
            assert_eq!(logits.size(), vec![2, clf.n_classes()], "{}", d.display());
            assert!(
                logits.isfinite().all().int64_value(&[]) == 1,
                "{}",
                d.display()
            );
        } else {
            let (model, _, cfg) = load_model_dir(d, Device::Cpu).unwrap();
            let mut shape = vec![2];
            shape.extend(&cfg.data.shape);
            let (lo, hi) = cfg.data.data_range.unwrap_or((0.0, 1.0));
            let raw = Tensor::rand(shape.as_slice(), (Kind::Float, Device::Cpu)) * (hi - lo) + lo;
            let x = cfg.data.normalize(&raw);
            let t = Tensor::from_slice(&[0.1f32, 0.9]);
            let s = tch::no_grad(|| model.score(&x, &t));
            assert_eq!(s.size(), shape, "{}", d.display());
            assert!(s.isfinite().all().int64_value(&[]) == 1, "{}", d.display());
        }
    }
    // `data/cache/` (ignored by git) holds what `make data` downloads and prepares: not shipped.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let cache = dir_size(&data.join("cache"));
    let mb = (dir_size(&data) - cache) as f64 / 1e6;
    assert!(mb < 150.0, "data/ holds {mb:.1} MB, over the 150 MB budget");
    println!("{} model directories, data/ = {mb:.1} MB", dirs.len());
}

/// The first `n` images of the Fashion-MNIST **test set** (never used in training), in the
/// range the classifier was trained in. A missing Debian package `dataset-fashion-mnist` fails
/// the test (`scripts/setup` installs it); it never passes silently.
fn fashion_mnist_test_images(n: usize, centered: bool) -> scoreinv::train::data::Dataset {
    use scoreinv::train::data::{DataSource, Dataset};
    let src = DataSource::parse("fashion-mnist:test").unwrap_or_else(|e| {
        panic!("{e}\n(run scripts/setup, or apt-get install dataset-fashion-mnist)")
    });
    let data = src.load(centered).unwrap();
    assert_eq!(
        data.len(),
        10_000,
        "the Fashion-MNIST test set has 10 000 images"
    );
    if n == data.len() {
        return data;
    }
    let labels = data.labels.as_ref().unwrap()[..n].to_vec();
    Dataset::new(
        data.data.narrow(0, 0, n as i64),
        Some(labels),
        data.info.clone(),
    )
    .unwrap()
}

/// Accuracy at t = ε of each shipped Fashion-MNIST classifier on the first `n` test images,
/// against its bar.
fn shipped_classifiers_meet(n: usize, bars: [(&str, f64); 2]) {
    use scoreinv::guidance::train::dataset_accuracy;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models");
    for (name, bar) in bars {
        let (net, cfg) = load_classifier_dir(&root.join(name), Device::Cpu).unwrap();
        let data = fashion_mnist_test_images(n, cfg.data.centered);
        let rows = dataset_accuracy(&net, &cfg, &data, 0, 0, Device::Cpu).unwrap();
        assert_eq!(rows.len(), 1);
        println!(
            "{name}: accuracy at t = ε on the first {n} test images {:.4}",
            rows[0].accuracy
        );
        assert!(
            rows[0].accuracy >= bar,
            "{name}: {:.4} < {bar} on the first {n} test images",
            rows[0].accuracy
        );
    }
}

/// Issue #8's bars on the whole Fashion-MNIST test set (10 000 images): the shipped
/// time-dependent classifier ≥ 88 % at t = ε (measured 0.8881), the independent clean classifier
/// ≥ 90 % (measured 0.9268). 160 s in the test profile on 2 CPU cores, so CI runs the fast
/// version below; run with `cargo test --test shipped_models -- --ignored accuracy`.
#[test]
#[ignore]
fn shipped_fashion_mnist_classifiers_meet_their_test_accuracy() {
    shipped_classifiers_meet(
        10_000,
        [
            ("fashion-mnist-classifier", 0.88),
            ("fashion-mnist-clean-classifier", 0.90),
        ],
    );
}

/// The fast version of the above for CI: the first 1 000 test images, bars two points below the
/// full-set bars (measured 0.8970 and 0.9340; the bars sit about three standard errors of a
/// 1 000-image estimate below the full-set figures 0.8881 and 0.9268). 22 s in the test profile on
/// 2 CPU cores shared with other work. A missing dataset fails.
#[test]
fn shipped_fashion_mnist_classifiers_meet_their_accuracy_on_1000_test_images() {
    shipped_classifiers_meet(
        1_000,
        [
            ("fashion-mnist-classifier", 0.86),
            ("fashion-mnist-clean-classifier", 0.88),
        ],
    );
}

/// `scoreinv sample` of the shipped Fashion-MNIST model guided by the shipped time-dependent
/// classifier at w = 1 (Bayes' rule), `n` samples cycling through the ten classes, scored by the
/// independent clean classifier: the fraction that carry their requested class.
fn guided_fashion_mnist_accuracy(n: usize, extra: &[&str]) -> f64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models");
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(["sample", "--model"])
        .arg(root.join("fashion-mnist"))
        .arg("--classifier")
        .arg(root.join("fashion-mnist-classifier"))
        .arg("--eval-classifier")
        .arg(root.join("fashion-mnist-clean-classifier"))
        .args([
            "--guidance-scale",
            "1",
            "--n",
            &n.to_string(),
            "--nrow",
            "10",
        ])
        .args(extra)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("classes.json")).unwrap()).unwrap();
    let requested = v["requested"].as_array().unwrap();
    assert_eq!(requested.len(), n);
    for k in 0..10 {
        let m = requested.iter().filter(|r| r.as_i64() == Some(k)).count();
        assert_eq!(m, n / 10, "class {k}");
    }
    let acc = v["accuracy"].as_f64().unwrap();
    println!(
        "guided w = 1, {n} samples {extra:?}: {:.1} % carry their class",
        100.0 * acc
    );
    acc
}

/// Issue #8's guided-sampling bar, as measured for the model card: 100 samples per class at
/// w = 1 (Bayes' rule), PC with the model's N = 1000, scored by the independent clean classifier,
/// ≥ 80 % carry their requested class (measured 82.0 % on an H100 in 99 s; about an hour on 2 CPU
/// cores). Heavy: `cargo test --release --test shipped_models -- --ignored guided --nocapture`.
#[test]
#[ignore]
fn guided_fashion_mnist_samples_carry_their_class() {
    let acc = guided_fashion_mnist_accuracy(1000, &[]);
    assert!(acc >= 0.80, "{acc}");
}

/// The fast version of the above for CI: 2 samples per class, 50 reverse-diffusion steps without
/// the corrector (the Langevin corrector costs about five times the predictor here), through the
/// same CLI path. Unguided samples would carry their "requested" class at chance, 10 %; at
/// least 6 of the 20 must (P(≥ 6 of 20) = 1 % at chance). Measured 45 % (9 of 20); 34 s in the
/// test profile on 2 otherwise idle CPU cores, up to 170 s when they are shared with other work.
/// 100 steps give 80 % but take three times as long; 30 steps of 10 samples give 40 %.
#[test]
fn guided_fashion_mnist_samples_beat_chance_in_50_steps() {
    let acc = guided_fashion_mnist_accuracy(20, &["--steps", "50", "--corrector", "none"]);
    assert!(acc >= 0.30, "{acc}");
}

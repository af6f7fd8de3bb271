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

/// Issue #8's bars on the Fashion-MNIST **test set** (never used in training): the shipped
/// time-dependent classifier ≥ 88 % at t = ε, the independent clean classifier ≥ 90 %.
/// Skipped (with a note) where the Debian package `dataset-fashion-mnist` is not installed.
#[test]
fn shipped_fashion_mnist_classifiers_meet_their_test_accuracy() {
    use scoreinv::guidance::train::dataset_accuracy;
    use scoreinv::train::data::DataSource;
    let src = match DataSource::parse("fashion-mnist:test") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models");
    for (name, bar) in [
        ("fashion-mnist-classifier", 0.88),
        ("fashion-mnist-clean-classifier", 0.90),
    ] {
        let (net, cfg) = load_classifier_dir(&root.join(name), Device::Cpu).unwrap();
        let data = src.load(cfg.data.centered).unwrap();
        assert_eq!(data.len(), 10_000);
        let rows = dataset_accuracy(&net, &cfg, &data, 0, 0, Device::Cpu).unwrap();
        assert_eq!(rows.len(), 1);
        println!("{name}: test accuracy at t = ε {:.4}", rows[0].accuracy);
        assert!(
            rows[0].accuracy >= bar,
            "{name}: {:.4} < {bar}",
            rows[0].accuracy
        );
    }
}

/// Issue #8's guided-sampling bar, as measured for the model card: 100 samples per class at
/// w = 1 (Bayes' rule), PC with the model's N = 1000, scored by the independent clean classifier,
/// ≥ 80 % carry their requested class (measured 82.0 % on an H100 in 99 s; about an hour on 2 CPU
/// cores). Heavy: `cargo test --release --test shipped_models -- --ignored guided --nocapture`.
#[test]
#[ignore]
fn guided_fashion_mnist_samples_carry_their_class() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models");
    let out = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .arg("sample")
        .arg("--model")
        .arg(root.join("fashion-mnist"))
        .arg("--classifier")
        .arg(root.join("fashion-mnist-classifier"))
        .arg("--eval-classifier")
        .arg(root.join("fashion-mnist-clean-classifier"))
        .args([
            "--guidance-scale",
            "1",
            "--n",
            "1000",
            "--nrow",
            "10",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("classes.json")).unwrap()).unwrap();
    let acc = v["accuracy"].as_f64().unwrap();
    let requested = v["requested"].as_array().unwrap();
    assert_eq!(requested.len(), 1000);
    for k in 0..10 {
        let n = requested.iter().filter(|r| r.as_i64() == Some(k)).count();
        assert_eq!(n, 100, "class {k}");
    }
    println!("guided w = 1: {:.1} % carry their class", 100.0 * acc);
    assert!(acc >= 0.80, "{acc}");
}

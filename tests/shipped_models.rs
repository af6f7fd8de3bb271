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
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let mb = dir_size(&data) as f64 / 1e6;
    assert!(mb < 150.0, "data/ holds {mb:.1} MB, over the 150 MB budget");
    println!("{} model directories, data/ = {mb:.1} MB", dirs.len());
}

//! Configuration and error paths of classifier training and classifier directories.
use scoreinv::guidance::classifier::{ClassifierConfig, MlpClassifierConfig};
use scoreinv::guidance::train::{
    classifier_preset, load_classifier_dir, ClassifierTrainConfig, ClassifierTrainer,
    CLASSIFIER_PRESETS,
};
use scoreinv::models::model_dir::DataInfo;
use scoreinv::sde::{SdeConfig, SdeKind};
use scoreinv::train::data::Dataset;
use tch::{nn, Device, Kind, Tensor};

#[test]
fn presets_validate_and_round_trip_through_json() {
    for name in CLASSIFIER_PRESETS {
        let c = classifier_preset(name).unwrap();
        c.validate().unwrap();
        let text = serde_json::to_string(&c).unwrap();
        let back: ClassifierTrainConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c, "{name}");
    }
    let e = classifier_preset("cifar").unwrap_err().to_string();
    assert!(e.contains("unknown classifier preset"), "{e}");
    // Defaults fill in everything but the model.
    let c: ClassifierTrainConfig = serde_json::from_str(r#"{"model": {"type": "mlp"}}"#).unwrap();
    assert_eq!(c.sde, SdeConfig::ve_default());
    assert_eq!(c.eps_or_default(), 1e-5);
    let mut bad = c.clone();
    bad.eps = Some(0.0);
    assert!(bad.validate().unwrap_err().to_string().contains("eps"));
}

#[test]
fn networks_refuse_bad_geometry_and_give_k_logits() {
    let vs = nn::VarStore::new(Device::Cpu);
    let conv = ClassifierConfig::Conv(Default::default());
    let e = conv
        .build(&vs.root(), &[2], 3, SdeKind::Ve)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("[C, H, W]"), "{e}");
    let e = conv
        .build(&vs.root(), &[1, 2, 2], 3, SdeKind::Ve)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("too small"), "{e}");
    let mlp = ClassifierConfig::Mlp(MlpClassifierConfig::default());
    let e = mlp
        .build(&vs.root(), &[2], 1, SdeKind::Vp)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("at least 2 classes"), "{e}");
    let net = mlp.build(&(vs.root() / "m"), &[2], 4, SdeKind::Vp).unwrap();
    let y = net.forward_t(
        &Tensor::zeros([5, 2], (Kind::Float, Device::Cpu)),
        &Tensor::ones([5], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(y.size(), vec![5, 4]);
    let net = conv
        .build(&(vs.root() / "c"), &[1, 8, 8], 3, SdeKind::Ve)
        .unwrap();
    let y = net.forward_t(
        &Tensor::zeros([2, 1, 8, 8], (Kind::Float, Device::Cpu)),
        &Tensor::ones([2], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(y.size(), vec![2, 3]);
}

#[test]
fn unlabelled_data_and_bad_directories_are_refused() {
    let data = Dataset::new(
        Tensor::zeros([10, 2], (Kind::Float, Device::Cpu)),
        None,
        DataInfo::vectors(2, "zeros"),
    )
    .unwrap();
    let e = ClassifierTrainer::new(classifier_preset("toy2d").unwrap(), &data, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("labelled"), "{e}");
    let one_class = Dataset::new(
        Tensor::zeros([10, 2], (Kind::Float, Device::Cpu)),
        Some(vec![0; 10]),
        DataInfo::vectors(2, "zeros"),
    )
    .unwrap();
    let e = ClassifierTrainer::new(classifier_preset("toy2d").unwrap(), &one_class, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("K >= 2"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = load_classifier_dir(&dir.path().join("nope"), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    std::fs::write(dir.path().join("config.json"), r#"{"format": "other"}"#).unwrap();
    let e = load_classifier_dir(dir.path(), Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("config.json"), "{e}");
}

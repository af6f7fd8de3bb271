//! The typicality warning of the shipped CT priors (`data/models/*/typicality.json`): images of
//! a prior's own domain stay below its threshold, images far from it exceed it; the reference
//! recomputed from its recorded validation images equals the shipped one; and `reconstruct`
//! warns and records the ratio in metrics.json for an out-of-domain case only.
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::inverse::typicality::{assess, reference, Reference};
use scoreinv::models::model_dir::load_model_dir;
use std::path::Path;
use std::process::Command;
use tch::{Device, Tensor};

fn images(specs: &[&str]) -> Tensor {
    let opts = CaseOptions {
        size: Some(64),
        ..CaseOptions::default()
    };
    let mut xs = Vec::new();
    for s in specs {
        for c in load_cases(s, &opts).unwrap() {
            xs.push(c.truth);
        }
    }
    Tensor::stack(&xs, 0)
}

/// The ratios of `specs` under the prior in `dir`, and its threshold.
fn ratios(dir: &str, specs: &[&str]) -> (Vec<f64>, f64) {
    tch::set_num_threads(1);
    let dir = Path::new(dir);
    let (model, sde, cfg) = load_model_dir(dir, Device::Cpu).unwrap();
    let sde = sde.build().unwrap();
    let r = Reference::read(dir).unwrap().expect("shipped reference");
    let t = assess(
        "test",
        model.as_ref(),
        sde.as_ref(),
        &cfg.data,
        &r,
        &images(specs),
        "x",
    )
    .unwrap();
    (t.iter().map(|c| c.ratio).collect(), r.threshold())
}

#[test]
fn in_domain_images_pass_and_far_ones_are_flagged() {
    let (r, th) = ratios("data/models/ct-head", &["invesalius:z=66..80:4"]);
    assert!(
        r.iter().all(|&v| v < th),
        "held-out head slices {r:?} vs {th}"
    );
    let (r, th) = ratios("data/models/ct-head", &["phantom:shepp-logan"]);
    assert!(r[0] > th, "Shepp-Logan under the head prior: {r:?} vs {th}");
    let (r, th) = ratios("data/models/ct-ellipses", &["phantom:ellipses:1000..1004"]);
    assert!(r.iter().all(|&v| v < th), "test phantoms {r:?} vs {th}");
    let (r, th) = ratios("data/models/ct-ellipses", &["invesalius:z=70"]);
    assert!(r[0] > th, "head CT under the phantom prior: {r:?} vs {th}");
}

#[test]
fn shipped_reference_is_reproduced_from_its_validation_images() {
    tch::set_num_threads(1);
    let dir = Path::new("data/models/ct-ellipses");
    let shipped = Reference::read(dir).unwrap().unwrap();
    let (model, sde, cfg) = load_model_dir(dir, Device::Cpu).unwrap();
    let sde = sde.build().unwrap();
    let x = images(&[shipped.data.as_str()]);
    let again = reference(
        model.as_ref(),
        sde.as_ref(),
        &cfg.data,
        &x,
        &shipped.data,
        shipped.seed,
    )
    .unwrap();
    assert_eq!(again.images, shipped.images);
    for (a, b) in again.dsm_loss.iter().zip(&shipped.dsm_loss) {
        assert!((a - b).abs() <= 1e-4 * b, "{a} vs {b}");
    }
    // Control: another seed draws other noise, so the figures move.
    let other = reference(
        model.as_ref(),
        sde.as_ref(),
        &cfg.data,
        &x,
        &shipped.data,
        1,
    )
    .unwrap();
    assert!(other
        .dsm_loss
        .iter()
        .zip(&shipped.dsm_loss)
        .any(|(a, b)| (a - b).abs() > 1e-4 * b));
}

#[test]
fn reconstruct_warns_for_the_out_of_domain_case_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("study");
    let o = Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(["--device", "cpu", "--threads", "1", "reconstruct", "ct"])
        .args([
            "--ground-truth",
            "invesalius:z=70,phantom:shepp-logan",
            "--size",
            "64",
        ])
        .args([
            "--model",
            "data/models/ct-head",
            "--method",
            "fbp,score",
            "--steps",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: case shepp_logan"), "{err}");
    assert!(!err.contains("warning: case cranium_z70"), "{err}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let score: Vec<&serde_json::Value> = m["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "score")
        .collect();
    assert_eq!(score.len(), 2);
    for r in score {
        let t = r["typicality"].as_f64().unwrap();
        let th = r["typicality_threshold"].as_f64().unwrap();
        assert_eq!(t > th, r["case"] == "shepp_logan", "{r}");
    }
}

//! `reconstruct TASK --measurement FILE` runs every method of every task, score methods
//! included, and a measurement written by `scoreinv simulate` reconstructs bit for bit as
//! `reconstruct TASK --ground-truth` of the same image with the same seed (same operator, same
//! scale, same seeding of the posterior samples). Controls: another seed changes the score
//! reconstructions, and the same sinogram without its simulation record is rescaled (a real
//! measurement of unknown units) and no longer matches.
mod cli_util;

use cli_util::{scoreinv, tiny_model};
use std::path::{Path, PathBuf};
use tch::Tensor;

fn ok(args: &[&str]) -> String {
    let o = scoreinv(args);
    assert!(
        o.status.success(),
        "scoreinv {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The one file `*_{suffix}` in `dir`.
fn output(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(&format!("_{suffix}"))
        })
        .collect();
    assert_eq!(found.len(), 1, "{suffix} in {}: {found:?}", dir.display());
    found[0].clone()
}

fn read(p: &Path) -> Tensor {
    let a: ndarray::ArrayD<f32> = ndarray_npy::read_npy(p).unwrap();
    Tensor::from_slice(a.as_slice().unwrap())
        .reshape(a.shape().iter().map(|&d| d as i64).collect::<Vec<_>>())
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

struct Case<'a> {
    task: &'a str,
    truth: &'a str,
    /// Task flags of both runs.
    flags: Vec<&'a str>,
    /// Side files of the measurement, as (flag, suffix of Y_{suffix}.npy).
    side: Vec<(&'a str, &'a str)>,
    methods: &'a str,
    channels: i64,
}

const SCORE: [&str; 6] = ["--steps", "4", "--samples", "2", "--seed", "3"];

/// simulate + reconstruct --measurement == reconstruct --ground-truth, per method.
fn check_case(dir: &Path, i: usize, c: &Case) {
    let model = dir.join(format!("model-{}ch", c.channels));
    if !model.exists() {
        tiny_model(&model, c.channels);
    }
    let t = dir.join(format!("{i}-{}", c.task));
    std::fs::create_dir_all(&t).unwrap();
    let y = t.join("y.npy");
    let mut sim = vec![
        "simulate",
        c.task,
        "--ground-truth",
        c.truth,
        "--size",
        "16",
    ];
    sim.extend(&c.flags);
    sim.extend(["--seed", "3", "--out", s(&y)]);
    ok(&sim);
    assert!(t.join("y.json").is_file(), "simulate writes its record");

    let study = t.join("study");
    let mut a = vec![
        "reconstruct",
        c.task,
        "--ground-truth",
        c.truth,
        "--size",
        "16",
    ];
    a.extend(&c.flags);
    a.extend(["--method", c.methods, "--model", s(&model)]);
    a.extend(SCORE);
    a.extend(["--out", s(&study)]);
    ok(&a);

    let side: Vec<String> = c
        .side
        .iter()
        .map(|(_, suffix)| s(&t.join(format!("y_{suffix}.npy"))).to_string())
        .collect();
    let measured = t.join("measured");
    let mut b = vec!["reconstruct", c.task, "--measurement", s(&y)];
    b.extend(&c.flags);
    for ((flag, _), p) in c.side.iter().zip(&side) {
        b.extend([*flag, p.as_str()]);
    }
    b.extend(["--method", c.methods, "--model", s(&model)]);
    b.extend(SCORE);
    b.extend(["--reference", c.truth, "--size", "16"]);
    b.extend(["--out", s(&measured)]);
    let log = ok(&b);
    assert!(log.contains("not rescaled"), "{log}");

    for m in c.methods.split(',') {
        let r1 = read(&output(&study, &format!("{m}.npy")));
        let r2 = read(&output(&measured, &format!("{m}.npy")));
        assert_eq!(
            max_abs(&r1, &r2),
            0.0,
            "{} {m}: measurement vs ground truth",
            c.task
        );
        if ["score", "score-sde", "dps"].contains(&m) {
            let s1 = read(&output(&study, &format!("{m}_std.npy")));
            let s2 = read(&output(&measured, &format!("{m}_std.npy")));
            assert_eq!(max_abs(&s1, &s2), 0.0, "{} {m} std", c.task);
            assert!(s1.max().double_value(&[]) > 0.0, "two samples differ");
        }
    }
    if c.truth.ends_with(".dcm") {
        // A ground truth in HU: both write HU (air about -1000), not window units.
        let r = read(&output(&measured, "fbp.npy"));
        assert!(r.min().double_value(&[]) < -500.0, "HU expected");
    }
    // The scores against --reference equal the study's.
    let m1: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(study.join("metrics.json")).unwrap())
            .unwrap();
    let m2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(measured.join("metrics.json")).unwrap())
            .unwrap();
    let psnr = |v: &serde_json::Value| -> Vec<(String, Option<f64>)> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["psnr_db"].as_f64(),
                )
            })
            .collect()
    };
    assert_eq!(psnr(&m1), psnr(&m2), "{} metrics", c.task);
}

#[test]
fn every_task_reconstructs_a_simulated_measurement_as_its_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = dir.path().join("rgb.png");
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([(x * 15) as u8, (y * 15) as u8, ((x + y) * 7) as u8])
    });
    img.save(&rgb).unwrap();
    let cases = [
        Case {
            task: "ct",
            truth: "phantom:shepp-logan",
            flags: vec!["--views", "4", "--angles", "16", "--noise", "gaussian:0.01"],
            side: vec![("--angles-file", "angles")],
            methods: "fbp,tv,score,score-sde,dps",
            channels: 1,
        },
        Case {
            task: "ct",
            truth: "target/fixtures/io/CT_small.dcm",
            flags: vec!["--views", "6", "--angles", "30"],
            side: vec![("--angles-file", "angles")],
            methods: "fbp,score",
            channels: 1,
        },
        Case {
            task: "mri",
            truth: "phantom:shepp-logan",
            flags: vec!["--accel", "4", "--noise", "gaussian:0.01"],
            side: vec![("--mask", "mask")],
            methods: "zero-filled,tv,score,score-sde,dps",
            channels: 1,
        },
        Case {
            task: "inpaint",
            truth: "phantom:shepp-logan",
            flags: vec![],
            side: vec![("--mask", "mask")],
            methods: "zero-filled,tv,score,score-sde,dps",
            channels: 1,
        },
        Case {
            task: "colorize",
            truth: s(&rgb),
            flags: vec![],
            side: vec![],
            methods: "gray,tv,score,score-sde,dps",
            channels: 3,
        },
        Case {
            task: "deblur",
            truth: "phantom:shepp-logan",
            flags: vec!["--noise", "gaussian:0.01"],
            side: vec![],
            methods: "wiener,tv,score,dps",
            channels: 1,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        check_case(dir.path(), i, c);
    }
}

#[test]
fn seed_and_simulation_record_matter() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("model");
    tiny_model(&model, 1);
    let y = d.join("sino.npy");
    let flags = ["--views", "4", "--angles", "16"];
    let mut sim = vec![
        "simulate",
        "ct",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "16",
    ];
    sim.extend(flags);
    sim.extend(["--out", s(&y)]);
    ok(&sim);
    let run = |seed: &str, y: &Path, out: &Path| {
        let mut a = vec!["reconstruct", "ct", "--measurement", s(y)];
        a.extend(flags);
        let angles = d.join("sino_angles.npy");
        a.extend(["--angles-file", s(&angles), "--method", "fbp,score"]);
        a.extend([
            "--model",
            s(&model),
            "--steps",
            "4",
            "--seed",
            seed,
            "--out",
            s(out),
        ]);
        ok(&a);
        (
            read(&output(out, "fbp.npy")),
            read(&output(out, "score.npy")),
        )
    };
    let (f0, s0) = run("0", &y, &d.join("seed0"));
    let (f1, s1) = run("1", &y, &d.join("seed1"));
    assert_eq!(max_abs(&f0, &f1), 0.0, "FBP draws nothing");
    assert!(max_abs(&s0, &s1) > 1e-4, "another seed, other samples");
    // The same sinogram without its record: a measurement of unknown units, rescaled.
    let bare = d.join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let y2 = bare.join("sino.npy");
    std::fs::copy(&y, &y2).unwrap();
    let mut a = vec!["reconstruct", "ct", "--measurement", s(&y2)];
    a.extend(flags);
    let angles = d.join("sino_angles.npy");
    a.extend(["--angles-file", s(&angles), "--method", "fbp,tv"]);
    let bare_out = d.join("bare-out");
    a.extend(["--out", s(&bare_out)]);
    let log = ok(&a);
    assert!(log.contains("scaled by"), "{log}");
    let tv_bare = read(&output(&d.join("bare-out"), "tv.npy"));
    let mut b = vec!["reconstruct", "ct", "--measurement", s(&y)];
    b.extend(flags);
    b.extend(["--angles-file", s(&angles), "--method", "tv"]);
    let rec_out = d.join("rec-out");
    b.extend(["--out", s(&rec_out)]);
    ok(&b);
    let tv_rec = read(&output(&d.join("rec-out"), "tv.npy"));
    assert!(
        max_abs(&tv_bare, &tv_rec) > 1e-6,
        "rescaling changes TV's [0, 1] box"
    );
}

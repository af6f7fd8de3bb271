//! The few-step samplers `ddim` and `diffpir` on the command line: CT (an operator with a
//! `T`/`Λ` decomposition) and deblurring (none: the data step runs conjugate gradients), cold and
//! warm, with their settings recorded and bad settings refused before any work.
mod cli_util;
use cli_util::{scoreinv, text, tiny_model};

fn metrics(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn ddim_and_diffpir_run_on_ct_and_deblur_and_record_their_settings() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_model(&model, 1);
    let model = model.display().to_string();
    let common = [
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "16",
        "--method",
        "ddim,diffpir",
        "--model",
        &model,
        "--steps",
        "10",
    ];
    // CT: cold, 10 steps each.
    let out = dir.path().join("ct");
    let mut args = vec!["reconstruct", "ct", "--views", "6", "--eta", "0.5"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = scoreinv(&args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("10/10 steps"), "{t}");
    let m = metrics(&out);
    let s = &m["settings"]["study"]["score"];
    assert_eq!(s["eta"], 0.5, "{m}");
    let methods: Vec<&str> = m["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert!(
        methods.contains(&"ddim") && methods.contains(&"diffpir"),
        "{m}"
    );
    // Deblurring has no decomposition: both use CG; warm start from Wiener at t0 0.5.
    let out = dir.path().join("deblur");
    let mut args = vec![
        "reconstruct",
        "deblur",
        "--start",
        "wiener",
        "--t0",
        "0.5",
        "--sigma-y",
        "0.02",
        "--diffpir-lambda",
        "2",
        "--cg-iters",
        "5",
    ];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = scoreinv(&args);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("5/5 steps"), "{t}");
    let s = &metrics(&out)["settings"]["study"]["score"];
    assert_eq!(
        (&s["sigma_y"], &s["diffpir_lambda"], &s["cg_iters"]),
        (
            &serde_json::json!(0.02),
            &serde_json::json!(2.0),
            &serde_json::json!(5)
        ),
        "{s}"
    );
    // Bad settings are refused before anything is written.
    for (name, flags, needle) in [
        ("eta", ["--eta", "2"], "eta"),
        ("zeta", ["--diffpir-zeta", "-1"], "diffpir_zeta"),
    ] {
        let out = dir.path().join(name);
        let mut args = vec!["reconstruct", "ct", "--views", "6"];
        args.extend_from_slice(&common);
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let o = scoreinv(&args);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(needle), "{name}: {t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(!out.join("metrics.json").exists(), "{name}");
    }
}

/// `--steps 4,8`: each score method once per N on the same measurements (`ddim@4`, `ddim@8`),
/// with its NFE in metrics.json and metrics.csv, and the quality-vs-cost figure (PNG and SVG)
/// listed in the output's manifest.
#[test]
fn a_steps_sweep_runs_each_n_and_plots_quality_against_cost() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_model(&model, 1);
    let out = dir.path().join("sweep");
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "16",
        "--views",
        "6",
        "--method",
        "fbp,ddim,score",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "4,8",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let m = metrics(&out);
    let nfe: Vec<(String, Option<u64>)> = m["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["method"].as_str().unwrap().to_string(), r["nfe"].as_u64()))
        .collect();
    // DDIM: one evaluation per step; the projection sampler: predictor + one corrector step,
    // and the final denoising.
    assert_eq!(
        nfe,
        vec![
            ("fbp".into(), None),
            ("ddim@4".into(), Some(4)),
            ("ddim@8".into(), Some(8)),
            ("score@4".into(), Some(9)),
            ("score@8".into(), Some(17)),
        ],
        "{m}"
    );
    assert_eq!(
        m["settings"]["study"]["score"]["steps_sweep"],
        serde_json::json!([4, 8])
    );
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with("case,method,psnr_db,ssim,nrmse,seconds,nfe\n"),
        "{csv}"
    );
    let png = image::open(out.join("sweep.png")).unwrap();
    assert!(png.width() > 1000 && png.height() > 700);
    let svg = std::fs::read_to_string(out.join("sweep.svg")).unwrap();
    assert!(svg.contains("ddim") && svg.contains("fbp") && svg.contains("NFE"));
    let manifest = std::fs::read_to_string(out.join(".scoreinv-output.json")).unwrap();
    assert!(manifest.contains("sweep.png") && manifest.contains("sweep.svg"));
}

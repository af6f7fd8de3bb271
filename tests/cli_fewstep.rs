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

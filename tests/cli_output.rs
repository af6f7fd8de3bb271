//! What the terminal shows around a reconstruction: the HU window in both typed forms, a header
//! before the work, a progress line per sampler stage with its step counts when stderr is not a
//! terminal, and none of libtorch's sparse-CSR beta notices.
mod cli_util;

use cli_util::{scoreinv, tiny_model};
use std::path::Path;

fn window_of(out: &Path) -> (f64, f64) {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let w = &m["settings"]["study"]["window"];
    (w["lo"].as_f64().unwrap(), w["hi"].as_f64().unwrap())
}

#[test]
fn the_window_can_be_typed_with_an_equals_sign_a_comma_or_a_space() {
    let dir = tempfile::tempdir().unwrap();
    let dcm = "target/fixtures/io/CT_small.dcm";
    let forms: [&[&str]; 3] = [
        &["--window=-160,240"],
        &["--window", "-160,240"],
        &["--window", "-160", "240"],
    ];
    for (i, form) in forms.iter().enumerate() {
        let out = dir.path().join(format!("w{i}"));
        let mut a = vec!["reconstruct", "ct", "--ground-truth", dcm, "--size", "16"];
        a.extend_from_slice(form);
        a.extend(["--method", "fbp", "--out", out.to_str().unwrap()]);
        let o = scoreinv(&a);
        assert!(
            o.status.success(),
            "{form:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(window_of(&out), (-160.0, 240.0), "{form:?}");
    }
    // Control: an empty window is refused, naming the flag.
    let out = dir.path().join("bad");
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        dcm,
        "--size",
        "16",
        "--window=240,-160",
        "--method",
        "fbp",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--window"));
}

#[test]
fn header_first_then_a_line_per_sampler_stage_and_no_csr_notice() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny_model(&model, 1);
    let out = dir.path().join("study");
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "16",
        "--views",
        "4",
        "--angles",
        "16",
        "--method",
        "fbp,score",
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains("sparse-view CT") && first.contains("methods fbp, score"),
        "header first: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("3/3 steps (100%)") && l.contains("score")),
        "a line at the end of the sampler's steps: {err}"
    );
    assert!(!err.contains("Sparse CSR"), "{err}");
}

#[test]
fn a_region_of_interest_adds_a_zoomed_row_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |roi: Option<&str>, out: &Path| {
        let mut a = vec![
            "reconstruct",
            "ct",
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "16",
            "--method",
            "fbp",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(r) = roi {
            a.extend(["--roi", r]);
        }
        scoreinv(&a)
    };
    let plain = dir.path().join("plain");
    assert!(run(None, &plain).status.success());
    let zoom = dir.path().join("zoom");
    let o = run(Some("4,4,8,8"), &zoom);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h = |d: &Path| image::open(d.join("shepp_logan.png")).unwrap().height();
    assert!(h(&zoom) > h(&plain), "the zoomed row adds height");
    let bad = dir.path().join("bad");
    let o = run(Some("10,10,8,8"), &bad);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--roi"),
        "names the flag"
    );
    assert!(!bad.exists(), "nothing written");
}

#[test]
fn a_display_window_changes_the_figure_only() {
    let dir = tempfile::tempdir().unwrap();
    let dcm = "target/fixtures/io/CT_small.dcm";
    let run = |extra: &[&str], out: &Path| {
        let mut a = vec![
            "reconstruct",
            "ct",
            "--ground-truth",
            dcm,
            "--size",
            "16",
            "--method",
            "fbp",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        scoreinv(&a)
    };
    let plain = dir.path().join("plain");
    let brain = dir.path().join("brain");
    assert!(run(&[], &plain).status.success());
    let o = run(&["--display-window", "-160,240"], &brain);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = |d: &Path| image::open(d.join("CT_small.png")).unwrap().to_rgb8();
    assert_ne!(
        png(&plain).as_raw(),
        png(&brain).as_raw(),
        "the figure shows another range"
    );
    let npy = |d: &Path| std::fs::read(d.join("CT_small_fbp.npy")).unwrap();
    assert_eq!(npy(&plain), npy(&brain), "the reconstruction is the same");
    let bad = dir.path().join("bad");
    let o = run(&["--display-window=240,-160"], &bad);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--display-window"));
}

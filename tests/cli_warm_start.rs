//! `reconstruct --start BASELINE --t0 T` (CCDF warm start) on the command line: the run takes
//! only the steps at or below `t0`, the settings are recorded, and incomplete or unknown
//! settings are refused before any work.
mod cli_util;
use cli_util::{scoreinv, text, tiny_model};

/// `reconstruct ct` of a 16² Shepp–Logan phantom from 6 views with `method`, the model
/// `model`, into `out`, with `extra` flags.
fn reconstruct(model: &str, out: &str, method: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "16",
        "--views",
        "6",
        "--method",
        method,
        "--model",
        model,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    scoreinv(&args)
}

/// [`reconstruct`] with `score`, N = 20.
fn reconstruct_score(model: &str, out: &str, extra: &[&str]) -> std::process::Output {
    reconstruct(model, out, "score", &[&["--steps", "20"], extra].concat())
}

#[test]
fn warm_start_runs_the_tail_of_the_grid_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_model(&model, 1);
    let model = model.display().to_string();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name).display().to_string();
        (reconstruct_score(&model, &out, extra), out)
    };
    let (o, out) = run("warm", &["--start", "fbp", "--t0", "0.3"]);
    assert!(o.status.success(), "{}", text(&o));
    // 20 steps from T = 1 to eps: 6 of them at or below 0.3.
    assert!(text(&o).contains("6/6 steps"), "{}", text(&o));
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(&out).join("metrics.json")).unwrap(),
    )
    .unwrap();
    let s = &m["settings"]["study"]["score"];
    assert_eq!(s["start"], "fbp", "{m}");
    assert_eq!(s["t0"], 0.3, "{m}");
    for (name, extra, needle) in [
        ("a", vec!["--start", "fbp"], "needs --t0"),
        ("b", vec!["--t0", "0.3"], "needs a warm --start"),
        (
            "c",
            vec!["--start", "zero-filled", "--t0", "0.3"],
            "--start zero-filled",
        ),
        ("d", vec!["--start", "tv", "--t0", "1.5"], "t0"),
    ] {
        let (o, out) = run(name, &extra);
        let t = text(&o);
        assert!(!o.status.success(), "{name}: {t}");
        assert!(t.contains(needle), "{name}: {t}");
        assert!(!t.contains("panicked"), "{name}: {t}");
        assert!(
            !std::path::Path::new(&out).join("metrics.json").exists(),
            "{name}"
        );
    }
}

/// A model that records a validated warm start for `score` (`"sampler": {"ct": {"start",
/// "t0"}}`) gets it without flags, with a note; `--start noise` runs cold; an incomplete record
/// is refused when the model is read.
#[test]
fn a_models_validated_warm_start_applies_to_score_and_noise_turns_it_off() {
    use scoreinv::models::model_dir::{read_model_config, SamplerSettings};
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_model(&model, 1);
    let json = model.join("config.json");
    let record = |start: Option<&str>, t0: Option<f64>| {
        let mut cfg = read_model_config(&model).unwrap();
        cfg.sampler.insert(
            "ct".into(),
            SamplerSettings {
                start: start.map(String::from),
                t0,
                validated_on: Some("test".into()),
                ..Default::default()
            },
        );
        std::fs::write(&json, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    };
    record(Some("fbp"), Some(0.3));
    let model = model.display().to_string();
    let run = |name: &str, extra: &[&str]| {
        reconstruct_score(&model, &dir.path().join(name).display().to_string(), extra)
    };
    let o = run("recorded", &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("6/6 steps") && t.contains("warm start from fbp at t0 0.3"),
        "{t}"
    );
    let o = run("cold", &["--start", "noise"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("20/20 steps") && !t.contains("warm start from"),
        "{t}"
    );
    // The user's own start and t0 win.
    let o = run("user", &["--start", "fbp", "--t0", "0.5"]);
    assert!(text(&o).contains("10/10 steps"), "{}", text(&o));
    record(Some("fbp"), None);
    let o = run("incomplete", &[]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("needs both fields, start and t0"),
        "{t}"
    );
}

/// A model that records a few-step sampler's validated setting (`"sampler": {"ct":
/// {"methods": {"ddim": {"start", "t0", "steps"}}}}`) gives `--method ddim` that warm start
/// and N without flags, with a note; `--steps` sets N under the recorded t0; `--start noise`
/// runs cold; `score` does not take the record of `ddim`; a bad record is refused when the
/// model is read, naming the field.
#[test]
fn a_models_validated_few_step_setting_applies_to_its_sampler_only() {
    use scoreinv::models::model_dir::{read_model_config, MethodSettings, SamplerSettings};
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_model(&model, 1);
    let json = model.join("config.json");
    let base = read_model_config(&model).unwrap();
    let record = |name: &str, t0: f64, steps: Option<usize>| {
        let mut cfg = base.clone();
        let mut s = SamplerSettings::default();
        s.methods.insert(
            name.into(),
            MethodSettings {
                start: "fbp".into(),
                t0,
                steps,
                validated_on: Some("test".into()),
            },
        );
        cfg.sampler.insert("ct".into(), s);
        std::fs::write(&json, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    };
    record("ddim", 0.5, Some(12));
    let model = model.display().to_string();
    let run = |name: &str, method: &str, extra: &[&str]| {
        let out = dir.path().join(name).display().to_string();
        (reconstruct(&model, &out, method, extra), out)
    };
    let (o, out) = run("recorded", "ddim", &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // N = 12 from T = 1: the 6 steps at or below t0 = 0.5.
    assert!(
        t.contains("6/6 steps") && t.contains("warm start from fbp at t0 0.5, N = 12"),
        "{t}"
    );
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(&out).join("metrics.json")).unwrap(),
    )
    .unwrap();
    let rec = m["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "ddim")
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!(rec["nfe"], 6, "{m}");
    // The user's N under the recorded start and t0.
    let (o, _) = run("user-steps", "ddim", &["--steps", "20"]);
    let t = text(&o);
    assert!(t.contains("10/10 steps") && !t.contains("N = 12"), "{t}");
    // Cold start on request: no warm start, all of the model's N steps.
    let (o, _) = run("cold", "ddim", &["--start", "noise"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("warm start from"), "{t}");
    // Control: the projection sampler does not take ddim's record.
    let (o, _) = run("score", "score", &["--steps", "20"]);
    let t = text(&o);
    assert!(
        t.contains("20/20 steps") && !t.contains("warm start from"),
        "{t}"
    );
    for (name, t0, steps, needle) in [
        (
            "ddim",
            0.0,
            None,
            "sampler.ct.methods.ddim.t0 must lie in (0, 1]",
        ),
        (
            "ddim",
            0.5,
            Some(0),
            "sampler.ct.methods.ddim.steps must be at least 1",
        ),
        (
            "nope",
            0.5,
            None,
            "sampler.ct.methods: unknown sampler \"nope\"",
        ),
    ] {
        record(name, t0, steps);
        let (o, out) = run("bad", "ddim", &[]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(needle), "{needle}: {t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(!std::path::Path::new(&out).join("metrics.json").exists());
    }
}

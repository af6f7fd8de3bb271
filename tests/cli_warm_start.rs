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

/// A temporary folder holding a tiny trained model at `m/`.
fn tiny_model_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    tiny_model(&model, 1);
    (dir, model)
}

/// The `metrics.json` that `reconstruct` wrote into `out`.
fn metrics(out: &str) -> serde_json::Value {
    let p = std::path::Path::new(out).join("metrics.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// The reconstruction (NPY bytes) that `reconstruct` wrote into `out` for `method` on the one
/// case of [`reconstruct`] (Shepp–Logan).
fn reconstruction(out: &str, method: &str) -> Vec<u8> {
    let p = std::path::Path::new(out).join(format!("shepp_logan_{method}.npy"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn warm_start_runs_the_tail_of_the_grid_and_bad_settings_are_refused() {
    let (dir, model) = tiny_model_dir();
    let model = model.display().to_string();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name).display().to_string();
        (reconstruct_score(&model, &out, extra), out)
    };
    let (o, out) = run("warm", &["--start", "fbp", "--t0", "0.3"]);
    assert!(o.status.success(), "{}", text(&o));
    // 20 steps from T = 1 to eps: 6 of them at or below 0.3.
    assert!(text(&o).contains("6/6 steps"), "{}", text(&o));
    let m = metrics(&out);
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
        (
            "e",
            vec!["--start", "fbp", "--t0", "0.3", "--start-iters", "5"],
            "--start-iters 5 sets the iterations of a TV warm start; --start is fbp",
        ),
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

/// `--start-iters N` runs the TV warm start for N PDHG iterations: the same samples as a TV
/// start under `--tv-iters N` (same seed), other samples under N + 1 (control).
#[test]
fn start_iters_sets_the_iterations_of_the_tv_start() {
    let (dir, model) = tiny_model_dir();
    let model = model.display().to_string();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name).display().to_string();
        let args = [&["--steps", "20", "--start", "tv", "--t0", "0.1"], extra].concat();
        let o = reconstruct(&model, &out, "ddim", &args);
        assert!(o.status.success(), "{name}: {}", text(&o));
        reconstruction(&out, "ddim")
    };
    let by_start_iters = run("start-iters", &["--start-iters", "7"]);
    assert_eq!(by_start_iters, run("tv-iters", &["--tv-iters", "7"]));
    assert_ne!(
        by_start_iters,
        run("start-iters-8", &["--start-iters", "8"])
    );
}

/// A model that records a validated warm start for `score` (`"sampler": {"ct": {"start",
/// "t0"}}`) gets it without flags, with a note; `--start noise` runs cold; an incomplete record
/// is refused when the model is read.
#[test]
fn a_models_validated_warm_start_applies_to_score_and_noise_turns_it_off() {
    use scoreinv::models::model_dir::{read_model_config, SamplerSettings};
    let (dir, model) = tiny_model_dir();
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
/// runs cold; `score` does not take the record of `ddim`; a cold record (`start` noise) with a
/// sampler setting (`diffpir_zeta`) runs cold with that setting unless its flag is given; a
/// bad record is refused when the model is read, naming the field.
#[test]
fn a_models_validated_few_step_setting_applies_to_its_sampler_only() {
    use scoreinv::models::model_dir::{read_model_config, MethodSettings, SamplerSettings};
    let (dir, model) = tiny_model_dir();
    let json = model.join("config.json");
    let base = read_model_config(&model).unwrap();
    let record_with = |name: &str, m: MethodSettings| {
        let mut cfg = base.clone();
        let mut s = SamplerSettings::default();
        s.methods.insert(name.into(), m);
        cfg.sampler.insert("ct".into(), s);
        std::fs::write(&json, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    };
    let warm = |t0: f64, steps: Option<usize>| MethodSettings {
        start: "fbp".into(),
        t0: Some(t0),
        steps,
        settings: Default::default(),
        validated_on: Some("test".into()),
    };
    let record = |name: &str, t0: f64, steps: Option<usize>| record_with(name, warm(t0, steps));
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
    let m = metrics(&out);
    let rec = m["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "ddim")
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!(rec["nfe"], 6, "{m}");
    // metrics.json says what ran: the record's start, t0 and N (the user gave none of them).
    let ran = &m["settings"]["methods"]["ddim"];
    assert!(m["settings"]["study"]["score"]["t0"].is_null(), "{m}");
    assert_eq!(
        (
            &ran["start"],
            &ran["sampler_settings"]["t0"],
            &ran["n_steps"],
            &ran["steps_run"]
        ),
        (
            &serde_json::json!("fbp"),
            &serde_json::json!(0.5),
            &serde_json::json!(12),
            &serde_json::json!(6)
        ),
        "{m}"
    );
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
    // A cold record with DiffPIR's zeta: all N = 8 steps from noise, zeta 1 in the run's
    // settings; the user's flag overrides the recorded zeta.
    let cold = MethodSettings {
        start: "noise".into(),
        t0: None,
        steps: Some(8),
        settings: [("diffpir_zeta".to_string(), 1.0)].into(),
        validated_on: None,
    };
    record_with("diffpir", cold.clone());
    let (o, out) = run("cold-record", "diffpir", &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("8/8 steps") && t.contains("cold start (from noise), N = 8, diffpir_zeta 1"),
        "{t}"
    );
    let m = metrics(&out);
    let ran = &m["settings"]["methods"]["diffpir"];
    assert!(
        ran["start"] == "noise"
            && ran["sampler_settings"]["diffpir_zeta"] == 1.0
            && ran["sampler_settings"]["t0"].is_null()
            && m["settings"]["study"]["score"]["diffpir_zeta"].is_null(),
        "{m}"
    );
    // The recorded setting is what ran: the same samples as the explicit flags (same seed),
    // and not those of another zeta (control).
    let samples = |out: &str| reconstruction(out, "diffpir");
    let explicit = ["--start", "noise", "--steps", "8", "--diffpir-zeta", "1"];
    let (o, out_flags) = run("cold-flags", "diffpir", &explicit);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(samples(&out), samples(&out_flags));
    let (o, out_user) = run("cold-user-zeta", "diffpir", &["--diffpir-zeta", "0.25"]);
    let t = text(&o);
    assert!(
        o.status.success() && t.contains("N = 8") && !t.contains("diffpir_zeta 1"),
        "{t}"
    );
    assert_ne!(samples(&out), samples(&out_user));
    for (m, needle) in [
        (
            MethodSettings {
                t0: Some(0.5),
                ..cold.clone()
            },
            "sampler.ct.methods.diffpir: start \"noise\" is a cold start and takes no t0",
        ),
        (
            MethodSettings {
                start: "fbp".into(),
                ..cold.clone()
            },
            "sampler.ct.methods.diffpir: the warm start \"fbp\" needs t0",
        ),
        (
            MethodSettings {
                settings: [("snr".to_string(), 0.1)].into(),
                ..cold.clone()
            },
            "sampler.ct.methods.diffpir.settings: unknown setting \"snr\"",
        ),
        (
            MethodSettings {
                settings: [("start_iters".to_string(), 100.0)].into(),
                ..cold.clone()
            },
            "sampler.ct.methods.diffpir.settings.start_iters sets the iterations of a TV warm \
             start; start is \"noise\"",
        ),
    ] {
        record_with("diffpir", m);
        let (o, out) = run("bad", "diffpir", &[]);
        let t = text(&o);
        assert!(!o.status.success() && t.contains(needle), "{needle}: {t}");
        assert!(!std::path::Path::new(&out).join("metrics.json").exists());
    }
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

/// The model cache of repeated reconstructions: one folder is built once (the same network
/// object), and read again when its files change.
#[test]
fn a_shared_model_is_loaded_once_and_read_again_after_its_files_change() {
    use scoreinv::models::model_dir::load_model_dir_shared;
    use tch::{Device, Kind, Tensor};
    let (_dir, model) = tiny_model_dir();
    let same = |a: &std::sync::Arc<dyn scoreinv::models::ScoreModel>,
                b: &std::sync::Arc<dyn scoreinv::models::ScoreModel>| {
        std::ptr::addr_eq(std::sync::Arc::as_ptr(a), std::sync::Arc::as_ptr(b))
    };
    let (a, _, _) = load_model_dir_shared(&model, Device::Cpu).unwrap();
    let (b, _, _) = load_model_dir_shared(&model, Device::Cpu).unwrap();
    assert!(same(&a, &b));
    // config.json edited at once, to the same length (within one timestamp tick): read again
    // (control).
    let json = model.join("config.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let edited = text
        .replacen("\"format\"", " \"format\"", 1)
        .replacen(" {", "{", 1);
    assert!(edited.len() == text.len() && edited != text);
    std::fs::write(&json, edited).unwrap();
    let (c, _, _) = load_model_dir_shared(&model, Device::Cpu).unwrap();
    assert!(!same(&a, &c));
    let x = Tensor::rand([1, 1, 16, 16], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[0.5f32]);
    let (sa, sc) = (a.score(&x, &t), c.score(&x, &t));
    assert_eq!(f64::try_from((sa - sc).abs().max()).unwrap(), 0.0);
}

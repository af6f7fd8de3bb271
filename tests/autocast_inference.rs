//! GPU-speed flags checked on the CPU. Mixed-precision inference (`--autocast`): a shipped
//! model's score under bf16 autocast is close to, but not the same as, its float32 score (so the
//! setting takes effect and does not break the model), comes back as float32, and the CLI flag
//! reaches `reconstruct` (the autocast policy is process-wide, so that is one test). And
//! `--cuda-graph` is refused on a CPU run before anything is written.
use scoreinv::autocast::{
    inference_autocast, parse_autocast, set_inference_autocast, AutocastDtype,
};
use scoreinv::models::model_dir::load_model_dir;
use std::path::Path;
use std::process::{Command, Output};
use tch::{Device, Kind, Tensor};

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).norm().double_value(&[]) / b.norm().double_value(&[])
}

fn ct_ellipses() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/ct-ellipses")
}

/// `scoreinv --device cpu --threads 1 GLOBAL… reconstruct ct` of one held-out phantom at 64²
/// with the shipped `ct-ellipses` prior, plus `args`, written to `out`.
fn reconstruct_phantom(global: &[&str], args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(["--device", "cpu", "--threads", "1"])
        .args(global)
        .args([
            "reconstruct",
            "ct",
            "--ground-truth",
            "phantom:ellipses:1000..1001",
            "--size",
            "64",
        ])
        .args(args)
        .arg("--model")
        .arg(ct_ellipses())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn bf16_autocast_changes_the_score_slightly_and_reaches_the_cli() {
    let dir = ct_ellipses();
    tch::manual_seed(0);
    let x = Tensor::rand([2, 1, 64, 64], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[0.3f32, 0.7]);
    let score = |policy: Option<AutocastDtype>| {
        set_inference_autocast(policy);
        let (model, _, _) = load_model_dir(&dir, Device::Cpu).unwrap();
        tch::no_grad(|| model.score(&x, &t))
    };
    let s32 = score(None);
    let s16 = score(Some(AutocastDtype::Bfloat16));
    set_inference_autocast(None);
    assert_eq!(s16.kind(), Kind::Float);
    let e = rel(&s16, &s32);
    eprintln!("bf16 vs f32 score: relative L2 difference {e:.3e}");
    // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 2e-3 per op): the difference is
    // at that scale, never zero (autocast on) and far from O(1) (model intact).
    assert!(e > 1e-5 && e < 5e-2, "{e}");
    assert_eq!(
        parse_autocast("BF16").unwrap(),
        Some(AutocastDtype::Bfloat16)
    );
    assert_eq!(parse_autocast("none").unwrap(), None);
    assert!(parse_autocast("int8")
        .unwrap_err()
        .to_string()
        .contains("`autocast`"));
    assert_eq!(inference_autocast(), None);

    let out = tempfile::tempdir().unwrap();
    let run = |flag: &str| {
        reconstruct_phantom(
            &["--autocast", flag],
            &[
                "--views", "23", "--angles", "180", "--seed", "0", "--method", "score", "--steps",
                "100",
            ],
            &out.path().join(flag),
        )
    };
    // At 100 steps the shipped prior reaches ~35 dB on this phantom in float32; bf16 inference
    // must land within 1 dB of it (measured: 35.55 vs 35.55).
    let psnr = |flag: &str| {
        let o = run(flag);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join(flag).join("metrics.json")).unwrap(),
        )
        .unwrap();
        m["records"][0]["psnr_db"].as_f64().unwrap()
    };
    let (p32, p16) = (psnr("none"), psnr("bf16"));
    eprintln!("PSNR float32 {p32:.2} dB, bf16 autocast {p16:.2} dB");
    assert!(p32 > 30.0 && (p16 - p32).abs() <= 1.0, "{p32} vs {p16}");
    let o = run("int8");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--autocast int8"));
}

/// `--cuda-graph` on a CPU run is refused before anything is written, naming the flag.
#[test]
fn cuda_graph_flag_needs_a_cuda_device() {
    let out = tempfile::tempdir().unwrap();
    let o = reconstruct_phantom(
        &[],
        &["--method", "fbp,score", "--steps", "5", "--cuda-graph"],
        &out.path().join("g"),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--cuda-graph needs a CUDA device"), "{err}");
    assert!(!out.path().join("g").exists());
}

//! Patch models on the command line: `train --patch P` keeps the images' own size, records the
//! patch geometry in the model directory, and `reconstruct` uses the model at any image size
//! (not a multiple of `P` either); a whole-image model still refuses another size, naming
//! `--size`; a source without a native size asks for one.
mod cli_util;
use cli_util::{scoreinv, text, tiny_model};
use ndarray::Array3;

#[test]
fn a_patch_model_trains_at_native_size_and_reconstructs_any_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    // 12 images of 24×24 (smooth ramps).
    let imgs = Array3::from_shape_fn((12, 24, 24), |(k, i, j)| ((i + j + k) % 24) as f32 / 24.0);
    scoreinv::io::npy::write_npy(&dir.path().join("train.npy"), &imgs).unwrap();
    let o = scoreinv(&[
        "train",
        "--data",
        &d("train.npy"),
        "--preset",
        "ncsnpp-tiny",
        "--patch",
        "8",
        "--steps",
        "3",
        "--out",
        &d("run"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("on 8x8 patches with position channels"),
        "{}",
        text(&o)
    );
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/model/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["patch"]["size"], 8);
    assert_eq!(cfg["data"]["shape"], serde_json::json!([1, 24, 24]));
    assert_eq!(cfg["model"]["data"]["image_size"], 8);
    assert_eq!(cfg["model"]["data"]["extra_input_channels"], 2);

    // CT at 20×20 and inpainting at 30×30 with the 24×24-trained patch model.
    let model = d("run/model");
    for (task, size, extra) in [
        ("ct", "20", vec!["--views", "6"]),
        ("inpaint", "30", vec![]),
    ] {
        let out = d(&format!("rec-{task}"));
        let mut args = vec![
            "reconstruct",
            task,
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            size,
            "--method",
            "score",
            "--model",
            &model,
            "--steps",
            "3",
            "--out",
            &out,
        ];
        args.extend(extra);
        let o = scoreinv(&args);
        assert!(o.status.success(), "{task}: {}", text(&o));
        assert!(text(&o).contains("peak host memory:"), "{}", text(&o));
        // Images larger than the training images (30 > 24) are flagged, smaller ones not.
        assert_eq!(
            text(&o).contains("never saw inside an image"),
            task == "inpaint",
            "{task}: {}",
            text(&o)
        );
        let x = scoreinv::io::npy::read_npy_f32(
            &std::path::Path::new(&out).join("shepp_logan_score.npy"),
        )
        .unwrap();
        let n: usize = size.parse().unwrap();
        assert_eq!(x.shape()[x.ndim() - 2..], [n, n], "{task}");
        // The ground truth as scored, beside the reconstructions.
        let truth = scoreinv::io::npy::read_npy_f32(
            &std::path::Path::new(&out).join("shepp_logan_truth.npy"),
        )
        .unwrap();
        assert_eq!(truth.shape(), x.shape(), "{task}");
        assert!(x.iter().all(|v| v.is_finite()));
    }

    // A whole-image model at another size: a clear error naming `--size`.
    tiny_model(&dir.path().join("whole"), 1);
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "20",
        "--method",
        "score",
        "--model",
        &d("whole"),
        "--out",
        &d("rec-whole"),
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("16×16") && t.contains("--size 16"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

/// `train` one step of `ncsnpp-tiny` with `--patch PATCH` on 4 ellipse phantoms, into `out`,
/// with `extra` flags.
fn train_ellipses(patch: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--data",
        "phantom:ellipses:4",
        "--preset",
        "ncsnpp-tiny",
        "--patch",
        patch,
        "--steps",
        "1",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    scoreinv(&args)
}

#[test]
fn a_patch_model_of_rendered_data_asks_for_a_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run").display().to_string();
    let o = train_ellipses("8", &out, &[]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("--size"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    // With a size it trains.
    let o = train_ellipses("8", &out, &["--size", "16"]);
    assert!(o.status.success(), "{}", text(&o));
    // A patch larger than the images is refused, naming the setting.
    let run2 = dir.path().join("run2").display().to_string();
    let o = train_ellipses("32", &run2, &["--size", "16"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("patch_size 32"), "{}", text(&o));
}

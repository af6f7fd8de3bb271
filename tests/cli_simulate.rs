//! `scoreinv simulate {ct,mri,inpaint,colorize}`: the files it writes are the measurements of
//! the operators built independently here, and bad input writes nothing.
use ndarray::{Array2, Array3, ArrayD};
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::io::{self, Image};
use scoreinv::operators::radon::{sparse_view_indices, ParallelBeamRadon};
use scoreinv::operators::{fft2c, LinearOperator};
use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn scoreinv() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoreinv"));
    c.args(["--device", "cpu", "--threads", "1"]);
    c
}

fn run_ok(args: &[&str]) -> String {
    let out = scoreinv().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_err(args: &[&str]) -> String {
    let out = scoreinv().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn phantom32() -> Tensor {
    let opts = CaseOptions {
        size: Some(32),
        ..CaseOptions::default()
    };
    load_cases("phantom:shepp-logan", &opts).unwrap()[0]
        .truth
        .shallow_clone()
}

fn read_f32(p: &Path) -> ArrayD<f32> {
    io::npy::read_npy_f32(p).unwrap()
}

fn tensor(a: &ArrayD<f32>) -> Tensor {
    io::array_to_tensor(a).to_kind(Kind::Double)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// An RGB PNG `[3, 16, 16]` whose 8-bit samples are exact (`k / 255`).
fn write_rgb_png(path: &Path) -> Array3<f32> {
    let data = Array3::from_shape_fn((3, 16, 16), |(c, y, x)| {
        ((c * 70 + y * 9 + x * 5) % 256) as f32 / 255.0
    });
    io::write_image(path, &Image::chw(data.clone())).unwrap();
    data
}

#[test]
fn ct_measurement_is_the_forward_projection_with_its_angles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sino.npy");
    let stdout = run_ok(&[
        "simulate",
        "ct",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "32",
        "--views",
        "8",
        "--angles",
        "60",
        "--noise",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("8 of 60 views"), "{stdout}");
    let sino = read_f32(&out);
    assert_eq!(sino.shape(), &[32, 8]);
    let op = ParallelBeamRadon::sparse_view(32, 8, 60, Kind::Float, Device::Cpu).unwrap();
    let want = op.forward(&phantom32().unsqueeze(0)).unwrap().get(0).get(0);
    // Same f32 computation on the same input: equal up to float rounding of the line sums
    // (values up to ~10, f32 epsilon 1.2e-7).
    let err = max_abs(&tensor(&sino), &want);
    eprintln!("ct sinogram vs A x: max |error| {err:.3e}");
    assert!(err < 1e-5, "sinogram differs from A x by {err}");
    let angles = io::npy::read_npy_f64(&dir.path().join("sino_angles.npy")).unwrap();
    let kept = sparse_view_indices(8, 60).unwrap();
    let want: Vec<f64> = kept.iter().map(|&i| 3.0 * i as f64).collect();
    let got: Vec<f64> = angles.iter().copied().collect();
    assert_eq!(got.len(), 8);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "angles {got:?} vs {want:?}");
    }
    let mask = read_f32(&dir.path().join("sino_mask.npy"));
    assert_eq!(mask.shape(), &[60]);
    for (i, &m) in mask.iter().enumerate() {
        assert_eq!(m, if kept.contains(&i) { 1.0 } else { 0.0 }, "angle {i}");
    }
}

#[test]
fn mri_kspace_is_masked_fft_and_true_acceleration_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.npy");
    let stdout = run_ok(&[
        "simulate",
        "mri",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "32",
        "--accel",
        "4",
        "--center-fraction",
        "0.08",
        "--mask-kind",
        "equispaced",
        "--out",
        out.to_str().unwrap(),
    ]);
    let k = io::npy::read_npy_complex(&out).unwrap();
    assert_eq!(k.shape(), &[32, 32]);
    let mask: Array2<f32> = io::ensure_2d(read_f32(&dir.path().join("k_mask.npy")), "m").unwrap();
    let n = mask.iter().filter(|&&v| v == 1.0).count();
    assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
    let accel = 1024.0 / n as f64;
    assert!(
        stdout.contains(&format!("true acceleration: {accel:.4}")),
        "expected acceleration {accel:.4} in:\n{stdout}"
    );
    let full = fft2c(&phantom32().to_kind(Kind::ComplexDouble))
        .unwrap()
        .get(0);
    let kt = io::complex_array_to_tensor(&k).to_kind(Kind::ComplexDouble);
    let mt = io::array_to_tensor(&mask).to_kind(Kind::Double);
    // Unsampled entries are exactly zero; sampled ones are the orthonormal FFT of the image
    // (|k| ≤ √(H W) · max x = 32; f32 storage → 1e-5 absolute).
    let unsampled = mt.ones_like() - &mt;
    let outside = (kt.abs() * unsampled).max().double_value(&[]);
    assert_eq!(outside, 0.0);
    let err = ((&kt - &full * &mt).abs()).max().double_value(&[]);
    eprintln!("mri k-space vs M F x: max |error| {err:.3e}");
    assert!(err < 1e-5, "k-space differs from M F x by {err}");
}

#[test]
fn sense_writes_coil_kspace_and_normalised_maps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.npy");
    run_ok(&[
        "simulate",
        "mri",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "16",
        "--coils",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let k = io::npy::read_npy_complex(&out).unwrap();
    assert_eq!(k.shape(), &[3, 16, 16]);
    let maps = io::npy::read_npy_complex(&dir.path().join("k_maps.npy")).unwrap();
    assert_eq!(maps.shape(), &[3, 16, 16]);
    // Σ_c |S_c|² = 1 per pixel (f32 storage: 1e-5).
    for y in 0..16 {
        for x in 0..16 {
            let e: f32 = (0..3).map(|c| maps[[c, y, x]].norm_sqr()).sum();
            assert!((e - 1.0).abs() < 1e-5, "coil energy {e} at ({y}, {x})");
        }
    }
}

#[test]
fn inpaint_keeps_observed_pixels_and_zeroes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.npy");
    run_ok(&[
        "simulate",
        "inpaint",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "32",
        "--mask",
        "random:0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let y = read_f32(&out);
    assert_eq!(y.shape(), &[1, 32, 32]);
    let mask = read_f32(&dir.path().join("m_mask.npy"));
    assert_eq!(mask.shape(), &[32, 32]);
    assert_eq!(mask.iter().filter(|&&v| v == 1.0).count(), 512);
    let truth = phantom32().get(0);
    let want = &truth * tensor(&mask);
    assert_eq!(max_abs(&tensor(&y).get(0), &want), 0.0);
}

#[test]
fn colorize_writes_the_channel_mean() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("rgb.png");
    let rgb = write_rgb_png(&png);
    let out = dir.path().join("gray.npy");
    run_ok(&[
        "simulate",
        "colorize",
        "--ground-truth",
        png.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let g = read_f32(&out);
    assert_eq!(g.shape(), &[16, 16]);
    let mean = rgb.mean_axis(ndarray::Axis(0)).unwrap();
    // √3 · mean / √3 in f32: a few ulp of values ≤ 1.
    for (a, b) in g.iter().zip(mean.iter()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

/// Runs a failing simulate and checks the message and that nothing was written.
fn refuses(dir: &Path, args: &[&str], needle: &str) {
    let out = dir.join("y.npy");
    let mut all: Vec<&str> = vec!["simulate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let err = run_err(&all);
    assert!(err.contains(needle), "expected '{needle}' in:\n{err}");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("y"))
        .collect();
    assert!(left.is_empty(), "{args:?} wrote {left:?}");
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = d.join("rgb.png");
    write_rgb_png(&png);
    let rgb = png.to_str().unwrap();
    let ph = ["--ground-truth", "phantom:shepp-logan", "--size", "16"];
    let with = |task: &str, extra: &[&'static str]| -> Vec<String> {
        let mut v = vec![task.to_string()];
        v.extend(ph.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            with("mri", &["--mask-kind", "spiral"]),
            "unknown mask kind 'spiral'",
        ),
        (with("inpaint", &["--mask", "blob:3"]), "unknown mask kind"),
        (
            with("mri", &["--noise", "poisson:1000"]),
            "applies only to CT",
        ),
        (
            with("ct", &["--views", "500"]),
            "n_views must be in 1..=180",
        ),
        (with("colorize", &[]), "colorize needs RGB ground truth"),
        (
            vec!["ct".into(), "--ground-truth".into(), rgb.into()],
            "CT needs gray images",
        ),
    ];
    for (args, needle) in &cases {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        refuses(d, &a, needle);
    }
    // Not an .npy output.
    let txt = d.join("y.txt");
    let err = run_err(&[
        "simulate",
        "inpaint",
        "--ground-truth",
        "phantom:shepp-logan",
        "--out",
        txt.to_str().unwrap(),
    ]);
    assert!(err.contains("FILE.npy"), "{err}");
    assert!(!txt.exists());
}

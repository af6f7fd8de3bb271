//! `scoreinv reconstruct {ct,mri,inpaint,colorize,deblur}`: `simulate` → `reconstruct --measurement`
//! round trips against analytic truths, simulation studies of the new tasks, and bad input that
//! must leave `--out` absent.
use ndarray::{Array3, ArrayD, Axis};
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::io::{self, Image};
use scoreinv::operators::radon::ParallelBeamRadon;
use scoreinv::operators::LinearOperator;
use std::path::{Path, PathBuf};
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

fn phantom(n: i64) -> Tensor {
    let opts = CaseOptions {
        size: Some(n),
        ..CaseOptions::default()
    };
    load_cases("phantom:shepp-logan", &opts).unwrap()[0]
        .truth
        .shallow_clone()
}

fn read(p: &Path) -> Tensor {
    io::array_to_tensor(&io::npy::read_npy_f32(p).unwrap()).to_kind(Kind::Double)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn simulate(dir: &Path, task: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{task}.npy"));
    let mut args = vec!["simulate", task, "--noise", "none", "--out", s(&out)];
    args.extend_from_slice(extra);
    run_ok(&args);
    out
}

fn write_rgb_png(path: &Path) -> Array3<f32> {
    let data = Array3::from_shape_fn((3, 16, 16), |(c, y, x)| {
        ((c * 70 + y * 9 + x * 5) % 256) as f32 / 255.0
    });
    io::write_image(path, &Image::chw(data.clone())).unwrap();
    data
}

#[test]
fn mri_full_mask_zero_filled_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // R = 1 (centre fraction 0.32, every other line kept with probability 1): full k-space.
    let k = simulate(
        d,
        "mri",
        &[
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "16",
            "--accel",
            "1",
        ],
    );
    let out = d.join("rec");
    let stdout = run_ok(&[
        "reconstruct",
        "mri",
        "--measurement",
        s(&k),
        "--mask",
        s(&d.join("mri_mask.npy")),
        "--method",
        "zero-filled",
        "--out",
        s(&out),
    ]);
    assert!(stdout.contains("no metrics"), "{stdout}");
    let r = read(&out.join("mri_zero-filled.npy"));
    // |F⁻¹ F x| = x for x ≥ 0; f32 FFT round trip of values ≤ 1: 1e-5.
    let err = max_abs(&r, &phantom(16));
    eprintln!("mri full-mask zero-filled: max |error| {err:.3e}");
    assert!(err < 1e-5, "zero-filled differs from the truth by {err}");
    assert!(out.join("mri.png").exists() && out.join("reconstructions.json").exists());
}

#[test]
fn sense_full_mask_coil_combination_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = simulate(
        d,
        "mri",
        &[
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "16",
            "--accel",
            "1",
            "--coils",
            "4",
        ],
    );
    let out = d.join("rec");
    run_ok(&[
        "reconstruct",
        "mri",
        "--measurement",
        s(&k),
        "--mask",
        s(&d.join("mri_mask.npy")),
        "--coil-maps",
        s(&d.join("mri_maps.npy")),
        "--method",
        "zero-filled",
        "--out",
        s(&out),
    ]);
    // Σ_c conj(S_c) S_c x = x because Σ_c |S_c|² = 1 (maps stored in f32: 1e-5).
    let err = max_abs(&read(&out.join("mri_zero-filled.npy")), &phantom(16));
    eprintln!("sense full-mask coil combination: max |error| {err:.3e}");
    assert!(
        err < 1e-5,
        "SENSE coil combination differs from the truth by {err}"
    );
}

#[test]
fn inpaint_round_trip_keeps_observed_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let y = simulate(
        d,
        "inpaint",
        &[
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "16",
            "--mask",
            "random:0.5",
        ],
    );
    let out = d.join("rec");
    run_ok(&[
        "reconstruct",
        "inpaint",
        "--measurement",
        s(&y),
        "--mask",
        s(&d.join("inpaint_mask.npy")),
        "--tv-iters",
        "30",
        "--out",
        s(&out),
    ]);
    let mask = read(&d.join("inpaint_mask.npy"));
    let truth = phantom(16).get(0).to_kind(Kind::Double);
    let zf = read(&out.join("inpaint_zero-filled.npy")).get(0);
    assert_eq!(max_abs(&(&zf * &mask), &(&truth * &mask)), 0.0);
    assert_eq!(
        max_abs(&(&zf * (mask.ones_like() - &mask)), &truth.zeros_like()),
        0.0
    );
    assert!(out.join("inpaint_tv.npy").exists());
}

#[test]
fn ct_round_trip_fbp_of_the_simulated_sinogram() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let y = simulate(
        d,
        "ct",
        &[
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "32",
            "--views",
            "12",
            "--angles",
            "90",
        ],
    );
    let op = ParallelBeamRadon::sparse_view(32, 12, 90, Kind::Float, Device::Cpu).unwrap();
    let sino = op.forward(&phantom(32).unsqueeze(0)).unwrap();
    let fbp = op.pseudo_inverse(&sino).unwrap().get(0);
    let peak = fbp.abs().max().double_value(&[]);
    for (name, extra) in [
        ("files", vec!["--angles-file", "ct_angles.npy"]),
        ("grid", vec!["--views", "12", "--angles", "90"]),
    ] {
        let out = d.join(name);
        let angles_file = d.join("ct_angles.npy");
        let extra: Vec<&str> = extra
            .iter()
            .map(|a| {
                if *a == "ct_angles.npy" {
                    s(&angles_file)
                } else {
                    a
                }
            })
            .collect();
        let mut args = vec![
            "reconstruct",
            "ct",
            "--measurement",
            s(&y),
            "--method",
            "fbp",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(&extra);
        run_ok(&args);
        let r = read(&out.join("ct_fbp.npy"));
        // The simulated sinogram carries its record, so it is not rescaled; like a study's, the
        // reconstruction is clipped to the images' range [0, 1].
        let err = max_abs(&r, &fbp.clamp(0.0, 1.0));
        eprintln!("ct {name}: FBP max |error| {err:.3e} (peak {peak:.3})");
        assert!(err < 1e-5 * peak.max(1.0), "{name}: FBP differs by {err}");
    }
}

#[test]
fn colorize_round_trip_and_study() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = d.join("rgb.png");
    let rgb = write_rgb_png(&png);
    let g = simulate(d, "colorize", &["--ground-truth", s(&png)]);
    let out = d.join("rec");
    run_ok(&[
        "reconstruct",
        "colorize",
        "--measurement",
        s(&g),
        "--out",
        s(&out),
    ]);
    let r: ArrayD<f32> = io::npy::read_npy_f32(&out.join("colorize_gray.npy")).unwrap();
    assert_eq!(r.shape(), &[3, 16, 16]);
    let mean = rgb.mean_axis(Axis(0)).unwrap();
    for c in 0..3 {
        let ch = r.index_axis(Axis(0), c);
        for (a, b) in ch.iter().zip(mean.iter()) {
            assert!((a - b).abs() < 1e-6, "channel {c}: {a} vs {b}");
        }
    }
    let study = d.join("study");
    let stdout = run_ok(&[
        "reconstruct",
        "colorize",
        "--ground-truth",
        s(&png),
        "--out",
        s(&study),
    ]);
    assert!(stdout.contains("gray"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(study.join("metrics.json")).unwrap())
            .unwrap();
    let json = &report["records"];
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert!(json[0]["psnr_db"].as_f64().unwrap().is_finite());
    assert!(study.join("rgb.png").exists() && study.join("metrics.csv").exists());
}

#[test]
fn mri_and_inpaint_studies_write_metrics_for_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let png = d.join("rgb.png");
    write_rgb_png(&png);
    for (task, gt, extra) in [
        (
            "mri",
            "phantom:shepp-logan",
            vec!["--size", "16", "--accel", "4"],
        ),
        ("inpaint", s(&png), vec!["--mask", "half"]),
    ] {
        let out = d.join(task);
        let mut args = vec![
            "reconstruct",
            task,
            "--ground-truth",
            gt,
            "--tv-iters",
            "30",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(&extra);
        let stdout = run_ok(&args);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        let methods: Vec<&str> = report["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["zero-filled", "tv"], "{task}");
        if task == "mri" {
            assert!(stdout.contains("true acceleration"), "{stdout}");
        }
    }
}

/// The MRI TV weight follows the mask's true acceleration (`mri_tv_lambda`): at fastMRI 8×
/// (true 12.8× at 32²) the default equals `--tv-lambda 0.05` and differs from the 4× weight
/// `0.005`; at 4× (true 5.3×) the default equals `0.005`. Both in a study and for a real
/// measurement with its mask file.
#[test]
fn mri_tv_weight_follows_the_acceleration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `reconstruct mri INPUT… --method tv` into d/NAME, with `--tv-lambda` when given.
    let run_tv = |name: &str, input: &[&str], lambda: Option<&str>| -> PathBuf {
        let out = d.join(name);
        let mut args = vec!["reconstruct", "mri"];
        args.extend_from_slice(input);
        args.extend_from_slice(&["--method", "tv", "--tv-iters", "200", "--out", s(&out)]);
        if let Some(l) = lambda {
            args.extend_from_slice(&["--tv-lambda", l]);
        }
        run_ok(&args);
        out
    };
    let tv_psnr = |name: &str, accel: &str, lambda: Option<&str>| -> f64 {
        let study = [
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "32",
            "--accel",
            accel,
        ];
        let out = run_tv(name, &study, lambda);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        json["records"][0]["psnr_db"].as_f64().unwrap()
    };
    let p8 = tv_psnr("d8", "8", None);
    assert_eq!(p8, tv_psnr("h8", "8", Some("0.05")));
    assert!((p8 - tv_psnr("l8", "8", Some("0.005"))).abs() > 1e-3);
    let p4 = tv_psnr("d4", "4", None);
    assert_eq!(p4, tv_psnr("l4", "4", Some("0.005")));
    assert!((p4 - tv_psnr("h4", "4", Some("0.05"))).abs() > 1e-3);

    // A real 8× measurement: the weight comes from its mask file.
    let y = simulate(
        d,
        "mri",
        &[
            "--ground-truth",
            "phantom:shepp-logan",
            "--size",
            "32",
            "--accel",
            "8",
        ],
    );
    let mask = d.join("mri_mask.npy");
    assert!(
        mask.exists(),
        "simulate wrote no mask next to {}",
        y.display()
    );
    let measured = ["--measurement", s(&y), "--mask", s(&mask)];
    let recon = |name: &str, lambda: Option<&str>| -> Tensor {
        read(&run_tv(name, &measured, lambda).join("mri_tv.npy"))
    };
    let r = recon("m8", None);
    assert_eq!(max_abs(&r, &recon("m8h", Some("0.05"))), 0.0);
    assert!(max_abs(&r, &recon("m8l", Some("0.005"))) > 1e-4);
}

/// `reconstruct inpaint` of `ground_truth` (right half missing, no noise) by `zero-filled`.
fn inpaint_half_zero_filled(ground_truth: &Path, out: &Path) {
    run_ok(&[
        "reconstruct",
        "inpaint",
        "--ground-truth",
        s(ground_truth),
        "--mask",
        "half",
        "--noise",
        "none",
        "--method",
        "zero-filled",
        "--out",
        s(out),
    ]);
}

/// A real volume has empty slices (air): their nRMSE is undefined and an exact reconstruction
/// has infinite PSNR. The study still runs; `metrics.json` records `null` for both and reads
/// back (PSNR +∞, nRMSE None), so such studies merge.
#[test]
fn empty_slices_of_a_volume_are_scored_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let base = io::tensor_to_array::<f32>(&phantom(16)).unwrap();
    let vol = Array3::from_shape_fn(
        (3, 16, 16),
        |(z, y, x)| {
            if z == 0 {
                0.0
            } else {
                base[[0, y, x]]
            }
        },
    );
    let input = dir.path().join("vol.nii.gz");
    io::nifti::write_nifti(&input, &vol, None, None).unwrap();
    let out = dir.path().join("out");
    inpaint_half_zero_filled(&input, &out);
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let json = &report["records"];
    assert!(
        json[0]["psnr_db"].is_null() && json[0]["nrmse"].is_null(),
        "{text}"
    );
    assert!(json[1]["nrmse"].as_f64().unwrap() > 0.0, "{text}");
    let recs = scoreinv::inverse::study::read_metrics(&out).unwrap();
    assert_eq!(recs[0].psnr_db, f64::INFINITY);
    assert_eq!(recs[0].nrmse, None);
    assert!(recs[1].psnr_db.is_finite());
    assert!(out.join("vol_zero-filled.nii.gz").is_file());
}

/// A folder holding a picture and a NIfTI volume: the picture is one case, the volume's slices
/// are cases `{stem}_z{K}` and come back as a volume per method, slice K equal to case K's NPY.
#[test]
fn a_volume_inside_a_folder_of_pictures_is_written_back_as_a_volume() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("study");
    std::fs::create_dir(&folder).unwrap();
    let base = io::tensor_to_array::<f32>(&phantom(16)).unwrap();
    let vol = Array3::from_shape_fn((3, 16, 16), |(z, y, x)| base[[0, y, x]] * (1.0 + z as f32));
    io::nifti::write_nifti(&folder.join("vol.nii.gz"), &vol, None, None).unwrap();
    let pic = io::tensor_to_array3(&phantom(16), "phantom").unwrap();
    io::write_image(folder.join("pic.png"), &Image::chw(pic)).unwrap();
    let out = dir.path().join("out");
    inpaint_half_zero_filled(&folder, &out);
    let recs = scoreinv::inverse::study::read_metrics(&out).unwrap();
    let names: Vec<&str> = recs.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(names, ["pic", "vol_z0", "vol_z1", "vol_z2"]);
    let v = io::nifti::read_nifti(&out.join("vol_zero-filled.nii.gz")).unwrap();
    assert_eq!(v.data.shape(), &[3, 16, 16]);
    for z in 0..3 {
        let sl = read(&out.join(format!("vol_z{z}_zero-filled.npy")));
        let got =
            io::array_to_tensor(&v.data.index_axis(Axis(0), z).to_owned()).to_kind(Kind::Double);
        assert_eq!(max_abs(&sl.reshape([16, 16]), &got), 0.0, "slice {z}");
    }
    assert!(!out.join("pic_zero-filled.nii.gz").exists());
    // Two cases of one name would overwrite each other's outputs: refused before writing,
    // whether one folder holds `pic.png` and `pic.npy` or one file is named twice. (CT has its
    // own set-up path: checked there too.)
    let pic = io::tensor_to_array3(&phantom(16), "phantom").unwrap();
    io::npy::write_npy(&folder.join("pic.npy"), &pic).unwrap();
    let refused = dir.path().join("refused");
    std::fs::create_dir(&refused).unwrap();
    let inpaint = ["inpaint", "--mask", "half", "--method", "zero-filled"];
    let mut args = inpaint.to_vec();
    args.extend(["--ground-truth", s(&folder)]);
    refuses(&refused, &args, "two cases are named 'pic'");
    let png = folder.join("pic.png");
    let mut args = inpaint.to_vec();
    args.extend(["--ground-truth", s(&png), "--ground-truth", s(&png)]);
    refuses(&refused, &args, "two cases are named 'pic'");
    refuses(
        &refused,
        &["ct", "--ground-truth", s(&folder), "--method", "fbp"],
        "two cases are named 'pic'",
    );
}

/// A failing reconstruct: message contains `needle`, `--out` was not created.
fn refuses(d: &Path, args: &[&str], needle: &str) {
    let out = d.join("out");
    let mut all = vec!["reconstruct"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(&out)]);
    let o = scoreinv().args(&all).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{all:?} should fail");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in:\n{err}"
    );
    assert!(!out.exists(), "{args:?} created --out");
}

#[test]
fn bad_measurements_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gt = ["--ground-truth", "phantom:shepp-logan", "--size", "16"];
    let ct = simulate(
        d,
        "ct",
        &[gt[0], gt[1], gt[2], gt[3], "--views", "8", "--angles", "60"],
    );
    let mri = simulate(d, "mri", &gt);
    let inp = simulate(d, "inpaint", &gt);
    let png = d.join("rgb.png");
    write_rgb_png(&png);
    // A mask of the wrong shape and a sinogram with a NaN.
    let small = d.join("small_mask.npy");
    io::npy::write_npy(&small, &ndarray::Array2::<f32>::ones((8, 8))).unwrap();
    let nan = d.join("nan.npy");
    let mut a = ndarray::Array2::<f32>::ones((16, 8));
    a[[3, 2]] = f32::NAN;
    io::npy::write_npy(&nan, &a).unwrap();
    let nonbinary = d.join("half_mask.npy");
    io::npy::write_npy(
        &nonbinary,
        &ndarray::Array2::<f32>::from_elem((16, 16), 0.5),
    )
    .unwrap();

    refuses(
        d,
        &["ct", "--measurement", s(&ct), "--views", "10"],
        "expected shape 10 angles (columns) for --views 10",
    );
    refuses(d, &["ct", "--measurement", s(&nan), "--views", "8"], "NaN");
    refuses(
        d,
        &["ct", "--ground-truth", s(&png), "--size", "16"],
        "CT needs gray images",
    );
    refuses(
        d,
        &["mri", "--measurement", s(&mri)],
        "k-space needs its sampling mask",
    );
    refuses(
        d,
        &["mri", "--measurement", s(&mri), "--mask", s(&small)],
        "expected shape [16, 16] (the size of the k-space), got [8, 8]",
    );
    refuses(
        d,
        &["mri", "--measurement", s(&mri), "--mask", s(&nonbinary)],
        "only 0 and 1",
    );
    refuses(
        d,
        &["mri", gt[0], gt[1], gt[2], gt[3], "--mask-kind", "spiral"],
        "unknown mask kind 'spiral'",
    );
    refuses(
        d,
        &["mri", gt[0], gt[1], gt[2], gt[3], "--method", "fbp"],
        "mri reconstructs with zero-filled or tv",
    );
    refuses(
        d,
        &["inpaint", "--measurement", s(&inp), "--mask", s(&small)],
        "expected shape [16, 16] (the size of the image), got [8, 8]",
    );
    refuses(
        d,
        &["inpaint", gt[0], gt[1], gt[2], gt[3], "--mask", "blob"],
        "unknown mask kind",
    );
    refuses(
        d,
        &["colorize", gt[0], gt[1], gt[2], gt[3]],
        "colorize needs RGB ground truth",
    );
    refuses(d, &["colorize", "--measurement", s(&png)], "gray image");
}

/// What [`run_sharded`] wrote: the whole study, its two shards and their merge, with what the
/// whole run and the merge printed.
struct Sharded {
    full: PathBuf,
    parts: Vec<PathBuf>,
    merged: PathBuf,
    full_out: String,
    merge_out: String,
}

/// Runs the study `args` whole into `dir/full`, as shards 0/2 and 1/2 into `dir/part{k}` (with
/// `check_part` called on each), and merges the parts into `dir/merged`.
fn run_sharded(dir: &Path, args: &[&str], check_part: impl Fn(&Path)) -> Sharded {
    let full = dir.join("full");
    let mut a = args.to_vec();
    a.extend(["--out", s(&full)]);
    let full_out = run_ok(&a);
    let mut parts = Vec::new();
    for k in 0..2 {
        let p = dir.join(format!("part{k}"));
        let shard = format!("{k}/2");
        let mut a = args.to_vec();
        a.extend(["--shard", &shard, "--out", s(&p)]);
        run_ok(&a);
        check_part(&p);
        parts.push(p);
    }
    let merged = dir.join("merged");
    let merge_out = run_ok(&["merge", s(&parts[0]), s(&parts[1]), "--out", s(&merged)]);
    Sharded {
        full,
        parts,
        merged,
        full_out,
        merge_out,
    }
}

/// `--shard K/N` then `scoreinv merge` reproduces the unsharded study bit for bit (noise is
/// seeded per case index), and bad shard specs are refused before anything is written.
#[test]
fn sharded_ct_study_merges_to_the_unsharded_one() {
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:ellipses:0..5",
        "--size",
        "16",
        "--views",
        "6",
        "--angles",
        "24",
        "--noise",
        "gaussian:0.01",
        "--method",
        "fbp,tv",
        "--tv-iters",
        "20",
        "--seed",
        "3",
    ];
    let Sharded {
        full,
        parts,
        merged,
        merge_out: table,
        ..
    } = run_sharded(dir.path(), &common, |_| {});
    assert!(table.contains("fbp") && table.contains("tv"), "{table}");
    for i in 0..5 {
        for m in ["fbp", "tv"] {
            let name = format!("ellipses_{i}_{m}.npy");
            let a = std::fs::read(full.join(&name)).unwrap();
            let b = std::fs::read(merged.join(&name)).unwrap();
            assert!(
                a == b,
                "{name} differs between the sharded and the unsharded run"
            );
        }
    }
    let recs = |p: &Path| -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = scoreinv::inverse::study::read_metrics(p)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.case,
                    r.method,
                    format!("{:.12} {:.12}", r.psnr_db, r.ssim),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(recs(&full), recs(&merged));
    // Overlapping parts are refused; so are malformed shards.
    let again = dir.path().join("again");
    let out = scoreinv()
        .args(["merge", s(&parts[0]), s(&parts[0]), "--out", s(&again)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("given twice"));
    assert!(!again.exists());
    for bad in ["2/2", "1", "x/3"] {
        let o = dir.path().join("bad");
        let mut a = common.to_vec();
        a.extend(["--shard", bad, "--out", s(&o)]);
        let out = scoreinv().args(&a).output().unwrap();
        assert!(!out.status.success(), "--shard {bad} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--shard"));
        assert!(!o.exists());
    }
}

/// A NIfTI volume reconstructed slice by slice comes back as a volume per method
/// (`{stem}_{method}.nii.gz`, the input's geometry with `--size` folded in); sharded, each part
/// records its slices in `volumes.json` without a partial volume, and `scoreinv merge` stacks
/// the shards into a volume equal bit for bit to the unsharded one.
#[test]
fn sharded_nifti_volume_merges_into_one_volume() {
    let dir = tempfile::tempdir().unwrap();
    // Five 24×24 slices in [0, 1], spacing 2 × 0.8 × 0.8 mm, an sform with an offset.
    let base = io::tensor_to_array::<f32>(&phantom(24)).unwrap();
    let vol = Array3::from_shape_fn((5, 24, 24), |(z, y, x)| {
        base[[0, y, x]] * (0.6 + 0.08 * z as f32)
    });
    let affine = [
        [0.8, 0.0, 0.0, -10.0],
        [0.0, 0.8, 0.0, 20.0],
        [0.0, 0.0, 2.0, 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let input = dir.path().join("head.nii.gz");
    io::nifti::write_nifti(&input, &vol, None, Some(affine)).unwrap();
    let common = [
        "reconstruct",
        "ct",
        "--ground-truth",
        s(&input),
        "--size",
        "16",
        "--views",
        "6",
        "--angles",
        "24",
        "--noise",
        "gaussian:0.01",
        "--method",
        "fbp,tv",
        "--tv-iters",
        "10",
        "--seed",
        "5",
    ];
    let Sharded {
        full,
        parts,
        merged,
        full_out,
        merge_out: printed,
    } = run_sharded(dir.path(), &common, |p| {
        assert!(p.join("volumes.json").is_file());
        assert!(
            !p.join("head_fbp.nii.gz").exists(),
            "a shard wrote a partial volume"
        );
    });
    assert!(full_out.contains("head_fbp.nii.gz"), "{full_out}");
    assert!(printed.contains("head_tv.nii.gz"), "{printed}");
    for m in ["fbp", "tv"] {
        let name = format!("head_{m}.nii.gz");
        let a = std::fs::read(full.join(&name)).unwrap();
        let b = std::fs::read(merged.join(&name)).unwrap();
        assert!(
            a == b,
            "{name} differs between the sharded and the unsharded run"
        );
        let v = io::nifti::read_nifti(&merged.join(&name)).unwrap();
        assert_eq!(v.data.shape(), &[5, 16, 16]);
        // Slice K is case head_z{K}'s reconstruction.
        for z in 0..5 {
            let sl = read(&merged.join(format!("head_z{z}_{m}.npy")));
            let got = io::array_to_tensor(&v.data.index_axis(Axis(0), z).to_owned())
                .to_kind(Kind::Double);
            assert_eq!(max_abs(&sl.reshape([16, 16]), &got), 0.0, "{m} slice {z}");
        }
        // 24 → 16 pixels: in-plane voxels 1.5× larger, origin moved to the new voxel centre.
        let sp = v.meta.spacing.unwrap();
        assert!(
            (sp[0] - 2.0).abs() < 1e-6 && (sp[1] - 1.2).abs() < 1e-6 && (sp[2] - 1.2).abs() < 1e-6,
            "{sp:?}"
        );
        let af = v.meta.affine.unwrap();
        assert!(
            (af[0][0] - 1.2).abs() < 1e-6 && (af[0][3] - (-10.0 + 0.25 * 0.8)).abs() < 1e-5,
            "{af:?}"
        );
    }
    // Streamed in batches of 2 slices: the same volumes.
    let batched = dir.path().join("batched");
    let mut a = common.to_vec();
    a.extend(["--batch", "2", "--out", s(&batched)]);
    run_ok(&a);
    for m in ["fbp", "tv"] {
        let name = format!("head_{m}.nii.gz");
        let a = std::fs::read(full.join(&name)).unwrap();
        let b = std::fs::read(batched.join(&name)).unwrap();
        assert!(a == b, "{name} differs between --batch 2 and --batch 1");
    }
    // Merging a shard twice is refused before anything is written.
    let again = dir.path().join("again");
    let out = scoreinv()
        .args(["merge", s(&parts[1]), s(&parts[1]), "--out", s(&again)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!again.exists());
}

/// `simulate deblur` writes `h ∗ x` (the operator's forward, circular Gaussian blur σ = 2 px);
/// `reconstruct deblur --measurement` with a nearly unregularised Wiener filter undoes most of
/// the blur of noise-free data (every frequency with |Ĥ| above the floor is restored: the error
/// falls to 0.57 of the blurred image's on this phantom, the bound is 0.7), while a
/// heavily regularised one (the control) does not; a study scores Wiener and TV.
#[test]
fn deblur_round_trip_and_study() {
    use scoreinv::operators::{Blur, Boundary};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gt = ["--ground-truth", "phantom:shepp-logan", "--size", "32"];
    let y_path = simulate(d, "deblur", &gt);
    let x = phantom(32).to_kind(Kind::Float).unsqueeze(0);
    let blur = Blur::gaussian(2.0, Boundary::Circular, 1, 32, 32).unwrap();
    let want = blur.forward(&x).unwrap().squeeze_dim(0);
    let y = read(&y_path);
    assert_eq!(y.numel(), 32 * 32, "{:?}", y.size());
    let y = y.reshape([1, 32, 32]);
    assert!(max_abs(&y, &want) < 1e-5, "{}", max_abs(&y, &want));
    let x = x.squeeze_dim(0).to_kind(Kind::Double);
    let err = |t: &Tensor| (t - &x).norm().double_value(&[]);
    let blurred = err(&y);
    let wiener = |eps: &str, name: &str| {
        let out = d.join(name);
        run_ok(&[
            "reconstruct",
            "deblur",
            "--measurement",
            s(&y_path),
            "--method",
            "wiener",
            "--wiener-eps",
            eps,
            "--out",
            s(&out),
        ]);
        err(&read(&out.join("deblur_wiener.npy")).reshape([1, 32, 32]))
    };
    let sharp = wiener("1e-8", "sharp");
    let control = wiener("10", "control");
    assert!(
        sharp < 0.7 * blurred,
        "Wiener ε 1e-8: {sharp} vs blurred {blurred}"
    );
    assert!(
        control > 0.9 * blurred,
        "control ε 10: {control} vs blurred {blurred}"
    );

    let study = d.join("study");
    let mut args = vec![
        "reconstruct",
        "deblur",
        "--method",
        "wiener,tv",
        "--out",
        s(&study),
    ];
    args.extend_from_slice(&gt);
    run_ok(&args);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(study.join("metrics.json")).unwrap())
            .unwrap();
    let recs = report["records"].as_array().unwrap();
    let methods: Vec<&str> = recs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["wiener", "tv"]);
    assert!(recs
        .iter()
        .all(|r| r["psnr_db"].as_f64().unwrap().is_finite()));
    assert_eq!(report["settings"]["task_settings"]["epsilon"], 3e-2);
}

//! Physical units in and out: CT in Hounsfield units is written back in HU (`.npy`, NIfTI
//! volumes, `--output-dicom` series checked with pydicom and with scoreinv's reader), NIfTI
//! outputs keep the input's affine, `#t=K` picks a time point of a 4-D NIfTI, and a non-square
//! slice is centre-cropped (with a note), not stretched.
//!
//! Fixtures: `target/fixtures/units/` from `scripts/fixtures/units.py` (`scripts/make_fixtures`).
use ndarray::{Array2, Array3, Array4, ArrayD, Axis};
use scoreinv::data::cases::{load_cases, load_cases_with_volumes, pending_cases, CaseOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/units")
}

fn scoreinv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scoreinv"))
        .args(args)
        .output()
        .expect("run scoreinv")
}

fn read_npy(p: &Path) -> ArrayD<f32> {
    ndarray_npy::read_npy(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

/// A valid UID (PS3.5 9.1): at most 64 characters, digits in dot-separated components without
/// leading zeros.
fn valid_uid(u: &str) -> bool {
    u.len() <= 64
        && u.split('.').all(|c| {
            !c.is_empty()
                && c.chars().all(|d| d.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

/// A DICOM series in, `--output-dicom` out: pydicom reads it back with the NPY output's HU
/// values (within the rescale precision RescaleSlope / 2), the source's patient and study,
/// its geometry adjusted for `--size`, and new valid UIDs; scoreinv reads it back too. The
/// `.npy` files and the NIfTI volume are in HU, and metrics.json records the window.
#[test]
fn dicom_series_round_trip_in_hu() {
    let src = fixtures().join("ct_series");
    let exp = json(&fixtures().join("ct_series.json"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("study");
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        src.to_str().unwrap(),
        "--size",
        "32",
        "--method",
        "fbp",
        "--output-dicom",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // NPY outputs in HU: mapped back to the window scale they give exactly the PSNR that
    // metrics.json records against the truth (loaded as the study loads it); read as window
    // units (the old output) they would not. Their means follow the truth's HU (FBP's bias at
    // 32 pixels and 2 noise levels included).
    let report = json(&out.join("metrics.json"));
    let truths = load_cases(
        src.to_str().unwrap(),
        &CaseOptions {
            size: Some(32),
            ..CaseOptions::default()
        },
    )
    .unwrap();
    let means = floats(&exp["mean_hu_clipped"]);
    let mut npys = Vec::new();
    for (z, want) in means.iter().enumerate() {
        let a = read_npy(&out.join(format!("ct_series_z{z}_fbp.npy")));
        assert_eq!(a.shape(), [1, 32, 32]);
        assert!(a.iter().all(|&v| (-1000.0..=1500.0).contains(&v)));
        let truth: Vec<f32> = Vec::<f32>::try_from(truths[z].truth.flatten(0, -1)).unwrap();
        let psnr = |scale: &dyn Fn(f32) -> f32| {
            let mse = a
                .iter()
                .zip(&truth)
                .map(|(&v, &t)| ((scale(v) - t) as f64).powi(2))
                .sum::<f64>()
                / truth.len() as f64;
            10.0 * (1.0 / mse).log10()
        };
        let recorded = report["records"][z]["psnr_db"].as_f64().unwrap();
        let in_hu = psnr(&|v| (v + 1000.0) / 2500.0);
        assert!(
            (in_hu - recorded).abs() < 1e-3,
            "slice {z}: {in_hu} dB vs {recorded} dB"
        );
        assert!((psnr(&|v| v) - recorded).abs() > 10.0);
        let mean = a.mean().unwrap() as f64;
        assert!(
            (mean - want).abs() < 150.0,
            "slice {z}: mean {mean} HU, truth {want}"
        );
        eprintln!("slice {z}: mean {mean:.1} HU (truth {want:.1} HU), PSNR {recorded:.2} dB");
        npys.push(a);
    }
    let units = &report["settings"]["output_units"];
    assert_eq!(units["values"], "HU");
    assert_eq!(floats(&units["window_hu"]), [-1000.0, 1500.0]);
    // The NIfTI volume stacks the HU slices, with the series' affine.
    let vol = scoreinv::io::read_image(out.join("ct_series_fbp.nii.gz")).unwrap();
    for (z, a) in npys.iter().enumerate() {
        let sl = vol.data.index_axis(Axis(0), z);
        assert!(sl.iter().zip(a.iter()).all(|(x, y)| x == y));
    }
    let series_in = scoreinv::io::read_image(&src).unwrap();
    let (want_sp, want_aff) = scoreinv::data::cases::resized_geometry(
        series_in.meta.spacing,
        series_in.meta.affine,
        (128, 128),
        Some(32),
    );
    assert!(close(&vol.meta.spacing.unwrap(), &want_sp.unwrap(), 1e-4));
    let (got, want) = (vol.meta.affine.unwrap(), want_aff.unwrap());
    for r in 0..3 {
        assert!(close(&got[r], &want[r], 1e-3), "{got:?} vs {want:?}");
    }

    // pydicom's view of the DICOM output.
    let folder = out.join("dicom/fbp");
    let py = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check/dicom_series.py"))
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    let ipps: Vec<Vec<f64>> = exp["ipp"].as_array().unwrap().iter().map(floats).collect();
    let iop = floats(&exp["iop"]);
    let ps = floats(&exp["pixel_spacing"]);
    let mut sops = std::collections::HashSet::new();
    let mut worst: f64 = 0.0;
    for (z, r) in rows.iter().enumerate() {
        assert_eq!(r["file"], format!("ct_series_z{z}.dcm"));
        for key in [
            "patient_name",
            "patient_id",
            "study_instance_uid",
            "study_date",
            "frame_of_reference_uid",
        ] {
            assert_eq!(r[key], exp[key], "{key}");
        }
        assert_eq!(r["modality"], "CT");
        assert_eq!(r["transfer_syntax"], "1.2.840.10008.1.2.1");
        assert!(r["series_description"].as_str().unwrap().contains("fbp"));
        let series = r["series_instance_uid"].as_str().unwrap();
        assert!(valid_uid(series) && series.starts_with("2.25."), "{series}");
        assert_ne!(series, exp["series_instance_uid"].as_str().unwrap());
        assert_eq!(series, rows[0]["series_instance_uid"].as_str().unwrap());
        let sop = r["sop_instance_uid"].as_str().unwrap();
        assert!(valid_uid(sop));
        assert_eq!(r["media_sop_instance_uid"], r["sop_instance_uid"]);
        assert!(sops.insert(sop.to_string()), "SOPInstanceUID repeated");
        // Geometry: 128 → 32 pixels: spacing ×4, first pixel centre 1.5 old pixels in.
        assert!(close(&floats(&r["iop"]), &iop, 1e-6));
        assert!(close(
            &floats(&r["pixel_spacing"]),
            &[ps[0] * 4.0, ps[1] * 4.0],
            1e-4
        ));
        let want_ipp: Vec<f64> = (0..3)
            .map(|k| ipps[z][k] + 1.5 * ps[1] * iop[k] + 1.5 * ps[0] * iop[3 + k])
            .collect();
        assert!(
            close(&floats(&r["ipp"]), &want_ipp, 1e-3),
            "{:?} vs {want_ipp:?}",
            r["ipp"]
        );
        assert!((r["slice_thickness"].as_f64().unwrap() - 5.0).abs() < 1e-6);
        assert!((r["slice_location"].as_f64().unwrap() - want_ipp[2]).abs() < 1e-3);
        // HU equal to the NPY output within the rescale precision.
        let slope = r["rescale_slope"].as_f64().unwrap();
        assert!((slope - 2500.0 / 65534.0).abs() < 1e-6, "{slope}");
        let hu = floats(&r["hu"]);
        assert_eq!(hu.len(), 32 * 32);
        for (a, b) in hu.iter().zip(npys[z].iter()) {
            let d = (a - *b as f64).abs();
            worst = worst.max(d);
            assert!(d <= slope / 2.0 + 1e-3, "{a} vs {b}");
        }
        // Control: another slice's NPY (40 HU apart) is far outside that precision.
        let other = &npys[(z + 1) % 3];
        let off = hu
            .iter()
            .zip(other.iter())
            .map(|(a, b)| (a - *b as f64).abs())
            .fold(0.0, f64::max);
        assert!(off > 10.0, "{off}");
    }
    assert!(worst > 0.0 && worst <= 0.0191 + 1e-3, "worst {worst}");
    eprintln!("DICOM round trip: worst |HU_dicom - HU_npy| = {worst:.5} HU");

    // scoreinv's own reader: the series in HU, slices in position order.
    let back = scoreinv::io::read_image(&folder).unwrap();
    assert_eq!(back.meta.units.as_deref(), Some("HU"));
    assert_eq!(back.data.dim(), (3, 32, 32));
    for (z, a) in npys.iter().enumerate() {
        let sl = back.data.index_axis(Axis(0), z);
        assert!(sl.iter().zip(a.iter()).all(|(x, y)| (x - y).abs() <= 0.02));
    }
}

/// A phantom (no DICOM source): a valid series with fresh patient and study UIDs, and a note
/// saying so; MRI refuses `--output-dicom` naming the flag.
#[test]
fn dicom_without_dicom_source_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ph");
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "32",
        "--method",
        "fbp",
        "--output-dicom",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("note:") && err.contains("fresh patient and study UIDs"),
        "{err}"
    );
    // Not HU: the NPY stays on the [0, 1] scale, the DICOM maps it through the window.
    let a = read_npy(&out.join("shepp_logan_fbp.npy"));
    assert!(a.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let back = scoreinv::io::read_image(out.join("dicom/fbp/shepp_logan.dcm")).unwrap();
    for (x, y) in back.data.iter().zip(a.iter()) {
        assert!((x - (-1000.0 + 2500.0 * y)).abs() <= 0.02, "{x} {y}");
    }
    let obj = scoreinv::io::dicom::open_object(&out.join("dicom/fbp/shepp_logan.dcm")).unwrap();
    let study = obj
        .element(dicom_dictionary_std::tags::STUDY_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(valid_uid(study.trim_end_matches('\0')) && study.starts_with("2.25."));

    let o = scoreinv(&[
        "reconstruct",
        "mri",
        "--ground-truth",
        "phantom:shepp-logan",
        "--size",
        "32",
        "--output-dicom",
        "--out",
        tmp.path().join("mri").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--output-dicom") && err.contains("not CT"),
        "{err}"
    );
    assert!(!tmp.path().join("mri").exists());
}

/// `#t=K` picks time point K of a 4-D NIfTI (alone, or before `#z=`), equal to the values
/// written; without it the file is refused naming its number of time points and the form.
#[test]
fn four_d_nifti_time_points() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("fmri.nii.gz");
    let (nx, ny, nz, nt) = (6usize, 5usize, 3usize, 4usize);
    let f = |x: usize, y: usize, z: usize, t: usize| (x + 10 * y + 100 * z + 1000 * t) as f32;
    let a = Array4::from_shape_fn((nx, ny, nz, nt), |(x, y, z, t)| f(x, y, z, t));
    nifti::writer::WriterOptions::new(&p)
        .write_nifti(&a)
        .unwrap();
    let ps = p.to_str().unwrap();

    let img = scoreinv::io::read_image(format!("{ps}#t=2#z=1")).unwrap();
    assert_eq!(img.data.dim(), (1, ny, nx));
    let want = Array2::from_shape_fn((ny, nx), |(y, x)| f(x, y, 1, 2));
    assert_eq!(img.data.index_axis(Axis(0), 0), want);
    let vol = scoreinv::io::read_image(format!("{ps}#t=3")).unwrap();
    assert_eq!(
        vol.data,
        Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| f(x, y, z, 3))
    );
    // Control: another time point differs.
    let t0 = scoreinv::io::read_image(format!("{ps}#t=0#z=1")).unwrap();
    assert_ne!(t0.data.index_axis(Axis(0), 0), want);

    let e = scoreinv::io::read_image(ps).unwrap_err().to_string();
    assert!(e.contains("4 time points") && e.contains("#t=K"), "{e}");
    let e = scoreinv::io::read_image(format!("{ps}#t=4"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("out of range") && e.contains("4 time points"),
        "{e}"
    );
    let e = scoreinv::io::read_image(format!("{ps}#t=x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("#t=x"), "{e}");
    // A `#t=` in the name of a file that exists is part of the name; on another format it is
    // refused.
    let odd = tmp.path().join("odd#t=1.npy");
    scoreinv::io::npy::write_npy(&odd, &Array2::<f32>::zeros((2, 3))).unwrap();
    assert_eq!(
        scoreinv::io::read_image(&odd).unwrap().data.dim(),
        (1, 2, 3)
    );
    let npy = tmp.path().join("plain.npy");
    scoreinv::io::npy::write_npy(&npy, &Array2::<f32>::zeros((2, 3))).unwrap();
    let e = scoreinv::io::read_image(format!("{}#t=0", npy.display()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("4-D NIfTI") && e.contains("plain.npy"), "{e}");

    // As ground truth: streamed and loaded give the same cases, named with the time point.
    let opts = CaseOptions::default();
    let (want, wv) = load_cases_with_volumes(&format!("{ps}#t=2"), &opts).unwrap();
    let (got, gv) = pending_cases(&format!("{ps}#t=2"), &opts).unwrap();
    assert_eq!(wv, gv);
    let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["fmri_t_2_z0", "fmri_t_2_z1", "fmri_t_2_z2"]);
    for (w, g) in want.iter().zip(got) {
        let g = g.load().unwrap();
        assert_eq!(w.name, g.name);
        assert!(w.truth.equal(&g.truth));
    }
    let c = load_cases(&format!("{ps}#t=1#z=0..2"), &opts).unwrap();
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["fmri_t_1_z_0", "fmri_t_1_z_1"]);
    let e = load_cases(ps, &opts).err().unwrap().to_string();
    assert!(e.contains("#t=K"), "{e}");
}

/// A non-square slice is centre-cropped to a square (as training does) before resampling,
/// with a note; stretching would keep the bright side columns, which the crop removes. The
/// affine follows the crop.
#[test]
fn non_square_is_centre_cropped_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("wide.npy");
    // 40 × 60: columns 0..10 and 50..60 are 1, the centre 40×40 a ramp in [0.1, 0.5].
    let a = Array2::from_shape_fn((40, 60), |(r, c)| {
        if !(10..50).contains(&c) {
            1.0f32
        } else {
            0.1 + 0.4 * r as f32 / 39.0
        }
    });
    scoreinv::io::npy::write_npy(&p, &a).unwrap();
    let ps = p.to_str().unwrap();
    let opts = CaseOptions {
        size: Some(20),
        ..CaseOptions::default()
    };
    let c = load_cases(ps, &opts).unwrap();
    assert_eq!(c[0].truth.size(), [1, 20, 20]);
    let max = c[0].truth.max().double_value(&[]);
    assert!(
        max <= 0.5 + 1e-5,
        "the side columns were not cropped: max {max}"
    );
    assert!(c[0]
        .info
        .notes
        .iter()
        .any(|n| n.contains("centre-cropped to 40x40")));
    // Control: stretching the whole slice keeps the side columns.
    let t = scoreinv::data::ct_slices::to_tensor(&a);
    let stretched = scoreinv::data::ct_slices::resize(&t, 20, 20).unwrap();
    assert!(stretched.max().double_value(&[]) > 0.9);

    // Through the CLI: the note is printed.
    let out = tmp.path().join("study");
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        ps,
        "--size",
        "20",
        "--method",
        "fbp",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("note:") && err.contains("centre-cropped to 40x40") && err.contains("--size"),
        "{err}"
    );

    // The geometry of a cropped volume: 2 slices of 4 × 8, cropped to columns 2..6 and
    // resampled to 2 × 2 (s = 2): origin moves by (2 + 0.5) columns and 0.5 rows.
    let aff = [
        [1.0, 0.0, 0.0, 10.0],
        [0.0, 2.0, 0.0, 20.0],
        [0.0, 0.0, 3.0, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let (sp, af) =
        scoreinv::data::cases::resized_geometry(Some([3.0, 2.0, 1.0]), Some(aff), (4, 8), Some(2));
    assert_eq!(sp, Some([3.0, 4.0, 2.0]));
    let af = af.unwrap();
    assert_eq!(af[0], [2.0, 0.0, 0.0, 12.5]);
    assert_eq!(af[1], [0.0, 4.0, 0.0, 21.0]);
}

/// A NIfTI CT volume marked as HU (`hu:`) and not square: the volume written back keeps the
/// input's affine (moved by the centre crop, checked with nibabel), its values are HU, and the
/// DICOM series is placed by that affine.
#[test]
fn nifti_in_hu_keeps_its_affine() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("head.nii.gz");
    // 3 slices of 16 rows × 24 columns: air, a soft-tissue disk and a bone ring, in HU.
    let vol = Array3::from_shape_fn((3, 16, 24), |(z, r, c)| {
        let d = ((r as f32 - 7.5).powi(2) + (c as f32 - 11.5).powi(2)).sqrt();
        match d {
            d if d < 4.0 => 40.0 + 10.0 * z as f32,
            d if d < 6.0 => 700.0,
            _ => -1000.0,
        }
    });
    let aff = [
        [-0.8, 0.0, 0.0, 90.0],
        [0.0, 0.8, 0.0, -120.0],
        [0.0, 0.0, 2.5, -30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    scoreinv::io::nifti::write_nifti(&p, &vol, None, Some(aff)).unwrap();
    let out = tmp.path().join("study");
    let spec = format!("hu:{}", p.display());
    let o = scoreinv(&[
        "reconstruct",
        "ct",
        "--ground-truth",
        &spec,
        "--size",
        "16",
        "--method",
        "fbp",
        "--output-dicom",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("centre-cropped to 16x16"), "{err}");
    let nii = out.join("head_fbp.nii.gz");
    let py = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
        .args([
            "-c",
            "import json, sys, nibabel as nib; i = nib.load(sys.argv[1]); \
             print(json.dumps({'affine': i.affine.tolist(), 'min': float(i.get_fdata().min())}))",
        ])
        .arg(&nii)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let got: Value = serde_json::from_slice(&py.stdout).unwrap();
    // Columns 4..20 are kept: the origin moves 4 columns along x.
    let want = [
        [-0.8, 0.0, 0.0, 90.0 - 4.0 * 0.8],
        [0.0, 0.8, 0.0, -120.0],
        [0.0, 0.0, 2.5, -30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    for (r, w) in want.iter().enumerate() {
        assert!(
            close(&floats(&got["affine"][r]), w, 1e-4),
            "{got} vs {want:?}"
        );
    }
    // HU, not [0, 1]: the air around the head reconstructs far below 0.
    assert!(got["min"].as_f64().unwrap() < -500.0, "{got}");
    // The DICOM slice z=2 sits where the affine puts it (RAS → LPS).
    let obj = scoreinv::io::dicom::open_object(&out.join("dicom/fbp/head_z2.dcm")).unwrap();
    let ipp = obj
        .element(dicom_dictionary_std::tags::IMAGE_POSITION_PATIENT)
        .unwrap()
        .to_multi_float64()
        .unwrap();
    assert!(
        close(&ipp, &[-(90.0 - 3.2), 120.0, -30.0 + 5.0], 1e-3),
        "{ipp:?}"
    );
}

/// The shards of a study with `--output-dicom`, merged, hold the same DICOM files as the
/// unsharded study, byte for byte: one series per method (UIDs derive from the settings, not
/// the folder), instance numbers from the case's index in the whole study.
#[test]
fn dicom_of_merged_shards_equals_the_whole_study() {
    let src = fixtures().join("ct_series");
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, shard: Option<&str>| {
        let out = tmp.path().join(name);
        let mut args = vec![
            "reconstruct",
            "ct",
            "--ground-truth",
            src.to_str().unwrap(),
            "--size",
            "16",
            "--method",
            "fbp",
            "--output-dicom",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        let o = scoreinv(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let whole = run("whole", None);
    let a = run("a", Some("0/2"));
    let b = run("b", Some("1/2"));
    let merged = tmp.path().join("merged");
    let o = scoreinv(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for z in 0..3 {
        let name = format!("dicom/fbp/ct_series_z{z}.dcm");
        let (w, m) = (
            std::fs::read(whole.join(&name)).unwrap(),
            std::fs::read(merged.join(&name)).unwrap(),
        );
        assert!(w == m, "{name} differs");
    }
    // Control: different slices are different files.
    assert_ne!(
        std::fs::read(whole.join("dicom/fbp/ct_series_z0.dcm")).unwrap(),
        std::fs::read(whole.join("dicom/fbp/ct_series_z1.dcm")).unwrap()
    );
}

//! Case specs of `reconstruct --ground-truth`: phantoms, InVesalius slices, image files, errors.
use scoreinv::data::cases::{load_cases, CaseOptions};

fn opts(size: Option<i64>) -> CaseOptions {
    CaseOptions {
        size,
        ..CaseOptions::default()
    }
}

#[test]
fn phantoms_and_slices() {
    let c = load_cases("phantom:ellipses:1000..1003", &opts(Some(32))).unwrap();
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ellipses_1000", "ellipses_1001", "ellipses_1002"]);
    for case in &c {
        assert_eq!(case.truth.size(), [1, 32, 32]);
        let (lo, hi) = (
            case.truth.min().double_value(&[]),
            case.truth.max().double_value(&[]),
        );
        assert!(lo >= 0.0 && hi <= 1.0 && hi > 0.0, "{lo} {hi}");
    }
    let sl = load_cases("phantom:shepp-logan", &opts(None)).unwrap();
    assert_eq!(sl[0].truth.size(), [1, 128, 128]);
    let ct = load_cases("invesalius:z=66..80:4", &opts(Some(64))).unwrap();
    let names: Vec<&str> = ct.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["cranium_z66", "cranium_z70", "cranium_z74", "cranium_z78"]
    );
    assert_eq!(ct[0].truth.size(), [1, 64, 64]);
}

#[test]
fn npy_file_case_keeps_unit_range_and_normalises_others() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.npy");
    let a = ndarray::Array2::<f32>::from_shape_fn((8, 8), |(i, j)| (i * 8 + j) as f32);
    scoreinv::io::npy::write_npy(&p, &a).unwrap();
    let c = load_cases(p.to_str().unwrap(), &opts(None)).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].name, "img");
    // 0..63 is min-max normalised to [0, 1].
    assert!((c[0].truth.max().double_value(&[]) - 1.0).abs() < 1e-6);
    assert!(c[0].truth.min().double_value(&[]).abs() < 1e-6);
}

#[test]
fn bad_specs_are_clear_errors() {
    for (spec, needle) in [
        ("phantom:cubes", "unknown phantom"),
        ("phantom:ellipses:5..5", "empty range"),
        ("phantom:ellipses:1..9:0", "step"),
        ("invesalius:x=3", "invesalius:z="),
        ("invesalius:z=200", "out of range"),
        ("/nonexistent/file.png", "/nonexistent/file.png"),
    ] {
        let e = load_cases(spec, &opts(Some(16)))
            .err()
            .expect(spec)
            .to_string();
        assert!(e.contains(needle), "{spec}: {e}");
    }
}

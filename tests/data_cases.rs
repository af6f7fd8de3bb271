//! Case specs of `reconstruct --ground-truth`: phantoms, InVesalius slices, image files, errors.
use scoreinv::data::cases::{load_cases, load_cases_with_volume, pending_cases, CaseOptions};

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

fn max_abs(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A NIfTI volume as study cases is checked by one streamed pass and its slices are read when
/// loaded: the same cases, names, geometry and values as loading the whole volume, in any
/// order (an earlier slice reopens the file), min–max normalised over the whole volume.
#[test]
fn streamed_nifti_cases_equal_the_loaded_volume() {
    let dir = tempfile::tempdir().unwrap();
    let vol = ndarray::Array3::from_shape_fn((6, 10, 12), |(z, y, x)| {
        (z * 100 + y * 7 + x) as f32 - 50.0
    });
    let p = dir.path().join("scan.nii.gz");
    scoreinv::io::nifti::write_nifti(&p, &vol, Some([2.0, 0.5, 0.5]), None).unwrap();
    for size in [None, Some(8)] {
        let spec = p.to_str().unwrap();
        let (want, want_vol) = load_cases_with_volume(spec, &opts(size)).unwrap();
        let (pending, got_vol) = pending_cases(spec, &opts(size)).unwrap();
        assert_eq!(got_vol, want_vol);
        assert_eq!(pending.len(), 6);
        let mut pending: Vec<_> = pending.into_iter().map(Some).collect();
        // Out of order: 4, 1 (reopens), 2, 5, 0, 3.
        for z in [4usize, 1, 2, 5, 0, 3] {
            let pc = pending[z].take().unwrap();
            assert_eq!(pc.shape, want[z].truth.size());
            let c = pc.load().unwrap();
            assert_eq!(c.name, want[z].name);
            assert_eq!(
                max_abs(&c.truth, &want[z].truth),
                0.0,
                "slice {z}, size {size:?}"
            );
        }
    }
    // Whole-volume normalisation: the global max (last slice) maps to 1, not each slice's.
    let (pending, _) = pending_cases(p.to_str().unwrap(), &opts(None)).unwrap();
    let first = pending.into_iter().next().unwrap().load().unwrap();
    assert!(first.truth.max().double_value(&[]) < 0.2);
}

/// A NaN anywhere in a volume, or a truncated file, is refused when the study is set up (the
/// streamed pass), naming the slice, before any case is loaded.
#[test]
fn streamed_nifti_errors_come_before_the_first_case() {
    let dir = tempfile::tempdir().unwrap();
    let vol = ndarray::Array3::from_elem((5, 8, 8), 0.5f32);
    let good = dir.path().join("good.nii");
    scoreinv::io::nifti::write_nifti(&good, &vol, None, None).unwrap();
    // A NaN written past the writer's finite check: patch the raw f32 bytes of slice 3.
    let mut bytes = std::fs::read(&good).unwrap();
    let offset = bytes.len() - (5 - 3) * 64 * 4 + 17 * 4;
    bytes[offset..offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan = dir.path().join("nan.nii");
    std::fs::write(&nan, &bytes).unwrap();
    let err = pending_cases(nan.to_str().unwrap(), &opts(None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("z=3") && err.to_lowercase().contains("nan"),
        "{err}"
    );
    let cut = dir.path().join("cut.nii");
    let whole = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &whole[..whole.len() - 100]).unwrap();
    let err = pending_cases(cut.to_str().unwrap(), &opts(None))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(
        pending_cases(good.to_str().unwrap(), &opts(None))
            .unwrap()
            .0
            .len(),
        5
    );
}

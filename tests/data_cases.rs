//! Case specs of `reconstruct --ground-truth`: phantoms, InVesalius slices, image files, errors.
use scoreinv::data::cases::{load_cases, load_cases_with_volumes, pending_cases, CaseOptions};

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
        let (want, want_vol) = load_cases_with_volumes(spec, &opts(size)).unwrap();
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

/// The volume a case list came from, as min–max normalised `[D, H, W]` values.
fn unit(a: &ndarray::Array3<f32>) -> ndarray::Array3<f32> {
    let lo = a.iter().cloned().fold(f32::INFINITY, f32::min);
    let hi = a.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    a.mapv(|v| (v - lo) / (hi - lo))
}

/// NPY stacks of gray slices — `[D, H, W]` with D ∉ {1, 3}, `[D, 1, H, W]`, C or Fortran
/// order, f32 or int16 — are volumes: every slice a case `{stem}_z{K}`, min–max normalised over
/// the whole stack, read from a memory map when the study loads it (in any order) and equal to
/// the array itself and to the whole-file reader; `FILE.npy#z=K` is slice K. `[1, H, W]` and
/// `[3, H, W]` stay one gray / RGB picture.
#[test]
fn npy_stacks_are_volumes_read_slice_by_slice() {
    use ndarray::{Array3, Axis, ShapeBuilder};
    let dir = tempfile::tempdir().unwrap();
    let vol = Array3::from_shape_fn((6, 10, 12), |(z, y, x)| (z * 100 + y * 7 + x) as f32 - 50.0);
    let c_order = dir.path().join("stack.npy");
    scoreinv::io::npy::write_npy(&c_order, &vol).unwrap();
    let four_d = dir.path().join("stack4.npy");
    scoreinv::io::npy::write_npy(&four_d, &vol.clone().insert_axis(Axis(1))).unwrap();
    let mut f_vol = Array3::<i16>::zeros((6, 10, 12).f());
    f_vol.assign(&vol.mapv(|v| v as i16));
    let fortran = dir.path().join("stack_f.npy");
    scoreinv::io::npy::write_npy(&fortran, &f_vol).unwrap();
    let want = unit(&vol);
    for (p, stem) in [
        (&c_order, "stack"),
        (&four_d, "stack4"),
        (&fortran, "stack_f"),
    ] {
        let spec = p.to_str().unwrap();
        let (loaded, loaded_vol) = load_cases_with_volumes(spec, &opts(None)).unwrap();
        let (pending, vol_info) = pending_cases(spec, &opts(None)).unwrap();
        assert_eq!(vol_info, loaded_vol);
        let [vol_info] = &vol_info[..] else {
            panic!("a stack is one volume, got {vol_info:?}")
        };
        assert_eq!(vol_info.stem, stem);
        assert_eq!(pending.len(), 6);
        let mut pending: Vec<_> = pending.into_iter().map(Some).collect();
        for z in [4usize, 1, 2, 5, 0, 3] {
            let c = pending[z].take().unwrap().load().unwrap();
            assert_eq!(c.name, format!("{stem}_z{z}"));
            assert_eq!(c.name, loaded[z].name);
            assert_eq!(max_abs(&c.truth, &loaded[z].truth), 0.0, "{stem} z={z}");
            let expect = want.index_axis(Axis(0), z).to_owned().insert_axis(Axis(0));
            let expect = scoreinv::io::array_to_tensor(&expect);
            assert!(max_abs(&c.truth, &expect) < 1e-6, "{stem} z={z}");
        }
        // One slice by suffix: slice 4 of the raw array (values kept, one picture).
        let one = scoreinv::io::read_image(format!("{spec}#z=4")).unwrap();
        assert_eq!(one.data.dim(), (1, 10, 12));
        let raw = vol.index_axis(Axis(0), 4).mapv(|v| v as i16 as f32);
        assert_eq!(one.data.index_axis(Axis(0), 0), raw);
        let e = scoreinv::io::read_image(format!("{spec}#z=6"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        // A range of slices is the list of single-slice specs: same names, same values.
        let ranged = load_cases(&format!("{spec}#z=1..6:2"), &opts(None)).unwrap();
        assert_eq!(ranged.len(), 3);
        for (c, z) in ranged.iter().zip([1, 3, 5]) {
            let single = load_cases(&format!("{spec}#z={z}"), &opts(None)).unwrap();
            assert_eq!(c.name, single[0].name);
            assert_eq!(c.name, format!("{stem}_z_{z}"));
            assert_eq!(max_abs(&c.truth, &single[0].truth), 0.0, "{stem} z={z}");
        }
        let e = load_cases(&format!("{spec}#z=4..8"), &opts(None))
            .err()
            .expect("a bad range is an error")
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = load_cases(&format!("{spec}#z=3..3"), &opts(None))
            .err()
            .expect("a bad range is an error")
            .to_string();
        assert!(e.contains("empty range"), "{e}");
    }
    for (c, n) in [(1usize, 1usize), (3, 1)] {
        let p = dir.path().join(format!("pic{c}.npy"));
        scoreinv::io::npy::write_npy(&p, &Array3::<f32>::from_elem((c, 8, 8), 0.5)).unwrap();
        let (cases, v) = pending_cases(p.to_str().unwrap(), &opts(None)).unwrap();
        assert!(v.is_empty());
        assert_eq!(cases.len(), n);
        assert_eq!(cases[0].shape, [c as i64, 8, 8]);
    }
}

/// A stack with a NaN in slice 2 or a truncated stack is refused at set-up, naming the slice or
/// the truncation; a big-endian stack (not viewable in place) is read whole, same values.
#[test]
fn npy_stack_errors_and_big_endian_fallback() {
    use ndarray::Array3;
    let dir = tempfile::tempdir().unwrap();
    let mut vol = Array3::from_shape_fn((5, 8, 8), |(z, y, x)| (z + y + x) as f32);
    let good = dir.path().join("good.npy");
    scoreinv::io::npy::write_npy(&good, &vol).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    // Big-endian copy: same header with '>f4', every value byte-swapped.
    let header_len = bytes.len() - 5 * 64 * 4;
    let mut be = bytes[..header_len].to_vec();
    let at = be
        .windows(5)
        .position(|w| w == b"'<f4'")
        .expect("f32 header");
    be[at + 1] = b'>';
    for v in vol.iter() {
        be.extend_from_slice(&v.to_be_bytes());
    }
    let be_path = dir.path().join("be.npy");
    std::fs::write(&be_path, &be).unwrap();
    let (a, _) = pending_cases(good.to_str().unwrap(), &opts(None)).unwrap();
    let (b, bv) = pending_cases(be_path.to_str().unwrap(), &opts(None)).unwrap();
    assert_eq!(bv.len(), 1);
    for (x, y) in a.into_iter().zip(b) {
        assert_eq!(
            max_abs(&x.load().unwrap().truth, &y.load().unwrap().truth),
            0.0
        );
    }

    vol[[2, 3, 4]] = f32::NAN;
    let nan = dir.path().join("nan.npy");
    let mut nb = bytes.clone();
    nb[header_len..].copy_from_slice(
        &vol.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    std::fs::write(&nan, &nb).unwrap();
    let err = pending_cases(nan.to_str().unwrap(), &opts(None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("z=2") && err.to_lowercase().contains("nan"),
        "{err}"
    );

    let cut = dir.path().join("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let err = pending_cases(cut.to_str().unwrap(), &opts(None))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("truncated") && err.contains("cut.npy"),
        "{err}"
    );
}

/// A folder of pictures is the list of its pictures in name order (PNG, JPEG, NPY here; other
/// files ignored), each case named by its file, the same through `pending_cases`; a JPEG is read
/// like a PNG of the same pixels; a folder with neither pictures nor DICOM files is an error
/// naming it; JPEG is never written.
#[test]
fn a_folder_of_pictures_is_its_pictures_in_name_order() {
    use ndarray::Array3;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ramp = Array3::from_shape_fn((3, 8, 8), |(c, y, x)| (c * 50 + y * 8 + x) as f32 / 255.0);
    scoreinv::io::png::write_png(
        &d.join("b_photo.png"),
        &ramp,
        scoreinv::io::png::PngBitDepth::Eight,
    )
    .unwrap();
    // The same pixels as a JPEG at quality 100 (lossy: compared within 3/255).
    let raw: Vec<u8> = (0..8 * 8 * 3)
        .map(|i| {
            let (p, c) = (i / 3, i % 3);
            (c * 50 + p) as u8
        })
        .collect();
    let buf = image::RgbImage::from_raw(8, 8, raw).unwrap();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(
        std::fs::File::create(d.join("a_photo.JPG")).unwrap(),
        100,
    );
    enc.encode_image(&buf).unwrap();
    scoreinv::io::npy::write_npy(
        &d.join("c_gray.npy"),
        &Array3::<f32>::from_elem((1, 8, 8), 0.25),
    )
    .unwrap();
    std::fs::write(d.join("README.txt"), "not a picture").unwrap();
    let spec = d.to_str().unwrap();
    let cases = load_cases(spec, &opts(None)).unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a_photo", "b_photo", "c_gray"]);
    assert_eq!(cases[0].truth.size(), [3, 8, 8]);
    assert!(max_abs(&cases[0].truth, &cases[1].truth) <= 3.0 / 255.0);
    assert_eq!(cases[2].truth.size(), [1, 8, 8]);
    let (pending, volume) = pending_cases(spec, &opts(None)).unwrap();
    assert!(volume.is_empty());
    let pnames: Vec<String> = pending.iter().map(|c| c.name.clone()).collect();
    assert_eq!(pnames, names);
    let e = scoreinv::io::write_image(d.join("out.jpg"), &scoreinv::io::Image::chw(ramp.clone()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("writing JPEG is not supported"), "{e}");
    assert!(!d.join("out.jpg").exists());
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("notes.txt"), "x").unwrap();
    let e = load_cases(empty.path().to_str().unwrap(), &opts(None))
        .err()
        .expect("no pictures, no DICOM")
        .to_string();
    assert!(e.contains("no DICOM files"), "{e}");
}

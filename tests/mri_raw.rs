//! Raw MRI k-space: the fastMRI file reader against files written by h5py, the k-space
//! convention against NumPy's, hostile files, and `reconstruct mri --measurement FILE.h5#z=K`
//! with SENSE + ESPIRiT maps against the fixture's ground truth, with controls.
//!
//! Fixtures: `make fixtures` (scripts/fixtures/fastmri_file.py): 3 slices of a brain EPI,
//! 8 coils, 96 × 80 (kx × ky), 27 of 80 ky columns sampled (16 central), k-space scale 3e-4,
//! complex noise σ = 2e-3 (relative to the image's peak 1).
use ndarray::{Array1, Array3, ArrayD};
use num_complex::Complex;
use scoreinv::inverse::tasks::{MriConfig, Task};
use scoreinv::io::{self, fastmri};
use scoreinv::metrics::psnr_tensor;
use scoreinv::operators::espirit::{absorb_image_phase, espirit_maps, EspiritConfig};
use scoreinv::operators::mri::CoilMaps;
use scoreinv::operators::{fft2c, ifft2c, LinearOperator, SamplingMask, SenseMri};
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Kind, Tensor};

const SCALE: f64 = 3e-4;

fn fixture(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fixtures/fastmri")
        .join(name);
    assert!(
        p.exists(),
        "missing fixture {}; run `make fixtures` (scripts/fixtures/fastmri_file.py)",
        p.display()
    );
    p
}

fn with_slice(name: &str, z: usize) -> PathBuf {
    PathBuf::from(format!("{}#z={z}", fixture(name).display()))
}

fn npy_f32(name: &str) -> Tensor {
    io::array_to_tensor(&io::npy::read_npy_f32(&fixture(name)).unwrap()).to_kind(Kind::Double)
}

fn npy_complex(p: &Path) -> Tensor {
    io::complex_array_to_tensor(&io::npy::read_npy_complex(p).unwrap()).to_kind(Kind::ComplexDouble)
}

fn kspace_tensor(k: &Array3<Complex<f32>>) -> Tensor {
    io::complex_array_to_tensor(k).to_kind(Kind::ComplexDouble)
}

/// The truth of slice `z` `[H, W]` in the k-space's scale.
fn truth(z: i64) -> Tensor {
    npy_f32("truth.npy").get(z) * SCALE
}

/// PSNR (dB) of an image in the k-space's scale against the truth of slice `z`, data range 1
/// after removing the scale.
fn psnr(image: &Tensor, z: i64) -> f64 {
    let img = image.to_kind(Kind::Double).reshape([96, 80]) / SCALE;
    psnr_tensor(&(truth(z) / SCALE), &img, 1.0).unwrap()
}

fn scoreinv() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoreinv"));
    c.args(["--device", "cpu", "--threads", "2"]);
    c
}

#[test]
fn reader_reads_fastmri_layout_header_mask_and_attributes() {
    let s = fastmri::read_slice(&with_slice("multicoil.h5", 1)).unwrap();
    assert!(s.multicoil);
    assert_eq!((s.slice, s.slices), (1, 3));
    assert_eq!(s.kspace.dim(), (8, 96, 80));
    assert_eq!(s.name(), "multicoil_z1");
    let mask = io::npy::read_npy_f32(&fixture("mask.npy")).unwrap();
    let mask: Array1<f32> = mask.into_dimensionality().unwrap();
    assert_eq!(s.mask.as_ref().unwrap(), &mask);
    assert_eq!(s.column_mask(), mask);
    let h = s.header.unwrap();
    assert_eq!(h.encoded.matrix, Some([96, 80, 1]));
    assert_eq!(h.recon.fov_mm, Some([240.0, 200.0, 4.5]));
    assert!((s.acceleration.unwrap() - 80.0 / 27.0).abs() < 1e-12);
    assert!((s.max.unwrap() - SCALE).abs() < 1e-12);
    // Without `mask` the mask is the non-zero columns; a single-coil file is one "coil".
    let n = fastmri::read_slice(&with_slice("multicoil_nomask.h5", 1)).unwrap();
    assert!(n.mask.is_none());
    assert_eq!(n.column_mask(), mask);
    assert_eq!(n.kspace, s.kspace);
    let single = fastmri::read_slice(&with_slice("singlecoil.h5", 2)).unwrap();
    assert!(!single.multicoil);
    assert_eq!(single.kspace.dim(), (1, 96, 80));
}

/// fastMRI's k-space convention is ours: our `fft2c` of the fixture's coil images (truth,
/// phase and maps saved beside the file) reproduces the stored k-space up to its noise; an
/// uncentred or inverse FFT does not.
#[test]
fn stored_kspace_follows_our_fft_convention() {
    let z = 2;
    let s = fastmri::read_slice(&with_slice("multicoil.h5", z as usize)).unwrap();
    let k = kspace_tensor(&s.kspace);
    let rho = truth(z);
    let phase = npy_f32("phase.npy").get(z);
    let img = Tensor::polar(&rho, &phase);
    let maps = npy_complex(&fixture("maps.npy"));
    let mask = Tensor::from_slice(s.column_mask().as_slice().unwrap()).to_kind(Kind::Double);
    let ours = fft2c(&(&maps * &img)).unwrap() * &mask;
    let err = |a: &Tensor| {
        ((a - &k).abs().square().sum(Kind::Double).double_value(&[])
            / k.abs().square().sum(Kind::Double).double_value(&[]))
        .sqrt()
    };
    let e = err(&ours);
    // Noise σ = 2e-3 per entry against k-space entries of RMS ≈ 0.3: ~1 %.
    assert!(e < 0.03, "relative error {e:.3e}");
    // Controls: an uncentred FFT, and the inverse transform in place of the forward one.
    let unshifted = (&maps * &img).fft_fft2(None::<&[i64]>, [-2, -1], "ortho") * &mask;
    let inverse = ifft2c(&(&maps * &img)).unwrap() * &mask;
    assert!(err(&unshifted) > 0.5, "{}", err(&unshifted));
    assert!(err(&inverse) > 0.5, "{}", err(&inverse));
    // The zero-filled coil images are fastMRI's ifft2c of the stored k-space.
    let coil_images = ifft2c(&k).unwrap();
    assert_eq!(coil_images.size(), vec![8, 96, 80]);
}

#[test]
fn bad_fastmri_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refuse = |p: &Path, want: &str| {
        let e = fastmri::read_slice(p).unwrap_err().to_string();
        assert!(e.contains(want), "{}: {e}", p.display());
    };
    // No selector on a file of several slices, a slice out of range, a bad selector.
    refuse(&fixture("multicoil.h5"), "#z=K");
    refuse(&with_slice("multicoil.h5", 3), "out of range");
    refuse(
        &PathBuf::from(format!("{}#t=1", fixture("multicoil.h5").display())),
        "#z=K",
    );
    // Not HDF5; missing file.
    let text = d.join("text.h5");
    std::fs::write(&text, "not hdf5").unwrap();
    refuse(&text, "text.h5");
    refuse(&d.join("absent.h5"), "absent.h5");
    let write = |name: &str, f: &dyn Fn(&hdf5::File)| -> PathBuf {
        let p = d.join(name);
        let file = hdf5::File::create(&p).unwrap();
        f(&file);
        p
    };
    let c = |v: f32| Complex::new(v, 0.0);
    // No kspace; kspace of rank 2; NaN; a mask of the wrong length; a non-binary mask.
    let p = write("nokspace.h5", &|f| {
        f.new_dataset_builder()
            .with_data(&ndarray::arr1(&[1.0f32]))
            .create("mask")
            .unwrap();
    });
    refuse(&p, "no dataset 'kspace'");
    let p = write("rank2.h5", &|f| {
        f.new_dataset_builder()
            .with_data(&ndarray::Array2::from_elem((4, 4), c(1.0)))
            .create("kspace")
            .unwrap();
    });
    refuse(&p, "[slices, coils, kx, ky]");
    let p = write("nan.h5", &|f| {
        let mut k = ndarray::Array4::from_elem((1, 2, 4, 4), c(1.0));
        k[[0, 1, 2, 3]] = c(f32::NAN);
        f.new_dataset_builder()
            .with_data(&k)
            .create("kspace")
            .unwrap();
    });
    refuse(&p, "NaN");
    let p = write("mask_len.h5", &|f| {
        let k = ndarray::Array4::from_elem((1, 2, 4, 4), c(1.0));
        f.new_dataset_builder()
            .with_data(&k)
            .create("kspace")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::arr1(&[1.0f32, 0.0]))
            .create("mask")
            .unwrap();
    });
    refuse(&p, "mask has shape [2], expected [4]");
    let p = write("mask_values.h5", &|f| {
        let k = ndarray::Array4::from_elem((1, 2, 4, 4), c(1.0));
        f.new_dataset_builder()
            .with_data(&k)
            .create("kspace")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::arr1(&[1.0f32, 0.5, 1.0, 0.0]))
            .create("mask")
            .unwrap();
    });
    refuse(&p, "0/1");
    // A declared size far over any memory budget (chunked: the file itself stays small).
    let p = write("huge.h5", &|f| {
        f.new_dataset::<Complex<f32>>()
            .chunk((1, 1, 64, 64))
            .shape((2, 1024, 100_000, 100_000))
            .create("kspace")
            .unwrap();
    });
    refuse(
        &PathBuf::from(format!("{}#z=1", p.display())),
        "memory budget",
    );
}

/// Reconstructs slice `z` with `extra` flags; returns the reconstruction of each method.
fn reconstruct(d: &Path, z: usize, methods: &str, extra: &[&str]) -> Vec<(String, Tensor)> {
    let out = d.join(format!(
        "out_z{z}_{}",
        extra.join("_").replace(['/', '.'], "")
    ));
    let file = with_slice("multicoil.h5", z);
    let mut args = vec![
        "reconstruct".to_string(),
        "mri".into(),
        "--measurement".into(),
        file.display().to_string(),
        "--method".into(),
        methods.into(),
        "--out".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    if methods.contains("tv") {
        // 200 iterations give the PSNR of the preset's 3000 to 0.01 dB here, 4× faster.
        args.extend(["--tv-iters".to_string(), "200".into()]);
    }
    let r = scoreinv().args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{args:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    methods
        .split(',')
        .map(|m| {
            let p = out.join(format!("multicoil_z{z}_{m}.npy"));
            let a = io::npy::read_npy_f32(&p)
                .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}", p.display()));
            (m.to_string(), io::array_to_tensor(&a))
        })
        .collect()
}

/// The fastMRI baseline without coil maps: root-sum-of-squares of the zero-filled coil images.
fn rss_zero_filled(z: usize) -> Tensor {
    let s = fastmri::read_slice(&with_slice("multicoil.h5", z)).unwrap();
    ifft2c(&kspace_tensor(&s.kspace))
        .unwrap()
        .abs()
        .square()
        .sum_dim_intlist(Some(&[0i64][..]), false, None)
        .sqrt()
}

#[test]
fn sense_with_espirit_maps_reconstructs_the_fastmri_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let z = 1;
    let rss = psnr(&rss_zero_filled(z), z as i64);
    let esp = reconstruct(d, z, "zero-filled,tv", &[]);
    let sos = reconstruct(d, z, "tv", &["--coil-maps", "sos"]);
    // Control: maps of the wrong coils (the true maps, coil order rotated by one).
    let maps = io::npy::read_npy_complex(&fixture("maps.npy")).unwrap();
    let mut rolled: ArrayD<Complex<f32>> = maps.clone();
    for c in 0..8 {
        rolled
            .index_axis_mut(ndarray::Axis(0), (c + 1) % 8)
            .assign(&maps.index_axis(ndarray::Axis(0), c));
    }
    let wrong = d.join("wrong_maps.npy");
    io::npy::write_npy(&wrong, &rolled).unwrap();
    let bad = reconstruct(d, z, "tv", &["--coil-maps", wrong.to_str().unwrap()]);
    let p_zf = psnr(&esp[0].1, z as i64);
    let p_tv = psnr(&esp[1].1, z as i64);
    let p_sos = psnr(&sos[0].1, z as i64);
    let p_bad = psnr(&bad[0].1, z as i64);
    println!(
        "slice {z}: PSNR rss zero-filled {rss:.2} dB, SENSE+ESPIRiT zero-filled {p_zf:.2}, \
         tv {p_tv:.2}; SENSE+sos tv {p_sos:.2}; wrong maps tv {p_bad:.2}"
    );
    // Measured: rss 27.40, zero-filled 28.38, tv 34.45, sos tv 34.42, wrong maps 13.66 dB.
    assert!(p_tv > 33.0, "tv {p_tv:.2}");
    assert!(p_tv > rss + 5.0, "tv {p_tv:.2} vs rss {rss:.2}");
    assert!(p_tv > p_zf + 4.0, "tv {p_tv:.2} vs zero-filled {p_zf:.2}");
    assert!(p_sos > rss + 5.0, "sos tv {p_sos:.2} vs rss {rss:.2}");
    assert!(p_tv > p_bad + 15.0, "tv {p_tv:.2} vs wrong maps {p_bad:.2}");
}

/// The image phase absorbed into the maps is what lets a real image reproduce the data: the
/// real-image SENSE zero-filled reconstruction with phase-normalised ESPIRiT maps alone (phase
/// relative to coil 0, the image phase left out) is far worse.
#[test]
fn absorbing_the_image_phase_is_needed_for_real_images() {
    let z = 0;
    let s = fastmri::read_slice(&with_slice("multicoil.h5", z)).unwrap();
    let k = io::complex_array_to_tensor(&s.kspace);
    let cfg = EspiritConfig {
        calib_width: 16,
        ..EspiritConfig::default()
    };
    let maps = espirit_maps(&k, &cfg).unwrap();
    let cols = s.column_mask();
    let m2 = ndarray::Array2::from_shape_fn((96, 80), |(_, j)| cols[j]);
    let mask = SamplingMask::from_array(m2, "fixture").unwrap();
    let recon = |maps: &Tensor| {
        let op = SenseMri::new(CoilMaps::from_tensor(maps).unwrap(), mask.clone()).unwrap();
        op.pseudo_inverse(&k.unsqueeze(0)).unwrap()
    };
    let with = psnr(
        &recon(&absorb_image_phase(&maps, &k, 16).unwrap()),
        z as i64,
    );
    let without = psnr(&recon(&maps), z as i64);
    println!(
        "slice {z}: SENSE zero-filled PSNR with phase absorbed {with:.2} dB, without {without:.2}"
    );
    // Measured: 28.61 dB with, 20.06 without.
    assert!(with > without + 6.0, "{with:.2} vs {without:.2}");
}

#[test]
fn mri_settings_for_raw_files_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = with_slice("multicoil.h5", 0);
    let read = |cfg: MriConfig| {
        cfg.read_measurement(&file, Device::Cpu)
            .err()
            .map(|e| e.to_string())
    };
    // The fully sampled centre is 16 columns wide: a larger calibration is refused.
    let e = read(MriConfig {
        calib_width: Some(20),
        ..MriConfig::default()
    })
    .unwrap();
    assert!(e.contains("`calib_width` 20") && e.contains("16×16"), "{e}");
    // A mask file does not apply to a fastMRI file.
    let e = read(MriConfig {
        mask_file: Some(dir.path().join("m.npy")),
        ..MriConfig::default()
    })
    .unwrap();
    assert!(e.contains("`mask_file`"), "{e}");
    // Maps of the wrong shape.
    let small = dir.path().join("maps.npy");
    io::npy::write_npy(
        &small,
        &ArrayD::from_elem(vec![4, 96, 80], Complex::new(0.5f32, 0.0)),
    )
    .unwrap();
    let e = read(MriConfig {
        coil_maps: Some(small),
        ..MriConfig::default()
    })
    .unwrap();
    assert!(e.contains("[8, 96, 80]"), "{e}");
    // The default reads the slice as SENSE with ESPIRiT maps, described as such.
    let m = MriConfig::default()
        .read_measurement(&file, Device::Cpu)
        .unwrap();
    let desc = m.op.describe();
    assert!(
        desc.contains("SENSE, 8 coils") && desc.contains("ESPIRiT") && desc.contains("27 of 80"),
        "{desc}"
    );
    assert_eq!(m.name, "multicoil_z0");
    assert_eq!(m.y.size(), vec![1, 8, 96, 80]);
    assert_eq!(m.op.op().input_shape(), vec![1, 96, 80]);
}

/// A barely trained 16 × 16 NCSN++-tiny model (as tests/inverse_ct_cli.rs).
fn train_model(dir: &Path) {
    use scoreinv::data::phantom::{random_ellipses_tensor, RandomEllipsesConfig};
    use scoreinv::models::model_dir::DataInfo;
    use scoreinv::train::config::preset;
    use scoreinv::train::data::Dataset;
    use scoreinv::train::Trainer;
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let data = random_ellipses_tensor(
        16,
        16,
        &RandomEllipsesConfig::default(),
        0,
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, 16, 16],
        centered: false,
        data_range: None,
        source: "ellipse phantoms (test)".into(),
    };
    let ds = Dataset::new(data, None, info).unwrap();
    let mut cfg = preset("ncsnpp-tiny").unwrap();
    cfg.training.n_iters = 3;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    for _ in 0..3 {
        tr.train_step().unwrap();
    }
    tr.export_model_dir(dir).unwrap();
}

/// A one-slice 16 × 16, 4-coil fastMRI-shaped file written with the hdf5 crate (a phantom
/// with a smooth phase; 8 central ky columns and every other one sampled; bool mask).
fn write_small_file(p: &Path) {
    use scoreinv::data::cases::{load_cases, CaseOptions};
    let opts = CaseOptions {
        size: Some(16),
        ..CaseOptions::default()
    };
    let rho = load_cases("phantom:shepp-logan", &opts).unwrap()[0]
        .truth
        .to_kind(Kind::Double)
        .reshape([16, 16]);
    let u = Tensor::linspace(-1.0, 1.0, 16, (Kind::Double, Device::Cpu));
    let phase = u.unsqueeze(0) * 0.8 + u.unsqueeze(1).square() * 0.5;
    let maps = scoreinv::operators::synthetic_coil_maps(4, 16, 16, 3)
        .unwrap()
        .to_tensor(Kind::ComplexDouble, Device::Cpu)
        .unwrap();
    let cols: Vec<bool> = (0..16)
        .map(|j| (4..12).contains(&j) || j % 2 == 0)
        .collect();
    let m = Tensor::from_slice(
        &cols
            .iter()
            .map(|&b| f64::from(u8::from(b)))
            .collect::<Vec<_>>(),
    );
    let k = fft2c(&(maps * Tensor::polar(&rho, &phase))).unwrap() * m * 1e-3;
    let k = io::tensor_to_complex_array(&k.unsqueeze(0)).unwrap();
    let f = hdf5::File::create(p).unwrap();
    f.new_dataset_builder()
        .with_data(&k)
        .create("kspace")
        .unwrap();
    f.new_dataset_builder()
        .with_data(&Array1::from(cols))
        .create("mask")
        .unwrap();
}

/// Score methods run on a raw file: DPS (SENSE has no decomposition, so the projection method
/// `score` is refused with the reason) beside the baselines.
#[test]
fn score_methods_run_on_a_raw_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("model");
    train_model(&model);
    let file = d.join("small.h5");
    write_small_file(&file);
    let out = d.join("out");
    let run = |methods: &str| {
        scoreinv()
            .args(["reconstruct", "mri", "--measurement"])
            .arg(&file)
            .args(["--model", model.to_str().unwrap(), "--steps", "8"])
            // A 16 × 16 grid with an 8 × 8 centre is too small for ESPIRiT's 6 × 6 kernel to
            // keep any pixel (refused, below); low-resolution maps serve.
            .args(["--coil-maps", "sos"])
            .args(["--method", methods, "--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let r = run("score");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("score"), "{err}");
    let r = scoreinv()
        .args(["reconstruct", "mri", "--measurement"])
        .arg(&file)
        .args(["--method", "zero-filled", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("ESPIRiT kept no pixel"),
        "{err}"
    );
    let r = run("zero-filled,tv,dps");
    assert!(
        r.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    for m in ["zero-filled", "tv", "dps"] {
        let a = io::npy::read_npy_f32(&out.join(format!("small_{m}.npy"))).unwrap();
        assert_eq!(a.shape(), [1, 16, 16], "{m}");
        assert!(a.iter().all(|v| v.is_finite()), "{m}");
        assert!(a.iter().any(|&v| v != 0.0), "{m}");
    }
}

/// A single-coil file: its one "coil map" is the image phase, so the real zero-filled
/// reconstruction matches the magnitude of fastMRI's zero-filled image (within 1 dB) instead
/// of losing the signal in the imaginary part; the real part of the plain inverse FFT (no
/// phase) is the control.
#[test]
fn single_coil_file_reconstructs_its_magnitude() {
    let dir = tempfile::tempdir().unwrap();
    let z = 2;
    let out = dir.path().join("single");
    let file = with_slice("singlecoil.h5", z);
    let r = scoreinv()
        .args(["reconstruct", "mri", "--measurement"])
        .arg(&file)
        .args(["--method", "zero-filled", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let ours = io::npy::read_npy_f32(&out.join("singlecoil_z2_zero-filled.npy")).unwrap();
    let ours = psnr(&io::array_to_tensor(&ours), z as i64);
    let s = fastmri::read_slice(&file).unwrap();
    let image = ifft2c(&kspace_tensor(&s.kspace)).unwrap();
    let magnitude = psnr(&image.abs(), z as i64);
    let real_part = psnr(&image.real(), z as i64);
    println!(
        "single coil slice {z}: zero-filled {ours:.2} dB, |ifft2c| {magnitude:.2}, \
         Re ifft2c {real_part:.2}"
    );
    assert!((ours - magnitude).abs() < 1.0 && ours > 26.0, "{ours:.2}");
    assert!(ours > real_part + 5.0, "{ours:.2} vs {real_part:.2}");
}

/// Other storage types of the same content read the same: complex128 k-space (converted to
/// complex64) and a uint8 or float mask instead of h5py's bool.
#[test]
fn complex128_kspace_and_numeric_masks_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let k64 = ndarray::Array4::from_shape_fn((2, 3, 4, 6), |(s, c, x, y)| {
        Complex::new((s + c) as f64 * 0.5 - x as f64, y as f64 * 0.25)
    });
    let cols = [1u8, 0, 1, 1, 0, 1];
    let p = dir.path().join("c128.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        f.new_dataset_builder()
            .with_data(&k64)
            .create("kspace")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::arr1(&cols))
            .create("mask")
            .unwrap();
    }
    let s = fastmri::read_slice(&PathBuf::from(format!("{}#z=1", p.display()))).unwrap();
    assert_eq!(s.kspace.dim(), (3, 4, 6));
    for ((c, x, y), v) in s.kspace.indexed_iter() {
        let want = k64[[1, c, x, y]];
        assert_eq!((v.re as f64, v.im as f64), (want.re, want.im));
    }
    let want: Array1<f32> = cols.iter().map(|&v| f32::from(v)).collect();
    assert_eq!(s.mask.unwrap(), want);
    assert!(s.header.is_none() && s.acceleration.is_none());
}

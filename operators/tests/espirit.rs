//! ESPIRiT coil maps against sigpy's `EspiritCalib`, with controls that must fail; the
//! low-resolution sum-of-squares maps and the absorption of the image phase into the maps.
//!
//! Fixtures: `make fixtures` (scripts/fixtures/espirit.py): a brain EPI slice, 8 synthetic coils,
//! smooth image phase, 64 × 72 fully sampled k-space in complex128.
use ndarray::{Array2, Array3};
use ndarray_npy::read_npy;
use scoreinv_operators::espirit::{
    absorb_image_phase, espirit_maps, espirit_maps_with_eigenvalues, sos_maps, EspiritConfig,
};
use scoreinv_operators::ifft2c;
use tch::{Kind, Tensor};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fixtures/espirit");

/// ESPIRiT maps must agree with sigpy's to this relative L2 error over their common support.
const TOL: f64 = 1e-6;

fn path(name: &str) -> String {
    format!("{FIXTURES}/{name}.npy")
}

fn fail(p: &str, e: impl std::fmt::Display) -> ! {
    panic!("cannot read fixture {p} ({e}); run `make fixtures` (scripts/fixtures/espirit.py)")
}

fn complex3(name: &str) -> Tensor {
    let part = |s: &str| -> Tensor {
        let p = path(&format!("{name}_{s}"));
        let a: Array3<f64> = read_npy(&p).unwrap_or_else(|e| fail(&p, e));
        let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
        Tensor::from_slice(a.as_standard_layout().as_slice().unwrap()).view(shape.as_slice())
    };
    Tensor::complex(&part("re"), &part("im"))
}

fn real2(name: &str) -> Tensor {
    let p = path(name);
    let a: Array2<f64> = read_npy(&p).unwrap_or_else(|e| fail(&p, e));
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    Tensor::from_slice(a.as_standard_layout().as_slice().unwrap()).view(shape.as_slice())
}

/// `[H, W]` bool: where the maps are not all zero.
fn support(maps: &Tensor) -> Tensor {
    maps.abs()
        .sum_dim_intlist(Some(&[0i64][..]), false, None)
        .gt(0.0)
}

fn fraction(mask: &Tensor) -> f64 {
    mask.to_kind(Kind::Double).mean(None).double_value(&[])
}

/// Relative L2 error `‖a − b‖ / ‖b‖` over the pixels where both maps are non-zero.
fn rel_err_on_support(a: &Tensor, b: &Tensor) -> f64 {
    let both = support(a).logical_and(&support(b)).unsqueeze(0);
    let diff = (a - b)
        .abs()
        .square()
        .masked_select(&both.expand_as(&a.abs()));
    let reference = b.abs().square().masked_select(&both.expand_as(&b.abs()));
    (diff.sum(Kind::Double).double_value(&[]) / reference.sum(Kind::Double).double_value(&[]))
        .sqrt()
}

/// Pixels kept by one set of maps and not by the other, as a fraction of the grid.
fn support_mismatch(a: &Tensor, b: &Tensor) -> f64 {
    fraction(&support(a).logical_xor(&support(b)))
}

/// Maps with their phase made relative to coil 0, as ESPIRiT's are.
fn phase_normalised(maps: &Tensor) -> Tensor {
    let s0 = maps.get(0);
    let unit = &s0 / s0.abs().clamp_min(1e-300);
    maps * unit.conj()
}

#[test]
fn espirit_matches_sigpy_default_settings() {
    let ksp = complex3("ksp");
    let ours = espirit_maps_with_eigenvalues(&ksp, &EspiritConfig::default()).unwrap();
    let sigpy = complex3("sigpy_default");
    let err = rel_err_on_support(&ours.maps, &sigpy);
    let mismatch = support_mismatch(&ours.maps, &sigpy);
    let eig = real2("sigpy_default_eig");
    let eig_err = (&ours.eigenvalues - &eig).abs().max().double_value(&[]);
    println!("default: rel L2 {err:.3e}, support mismatch {mismatch:.4}, max |Δλ| {eig_err:.3e}");
    assert!(err < TOL, "maps differ from sigpy's: {err:.3e}");
    assert!(
        mismatch == 0.0,
        "supports differ on {mismatch:.4} of the grid"
    );
    assert!(eig_err < 1e-8, "eigenvalues differ: {eig_err:.3e}");
    // Sanity: the maps kept about half of the grid (the object and its surroundings).
    let kept = fraction(&support(&sigpy));
    assert!((0.3..0.9).contains(&kept), "{kept}");
}

#[test]
fn espirit_matches_sigpy_other_settings() {
    let ksp = complex3("ksp");
    let cfg = EspiritConfig {
        calib_width: 16,
        kernel_width: 4,
        thresh: 0.05,
        crop: 0.8,
        ..EspiritConfig::default()
    };
    let ours = espirit_maps(&ksp, &cfg).unwrap();
    let sigpy = complex3("sigpy_small");
    let err = rel_err_on_support(&ours, &sigpy);
    let mismatch = support_mismatch(&ours, &sigpy);
    println!("small: rel L2 {err:.3e}, support mismatch {mismatch:.4}");
    assert!(err < TOL, "maps differ from sigpy's: {err:.3e}");
    assert!(
        mismatch == 0.0,
        "supports differ on {mismatch:.4} of the grid"
    );
}

/// Controls: maps that are not sigpy's ESPIRiT maps of this k-space do not meet the tolerance.
#[test]
fn espirit_tolerance_rejects_other_maps() {
    let ksp = complex3("ksp");
    let sigpy = complex3("sigpy_default");
    // Another kernel width.
    let cfg = EspiritConfig {
        kernel_width: 4,
        ..EspiritConfig::default()
    };
    let e = rel_err_on_support(&espirit_maps(&ksp, &cfg).unwrap(), &sigpy);
    println!("kernel width 4: {e:.3e}");
    assert!(e > 100.0 * TOL, "{e:.3e}");
    // Low-resolution sum-of-squares maps (phase made relative to coil 0 as ESPIRiT's).
    for hann in [false, true] {
        let sos = phase_normalised(&sos_maps(&ksp, 24, hann).unwrap());
        let e = rel_err_on_support(&sos, &sigpy);
        println!("sum of squares (hann {hann}): {e:.3e}");
        assert!(e > 1e-2, "{e:.3e}");
    }
    // Maps of another coil set seeing the same image.
    let other = espirit_maps(&complex3("other_ksp"), &EspiritConfig::default()).unwrap();
    let e = rel_err_on_support(&other, &sigpy);
    println!("other coils: {e:.3e}");
    assert!(e > 0.1, "{e:.3e}");
}

/// ESPIRiT recovers the synthetic coils (up to the phase of coil 0) where the object is (the
/// root-sum-of-squares image above 10 % of its peak; outside it the data do not determine the
/// maps).
#[test]
fn espirit_and_sos_maps_approximate_the_true_coils() {
    let ksp = complex3("ksp");
    let rss = ifft2c(&ksp)
        .unwrap()
        .abs()
        .square()
        .sum_dim_intlist(Some(&[0i64][..]), false, None)
        .sqrt();
    let object = rss.gt_tensor(&(rss.max() * 0.1)).unsqueeze(0);
    let truth = phase_normalised(&complex3("true_maps")) * &object;
    let esp = espirit_maps(&ksp, &EspiritConfig::default()).unwrap() * &object;
    let e_esp = rel_err_on_support(&esp, &truth);
    let sos = phase_normalised(&sos_maps(&ksp, 24, true).unwrap()) * &object;
    let e_sos = rel_err_on_support(&sos, &truth);
    println!(
        "vs true coils on the object ({:.3} of the grid): espirit {e_esp:.3e}, sos {e_sos:.3e}",
        fraction(&object)
    );
    assert!(e_esp < 0.02, "{e_esp:.3e}");
    assert!(e_sos < 0.05, "{e_sos:.3e}");
    // Control: coil maps in the wrong order are far off.
    let rolled = esp.roll([1], [0]);
    assert!(rel_err_on_support(&rolled, &truth) > 0.3);
}

/// After [`absorb_image_phase`] the coil combination `Σ conj(S_c) x_c` of the full-resolution
/// coil images is close to real and non-negative on the object; without it, it is not.
#[test]
fn absorbed_phase_makes_the_combined_image_real() {
    let ksp = complex3("ksp");
    let coil_images = ifft2c(&ksp).unwrap();
    let esp = espirit_maps(&ksp, &EspiritConfig::default()).unwrap();
    let combine = |maps: &Tensor| {
        (maps.conj() * &coil_images).sum_dim_intlist(Some(&[0i64][..]), false, None)
    };
    // Share of the combined image's energy in its imaginary or negative real part.
    let off_real = |m: &Tensor| {
        let re = m.real();
        let bad = m.imag().square() + re.clamp_max(0.0).square();
        bad.sum(Kind::Double).double_value(&[])
            / m.abs().square().sum(Kind::Double).double_value(&[])
    };
    let with = off_real(&combine(&absorb_image_phase(&esp, &ksp, 24).unwrap()));
    let without = off_real(&combine(&esp));
    println!("off-real energy: absorbed {with:.3e}, not absorbed {without:.3e}");
    assert!(with < 1e-2, "{with:.3e}");
    assert!(without > 0.1, "{without:.3e}");
}

#[test]
fn bad_settings_name_the_field() {
    let ksp = complex3("ksp");
    let cases = [
        (
            EspiritConfig {
                calib_width: 100,
                ..Default::default()
            },
            "`calib_width` 100",
        ),
        (
            EspiritConfig {
                kernel_width: 30,
                ..Default::default()
            },
            "`kernel_width` 30",
        ),
        (
            EspiritConfig {
                thresh: 1.5,
                ..Default::default()
            },
            "`thresh` 1.5",
        ),
        (
            EspiritConfig {
                max_iter: 0,
                ..Default::default()
            },
            "`max_iter`",
        ),
    ];
    for (cfg, want) in cases {
        let e = espirit_maps(&ksp, &cfg).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    let zero = Tensor::zeros([2, 32, 32], (Kind::ComplexDouble, tch::Device::Cpu));
    let e = espirit_maps(&zero, &EspiritConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("all zero"), "{e}");
    let real = Tensor::zeros([2, 32, 32], (Kind::Double, tch::Device::Cpu));
    assert!(espirit_maps(&real, &EspiritConfig::default()).is_err());
}

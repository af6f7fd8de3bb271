//! MRI Fourier operators: NumPy fixtures, the ndarray reference, adjointness, decomposition.
use ndarray::{Array2, Array4};
use ndarray_npy::read_npy;
use ndrustfft::Complex;
use proptest::prelude::*;
use scoreinv_operators::masks::{self, SamplingMask};
use scoreinv_operators::reference::fft as reference;
use scoreinv_operators::{
    fft2c, ifft2c, synthetic_coil_maps, Decomposed, ImageDomain, LinearOperator, MriFourier,
    OperatorError, SenseMri,
};
use tch::{Device, Kind, Tensor};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fixtures/fft");

fn load(name: &str) -> Array4<f64> {
    let path = format!("{FIXTURES}/{name}.npy");
    read_npy(&path).unwrap_or_else(|e| {
        panic!("cannot read fixture {path} ({e}); run `make fixtures` (scripts/make_fixtures)")
    })
}

fn complex_tensor(re: &Array4<f64>, im: &Array4<f64>) -> Tensor {
    let shape: Vec<i64> = re.shape().iter().map(|&d| d as i64).collect();
    let re = Tensor::from_slice(re.as_slice().unwrap()).view(shape.as_slice());
    let im = Tensor::from_slice(im.as_slice().unwrap()).view(shape.as_slice());
    Tensor::complex(&re, &im)
}

/// max |a − b| / max |b|.
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(b.kind());
    let num = (&a - b).abs().max().to_kind(Kind::Double).double_value(&[]);
    let den = b.abs().max().to_kind(Kind::Double).double_value(&[]);
    num / den
}

/// Real inner product `Re Σ conj(a) b` in f64 (for real tensors the plain sum of products).
fn inner_re(a: &Tensor, b: &Tensor) -> f64 {
    if a.is_complex() || b.is_complex() {
        let a = a.to_kind(Kind::ComplexDouble);
        let b = b.to_kind(Kind::ComplexDouble);
        (a.conj() * b).sum(None).real().double_value(&[])
    } else {
        (a.to_kind(Kind::Double) * b.to_kind(Kind::Double))
            .sum(None)
            .double_value(&[])
    }
}

/// Imaginary part of `Σ conj(a) b` (0 for real tensors).
fn inner_im(a: &Tensor, b: &Tensor) -> f64 {
    if !(a.is_complex() || b.is_complex()) {
        return 0.0;
    }
    let a = a.to_kind(Kind::ComplexDouble);
    let b = b.to_kind(Kind::ComplexDouble);
    (a.conj() * b).sum(None).imag().double_value(&[])
}

fn randn_complex(shape: &[i64], kind: Kind) -> Tensor {
    let real = if kind == Kind::ComplexFloat {
        Kind::Float
    } else {
        Kind::Double
    };
    let re = Tensor::randn(shape, (real, Device::Cpu));
    let im = Tensor::randn(shape, (real, Device::Cpu));
    Tensor::complex(&re, &im)
}

/// Dot-product test `⟨A x, y⟩ = ⟨x, Aᴴ y⟩`; returns the relative error over both parts.
fn dot_test(op: &dyn LinearOperator, b: i64, kind: Kind, complex_input: bool) -> f64 {
    let mut xs = vec![b];
    xs.extend(op.input_shape());
    let mut ys = vec![b];
    ys.extend(op.output_shape());
    let ck = if kind == Kind::Float {
        Kind::ComplexFloat
    } else {
        Kind::ComplexDouble
    };
    let x = if complex_input {
        randn_complex(&xs, ck)
    } else {
        Tensor::randn(xs.as_slice(), (kind, Device::Cpu))
    };
    let y = randn_complex(&ys, ck);
    let ax = op.forward(&x).unwrap();
    let aty = op.adjoint(&y).unwrap();
    assert_eq!(aty.size(), x.size());
    let (l_re, l_im) = (inner_re(&ax, &y), inner_im(&ax, &y));
    let (r_re, r_im) = (inner_re(&x, &aty), inner_im(&x, &aty));
    if complex_input {
        let scale = l_re.abs().max(l_im.abs()).max(1e-30);
        ((l_re - r_re).abs() + (l_im - r_im).abs()) / scale
    } else {
        // Real image domain: the adjoint is w.r.t. the real inner product Re⟨·,·⟩.
        (l_re - r_re).abs() / l_re.abs().max(1e-30)
    }
}

fn all_mask_kinds(h: usize, w: usize, seed: u64) -> Vec<SamplingMask> {
    vec![
        masks::cartesian_random(h, w, 4.0, 0.08, seed).unwrap(),
        masks::cartesian_equispaced(h, w, 4.0, 0.08, seed).unwrap(),
        masks::gaussian_2d(h, w, 4.0, 0.08, 0.25, seed).unwrap(),
        masks::poisson_disc(h, w, 4.0, 0.08, 1.0, seed).unwrap(),
        masks::radial(h, w, 6, seed).unwrap(),
    ]
}

#[test]
fn fft2c_matches_numpy_fixtures() {
    // NumPy computes in complex128; both sides are exact FFTs, so the only difference is
    // floating-point rounding: ≤ 1e-12 relative in f64, ≤ 1e-5 in f32 (f32 eps ≈ 6e-8 times
    // log2(N) butterflies).
    for case in [
        "real_1x1x8x8",
        "real_2x1x7x10",
        "complex_1x2x9x6",
        "complex_2x1x16x12",
    ] {
        let x = complex_tensor(
            &load(&format!("{case}_x_re")),
            &load(&format!("{case}_x_im")),
        );
        let k = complex_tensor(
            &load(&format!("{case}_k_re")),
            &load(&format!("{case}_k_im")),
        );
        let ik = complex_tensor(
            &load(&format!("{case}_ik_re")),
            &load(&format!("{case}_ik_im")),
        );
        let input = if case.starts_with("real") {
            x.real()
        } else {
            x.shallow_clone()
        };
        let e = rel_err(&fft2c(&input).unwrap(), &k);
        assert!(e < 1e-12, "{case}: fft2c f64 rel err {e}");
        let e = rel_err(&ifft2c(&x).unwrap(), &ik);
        assert!(e < 1e-12, "{case}: ifft2c f64 rel err {e}");
        let e = rel_err(
            &fft2c(&input.to_kind(if case.starts_with("real") {
                Kind::Float
            } else {
                Kind::ComplexFloat
            }))
            .unwrap(),
            &k,
        );
        assert!(e < 1e-5, "{case}: fft2c f32 rel err {e}");
        // Round trip.
        let e = rel_err(&ifft2c(&fft2c(&x).unwrap()).unwrap(), &x);
        assert!(e < 1e-12, "{case}: round trip {e}");
    }
}

fn tensor_to_array2(t: &Tensor) -> Array2<Complex<f64>> {
    let size = t.size();
    let (h, w) = (size[0] as usize, size[1] as usize);
    let t = t.to_kind(Kind::ComplexDouble).contiguous();
    let re = Vec::<f64>::try_from(&t.real().contiguous().view([-1])).unwrap();
    let im = Vec::<f64>::try_from(&t.imag().contiguous().view([-1])).unwrap();
    Array2::from_shape_fn((h, w), |(y, x)| Complex::new(re[y * w + x], im[y * w + x]))
}

fn array2_to_tensor(a: &Array2<Complex<f64>>) -> Tensor {
    let (h, w) = a.dim();
    let re: Vec<f64> = a.iter().map(|v| v.re).collect();
    let im: Vec<f64> = a.iter().map(|v| v.im).collect();
    Tensor::complex(
        &Tensor::from_slice(&re).view([h as i64, w as i64]),
        &Tensor::from_slice(&im).view([h as i64, w as i64]),
    )
}

#[test]
fn ndarray_reference_matches_numpy_fixtures() {
    // Independent path (rustfft) against NumPy: same 1e-12 rounding tolerance as above.
    let x = complex_tensor(
        &load("complex_2x1x16x12_x_re"),
        &load("complex_2x1x16x12_x_im"),
    );
    let k = complex_tensor(
        &load("complex_2x1x16x12_k_re"),
        &load("complex_2x1x16x12_k_im"),
    );
    for b in 0..2 {
        let xa = tensor_to_array2(&x.get(b).get(0));
        let ka = array2_to_tensor(&reference::fft2c(&xa));
        let e = rel_err(&ka, &k.get(b).get(0));
        assert!(e < 1e-12, "reference fft2c vs numpy: {e}");
    }
}

#[test]
fn tch_single_coil_matches_ndarray_reference() {
    // tch (f32 and f64) against the ndarray/rustfft reference: 1e-5 relative for f32 (brief's
    // bound; f32 rounding is ~1e-7), 1e-12 for f64.
    tch::manual_seed(3);
    for (h, w) in [(16, 16), (15, 12)] {
        for mask in all_mask_kinds(h, w, 5) {
            let m64 = mask.array().mapv(|v| v as f64);
            let x = Tensor::randn([1, 1, h as i64, w as i64], (Kind::Double, Device::Cpu));
            let y = randn_complex(&[1, 1, h as i64, w as i64], Kind::ComplexDouble);
            let xa = tensor_to_array2(&x.get(0).get(0).to_kind(Kind::ComplexDouble));
            let ya = tensor_to_array2(&y.get(0).get(0));
            let ref_fwd = array2_to_tensor(&reference::single_coil_forward(&xa, &m64));
            let ref_adj = array2_to_tensor(&reference::single_coil_adjoint(&ya, &m64));
            let op = MriFourier::with_domain(mask.clone(), 1, ImageDomain::Complex).unwrap();
            for (kind, tol) in [(Kind::Double, 1e-12), (Kind::Float, 1e-5)] {
                let ck = if kind == Kind::Float {
                    Kind::ComplexFloat
                } else {
                    Kind::ComplexDouble
                };
                let fwd = op.forward(&x.to_kind(kind)).unwrap().get(0).get(0);
                let adj = op.adjoint(&y.to_kind(ck)).unwrap().get(0).get(0);
                assert_eq!(fwd.kind(), ck);
                let e1 = rel_err(&fwd, &ref_fwd);
                let e2 = rel_err(&adj, &ref_adj);
                assert!(
                    e1 < tol && e2 < tol,
                    "{} {kind:?}: fwd {e1} adj {e2}",
                    mask.description()
                );
            }
        }
    }
}

#[test]
fn single_coil_adjoint_for_every_mask_kind_real_and_complex_domains() {
    // f64: rounding only, 1e-10 ≪ the brief's 1e-5; f32: 1e-3 (sums of ~10³ f32 products).
    tch::manual_seed(11);
    for (c, h, w) in [(1, 16, 16), (2, 9, 14), (3, 12, 7)] {
        for mask in all_mask_kinds(h, w, 2) {
            for domain in [ImageDomain::Real, ImageDomain::Complex] {
                let op = MriFourier::with_domain(mask.clone(), c, domain).unwrap();
                for (kind, tol) in [(Kind::Double, 1e-10), (Kind::Float, 1e-3)] {
                    let e = dot_test(&op, 2, kind, domain == ImageDomain::Complex);
                    assert!(
                        e < tol,
                        "{} {domain:?} {kind:?} [{c},{h},{w}]: {e}",
                        mask.description()
                    );
                }
            }
        }
    }
}

#[test]
fn real_domain_adjoint_is_real_part_and_rejects_complex_input() {
    let mask = masks::cartesian_random(8, 8, 4.0, 0.08, 0).unwrap();
    let op = MriFourier::new(mask.clone(), 1).unwrap();
    let y = randn_complex(&[1, 1, 8, 8], Kind::ComplexDouble);
    let adj = op.adjoint(&y).unwrap();
    assert_eq!(adj.kind(), Kind::Double);
    let full = MriFourier::with_domain(mask, 1, ImageDomain::Complex)
        .unwrap()
        .adjoint(&y)
        .unwrap();
    assert!(rel_err(&adj, &full.real()) < 1e-14);
    let err = op.forward(&y).unwrap_err().to_string();
    assert!(err.contains("complex"), "{err}");
}

#[test]
fn decomposition_identities_hold() {
    tch::manual_seed(5);
    for mask in all_mask_kinds(12, 10, 9) {
        let op = MriFourier::new(mask.clone(), 2).unwrap();
        let x = Tensor::randn([3, 2, 12, 10], (Kind::Double, Device::Cpu));
        let z = op.transform(&x).unwrap();
        let y = op.forward(&x).unwrap();
        // Exact: both are the same masked FFT.
        assert!(rel_err(&op.subsample(&z).unwrap(), &y) < 1e-15);
        assert!(rel_err(&op.inverse_transform(&z).unwrap(), &x) < 1e-12);
        assert!(rel_err(&op.embed(&y).unwrap(), &y) < 1e-15);
        // Λ matches the sampling mask and zeroes what it does not sample.
        let lam = op.mask(Device::Cpu);
        assert_eq!(lam.size(), vec![12, 10]);
        let unsampled = (&y * (lam.ones_like() - &lam))
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(unsampled, 0.0);
        // Pseudo-inverse of a fully sampled operator is the exact inverse.
        let full = SamplingMask::from_array(Array2::ones((12, 10)), "full").unwrap();
        let opf = MriFourier::new(full, 2).unwrap();
        let back = opf.pseudo_inverse(&opf.forward(&x).unwrap()).unwrap();
        assert!(rel_err(&back, &x) < 1e-12);
        // Complex domain: A A⁺ = M on measurements, so A A⁺ A = A. (In the real domain
        // Re(Fᴴ M y) is only the zero-filled approximation: M F Re(·) is not a projection
        // unless the mask is point-symmetric about DC.)
        let opc = MriFourier::with_domain(mask.clone(), 2, ImageDomain::Complex).unwrap();
        let yc = opc.forward(&x).unwrap();
        let again = opc.forward(&opc.pseudo_inverse(&yc).unwrap()).unwrap();
        assert!(rel_err(&again, &yc) < 1e-12, "{}", mask.description());
    }
}

#[test]
fn shape_errors_name_expected_and_actual() {
    let mask = masks::cartesian_random(8, 8, 4.0, 0.08, 0).unwrap();
    let op = MriFourier::new(mask, 1).unwrap();
    let x = Tensor::zeros([2, 1, 8, 9], (Kind::Float, Device::Cpu));
    match op.forward(&x) {
        Err(OperatorError::Shape {
            expected, actual, ..
        }) => {
            assert_eq!(expected, "[B, 1, 8, 8]");
            assert_eq!(actual, "[2, 1, 8, 9]");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let y = Tensor::zeros([2, 8, 8], (Kind::ComplexFloat, Device::Cpu));
    let msg = op.adjoint(&y).unwrap_err().to_string();
    assert!(
        msg.contains("[B, 1, 8, 8]") && msg.contains("[2, 8, 8]"),
        "{msg}"
    );
    let xi = Tensor::zeros([1, 1, 8, 8], (Kind::Int64, Device::Cpu));
    assert!(op.forward(&xi).is_err());
}

#[test]
fn coil_maps_are_normalised_smooth_and_seeded() {
    let maps = synthetic_coil_maps(4, 20, 16, 1).unwrap();
    let (c, h, w) = maps.dim();
    assert_eq!((c, h, w), (4, 20, 16));
    for y in 0..h {
        for x in 0..w {
            let s: f64 = (0..c)
                .map(|k| maps.re()[[k, y, x]].powi(2) + maps.im()[[k, y, x]].powi(2))
                .sum();
            assert!((s - 1.0).abs() < 1e-12, "Σ|S|² = {s} at ({y},{x})");
        }
    }
    // Smooth: neighbouring pixels differ by far less than the map's range.
    let mut max_step: f64 = 0.0;
    for k in 0..c {
        for y in 0..h {
            for x in 1..w {
                let d = (maps.re()[[k, y, x]] - maps.re()[[k, y, x - 1]]).abs();
                max_step = max_step.max(d);
            }
        }
    }
    assert!(max_step < 0.25, "max neighbour step {max_step}");
    assert_eq!(maps, synthetic_coil_maps(4, 20, 16, 1).unwrap());
    assert_ne!(maps, synthetic_coil_maps(4, 20, 16, 2).unwrap());
    assert!(synthetic_coil_maps(0, 4, 4, 0).is_err());
}

#[test]
fn sense_adjoint_and_pseudo_inverse() {
    tch::manual_seed(17);
    for (n_coils, h, w) in [(4, 12, 12), (3, 9, 14)] {
        let maps = synthetic_coil_maps(n_coils, h, w, 3).unwrap();
        for mask in all_mask_kinds(h, w, 4) {
            for domain in [ImageDomain::Real, ImageDomain::Complex] {
                let op = SenseMri::with_domain(maps.clone(), mask.clone(), domain).unwrap();
                assert_eq!(op.output_shape(), vec![n_coils as i64, h as i64, w as i64]);
                for (kind, tol) in [(Kind::Double, 1e-10), (Kind::Float, 1e-3)] {
                    let e = dot_test(&op, 2, kind, domain == ImageDomain::Complex);
                    assert!(
                        e < tol,
                        "sense {} {domain:?} {kind:?}: {e}",
                        mask.description()
                    );
                }
            }
        }
        // Fully sampled: Σ|S|² = 1 makes the coil combination the exact inverse.
        let full = SamplingMask::from_array(Array2::ones((h, w)), "full").unwrap();
        let op = SenseMri::new(maps.clone(), full).unwrap();
        let x = Tensor::randn([2, 1, h as i64, w as i64], (Kind::Double, Device::Cpu));
        let back = op.pseudo_inverse(&op.forward(&x).unwrap()).unwrap();
        assert!(rel_err(&back, &x) < 1e-12);
    }
    let maps = synthetic_coil_maps(2, 8, 8, 0).unwrap();
    let mask = masks::cartesian_random(8, 6, 4.0, 0.08, 0).unwrap();
    assert!(SenseMri::new(maps, mask).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn adjoint_holds_for_random_shapes_and_seeds(
        h in 4usize..20, w in 4usize..20, c in 1usize..3, seed in 0u64..1000, kind_ix in 0usize..5
    ) {
        tch::manual_seed(seed as i64);
        let mask = all_mask_kinds(h, w, seed).swap_remove(kind_ix);
        let op = MriFourier::new(mask, c).unwrap();
        let e = dot_test(&op, 1, Kind::Double, false);
        prop_assert!(e < 1e-10, "rel err {}", e);
    }
}

/// Same results on CUDA as on CPU. Needs a GPU: `cargo test -p scoreinv-operators --test mri
/// -- --ignored`.
#[test]
#[ignore = "needs CUDA"]
fn cuda_matches_cpu() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let mask = masks::cartesian_random(32, 32, 4.0, 0.08, 0).unwrap();
    let maps = synthetic_coil_maps(4, 32, 32, 0).unwrap();
    let ops: Vec<Box<dyn LinearOperator>> = vec![
        Box::new(MriFourier::new(mask.clone(), 1).unwrap()),
        Box::new(SenseMri::new(maps, mask).unwrap()),
    ];
    let x = Tensor::randn([2, 1, 32, 32], (Kind::Float, Device::Cpu));
    for op in ops {
        let cpu = op.forward(&x).unwrap();
        let gpu = op.forward(&x.to_device(Device::Cuda(0))).unwrap();
        assert_eq!(gpu.device(), Device::Cuda(0));
        assert!(rel_err(&gpu.to_device(Device::Cpu), &cpu) < 1e-5);
        let adj = op.adjoint(&gpu).unwrap();
        assert!(rel_err(&adj.to_device(Device::Cpu), &op.adjoint(&cpu).unwrap()) < 1e-5);
        let e = dot_test(op.as_ref(), 1, Kind::Double, false);
        assert!(e < 1e-10);
    }
}

//! Blur: adjointness, agreement with a direct (non-FFT) convolution, with scipy.ndimage and with
//! NumPy's FFT, the circular decomposition `T = F`, the Wiener pseudo-inverse, and validation.
//!
//! Fixtures: `make fixtures` (scripts/fixtures/blur.py).
use ndarray::Array2;
use ndarray_npy::read_npy;
use proptest::prelude::*;
use scoreinv_operators::blur::{gaussian_kernel, DEFAULT_EPSILON, GAUSSIAN_TRUNCATE};
use scoreinv_operators::{Blur, Boundary, LinearOperator, OperatorError};
use tch::{Device, Kind, Tensor};

const BOUNDARIES: [Boundary; 2] = [Boundary::Circular, Boundary::Zero];

/// `<workspace>/target/fixtures/blur/<name>`, made by `scripts/fixtures/blur.py`.
fn fixture(name: &str) -> Array2<f64> {
    let path = format!(
        "{}/../target/fixtures/blur/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    read_npy(&path).unwrap_or_else(|e| {
        panic!("cannot read fixture {path}: {e}; run `make fixtures` (scripts/fixtures/blur.py)")
    })
}

/// `[1, 1, H, W]` tensor of `kind` from a 2-D array.
fn tensor4(a: &Array2<f64>, kind: Kind) -> Tensor {
    let (h, w) = a.dim();
    Tensor::from_slice(a.as_standard_layout().as_slice().unwrap())
        .reshape([1, 1, h as i64, w as i64])
        .to_kind(kind)
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.to_kind(Kind::Double).contiguous().reshape([-1])).unwrap()
}

/// `(‖a − b‖ / ‖b‖, max |a − b|)`.
fn errors(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let (a, b) = (to_vec(a), to_vec(b));
    assert_eq!(a.len(), b.len());
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    ((num / den).sqrt(), max)
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    errors(a, b).0
}

/// `|⟨A x, y⟩ − ⟨x, Aᵀ y⟩| / |⟨A x, y⟩|` for random `x`, `y` of the operator's shapes.
fn dot_test(op: &dyn LinearOperator, batch: i64, kind: Kind) -> f64 {
    let mut shape = vec![batch];
    shape.extend(op.input_shape());
    let x = Tensor::randn(shape.as_slice(), (kind, Device::Cpu));
    let y = Tensor::randn(shape.as_slice(), (kind, Device::Cpu));
    let dot = |a: &Tensor, b: &Tensor| {
        (a.to_kind(Kind::Double) * b.to_kind(Kind::Double))
            .sum(Kind::Double)
            .double_value(&[])
    };
    let lhs = dot(&op.forward(&x).unwrap(), &y);
    let rhs = dot(&x, &op.adjoint(&y).unwrap());
    (lhs - rhs).abs() / lhs.abs().max(1e-300)
}

/// Direct convolution without FFTs: `y[i, j] = Σ h[a, b] x[i − a + kh/2, j − b + kw/2]`, with
/// the index wrapped (circular) or the term dropped (zero) outside the image. `x` `[B, C, H, W]`.
fn direct_convolution(x: &Tensor, psf: &Array2<f64>, boundary: Boundary) -> Tensor {
    let s = x.size();
    let (h, w) = (s[2] as isize, s[3] as isize);
    let planes = (s[0] * s[1]) as usize;
    let xs = to_vec(x);
    let k = psf / psf.sum();
    let (kh, kw) = k.dim();
    let (ch, cw) = ((kh / 2) as isize, (kw / 2) as isize);
    let mut out = vec![0f64; xs.len()];
    for p in 0..planes {
        let base = p * (h * w) as usize;
        for i in 0..h {
            for j in 0..w {
                let mut acc = 0.0;
                for ((a, b), &v) in k.indexed_iter() {
                    let (mut r, mut c) = (i - a as isize + ch, j - b as isize + cw);
                    match boundary {
                        Boundary::Circular => {
                            r = r.rem_euclid(h);
                            c = c.rem_euclid(w);
                        }
                        Boundary::Zero => {
                            if r < 0 || c < 0 || r >= h || c >= w {
                                continue;
                            }
                        }
                    }
                    acc += v * xs[base + (r * w + c) as usize];
                }
                out[base + (i * w + j) as usize] = acc;
            }
        }
    }
    Tensor::from_slice(&out).reshape(s.as_slice())
}

fn random_psf(kh: usize, kw: usize, seed: u64) -> Array2<f64> {
    // A small LCG keeps the PSF independent of libtorch's generator.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array2::from_shape_fn((kh, kw), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        0.05 + (state >> 11) as f64 / (1u64 << 53) as f64
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for random image sizes, channels, batches, Gaussian widths and both
    /// boundaries: f64 ≤ 1e-10 (only FFT rounding differs, ≈1e-15), f32 ≤ 1e-4.
    #[test]
    fn adjoint_dot_product(h in 3usize..=40, w in 3usize..=40, channels in 1usize..=3,
                           batch in 1i64..=2, sigma in 0.3f64..4.0, seed in 0i64..1000) {
        for boundary in BOUNDARIES {
            tch::manual_seed(seed);
            let op = Blur::gaussian(sigma, boundary, channels, h, w).unwrap();
            let e64 = dot_test(&op, batch, Kind::Double);
            prop_assert!(e64 <= 1e-10, "f64 {boundary} {h}x{w} sigma={sigma}: {e64}");
            let e32 = dot_test(&op, batch, Kind::Float);
            prop_assert!(e32 <= 1e-4, "f32 {boundary} {h}x{w} sigma={sigma}: {e32}");
        }
    }

    /// The FFT operator equals the direct sum, for asymmetric odd PSFs (also larger than the
    /// image, which wraps more than once with circular boundary), batches and channels; and the
    /// adjoint of a PSF blur passes the dot-product test.
    #[test]
    fn fft_equals_direct_convolution(h in 2usize..=24, w in 2usize..=24, kh2 in 0usize..=6,
                                     kw2 in 0usize..=6, seed in 0u64..1000) {
        let psf = random_psf(2 * kh2 + 1, 2 * kw2 + 1, seed);
        for boundary in BOUNDARIES {
            let op = Blur::from_psf(psf.clone(), boundary, 2, h, w).unwrap();
            tch::manual_seed(seed as i64);
            let x = Tensor::randn([2, 2, h as i64, w as i64], (Kind::Double, Device::Cpu));
            let e = rel(&op.forward(&x).unwrap(), &direct_convolution(&x, &psf, boundary));
            prop_assert!(e <= 1e-12, "{boundary} {h}x{w} psf {:?}: {e}", psf.dim());
            let e = dot_test(&op, 2, Kind::Double);
            prop_assert!(e <= 1e-10, "{boundary} adjoint: {e}");
        }
    }
}

/// `gaussian_kernel` is scipy's (`gaussian_filter` of a delta, truncate = 4): same radius,
/// weights equal to rounding (measured ≈1e-17; asserted 1e-15).
#[test]
fn gaussian_kernel_matches_scipy() {
    for s in [1.5, 3.0] {
        let want = fixture(&format!("gauss_kernel_s{s:.1}.npy"));
        let got = gaussian_kernel(s, GAUSSIAN_TRUNCATE).unwrap();
        assert_eq!(got.dim(), want.dim(), "sigma {s}");
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!("gaussian kernel sigma {s}: max |diff| vs scipy {max:.2e}");
        assert!(max <= 1e-15, "sigma {s}: {max}");
    }
}

/// Gaussian and PSF blurs of a 37×50 image vs `scipy.ndimage.gaussian_filter` / `convolve`
/// with mode 'wrap' (circular) and 'constant' (zero): f64 ≤ 1e-12 relative L2 (measured
/// ≤ 4e-16, max |diff| ≤ 1.1e-15: FFT vs direct summation rounding), f32 ≤ 1e-6 (measured
/// ≤ 1.3e-7).
#[test]
fn blur_matches_scipy_ndimage() {
    let image = fixture("image.npy");
    let (h, w) = image.dim();
    let psf = fixture("psf.npy");
    for (boundary, mode) in [(Boundary::Circular, "wrap"), (Boundary::Zero, "constant")] {
        let mut cases = Vec::new();
        for s in [1.5, 3.0] {
            cases.push((
                format!("gauss_{mode}_s{s:.1}.npy"),
                Blur::gaussian(s, boundary, 1, h, w).unwrap(),
            ));
        }
        cases.push((
            format!("psf_{mode}.npy"),
            Blur::from_psf(psf.clone(), boundary, 1, h, w).unwrap(),
        ));
        for (name, op) in cases {
            let want = tensor4(&fixture(&name), Kind::Double);
            for (kind, tol) in [(Kind::Double, 1e-12), (Kind::Float, 1e-6)] {
                let y = op.forward(&tensor4(&image, kind)).unwrap();
                assert_eq!(y.kind(), kind);
                let (e, max) = errors(&y, &want);
                eprintln!("{name} {kind:?}: rel L2 {e:.2e}, max |diff| {max:.2e} vs scipy");
                assert!(e <= tol, "{name} {kind:?}: {e}");
            }
        }
    }
}

/// Circular PSF blur vs NumPy's FFT: the transfer function (`H[0, 0] = 1`), the blurred image
/// and the Wiener pseudo-inverse with ε = 10⁻³ (f64, ≤ 1e-12 relative; measured 6e-16, 4e-16
/// and 3e-15).
#[test]
fn circular_blur_matches_numpy_fft() {
    let image = fixture("image.npy");
    let (h, w) = image.dim();
    let op = Blur::from_psf(fixture("psf.npy"), Boundary::Circular, 1, h, w).unwrap();
    assert_eq!(op.epsilon(), DEFAULT_EPSILON);
    let hh = op.transfer_function(Kind::Double, Device::Cpu).unwrap();
    assert_eq!(hh.size(), vec![h as i64, w as i64]);
    let re = Tensor::from_slice(fixture("psf_transfer_re.npy").as_slice().unwrap());
    let im = Tensor::from_slice(fixture("psf_transfer_im.npy").as_slice().unwrap());
    let (e, max) = errors(
        &hh.view_as_real().reshape([-1, 2]),
        &Tensor::stack(&[re, im], 1),
    );
    eprintln!("transfer function: rel {e:.2e}, max |diff| {max:.2e} vs numpy");
    assert!(e <= 1e-12);

    let y = op.forward(&tensor4(&image, Kind::Double)).unwrap();
    let (e, max) = errors(&y, &tensor4(&fixture("psf_fft_circular.npy"), Kind::Double));
    eprintln!("circular blur: rel {e:.2e}, max |diff| {max:.2e} vs numpy FFT");
    assert!(e <= 1e-12);
    let x = op.pseudo_inverse(&y).unwrap();
    let (e, max) = errors(
        &x,
        &tensor4(&fixture("psf_wiener_eps1e-3.npy"), Kind::Double),
    );
    eprintln!("Wiener pseudo-inverse: rel {e:.2e}, max |diff| {max:.2e} vs numpy");
    assert!(e <= 1e-12);
}

/// Circular boundary is `Decomposed` with `T = F`: `T⁻¹ T = I`, `subsample ∘ T = A`,
/// `subsample ∘ embed = I` on the range of `A`, `Λ ∈ [0, 1)` is the Wiener gain, and the
/// projection step from `x = 0` with `λ = 1`, `T⁻¹(Λ ⊙ embed(y))`, is the pseudo-inverse.
/// Zero boundary is not decomposed.
#[test]
fn circular_decomposition() {
    let (h, w) = (20usize, 27usize);
    for sigma in [0.6, 2.0] {
        let op = Blur::gaussian(sigma, Boundary::Circular, 2, h, w).unwrap();
        let dec = op.as_decomposed().expect("circular blur is decomposed");
        assert_eq!(dec.name(), "blur");
        assert_eq!(dec.input_shape(), op.input_shape());
        assert_eq!(dec.transformed_shape(), vec![2, h as i64, w as i64]);
        tch::manual_seed(5);
        let x = Tensor::rand([3, 2, h as i64, w as i64], (Kind::Double, Device::Cpu));
        let z = dec.transform(&x).unwrap();
        assert_eq!(z.kind(), Kind::ComplexDouble);
        assert!(rel(&dec.inverse_transform(&z).unwrap(), &x) <= 1e-14);
        let y = op.forward(&x).unwrap();
        assert!(rel(&dec.subsample(&z).unwrap(), &y) <= 1e-14);
        assert!(rel(&dec.forward(&x).unwrap(), &y) == 0.0);
        // y = A x is in the range: embed recovers the spectrum of x wherever |Ĥ| is above
        // the floor; subsample(embed(y)) = y up to rounding amplified by 1 / min |Ĥ|.
        let back = dec.subsample(&dec.embed(&y).unwrap()).unwrap();
        let e = rel(&back, &y);
        eprintln!("sigma {sigma}: subsample(embed(y)) vs y: {e:.2e}");
        assert!(e <= 1e-12, "sigma {sigma}: subsample(embed(y)) vs y: {e}");

        let lam = dec.mask(Device::Cpu);
        assert_eq!(lam.kind(), Kind::Float);
        assert_eq!(lam.size(), vec![h as i64, w as i64]);
        let (lo, hi) = (lam.min().double_value(&[]), lam.max().double_value(&[]));
        assert!((0.0..1.0).contains(&lo) && hi < 1.0, "{lo} {hi}");
        let hh = op.transfer_function(Kind::Double, Device::Cpu).unwrap();
        let p = hh.abs().square();
        let gain = &p / (&p + DEFAULT_EPSILON);
        assert!(rel(&lam, &gain) <= 2e-7);

        let step = dec
            .inverse_transform(&(lam.to_kind(Kind::Double) * dec.embed(&y).unwrap()))
            .unwrap();
        let pinv = op.pseudo_inverse(&y).unwrap();
        let e = rel(&step, &pinv);
        assert!(
            e <= 1e-6,
            "sigma {sigma}: projection step vs pseudo-inverse: {e}"
        );
    }
    let zero = Blur::gaussian(1.0, Boundary::Zero, 1, h, w).unwrap();
    assert!(zero.as_decomposed().is_none());
}

/// The pseudo-inverse is Tikhonov's: `(AᵀA + ε I) A⁺ y = Aᵀ y` (circular boundary, exact);
/// with ε = 0 and a kernel whose transfer function has no zero it is `A⁻¹`.
#[test]
fn pseudo_inverse_is_tikhonov() {
    let (h, w) = (16usize, 13usize);
    tch::manual_seed(9);
    let y = Tensor::randn([2, 1, h as i64, w as i64], (Kind::Double, Device::Cpu));
    for eps in [1e-1, 1e-3] {
        let op = Blur::gaussian(1.2, Boundary::Circular, 1, h, w)
            .unwrap()
            .with_epsilon(eps)
            .unwrap();
        assert_eq!(op.epsilon(), eps);
        let x = op.pseudo_inverse(&y).unwrap();
        let lhs = op.adjoint(&op.forward(&x).unwrap()).unwrap() + &x * eps;
        let e = rel(&lhs, &op.adjoint(&y).unwrap());
        assert!(e <= 1e-12, "eps {eps}: {e}");
    }
    // A narrow Gaussian: min |Ĥ| ≈ 0.6, well conditioned.
    let op = Blur::gaussian(0.5, Boundary::Circular, 1, h, w)
        .unwrap()
        .with_epsilon(0.0)
        .unwrap();
    let x = Tensor::randn([2, 1, h as i64, w as i64], (Kind::Double, Device::Cpu));
    let e = rel(&op.pseudo_inverse(&op.forward(&x).unwrap()).unwrap(), &x);
    assert!(e <= 1e-13, "eps 0: A⁺ A x vs x: {e}");
}

/// Zero boundary: the Wiener filter on the padded grid, cropped — exact on images whose blur
/// stays inside the frame (zero near the border), an approximation otherwise.
#[test]
fn zero_boundary_pseudo_inverse_inside_the_frame() {
    let (h, w) = (24usize, 24usize);
    // σ = 0.7 (radius 3): min |Ĥ|² ≈ 6e-5 on the padded grid, far above ε, so the
    // Tikhonov bias (≈ ε / |Ĥ|²) and the rounding amplification (≈ 1e-16 / |Ĥ|) are small.
    let op = Blur::gaussian(0.7, Boundary::Zero, 1, h, w)
        .unwrap()
        .with_epsilon(1e-12)
        .unwrap();
    let x = Tensor::zeros([1, 1, h as i64, w as i64], (Kind::Double, Device::Cpu));
    tch::manual_seed(2);
    // Support [8, 16)² with the radius-3 blur stays ≥ 5 pixels inside the frame.
    x.narrow(2, 8, 8)
        .narrow(3, 8, 8)
        .copy_(&Tensor::rand([1, 1, 8, 8], (Kind::Double, Device::Cpu)));
    let rec = op.pseudo_inverse(&op.forward(&x).unwrap()).unwrap();
    let e = rel(&rec, &x);
    eprintln!("zero boundary, blur inside the frame: A⁺ A x vs x {e:.2e}");
    assert!(e <= 1e-6, "{e}");
}

/// Shapes and kinds: f32 in, f32 out; wrong shapes, complex or integer images, bad kernels and
/// bad parameters are refused with messages that say what is wrong.
#[test]
fn validation() {
    let op = Blur::gaussian(1.0, Boundary::Zero, 3, 8, 9).unwrap();
    assert_eq!(op.input_shape(), vec![3, 8, 9]);
    assert_eq!(op.output_shape(), vec![3, 8, 9]);
    assert_eq!(op.kernel().dim(), (9, 9));
    assert!((op.kernel().sum() - 1.0).abs() < 1e-15);
    let x = Tensor::rand([2, 3, 8, 9], (Kind::Float, Device::Cpu));
    assert_eq!(op.forward(&x).unwrap().kind(), Kind::Float);
    let empty = op
        .forward(&Tensor::zeros([0, 3, 8, 9], (Kind::Float, Device::Cpu)))
        .unwrap();
    assert_eq!(empty.size(), vec![0, 3, 8, 9]);

    let msg = |r: Result<Tensor, OperatorError>| r.unwrap_err().to_string();
    let m = msg(op.forward(&Tensor::rand([2, 3, 9, 8], (Kind::Float, Device::Cpu))));
    assert!(
        m.contains("[B, 3, 8, 9]") && m.contains("[2, 3, 9, 8]"),
        "{m}"
    );
    let m = msg(op.forward(&x.to_kind(Kind::ComplexFloat)));
    assert!(m.contains("real f32 or f64"), "{m}");
    let m = msg(op.adjoint(&x.to_kind(Kind::Int64)));
    assert!(m.contains("real f32 or f64"), "{m}");

    let err = |r: Result<Blur, OperatorError>| r.unwrap_err().to_string();
    let m = err(Blur::from_psf(
        Array2::ones((4, 5)),
        Boundary::Circular,
        1,
        8,
        8,
    ));
    assert!(m.contains("odd"), "{m}");
    let mut nan = Array2::ones((3, 3));
    nan[[1, 1]] = f64::NAN;
    assert!(err(Blur::from_psf(nan, Boundary::Circular, 1, 8, 8)).contains("NaN"));
    let m = err(Blur::from_psf(
        Array2::zeros((3, 3)),
        Boundary::Circular,
        1,
        8,
        8,
    ));
    assert!(m.contains("positive sum"), "{m}");
    for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let m = err(Blur::gaussian(s, Boundary::Circular, 1, 8, 8));
        assert!(m.contains("sigma"), "{s}: {m}");
    }
    assert!(err(Blur::gaussian(1.0, Boundary::Circular, 0, 8, 8)).contains("positive"));
    assert!(err(Blur::gaussian(1.0, Boundary::Circular, 1, 0, 8)).contains("positive"));
    let m = err(Blur::gaussian(1.0, Boundary::Circular, 1, 8, 8)
        .unwrap()
        .with_epsilon(-1e-3));
    assert!(m.contains("epsilon"), "{m}");
    assert!(gaussian_kernel(1.0, 0.0).is_err());
}

#[test]
fn boundary_names() {
    for b in BOUNDARIES {
        assert_eq!(b.to_string().parse::<Boundary>().unwrap(), b);
    }
    assert_eq!("wrap".parse::<Boundary>().unwrap(), Boundary::Circular);
    assert_eq!("constant".parse::<Boundary>().unwrap(), Boundary::Zero);
    let m = "reflect".parse::<Boundary>().unwrap_err().to_string();
    assert!(m.contains("circular or zero"), "{m}");
    assert_eq!(Boundary::default(), Boundary::Circular);
}

/// CUDA equals CPU (forward, adjoint, pseudo-inverse, transform, embed; f32 and f64). Needs a
/// GPU: `cargo test -p scoreinv-operators --test blur -- --ignored cuda`.
#[test]
#[ignore = "needs CUDA"]
fn cuda_matches_cpu() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let gpu = Device::Cuda(0);
    for kind in [Kind::Float, Kind::Double] {
        let tol = if kind == Kind::Float { 1e-6 } else { 1e-13 };
        for boundary in BOUNDARIES {
            let op = Blur::gaussian(1.7, boundary, 2, 33, 40).unwrap();
            tch::manual_seed(4);
            let x = Tensor::rand([3, 2, 33, 40], (kind, Device::Cpu));
            let xg = x.to_device(gpu);
            let cpu = |t: Tensor| t.to_device(Device::Cpu);
            let yg = op.forward(&xg).unwrap();
            assert_eq!(yg.device(), gpu);
            let y = op.forward(&x).unwrap();
            assert!(rel(&cpu(yg.shallow_clone()), &y) <= tol);
            assert!(rel(&cpu(op.adjoint(&yg).unwrap()), &op.adjoint(&y).unwrap()) <= tol);
            let e = rel(
                &cpu(op.pseudo_inverse(&yg).unwrap()),
                &op.pseudo_inverse(&y).unwrap(),
            );
            assert!(e <= tol, "{kind:?} {boundary} pseudo-inverse: {e}");
            if let Some(dec) = op.as_decomposed() {
                let e = rel(
                    &cpu(dec.transform(&xg).unwrap()).view_as_real(),
                    &dec.transform(&x).unwrap().view_as_real(),
                );
                assert!(e <= tol, "{kind:?} transform: {e}");
                let e = rel(
                    &cpu(dec.embed(&yg).unwrap()).view_as_real(),
                    &dec.embed(&y).unwrap().view_as_real(),
                );
                assert!(e <= 1e3 * tol, "{kind:?} embed: {e}");
                assert_eq!(dec.mask(gpu).device(), gpu);
            }
        }
    }
}

//! Parallel-beam Radon transform: adjointness, agreement with scikit-image `radon`, agreement
//! of the two backends, the sparse-view decomposition and input validation.
//!
//! Fixtures: `make fixtures` (scripts/fixtures/radon.py).
mod radon_common;

use ndarray::Array3;
use proptest::prelude::*;
use radon_common::*;
use scoreinv_operators::radon::{full_view_angles, sparse_view_indices};
use scoreinv_operators::reference::radon::{self as reference, ParallelGeometry};
use scoreinv_operators::{
    Decomposed, LinearOperator, OperatorError, ParallelBeamRadon, RadonBackend,
};
use tch::{Device, Kind, Tensor};

const BACKENDS: [RadonBackend; 3] = [
    RadonBackend::Reference,
    RadonBackend::TensorOps,
    RadonBackend::Sparse,
];

fn op(n: usize, angles: Vec<f64>, kind: Kind, backend: RadonBackend) -> ParallelBeamRadon {
    ParallelBeamRadon::new(n, angles, kind, Device::Cpu)
        .unwrap()
        .with_backend(backend)
        .unwrap()
}

fn dot_test(op: &ParallelBeamRadon, batch: i64, seed: i64) -> f64 {
    tch::manual_seed(seed);
    let mut xs = vec![batch];
    xs.extend(op.input_shape());
    let mut ys = vec![batch];
    ys.extend(op.output_shape());
    let x = Tensor::randn(xs.as_slice(), (op.kind(), Device::Cpu));
    let y = Tensor::randn(ys.as_slice(), (op.kind(), Device::Cpu));
    let ax = op.forward(&x).unwrap();
    let aty = op.adjoint(&y).unwrap();
    dot_rel_err(&ax, &y, &x, &aty)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    /// ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for random sizes and angle sets, both backends, f64 and f32.
    /// The adjoint uses the forward's exact bilinear weights, so in f64 only summation order
    /// differs (≈1e-15); 1e-10 leaves margin. f32 sums of ~N² terms: 1e-4.
    #[test]
    fn adjoint_dot_product(n in 16usize..=40, angles in prop::collection::vec(0.0f64..180.0, 1..12),
                           batch in 1i64..=2, seed in 0i64..1000) {
        for backend in BACKENDS {
            let e64 = dot_test(&op(n, angles.clone(), Kind::Double, backend), batch, seed);
            prop_assert!(e64 <= 1e-10, "f64 {backend:?} n={n}: rel err {e64}");
            let e32 = dot_test(&op(n, angles.clone(), Kind::Float, backend), batch, seed);
            prop_assert!(e32 <= 1e-4, "f32 {backend:?} n={n}: rel err {e32}");
        }
    }

    /// Sparse view: the measured operator and the full-view transform are both adjoint pairs.
    #[test]
    fn sparse_view_adjoint(n in 16usize..=32, n_full in 8usize..=40, frac in 0.1f64..1.0, seed in 0i64..1000) {
        let n_views = ((n_full as f64 * frac).ceil() as usize).clamp(1, n_full);
        for backend in BACKENDS {
            let o = ParallelBeamRadon::sparse_view(n, n_views, n_full, Kind::Double, Device::Cpu)
                .unwrap().with_backend(backend).unwrap();
            let e = dot_test(&o, 2, seed);
            prop_assert!(e <= 1e-10, "{backend:?}: rel err {e}");
            tch::manual_seed(seed + 1);
            let x = Tensor::randn([1, 1, n as i64, n as i64], (Kind::Double, Device::Cpu));
            let z = Tensor::randn([1, 1, n as i64, n_full as i64], (Kind::Double, Device::Cpu));
            let e = dot_rel_err(&o.transform(&x).unwrap(), &z, &x, &o.transform_adjoint(&z).unwrap());
            prop_assert!(e <= 1e-10, "{backend:?} full view: rel err {e}");
        }
    }
}

/// Radon of the 256² Shepp–Logan phantom at 180 angles vs scikit-image `radon(circle=True)`.
/// Same discretisation (bilinear rotation about N/2, column sums), so the difference is
/// floating-point rounding of the sample coordinates (measured 1.4e-15): asserted ≤ 1e-12
/// (far tighter than the 2% a different discretisation would need). f32: ≤ 1e-5 (measured
/// 1e-6, single-precision sums of 256 samples).
#[test]
fn radon_matches_skimage_shepp_logan() {
    let phantom = fixture2("phantom_256.npy");
    let theta = fixture1("theta_180.npy");
    let sino = fixture2("sino_phantom_256.npy");
    for (kind, tol) in [(Kind::Double, 1e-12), (Kind::Float, 1e-5)] {
        let o = ParallelBeamRadon::new(256, theta.clone(), kind, Device::Cpu).unwrap();
        let y = o.forward(&tensor4(&phantom, kind)).unwrap();
        assert_eq!(y.size(), vec![1, 1, 256, 180]);
        let err = rel_l2(&array2(&y), &sino);
        eprintln!("shepp-logan 256/180 {kind:?}: rel L2 vs skimage radon {err:.3e}");
        assert!(err <= tol, "{kind:?}: relative L2 error vs skimage {err}");
    }
}

/// Random 64² images at 45 random angles and at 180 angles vs scikit-image, both backends
/// (measured 7e-16; asserted 1e-12).
#[test]
fn radon_matches_skimage_random_images() {
    for (i, theta_file) in [(0, "theta_45.npy"), (1, "theta_180.npy")] {
        let img = fixture2(&format!("random_{i}_64.npy"));
        let sino = fixture2(&format!("sino_random_{i}_64.npy"));
        let theta = fixture1(theta_file);
        for backend in BACKENDS {
            let o = op(64, theta.clone(), Kind::Double, backend);
            let y = o.forward(&tensor4(&img, Kind::Double)).unwrap();
            let err = rel_l2(&array2(&y), &sino);
            eprintln!("random image {i} {backend:?}: rel L2 vs skimage radon {err:.3e}");
            assert!(err <= 1e-12, "image {i} {backend:?}: rel L2 error {err}");
        }
    }
}

/// The tensor backends (tables + index_select/index_add; sparse CSR matrices + SpMM) and the
/// ndarray reference agree on forward and adjoint (f64, same discretisation: 1e-12 relative),
/// including batches and several channels: 15 images exercise the reference kernels' blocks
/// of 8, 4 and 1.
#[test]
fn tensor_backends_match_reference() {
    for backend in [RadonBackend::TensorOps, RadonBackend::Sparse] {
        tensor_backend_matches_reference(backend);
    }
}

fn tensor_backend_matches_reference(backend: RadonBackend) {
    let angles = vec![0.0, 13.7, 45.0, 90.0, 91.3, 135.0, 179.9];
    let n = 33;
    let geom = ParallelGeometry::new(n, angles.clone()).unwrap();
    let ops = op(n, angles.clone(), Kind::Double, backend)
        .with_channels(3)
        .unwrap();
    tch::manual_seed(7);
    let x = Tensor::randn([5, 3, n as i64, n as i64], (Kind::Double, Device::Cpu));
    let y = ops.forward(&x).unwrap();
    assert_eq!(y.size(), vec![5, 3, n as i64, 7]);
    let xa: Array3<f64> = array3(&x.reshape([15, n as i64, n as i64]));
    let yr = reference::forward(&geom, xa.view()).unwrap();
    let yr = Tensor::from_slice(yr.as_slice().unwrap()).reshape([5, 3, n as i64, 7]);
    let e = rel_l2_t(&y, &yr);
    assert!(e <= 1e-12, "{backend:?} forward: {e}");

    let s = Tensor::randn([5, 3, n as i64, 7], (Kind::Double, Device::Cpu));
    let xb = ops.adjoint(&s).unwrap();
    let sa = array3(&s.reshape([15, n as i64, 7]));
    let xr = reference::adjoint(&geom, sa.view()).unwrap();
    let xr = Tensor::from_slice(xr.as_slice().unwrap()).reshape([5, 3, n as i64, n as i64]);
    let e = rel_l2_t(&xb, &xr);
    assert!(e <= 1e-12, "{backend:?} adjoint: {e}");
}

/// f32 and f64 operators agree to single precision.
#[test]
fn f32_matches_f64() {
    tch::manual_seed(3);
    let x = Tensor::rand([2, 1, 40, 40], (Kind::Double, Device::Cpu));
    for backend in BACKENDS {
        let o64 = ParallelBeamRadon::full_view(40, 30, Kind::Double, Device::Cpu)
            .unwrap()
            .with_backend(backend)
            .unwrap();
        let o32 = ParallelBeamRadon::full_view(40, 30, Kind::Float, Device::Cpu)
            .unwrap()
            .with_backend(backend)
            .unwrap();
        let e = rel_l2_t(
            &o32.forward(&x.to_kind(Kind::Float)).unwrap(),
            &o64.forward(&x).unwrap(),
        );
        assert!(e <= 1e-6, "{backend:?}: {e}");
    }
}

/// Analytic truth: a centred disc of radius ρ has line integrals 2·sqrt(ρ² - s²) at every angle.
/// Pixelisation of the disc edge limits agreement; 2% relative L2 at N = 128, ρ = 40.
#[test]
fn disc_projection_is_chord_length() {
    let n = 128usize;
    let c = (n / 2) as f64;
    let rho = 40.0;
    // Supersampled disc indicator (4×4 per pixel) to reduce edge aliasing.
    let mut img = ndarray::Array2::<f64>::zeros((n, n));
    for r in 0..n {
        for col in 0..n {
            let mut hits = 0;
            for a in 0..4 {
                for b in 0..4 {
                    let y = r as f64 - 0.375 + 0.25 * a as f64 - c;
                    let x = col as f64 - 0.375 + 0.25 * b as f64 - c;
                    if x * x + y * y <= rho * rho {
                        hits += 1;
                    }
                }
            }
            img[[r, col]] = hits as f64 / 16.0;
        }
    }
    let o = ParallelBeamRadon::full_view(n, 12, Kind::Double, Device::Cpu).unwrap();
    let y = array2(&o.forward(&tensor4(&img, Kind::Double)).unwrap());
    let mut truth = ndarray::Array2::<f64>::zeros((n, 12));
    for k in 0..n {
        let s = k as f64 - c;
        let chord = if s.abs() < rho {
            2.0 * (rho * rho - s * s).sqrt()
        } else {
            0.0
        };
        for a in 0..12 {
            truth[[k, a]] = chord;
        }
    }
    let e = rel_l2(&y, &truth);
    eprintln!("disc chord lengths: rel L2 {e:.3e}");
    assert!(e <= 0.02, "rel L2 vs chord lengths: {e}");
}

/// Decomposition of sparse view CT: A = P(Λ) T, embed = P(Λ)ᵀ, mask selects the kept angles.
#[test]
fn sparse_view_decomposition() {
    let kept = sparse_view_indices(23, 180).unwrap();
    assert_eq!(kept.len(), 23);
    assert_eq!(kept[0], 0);
    assert_eq!(kept[22], 179);
    // NumPy: np.round(np.linspace(0, 179, 23)).astype(int)
    assert_eq!(
        kept,
        [
            0, 8, 16, 24, 33, 41, 49, 57, 65, 73, 81, 90, 98, 106, 114, 122, 130, 138, 146, 155,
            163, 171, 179
        ]
    );
    for backend in BACKENDS {
        let o = ParallelBeamRadon::sparse_view(32, 7, 30, Kind::Double, Device::Cpu)
            .unwrap()
            .with_backend(backend)
            .unwrap();
        assert_eq!(o.output_shape(), vec![1, 32, 7]);
        assert_eq!(o.transformed_shape(), vec![1, 32, 30]);
        let full = full_view_angles(30);
        for (a, &i) in o.angles_deg().iter().zip(o.kept_indices()) {
            assert_eq!(*a, full[i]);
        }
        tch::manual_seed(11);
        let x = Tensor::randn([2, 1, 32, 32], (Kind::Double, Device::Cpu));
        let z = o.transform(&x).unwrap();
        let d = (o.subsample(&z).unwrap() - o.forward(&x).unwrap())
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            d <= 1e-12,
            "{backend:?}: subsample(transform(x)) - forward(x) = {d}"
        );
        let mask = o.mask(Device::Cpu);
        assert_eq!(mask.size(), vec![1, 1, 1, 30]);
        assert_eq!(mask.sum(Kind::Double).double_value(&[]), 7.0);
        let zz = o.embed(&o.subsample(&z).unwrap()).unwrap();
        let d = (zz - &z * &mask).abs().max().double_value(&[]);
        assert_eq!(d, 0.0, "embed(subsample(z)) must equal mask * z");
    }
}

/// Shape errors name the operator, the expected and the actual shape.
#[test]
fn shape_errors_name_expected_and_actual() {
    let o = ParallelBeamRadon::full_view(16, 10, Kind::Float, Device::Cpu).unwrap();
    let bad = Tensor::zeros([2, 1, 16, 15], (Kind::Float, Device::Cpu));
    match o.forward(&bad) {
        Err(e @ OperatorError::Shape { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("[B, 1, 16, 16]"), "{msg}");
            assert!(msg.contains("[2, 1, 16, 15]"), "{msg}");
            assert!(msg.contains("radon"), "{msg}");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let bad = Tensor::zeros([1, 1, 16, 11], (Kind::Float, Device::Cpu));
    let msg = o.adjoint(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("[B, 1, 16, 10]") && msg.contains("[1, 1, 16, 11]"),
        "{msg}"
    );
    assert!(o.pseudo_inverse(&bad).is_err());
    let wrong_kind = Tensor::zeros([1, 1, 16, 16], (Kind::Double, Device::Cpu));
    let msg = o.forward(&wrong_kind).unwrap_err().to_string();
    assert!(msg.contains("Double") && msg.contains("Float"), "{msg}");
    let sparse = ParallelBeamRadon::sparse_view(16, 3, 10, Kind::Float, Device::Cpu).unwrap();
    assert!(sparse
        .subsample(&Tensor::zeros([1, 1, 16, 3], (Kind::Float, Device::Cpu)))
        .is_err());
    assert!(sparse
        .embed(&Tensor::zeros([1, 1, 16, 10], (Kind::Float, Device::Cpu)))
        .is_err());
}

/// Invalid geometry parameters are refused with OperatorError::Invalid.
#[test]
fn invalid_parameters() {
    let cpu = Device::Cpu;
    let invalid = |r: Result<ParallelBeamRadon, OperatorError>, needle: &str| match r {
        Err(OperatorError::Invalid(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected Invalid containing {needle:?}, got {other:?}"),
    };
    invalid(
        ParallelBeamRadon::new(1, vec![0.0], Kind::Float, cpu),
        "at least 2",
    );
    invalid(
        ParallelBeamRadon::new(16, vec![], Kind::Float, cpu),
        "angle",
    );
    invalid(
        ParallelBeamRadon::new(16, vec![0.0, f64::NAN], Kind::Float, cpu),
        "finite",
    );
    invalid(
        ParallelBeamRadon::new(16, vec![0.0, f64::INFINITY], Kind::Float, cpu),
        "finite",
    );
    invalid(
        ParallelBeamRadon::new(16, vec![0.0], Kind::Int64, cpu),
        "kind",
    );
    invalid(
        ParallelBeamRadon::full_view(16, 0, Kind::Float, cpu),
        "n_angles",
    );
    invalid(
        ParallelBeamRadon::sparse_view(16, 0, 180, Kind::Float, cpu),
        "n_views",
    );
    invalid(
        ParallelBeamRadon::sparse_view(16, 181, 180, Kind::Float, cpu),
        "n_views",
    );
    invalid(
        ParallelBeamRadon::subset(16, vec![0.0, 1.0], vec![1, 0], Kind::Float, cpu),
        "increasing",
    );
    invalid(
        ParallelBeamRadon::subset(16, vec![0.0, 1.0], vec![2], Kind::Float, cpu),
        "out of range",
    );
    let o = ParallelBeamRadon::full_view(16, 4, Kind::Float, cpu).unwrap();
    assert!(matches!(o.with_channels(0), Err(OperatorError::Invalid(_))));
}

/// The reference backend refuses inputs that require grad (it would cut the graph); the
/// tensor backends (the default sparse one included) differentiate: the gradient of
/// ⟨A x, y⟩ w.r.t. x is Aᵀ y.
#[test]
fn autograd_through_tensor_backends() {
    let o = ParallelBeamRadon::full_view(16, 6, Kind::Double, Device::Cpu).unwrap();
    assert_eq!(o.backend(), RadonBackend::Sparse);
    let x = Tensor::rand([1, 1, 16, 16], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let r = o.with_backend(RadonBackend::Reference).unwrap();
    assert!(matches!(r.forward(&x), Err(OperatorError::Invalid(_))));
    for backend in [RadonBackend::TensorOps, RadonBackend::Sparse] {
        let o = r.clone_with(backend);
        let y = Tensor::randn([1, 1, 16, 6], (Kind::Double, Device::Cpu));
        let loss = (o.forward(&x).unwrap() * &y).sum(Kind::Double);
        let grad = Tensor::run_backward(&[loss], &[&x], false, false)
            .pop()
            .unwrap();
        let aty = o.adjoint(&y).unwrap();
        assert!(rel_l2_t(&grad, &aty) <= 1e-12, "{backend:?}");
    }
}

trait CloneWith {
    fn clone_with(&self, backend: RadonBackend) -> ParallelBeamRadon;
}

impl CloneWith for ParallelBeamRadon {
    fn clone_with(&self, backend: RadonBackend) -> ParallelBeamRadon {
        ParallelBeamRadon::subset(
            self.n(),
            self.full_angles_deg().to_vec(),
            self.kept_indices().to_vec(),
            self.kind(),
            self.device(),
        )
        .unwrap()
        .with_backend(backend)
        .unwrap()
    }
}

/// An empty batch maps to an empty batch.
#[test]
fn empty_batch() {
    let o = ParallelBeamRadon::full_view(16, 5, Kind::Float, Device::Cpu).unwrap();
    let y = o
        .forward(&Tensor::zeros([0, 1, 16, 16], (Kind::Float, Device::Cpu)))
        .unwrap();
    assert_eq!(y.size(), vec![0, 1, 16, 5]);
}

/// Heavy timing probe, not a test of speed: `cargo test -p scoreinv-operators --release
/// --test radon -- --ignored --nocapture timing`.
#[test]
#[ignore]
fn timing_256_180_batch8() {
    for backend in [RadonBackend::Sparse, RadonBackend::Reference] {
        let t = std::time::Instant::now();
        let o = ParallelBeamRadon::full_view(256, 180, Kind::Float, Device::Cpu)
            .unwrap()
            .with_backend(backend)
            .unwrap();
        println!("{backend:?}: built in {:?}", t.elapsed());
        timing_runs(&o);
    }
}

fn timing_runs(o: &ParallelBeamRadon) {
    let x = Tensor::rand([8, 1, 256, 256], (Kind::Float, Device::Cpu));
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let y = o.forward(&x).unwrap();
        let tf = t.elapsed();
        let t = std::time::Instant::now();
        let _ = o.adjoint(&y).unwrap();
        let ta = t.elapsed();
        let t = std::time::Instant::now();
        let _ = o.pseudo_inverse(&y).unwrap();
        println!("forward {tf:?} adjoint {ta:?} fbp {:?}", t.elapsed());
    }
}

/// The default (sparse CSR) backend on CUDA equals the CPU reference: forward, adjoint and FBP
/// of the measured and the full-view angle sets (f32, 1e-5 relative), the f64 dot-product test
/// on the GPU, and autograd through the GPU forward (gradient = adjoint). Needs a GPU:
/// `cargo test -p scoreinv-operators --test radon -- --ignored cuda` (on Linux with
/// `libtorch_cuda.so` loaded, e.g. via LD_PRELOAD, since the test binary links with
/// --as-needed).
#[test]
#[ignore = "needs CUDA"]
fn cuda_sparse_matches_cpu_reference() {
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let gpu = Device::Cuda(0);
    for kind in [Kind::Float, Kind::Double] {
        let o_gpu = ParallelBeamRadon::sparse_view(48, 9, 40, kind, gpu).unwrap();
        assert_eq!(o_gpu.backend(), RadonBackend::Sparse);
        let o_cpu = ParallelBeamRadon::sparse_view(48, 9, 40, kind, Device::Cpu)
            .unwrap()
            .with_backend(RadonBackend::Reference)
            .unwrap();
        tch::manual_seed(21);
        let x = Tensor::rand([3, 1, 48, 48], (kind, Device::Cpu));
        let yc = o_cpu.forward(&x).unwrap();
        let yg = o_gpu.forward(&x.to_device(gpu)).unwrap();
        assert_eq!(yg.device(), gpu);
        let tol = if kind == Kind::Float { 1e-5 } else { 1e-12 };
        let cpu = |t: Tensor| t.to_device(Device::Cpu);
        let e = rel_l2_t(&cpu(yg.shallow_clone()), &yc);
        assert!(e <= tol, "{kind:?} forward: {e}");
        let e = rel_l2_t(
            &cpu(o_gpu.adjoint(&yg).unwrap()),
            &o_cpu.adjoint(&yc).unwrap(),
        );
        assert!(e <= tol, "{kind:?} adjoint: {e}");
        let e = rel_l2_t(
            &cpu(o_gpu.pseudo_inverse(&yg).unwrap()),
            &o_cpu.pseudo_inverse(&yc).unwrap(),
        );
        assert!(e <= tol, "{kind:?} FBP: {e}");
        let zc = o_cpu.transform(&x).unwrap();
        let e = rel_l2_t(&cpu(o_gpu.transform(&x.to_device(gpu)).unwrap()), &zc);
        assert!(e <= tol, "{kind:?} full-view transform: {e}");
        let e = rel_l2_t(
            &cpu(o_gpu.inverse_transform(&zc.to_device(gpu)).unwrap()),
            &o_cpu.inverse_transform(&zc).unwrap(),
        );
        assert!(e <= tol, "{kind:?} full-view FBP: {e}");
    }
    let o = ParallelBeamRadon::full_view(32, 12, Kind::Double, gpu).unwrap();
    let x = Tensor::randn([2, 1, 32, 32], (Kind::Double, gpu));
    let y = Tensor::randn([2, 1, 32, 12], (Kind::Double, gpu));
    let lhs = (o.forward(&x).unwrap() * &y)
        .sum(Kind::Double)
        .double_value(&[]);
    let rhs = (&x * o.adjoint(&y).unwrap())
        .sum(Kind::Double)
        .double_value(&[]);
    assert!(
        (lhs - rhs).abs() <= 1e-10 * lhs.abs().max(rhs.abs()),
        "{lhs} vs {rhs}"
    );
    let xg = x.detach().set_requires_grad(true);
    let loss = (o.forward(&xg).unwrap() * &y).sum(Kind::Double);
    let grad = Tensor::run_backward(&[loss], &[&xg], false, false)
        .pop()
        .unwrap();
    assert!(rel_l2_t(&grad, &o.adjoint(&y).unwrap()) <= 1e-12);
}

/// `Auto` builds the sparse matrices for the sizes this toolkit ships and benchmarks, and falls
/// back when they would pass a quarter of the available host memory (clamped to 1–4 GiB) on
/// the CPU (to the table-free reference kernels, so a 512² reconstruction fits in 2 GB of host
/// memory on a machine with 4 GB or less available, or unknown) or 4 GiB on a GPU (to the
/// tensor-ops tables). Given available memory, not this host's.
#[test]
fn auto_backend_policy() {
    use scoreinv_operators::radon::{
        auto_backend_with_memory, sparse_bytes_estimate, SPARSE_AUTO_LIMIT_BYTES,
    };
    let cpu = Device::Cpu;
    const GIB: u64 = 1 << 30;
    let (small, big) = (Some(4 * GIB), Some(32 * GIB));
    // (size, angles, views, device, available, expected backend)
    for (n, a, v, dev, avail, want) in [
        (256, 180, 23, cpu, None, RadonBackend::Sparse),
        (256, 256, 256, cpu, small, RadonBackend::Sparse),
        (512, 180, 180, cpu, None, RadonBackend::Reference),
        (512, 180, 180, cpu, small, RadonBackend::Reference),
        (512, 180, 180, cpu, big, RadonBackend::Sparse),
        (512, 180, 180, Device::Cuda(0), None, RadonBackend::Sparse),
        (512, 720, 720, cpu, big, RadonBackend::Reference),
        (512, 720, 720, Device::Cuda(0), big, RadonBackend::TensorOps),
    ] {
        assert_eq!(
            auto_backend_with_memory(n, a, v, Kind::Float, dev, avail),
            want,
            "{n}², {a} angles, {v} views on {dev:?}, {avail:?} available"
        );
    }
    assert!(sparse_bytes_estimate(512, 720, 720, Kind::Float) > SPARSE_AUTO_LIMIT_BYTES);
    // A measured subset adds its own matrices; f64 values cost more.
    assert!(
        sparse_bytes_estimate(256, 180, 23, Kind::Float)
            > sparse_bytes_estimate(256, 180, 180, Kind::Float)
    );
    assert!(
        sparse_bytes_estimate(256, 180, 180, Kind::Double)
            > sparse_bytes_estimate(256, 180, 180, Kind::Float)
    );
}

/// Simulated measurement noise does not depend on the device: after the same
/// `tch::manual_seed`, Gaussian (real and complex) and Poisson noise applied to a measurement on
/// CUDA equal the CPU draw, so a GPU study is paired case by case with CPU baselines (CUDA's own
/// generator draws other numbers). Needs a GPU: `-- --ignored cuda`, as above.
#[test]
#[ignore = "needs CUDA"]
fn cuda_noise_equals_cpu_noise() {
    use scoreinv_operators::{GaussianNoise, PoissonNoise};
    assert!(tch::Cuda::is_available(), "no CUDA device");
    let gpu = Device::Cuda(0);
    tch::manual_seed(3);
    for kind in [Kind::Float, Kind::ComplexFloat] {
        let y = Tensor::rand([2, 1, 9, 40], (Kind::Float, Device::Cpu)).to_kind(kind);
        let g = GaussianNoise::new(0.05).unwrap();
        tch::manual_seed(11);
        let on_cpu = g.apply(&y).unwrap();
        tch::manual_seed(11);
        let on_gpu = g.apply(&y.to_device(gpu)).unwrap();
        assert_eq!(on_gpu.device(), gpu);
        let d = (on_gpu.to_device(Device::Cpu) - &on_cpu)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            d <= 1e-6,
            "{kind:?} gaussian: cpu and cuda draws differ by {d}"
        );
        assert!(
            (&on_cpu - &y).abs().max().double_value(&[]) > 1e-3,
            "no noise added"
        );
    }
    let y = Tensor::rand([2, 1, 9, 40], (Kind::Float, Device::Cpu)) * 3.0;
    let p = PoissonNoise::new(1000.0).unwrap();
    tch::manual_seed(11);
    let on_cpu = p.apply(&y).unwrap();
    tch::manual_seed(11);
    let on_gpu = p.apply(&y.to_device(gpu)).unwrap();
    let d = (on_gpu.to_device(Device::Cpu) - &on_cpu)
        .abs()
        .max()
        .double_value(&[]);
    assert!(d <= 1e-6, "poisson: cpu and cuda draws differ by {d}");
}

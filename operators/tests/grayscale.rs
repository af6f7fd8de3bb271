//! Colorization operator: score_sde's colour decoupling.
use proptest::prelude::*;
use scoreinv_operators::grayscale::decoupling_matrix;
use scoreinv_operators::{Decomposed, Grayscale, LinearOperator, OperatorError};
use tch::{Device, Kind, Tensor};

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let num = (a - b).abs().max().to_kind(Kind::Double).double_value(&[]);
    let den = b
        .abs()
        .max()
        .to_kind(Kind::Double)
        .double_value(&[])
        .max(1e-300);
    num / den
}

fn dot_test(op: &dyn LinearOperator, b: i64, kind: Kind) -> f64 {
    let mut xs = vec![b];
    xs.extend(op.input_shape());
    let mut ys = vec![b];
    ys.extend(op.output_shape());
    let x = Tensor::randn(xs.as_slice(), (kind, Device::Cpu));
    let y = Tensor::randn(ys.as_slice(), (kind, Device::Cpu));
    let l = (op.forward(&x).unwrap() * &y)
        .sum(Kind::Double)
        .double_value(&[]);
    let r = (&x * op.adjoint(&y).unwrap())
        .sum(Kind::Double)
        .double_value(&[]);
    (l - r).abs() / l.abs().max(1e-30)
}

#[test]
#[allow(clippy::excessive_precision)] // the published float32 literals, verbatim
fn decoupling_matrix_is_orthonormal_and_matches_score_sde() {
    let m = decoupling_matrix();
    for i in 0..3 {
        for j in 0..3 {
            let dot: f64 = (0..3).map(|k| m[k][i] * m[k][j]).sum();
            let expect = if i == j { 1.0 } else { 0.0 };
            assert!((dot - expect).abs() < 1e-15, "MᵀM[{i}][{j}] = {dot}");
        }
    }
    // score_sde_pytorch controllable_generation.py, get_pc_colorizer (float32 literals).
    let published = [
        [5.7735014e-01, -8.1649649e-01, 4.7008697e-08],
        [5.7735026e-01, 4.0824834e-01, 7.0710671e-01],
        [5.7735026e-01, 4.0824822e-01, -7.0710683e-01],
    ];
    for i in 0..3 {
        for j in 0..3 {
            assert!((m[i][j] - published[i][j]).abs() < 5e-7, "M[{i}][{j}]");
        }
    }
}

#[test]
#[allow(clippy::excessive_precision)] // the published float32 literals, verbatim
fn forward_is_sqrt3_times_mean_and_matches_score_sde_decouple() {
    tch::manual_seed(0);
    let op = Grayscale::new(6, 5).unwrap();
    let x = Tensor::rand([2, 3, 6, 5], (Kind::Double, Device::Cpu));
    let y = op.forward(&x).unwrap();
    assert_eq!(y.size(), vec![2, 1, 6, 5]);
    let mean = x.mean_dim(Some(&[1i64][..]), true, Kind::Double);
    assert!(rel_err(&y, &(&mean * 3f64.sqrt())) < 1e-14);
    assert!(rel_err(&op.gray_from_measurement(&y).unwrap(), &mean) < 1e-14);
    // score_sde: decouple(x) = einsum('bihw,ij->bjhw', x, M) with its float32 matrix; gray is
    // channel 0. Compare in f32 (published matrix precision ~1e-7).
    let published = Tensor::from_slice(&[
        5.7735014e-01f32,
        -8.1649649e-01,
        4.7008697e-08,
        5.7735026e-01,
        4.0824834e-01,
        7.0710671e-01,
        5.7735026e-01,
        4.0824822e-01,
        -7.0710683e-01,
    ])
    .view([3, 3]);
    let xf = x.to_kind(Kind::Float);
    let dec = Tensor::einsum("bihw,ij->bjhw", &[&xf, &published], None::<&[i64]>);
    assert!(rel_err(&op.transform(&xf).unwrap(), &dec) < 1e-6);
    assert!(rel_err(&op.forward(&xf).unwrap(), &dec.narrow(1, 0, 1)) < 1e-6);
}

#[test]
fn adjoint_pseudo_inverse_and_decomposition() {
    tch::manual_seed(1);
    for (h, w) in [(4, 4), (9, 7), (16, 16)] {
        let op = Grayscale::new(h, w).unwrap();
        // Exact up to summation rounding.
        assert!(dot_test(&op, 2, Kind::Double) < 1e-12);
        assert!(dot_test(&op, 2, Kind::Float) < 1e-4);
        let (h, w) = (h as i64, w as i64);
        let y = Tensor::randn([3, 1, h, w], (Kind::Double, Device::Cpu));
        // A A⁺ = I.
        let aay = op.forward(&op.pseudo_inverse(&y).unwrap()).unwrap();
        assert!(rel_err(&aay, &y) < 1e-14);
        let x = Tensor::randn([3, 3, h, w], (Kind::Double, Device::Cpu));
        let z = op.transform(&x).unwrap();
        assert!(rel_err(&op.inverse_transform(&z).unwrap(), &x) < 1e-14);
        assert!(rel_err(&op.subsample(&z).unwrap(), &op.forward(&x).unwrap()) < 1e-14);
        // Λ keeps channel 0; embed is the transpose of subsample.
        let lam = op.mask(Device::Cpu);
        assert_eq!(
            Vec::<f32>::try_from(&lam.view([-1])).unwrap(),
            vec![1.0, 0.0, 0.0]
        );
        let e = op.embed(&y).unwrap();
        assert!(rel_err(&op.subsample(&e).unwrap(), &y) == 0.0);
        assert_eq!(e.narrow(1, 1, 2).abs().max().double_value(&[]), 0.0);
        // T is orthonormal: ‖T x‖ = ‖x‖.
        let nx = x.norm().double_value(&[]);
        assert!((z.norm().double_value(&[]) / nx - 1.0).abs() < 1e-14);
        // A⁺ y through the decomposition: T⁻¹ embed(y).
        let via = op.inverse_transform(&e).unwrap();
        assert!(rel_err(&via, &op.pseudo_inverse(&y).unwrap()) < 1e-14);
    }
}

#[test]
fn shape_errors_name_expected_and_actual() {
    let op = Grayscale::new(8, 8).unwrap();
    let x = Tensor::zeros([2, 1, 8, 8], (Kind::Float, Device::Cpu));
    match op.forward(&x) {
        Err(OperatorError::Shape {
            expected, actual, ..
        }) => {
            assert_eq!(expected, "[B, 3, 8, 8]");
            assert_eq!(actual, "[2, 1, 8, 8]");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let msg = op.adjoint(&x.narrow(3, 0, 4)).unwrap_err().to_string();
    assert!(
        msg.contains("[B, 1, 8, 8]") && msg.contains("[2, 1, 8, 4]"),
        "{msg}"
    );
    assert!(Grayscale::new(0, 8).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn adjoint_holds_for_random_shapes(h in 1usize..20, w in 1usize..20, seed in 0i64..1000) {
        tch::manual_seed(seed);
        let op = Grayscale::new(h, w).unwrap();
        prop_assert!(dot_test(&op, 1, Kind::Double) < 1e-12);
    }
}

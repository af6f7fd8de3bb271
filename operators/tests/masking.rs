//! Inpainting operator and mask recipes.
use ndarray::{Array2, Array3};
use proptest::prelude::*;
use scoreinv_operators::masking::Side;
use scoreinv_operators::{Decomposed, InpaintMask, LinearOperator, Masking, OperatorError};
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
    let ax = op.forward(&x).unwrap();
    let l = (&ax * &y).sum(Kind::Double).double_value(&[]);
    let r = (&x * op.adjoint(&y).unwrap())
        .sum(Kind::Double)
        .double_value(&[]);
    // Relative to the Cauchy–Schwarz bound ‖Ax‖‖y‖ (|⟨Ax, y⟩| can cancel to ~0 for sparse masks).
    let scale = ax.norm().double_value(&[]) * y.norm().double_value(&[]);
    (l - r).abs() / scale.max(1e-300)
}

fn count_missing(m: &Array2<f32>) -> usize {
    m.iter().filter(|&&v| v == 0.0).count()
}

#[test]
fn specs_parse_and_round_trip() {
    assert_eq!(
        "box".parse::<InpaintMask>().unwrap(),
        InpaintMask::Box { size: None }
    );
    assert_eq!(
        "box:32".parse::<InpaintMask>().unwrap(),
        InpaintMask::Box { size: Some(32) }
    );
    assert_eq!(
        "random:0.5".parse::<InpaintMask>().unwrap(),
        InpaintMask::Random { fraction: 0.5 }
    );
    assert_eq!(
        "half".parse::<InpaintMask>().unwrap(),
        InpaintMask::Half { side: Side::Right }
    );
    assert_eq!(
        "half:left".parse::<InpaintMask>().unwrap(),
        InpaintMask::Half { side: Side::Left }
    );
    assert_eq!(
        "strokes".parse::<InpaintMask>().unwrap(),
        InpaintMask::Strokes { seed: None }
    );
    assert_eq!(
        "strokes:7".parse::<InpaintMask>().unwrap(),
        InpaintMask::Strokes { seed: Some(7) }
    );
    for s in [
        "box:8",
        "random:0.25",
        "half:top",
        "half:bottom",
        "strokes:3",
        "strokes",
    ] {
        let m: InpaintMask = s.parse().unwrap();
        assert_eq!(m.to_string().parse::<InpaintMask>().unwrap(), m);
    }
    for bad in [
        "",
        "box:0",
        "box:x",
        "random",
        "random:1.5",
        "half:middle",
        "strokes:-1",
        "disc",
    ] {
        let e = bad.parse::<InpaintMask>();
        assert!(e.is_err(), "'{bad}' parsed");
    }
}

#[test]
fn box_half_and_random_masks_have_the_stated_geometry() {
    // Box: an s×s centre block missing, at ((H − s)/2, (W − s)/2).
    let m = InpaintMask::Box { size: Some(8) }.build(32, 30, 0).unwrap();
    assert_eq!(count_missing(&m), 64);
    assert_eq!(m[[12, 11]], 0.0);
    assert_eq!(m[[19, 18]], 0.0);
    assert_eq!(m[[11, 11]], 1.0);
    assert_eq!(m[[20, 18]], 1.0);
    let m = InpaintMask::Box { size: None }.build(32, 32, 0).unwrap();
    assert_eq!(count_missing(&m), 16 * 16);
    assert!(InpaintMask::Box { size: Some(40) }
        .build(32, 32, 0)
        .is_err());
    // Halves.
    let right = InpaintMask::Half { side: Side::Right }
        .build(8, 10, 0)
        .unwrap();
    assert!(right.column(4).iter().all(|&v| v == 1.0));
    assert!(right.column(5).iter().all(|&v| v == 0.0));
    let top = InpaintMask::Half { side: Side::Top }
        .build(8, 10, 0)
        .unwrap();
    assert!(top.row(3).iter().all(|&v| v == 0.0) && top.row(4).iter().all(|&v| v == 1.0));
    let left = InpaintMask::Half { side: Side::Left }
        .build(8, 10, 0)
        .unwrap();
    let bottom = InpaintMask::Half { side: Side::Bottom }
        .build(8, 10, 0)
        .unwrap();
    assert_eq!(&left + &right, Array2::<f32>::ones((8, 10)));
    assert_eq!(&top + &bottom, Array2::<f32>::ones((8, 10)));
    // Random: exactly round(p·H·W) observed pixels.
    let r = InpaintMask::Random { fraction: 0.3 }
        .build(20, 20, 4)
        .unwrap();
    assert_eq!(400 - count_missing(&r), 120);
    assert_eq!(
        r,
        InpaintMask::Random { fraction: 0.3 }
            .build(20, 20, 4)
            .unwrap()
    );
    assert_ne!(
        r,
        InpaintMask::Random { fraction: 0.3 }
            .build(20, 20, 5)
            .unwrap()
    );
}

#[test]
fn strokes_are_seeded_and_cover_a_sensible_area() {
    let a = InpaintMask::Strokes { seed: None }
        .build(64, 64, 1)
        .unwrap();
    assert_eq!(
        a,
        InpaintMask::Strokes { seed: None }
            .build(64, 64, 1)
            .unwrap()
    );
    assert_ne!(
        a,
        InpaintMask::Strokes { seed: None }
            .build(64, 64, 2)
            .unwrap()
    );
    // The spec's own seed overrides the run seed.
    let s = InpaintMask::Strokes { seed: Some(9) };
    assert_eq!(s.build(64, 64, 1).unwrap(), s.build(64, 64, 2).unwrap());
    for seed in 0..20 {
        let m = InpaintMask::Strokes { seed: None }
            .build(64, 64, seed)
            .unwrap();
        let missing = count_missing(&m) as f64 / 4096.0;
        // At least one stroke of width ≥ 4 and length ≥ 8·4 px; never the whole image.
        assert!(missing > 0.01 && missing < 0.9, "seed {seed}: {missing}");
    }
}

#[test]
fn adjoint_pseudo_inverse_and_decomposition() {
    tch::manual_seed(2);
    for (c, h, w, shared) in [(1, 8, 8, true), (3, 16, 12, true), (3, 7, 9, false)] {
        let mask = if shared {
            Array3::from_shape_fn((1, h, w), |(_, y, x)| {
                ((y * 7 + x * 3) % 4 != 0) as u8 as f32
            })
        } else {
            Array3::from_shape_fn((c, h, w), |(k, y, x)| {
                ((k + y * 5 + x) % 3 != 0) as u8 as f32
            })
        };
        let op = Masking::new(mask.clone(), c).unwrap();
        // Exact up to summation rounding: 1e-12 (f64), 1e-5 (f32, sums of ≤ 10³ products).
        assert!(dot_test(&op, 2, Kind::Double) < 1e-12);
        assert!(dot_test(&op, 2, Kind::Float) < 1e-5);
        let x = Tensor::randn(
            [2, c as i64, h as i64, w as i64],
            (Kind::Double, Device::Cpu),
        );
        let y = op.forward(&x).unwrap();
        // y is the full image times the mask.
        let m = op.mask(Device::Cpu).to_kind(Kind::Double);
        assert!(rel_err(&y, &(&x * &m)) == 0.0);
        // A A⁺ A = A and A⁺ = A.
        let again = op.forward(&op.pseudo_inverse(&y).unwrap()).unwrap();
        assert_eq!(rel_err(&again, &y), 0.0);
        // Decomposition: T = I.
        let z = op.transform(&x).unwrap();
        assert_eq!(rel_err(&z, &x), 0.0);
        assert_eq!(rel_err(&op.subsample(&z).unwrap(), &y), 0.0);
        assert_eq!(rel_err(&op.inverse_transform(&z).unwrap(), &x), 0.0);
        assert_eq!(rel_err(&op.embed(&y).unwrap(), &y), 0.0);
        assert_eq!(y.kind(), Kind::Double);
        assert_eq!(
            op.forward(&x.to_kind(Kind::Float)).unwrap().kind(),
            Kind::Float
        );
    }
}

#[test]
fn constructors_reject_bad_masks_and_shapes_are_named() {
    assert!(Masking::new(Array3::from_elem((1, 4, 4), 0.5), 1).is_err());
    let e = Masking::new(Array3::ones((2, 4, 4)), 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 channels"), "{e}");
    let op = Masking::from_2d(Array2::ones((4, 5)), 3).unwrap();
    let x = Tensor::zeros([1, 3, 5, 4], (Kind::Float, Device::Cpu));
    match op.forward(&x) {
        Err(OperatorError::Shape {
            expected, actual, ..
        }) => {
            assert_eq!(expected, "[B, 3, 4, 5]");
            assert_eq!(actual, "[1, 3, 5, 4]");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    // From a tensor mask.
    let t = Tensor::from_slice(&[1f32, 0., 1., 1.]).view([2, 2]);
    let op = Masking::from_tensor(&t, 2).unwrap();
    assert!((op.observed_fraction() - 0.75).abs() < 1e-12);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn adjoint_holds_for_random_masks(h in 2usize..24, w in 2usize..24, c in 1usize..4,
                                      p in 0.0f64..1.0, seed in 0u64..1000) {
        tch::manual_seed(seed as i64);
        let m = InpaintMask::Random { fraction: p }.build(h, w, seed).unwrap();
        let op = Masking::from_2d(m, c).unwrap();
        let e = dot_test(&op, 2, Kind::Double);
        prop_assert!(e < 1e-12, "rel err {}", e);
    }
}

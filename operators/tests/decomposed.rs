//! `LinearOperator::as_decomposed`: every operator that implements `Decomposed` hands itself
//! out through it (so a `&dyn LinearOperator` reaches the decomposition), and the others say
//! `None`.
use ndarray::Array2;
use scoreinv_operators::{
    synthetic_coil_maps, Decomposed, DetectorShape, FanBeam, FanGeometryConfig, Grayscale,
    LinearOperator, Masking, MriFourier, ParallelBeamRadon, SamplingMask, SenseMri,
};
use tch::{Device, Kind, Tensor};

/// `op.as_decomposed()` is `op` itself (same object), and `subsample ∘ transform = A`.
fn hands_out_itself<T: Decomposed + 'static>(op: &T) {
    let as_linear: &dyn LinearOperator = op;
    let dec = as_linear
        .as_decomposed()
        .unwrap_or_else(|| panic!("{}: as_decomposed is None", op.name()));
    assert!(
        std::ptr::addr_eq(dec as *const dyn Decomposed, op as *const T),
        "{}: as_decomposed is another object",
        op.name()
    );
    let mut shape = vec![2];
    shape.extend(op.input_shape());
    let x = Tensor::randn(shape.as_slice(), (Kind::Double, Device::Cpu));
    let via = dec.subsample(&dec.transform(&x).unwrap()).unwrap();
    let direct = op.forward(&x).unwrap();
    let err = (&via - &direct).norm().double_value(&[]) / direct.norm().double_value(&[]);
    assert!(
        err <= 1e-12,
        "{}: subsample(transform(x)) vs A x: {err}",
        op.name()
    );
}

fn half_mask(h: usize, w: usize) -> SamplingMask {
    let m = Array2::from_shape_fn((h, w), |(_, c)| (c % 2 == 0) as u8 as f32);
    SamplingMask::from_array(m, "every other column").unwrap()
}

#[test]
fn decomposed_operators_hand_out_themselves() {
    tch::manual_seed(3);
    hands_out_itself(
        &Masking::from_2d(
            Array2::from_shape_fn((6, 5), |(r, c)| ((r + c) % 2) as f32),
            2,
        )
        .unwrap(),
    );
    hands_out_itself(&Grayscale::new(4, 7).unwrap());
    hands_out_itself(&MriFourier::new(half_mask(8, 6), 1).unwrap());
    hands_out_itself(
        &ParallelBeamRadon::sparse_view(16, 5, 12, Kind::Double, Device::Cpu).unwrap(),
    );
    let fan = FanGeometryConfig {
        source_to_isocenter_mm: 40.0,
        source_to_detector_mm: 80.0,
        n_detectors: 24,
        detector: DetectorShape::Curved,
        detector_pitch: 2.0,
        detector_offset: 0.0,
        angles_deg: (0..12).map(|i| 30.0 * i as f64).collect(),
        image_size: 16,
        pixel_spacing_mm: 1.0,
    };
    hands_out_itself(&FanBeam::sparse_view(fan, 5, Kind::Double, Device::Cpu).unwrap());
}

#[test]
fn other_operators_are_not_decomposed() {
    let sense = SenseMri::new(synthetic_coil_maps(3, 8, 6, 1).unwrap(), half_mask(8, 6)).unwrap();
    assert!(sense.as_decomposed().is_none());
}

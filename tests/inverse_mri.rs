//! The projection sampler on a complex transformed domain: single-coil MRI (`T` = centred
//! orthonormal FFT, real images) with the exact score of a correlated Gaussian prior on 4×4
//! images. Samples must be real and consistent with the k-space measurement.
use ndarray::Array2;
use scoreinv::inverse::projection::{self, ProjectionConfig};
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::operators::{LinearOperator, MriFourier, SamplingMask};
use scoreinv::sde::{Sde, VeSde};
use std::sync::Arc;
use tch::{Device, Kind};

fn prior() -> GaussianMixture {
    let n = 4usize;
    let cov: Vec<Vec<f64>> = (0..16)
        .map(|i| {
            (0..16)
                .map(|j| {
                    let d = ((i / n) as i32 - (j / n) as i32).abs()
                        + ((i % n) as i32 - (j % n) as i32).abs();
                    0.25 * 0.7f64.powi(d)
                })
                .collect()
        })
        .collect();
    GaussianMixture::gaussian(&[0.5; 16], &cov)
        .unwrap()
        .with_sample_shape(&[1, 4, 4])
        .unwrap()
}

fn op(columns: &[usize]) -> MriFourier {
    let m = Array2::from_shape_fn(
        (4, 4),
        |(_, c)| if columns.contains(&c) { 1.0 } else { 0.0 },
    );
    MriFourier::new(SamplingMask::from_array(m, "test columns").unwrap(), 1).unwrap()
}

fn relative_residual(op: &MriFourier, columns: &[usize], cfg: &ProjectionConfig) -> f64 {
    tch::set_num_threads(1);
    tch::manual_seed(11);
    let sde: Arc<dyn Sde> = Arc::new(VeSde::new(0.01, 10.0, 100).unwrap());
    let p = prior();
    let model = p.perturbed(sde.clone());
    let x_true = p.sample(64, Kind::Double, Device::Cpu);
    let y = op.forward(&x_true).unwrap();
    let out = projection::sample(sde.as_ref(), &model, op, &y, cfg, &mut |_| {}).unwrap();
    assert_eq!(out.x.kind(), Kind::Double, "samples must be real images");
    assert_eq!(out.x.size(), vec![64, 1, 4, 4]);
    let r = (op.forward(&out.x).unwrap() - &y)
        .abs()
        .square()
        .sum(Kind::Double)
        .sqrt();
    let rel = r.double_value(&[]) / y.abs().square().sum(Kind::Double).sqrt().double_value(&[]);
    println!("columns {columns:?}: relative residual {rel:.2e}");
    rel
}

/// Columns {0, 2} of the centred 4×4 grid are each their own mirror about DC, so the masked
/// k-space of a real image is Hermitian-symmetric and the real part taken by `T⁻¹` loses
/// nothing: the final λ = 1 merge is exactly consistent (f64 rounding).
#[test]
fn mri_projection_is_consistent_for_a_symmetric_mask() {
    let cols = [0, 2];
    let rel = relative_residual(&op(&cols), &cols, &ProjectionConfig::mri());
    assert!(rel < 1e-10, "{rel}");
}

/// Columns {1, 2} are not symmetric: one merge followed by taking the real part is only half a
/// correction on column 1, and the CG least-squares step (`consistency_iters`) restores
/// consistency (64 real unknowns, at most 32 CG iterations in exact arithmetic).
#[test]
fn mri_projection_with_cg_consistency_for_an_asymmetric_mask() {
    let cols = [1, 2];
    let plain = relative_residual(&op(&cols), &cols, &ProjectionConfig::mri());
    let cfg = ProjectionConfig {
        consistency_iters: 40,
        ..ProjectionConfig::mri()
    };
    let cg = relative_residual(&op(&cols), &cols, &cfg);
    assert!(
        plain > 1e-3,
        "the single merge is not expected to be consistent: {plain}"
    );
    assert!(cg < 1e-8, "{cg}");
}

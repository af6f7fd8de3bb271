//! DPS (Chung et al. 2023) with the exact score of a correlated Gaussian prior on 3×3 images, a
//! pixel mask and Gaussian measurement noise, against the exact Gaussian posterior
//! `N(Σ_post(Aᵀy/σ² + Σ⁻¹μ), (AᵀA/σ² + Σ⁻¹)⁻¹)`.
mod inverse_util;

use inverse_util::*;
use scoreinv::inverse::dps::{self, DpsConfig};
use scoreinv::inverse::posterior;
use scoreinv::operators::LinearOperator;
use scoreinv::sde::{Sde, VpSde};
use std::sync::Arc;
use tch::{Kind, Tensor};

const N_SAMPLES: i64 = 1000;
const SIGMA_Y: f64 = 0.1;

#[test]
fn dps_moves_towards_the_posterior() {
    tch::set_num_threads(1);
    let sde: Arc<dyn Sde> = Arc::new(VpSde::new(0.1, 20.0, 200).unwrap());
    let model = prior(false).perturbed(sde.clone());
    let (x, _) = truth(false, 5);
    let op = masking();
    tch::manual_seed(6);
    let y = op.forward(&x).unwrap()
        + Tensor::randn([1, 1, 3, 3], (Kind::Double, tch::Device::Cpu)) * SIGMA_Y;
    let y = op.forward(&y).unwrap();
    let kidx = Tensor::from_slice(&KEPT.map(|v| v as i64));
    let yk = flat(&y).get(0).index_select(0, &kidx);
    let (m_post, _) = posterior_noisy(false, &yk, SIGMA_Y);
    let mut errs = vec![];
    for zeta in [0.0, 0.05, 0.2] {
        let cfg = DpsConfig {
            zeta,
            ..DpsConfig::default()
        };
        let post = posterior::posterior(&y, N_SAMPLES, |yy| {
            Ok(dps::sample(sde.as_ref(), &model, &op, yy, &cfg, &mut |_| {})?.x)
        })
        .unwrap();
        let mean = flat(&post.mean.unsqueeze(0)).get(0);
        let resid = (mean.index_select(0, &kidx) - &yk).norm().double_value(&[]);
        let err = (&mean - &m_post).norm().double_value(&[]);
        println!("zeta {zeta}: ‖A x̄ − y‖ = {resid:.4}, ‖x̄ − μ_post‖ = {err:.4}");
        errs.push((resid, err));
    }
    // ζ = 0 samples the prior: its mean is the prior mean, far from the posterior mean.
    assert!(errs[1].0 < 0.5 * errs[0].0, "{errs:?}");
    assert!(errs[2].1 < 0.5 * errs[0].1, "{errs:?}");
}

#[test]
fn dps_refuses_bad_settings() {
    let sde: Arc<dyn Sde> = Arc::new(VpSde::new(0.1, 20.0, 20).unwrap());
    let model = prior(false).perturbed(sde.clone());
    let y = Tensor::zeros([1, 1, 3, 3], (Kind::Double, tch::Device::Cpu));
    let cfg = DpsConfig {
        zeta: f64::NAN,
        ..DpsConfig::default()
    };
    let e = dps::sample(sde.as_ref(), &model, &masking(), &y, &cfg, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("zeta"), "{e}");
    let y = Tensor::full([1, 1, 3, 3], f64::NAN, (Kind::Double, tch::Device::Cpu));
    let e = dps::sample(
        sde.as_ref(),
        &model,
        &masking(),
        &y,
        &DpsConfig::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("NaN"), "{e}");
}

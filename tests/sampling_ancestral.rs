//! DDPM ancestral sampling on Gaussian data with the exact VP score.
mod sampling_util;

use sampling_util::{assert_moments, describe};
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::sampling::ancestral::{self, AncestralConfig, DdpmVariance};
use scoreinv::sde::{Sde, VeSde, VpSde};
use std::sync::Arc;
use tch::{Device, Kind};

const MU: [f64; 2] = [1.0, -0.5];
const SIGMA: [f64; 4] = [1.0, 0.5, 0.5, 0.8];

#[test]
fn ddpm_matches_gaussian_moments_for_both_variances() {
    tch::set_num_threads(1);
    tch::manual_seed(21);
    let sde: Arc<dyn Sde> = Arc::new(VpSde::new(0.1, 20.0, 500).unwrap());
    let data = GaussianMixture::gaussian(&MU, &[SIGMA[..2].to_vec(), SIGMA[2..].to_vec()]).unwrap();
    let model = data.perturbed(sde.clone());
    for variance in [DdpmVariance::FixedLarge, DdpmVariance::FixedSmall] {
        let cfg = AncestralConfig {
            variance,
            ..AncestralConfig::default()
        };
        let mut steps = 0;
        let out = ancestral::sample(
            sde.as_ref(),
            &model,
            &cfg,
            4000,
            None,
            (Kind::Float, Device::Cpu),
            &mut |k| steps = k,
        )
        .unwrap();
        assert_eq!((out.nfe, steps), (500, 500));
        eprintln!("DDPM {variance:?}: {}", describe(&out.x, &MU, &SIGMA));
        // 4 standard errors (n = 4000) plus 0.05 for the N = 500 discretisation (the chain's
        // ᾱ_i and the continuous-time score at t_i agree to O(1/N)).
        assert_moments(&format!("DDPM {variance:?}"), &out.x, &MU, &SIGMA, 0.05);
    }
}

#[test]
fn ddpm_refuses_non_vp_sdes() {
    let sde = VeSde::new(0.01, 10.0, 100).unwrap();
    let data = GaussianMixture::gaussian(&MU, &[SIGMA[..2].to_vec(), SIGMA[2..].to_vec()]).unwrap();
    let err = ancestral::sample(
        &sde,
        &data,
        &AncestralConfig::default(),
        4,
        None,
        (Kind::Float, Device::Cpu),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs a VP SDE"), "{err}");
}

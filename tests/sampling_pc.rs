//! Predictor–corrector samplers on Gaussian data with the exact perturbed score: every
//! predictor/corrector combination for VE, VP and sub-VP must reproduce the data mean and
//! covariance within Monte-Carlo error plus a stated discretisation bias.
mod sampling_util;

use sampling_util::{assert_moments, describe};
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::sampling::{CorrectorKind, PcConfig, PcSampler, PredictorKind};
use scoreinv::sde::{Sde, SubVpSde, VeSde, VpSde};
use std::sync::Arc;
use tch::{Device, Kind};

/// Data N(μ, Σ) in D = 2 with correlated coordinates.
const MU: [f64; 2] = [1.0, -0.5];
const SIGMA: [f64; 4] = [1.0, 0.5, 0.5, 0.8];
/// 4000 samples: the 4-SE band is ±0.063 for the means, ±0.07 for the variances.
const N_SAMPLES: i64 = 4000;
/// N = 400 steps. With the exact score the remaining error is the O(1/N) discretisation bias
/// of the predictors (largest for Euler–Maruyama on VE, whose g(t)² spans 4 decades) plus the
/// corrector's finite snr; we allow 0.05 absolute on every mean and covariance entry
/// (5 % of the unit data scale), which the observed errors stay well inside.
const N_STEPS: usize = 400;
const BIAS: f64 = 0.05;

fn data() -> GaussianMixture {
    GaussianMixture::gaussian(&MU, &[SIGMA[..2].to_vec(), SIGMA[2..].to_vec()]).unwrap()
}

fn run_all(sde: Arc<dyn Sde>, label: &str, seed: i64) {
    tch::manual_seed(seed);
    let model = data().perturbed(sde.clone());
    let predictors = [
        PredictorKind::EulerMaruyama,
        PredictorKind::ReverseDiffusion,
        PredictorKind::Ancestral,
        PredictorKind::None,
    ];
    let correctors = [
        CorrectorKind::Langevin,
        CorrectorKind::Ald,
        CorrectorKind::None,
    ];
    for p in predictors {
        for c in correctors {
            if p == PredictorKind::None && c == CorrectorKind::None {
                continue;
            }
            // Corrector-only sampling (predictor 'none') with the published snr 0.16 and one
            // step per level moves too little per level to follow p_t over 400 levels (the paper
            // runs it with 2000 levels). We give it three steps per level and a larger snr:
            // Langevin 0.2 (its step ε ≈ 1.2 snr² ≈ 0.05 at eps here, so the unadjusted-Langevin
            // variance inflation 1/(1 − ε/2λ) stays < 7 % of the smallest eigenvalue λ = 0.39),
            // ALD 0.5 (its step 2(snr σ)² vanishes with σ, so it needs a larger snr to keep
            // following p_t until σ is well below the data scale).
            let (snr, n_steps) = match (p, c) {
                (PredictorKind::None, CorrectorKind::Langevin) => (0.2, 3),
                (PredictorKind::None, _) => (0.5, 3),
                _ => (0.16, 1),
            };
            let cfg = PcConfig {
                predictor: p,
                corrector: c,
                snr,
                n_steps,
                ..PcConfig::default()
            };
            let name = format!("{label} {p:?}+{c:?}");
            let sampler = match PcSampler::new(sde.as_ref(), cfg) {
                Ok(s) => s,
                Err(e) => {
                    // Only ancestral sampling on sub-VP is refused.
                    assert!(
                        p == PredictorKind::Ancestral && label == "subvp",
                        "{name}: unexpected error {e}"
                    );
                    assert!(e.to_string().contains("sub-VP"), "{name}: {e}");
                    continue;
                }
            };
            let out = sampler
                .sample(
                    &model,
                    N_SAMPLES,
                    None,
                    (Kind::Float, Device::Cpu),
                    &mut |_| {},
                )
                .unwrap();
            let per_step = usize::from(p != PredictorKind::None)
                + if c != CorrectorKind::None { n_steps } else { 0 };
            assert_eq!(out.nfe, N_STEPS * per_step, "{name}: NFE");
            eprintln!("{name}: {}", describe(&out.x, &MU, &SIGMA));
            // ALD-corrector-only on sub-VP freezes early: its step 2(snr s)² uses the sub-VP
            // std s(t) = 1 − m(t)² ≈ β_min t, so below t ≈ 0.1 the per-level relaxation
            // 3·2(0.5 s)²/λ falls under 0.05 and the chain keeps p_0.1 (mean m(0.1) μ =
            // 0.947 μ, i.e. off by ≈ 0.05, covariance off by ≈ 0.1). Allowed 0.15 there.
            let bias = if label == "subvp" && p == PredictorKind::None && c == CorrectorKind::Ald {
                0.15
            } else {
                BIAS
            };
            assert_moments(&name, &out.x, &MU, &SIGMA, bias);
        }
    }
}

#[test]
fn pc_ve_all_combinations_match_gaussian_moments() {
    tch::set_num_threads(1);
    run_all(Arc::new(VeSde::new(0.01, 10.0, N_STEPS).unwrap()), "ve", 1);
}

#[test]
fn pc_vp_all_combinations_match_gaussian_moments() {
    tch::set_num_threads(1);
    run_all(Arc::new(VpSde::new(0.1, 20.0, N_STEPS).unwrap()), "vp", 2);
}

#[test]
fn pc_subvp_all_combinations_match_gaussian_moments() {
    tch::set_num_threads(1);
    run_all(
        Arc::new(SubVpSde::new(0.1, 20.0, N_STEPS).unwrap()),
        "subvp",
        3,
    );
}

//! DPS (Chung et al. 2023) with the exact score of a correlated Gaussian prior on 8×8 images,
//! measured through sparse-view CT and undersampled MRI with Gaussian noise, against the exact
//! Gaussian posterior `N(m, C)`, `m = μ + ΣAᵀ(AΣAᵀ + R)⁻¹(y − Aμ)`, `C = Σ − ΣAᵀ(AΣAᵀ + R)⁻¹AΣ`
//! (complex k-space samples as two real measurements), with stated tolerances measured over
//! five measurements and controls that must fail the same check; and its settings checks.
mod inverse_util;

use inverse_util::*;
use scoreinv::inverse::dps::{self, DpsConfig};
use scoreinv::sde::{Sde, VpSde};
use std::sync::Arc;
use tch::{Kind, Tensor};

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

// ---------------------------------------------------------------------------------------------
// DPS against the exact posterior of a correlated prior through CT and MRI, noisy y.
// ---------------------------------------------------------------------------------------------
//
// What DPS approximates. Its guidance step `ζ ∇ₓ‖y − A x̂₀(x)‖` has the length
// `ζ ‖J Aᵀ r‖ / ‖r‖` however small the residual `r` is, and nothing in it knows σ_y; the
// conditional reverse step for the Gaussian likelihood `N(y; A x̂₀, σ_y²)` would be
// `β_i Jᵀ Aᵀ r / σ_y²`, i.e. `ζ_i = β_i ‖r‖ / σ_y²`, which changes along the run, so no
// constant ζ is exact (and `p(y | x_t)` also ignores the spread of `x₀ | x_t`). Measured on
// measurement 1 of these problems (n = 1000, exact-sample floors 0.26 / 0.26), whitened mean /
// cov errors for ζ = 0.05, 0.1, 0.2, 0.3, 0.5:
//
//     MRI σ_y = 0.3:  13.2 / 7.5,   7.5 / 2.0,   1.3 / 0.39,  2.7 / 0.68,  4.1 / 0.78
//     MRI σ_y = 0.1:  41 / 66,      25 / 18,     6.3 / 1.9,   0.93 / 0.70, 1.3 / 0.79
//     CT  σ_y = 0.3:  8.7 / 2.3,    2.5 / 0.58,  2.1 / 8.8,   2.1 / 22,    2.1 / 64
//     CT  σ_y = 0.1:  28 / 23,      7.7 / 4.3,   3.6 / 85,    3.9 / 202,   3.6 / 586
//
// Too small a ζ under-conditions (mean off, spread too wide); for MRI a large ζ drifts to the
// noiseless conditional `x | A x = y` (whose exact draws score 4.4 / 0.80 at σ_y = 0.3): like
// the projection sampler it then ignores σ_y; for CT a large ζ keeps a jitter of length
// `≈ ζ ‖Aᵀ A‖` in the measured directions to the last step (the step does not shrink with
// `r`), so the spread there explodes. The best constant ζ grows as σ_y shrinks for MRI (≈ 0.2
// at σ_y = 0.3, 0.3–0.5 at 0.1) and must shrink with ‖A‖² (CT ≈ 0.1). None of this is
// discretisation: it is the approximation.

/// Samples per posterior: Monte-Carlo floors (exact samples, D = 64) `white_mean ≈ √(D/n) =
/// 0.18`, `white_cov ≈ √((D+1)/n) = 0.18`.
const N_POST: i64 = 2000;

/// Samples of a sampler run as a control (ζ = 0): its errors are bias, hundreds of times its
/// Monte-Carlo floors (`√(D/n) = 0.36`, `√((D+1)/n) = 0.36`), so a quarter of `N_POST` does.
const N_CONTROL: i64 = 500;

/// ζ of the CT and MRI tests (the best of the sweep above).
const ZETA_CT: f64 = 0.1;
const ZETA_MRI: f64 = 0.3;

/// `n` DPS samples given `y` (VP, β ∈ [0.1, 20], 200 ancestral steps), seeded.
fn dps_samples(p: &Problem, y: &Tensor, zeta: f64, n: i64, seed: i64) -> Tensor {
    tch::set_num_threads(1);
    let sde: Arc<dyn Sde> = Arc::new(VpSde::new(0.1, 20.0, 200).unwrap());
    let model = p.prior.perturbed(sde.clone());
    let yb = y.repeat_interleave_self_int(n, 0, None::<i64>);
    let cfg = DpsConfig {
        zeta,
        ..DpsConfig::default()
    };
    tch::manual_seed(seed);
    dps::sample(sde.as_ref(), &model, p.op.as_ref(), &yb, &cfg, &mut |_| {})
        .unwrap()
        .x
}

const CONTROLS: [&str; 3] = ["prior draws", "wrong y", "ζ = 0"];

/// The errors of DPS and of three controls for the measurement drawn with `seed` (`run` > 0:
/// the same measurement, other random numbers for DPS): DPS; exact
/// draws of the prior; the DPS samples checked against the posterior of another measurement
/// (`seed + 1000`); DPS with ζ = 0 (the unconditional sampler).
fn dps_errors(p: &Problem, zeta: f64, seed: i64, run: i64) -> [PosteriorErrors; 4] {
    let meas = p.measure(seed);
    let s = dps_samples(p, &meas.y, zeta, N_POST, seed + 1 + 100 * run);
    let ok = PosteriorErrors::of(&s, &p.lg, &meas.m, &meas.c);
    tch::manual_seed(seed + 2);
    let prior = gaussian_draws(N_POST, &p.lg.mu, &p.lg.sigma);
    let prior = PosteriorErrors::of(&prior, &p.lg, &meas.m, &meas.c);
    let other = p.measure(seed + 1000);
    let wrong_y = PosteriorErrors::of(&s, &p.lg, &other.m, &other.c);
    let s0 = dps_samples(p, &meas.y, 0.0, N_CONTROL, seed + 3);
    let zeta0 = PosteriorErrors::of(&s0, &p.lg, &meas.m, &meas.c);
    [ok, prior, wrong_y, zeta0]
}

/// Runs the case for measurement 1: DPS must pass `tol`, every control must exceed it by more
/// than 4× (its largest ratio error / tolerance).
fn check_dps_case(name: &str, p: &Problem, zeta: f64, tol: PosteriorErrors) {
    let [ok, controls @ ..] = dps_errors(p, zeta, 1, 0);
    println!("{name}: DPS {ok} (ratio {:.2})", ok.ratio(&tol));
    assert!(ok.ratio(&tol) <= 1.0, "{name}: {ok} exceeds {tol}");
    for (what, e) in CONTROLS.iter().zip(controls) {
        let r = e.ratio(&tol);
        println!("{name}: control {what:>11}: {e} (ratio {r:.1})");
        assert!(
            r > 4.0,
            "{name}: control {what} passes or nearly: {e} vs {tol}"
        );
    }
}

/// Sparse-view CT ([`ct_problem`]: 8×8, correlated prior, 4 of 16 views, σ_y = 0.3), ζ = 0.1,
/// 2000 samples, against the exact posterior.
///
/// Measured (`dps_correlated_seed_study`) for measurements 1…5: whitened mean 2.53, 0.89,
/// 1.47, 2.11, 1.38; whitened cov 0.56, 0.72, 0.53, 0.55, 0.56; relative mean 0.135, 0.088,
/// 0.146, 0.116, 0.154; relative cov 0.036, 0.022, 0.025, 0.031, 0.025. Monte-Carlo spread
/// (measurement 1, five sets of random numbers): 2.47–2.53, 0.550–0.563, 0.131–0.136,
/// 0.032–0.036, so the spread over measurements dominates; exact-sample floors 0.18, 0.18,
/// 0.01, 0.02. Tolerances ≈ 1.5× the largest of the five. Controls, same check: prior draws
/// and ζ = 0 (whitened cov 355–407: ratio ≥ 320) and the samples against another
/// measurement's posterior (whitened mean 61–215: ratio ≥ 16) fail by more than 4×.
#[test]
fn dps_ct_correlated_prior_matches_exact_posterior() {
    let tol = PosteriorErrors {
        white_mean: 3.8,
        white_cov: 1.1,
        rel_mean: 0.23,
        rel_cov: 0.055,
    };
    check_dps_case("CT", &ct_problem(), ZETA_CT, tol);
}

/// Undersampled MRI ([`mri_problem`]: 8×8, correlated prior, 4 of 8 k-space columns, complex
/// noise σ_y = 0.1), ζ = 0.3, 2000 samples, against the exact posterior.
///
/// Measured for measurements 1…5: whitened mean 0.88, 0.78, 0.79, 0.76, 0.76; whitened cov
/// 0.70, 0.77, 0.74, 0.71, 0.75; relative mean 0.049, 0.037, 0.028, 0.028, 0.052; relative cov
/// 0.013, 0.014, 0.014, 0.013, 0.014. Monte-Carlo spread (measurement 1, five sets of random
/// numbers): 0.884–0.910, 0.698–0.701, 0.049–0.056, 0.013–0.014; exact-sample floors 0.18,
/// 0.18, 0.009, 0.014. Tolerances ≈ 1.5× the largest of the five (1.4× the largest relative
/// mean of the Monte-Carlo runs). Controls, same check: prior draws and ζ = 0 (whitened cov
/// 306–339: ratio ≥ 278) and the samples against another measurement's posterior (whitened
/// mean 83–219: ratio ≥ 64) fail by more than 4×.
#[test]
fn dps_mri_correlated_prior_matches_exact_posterior() {
    let tol = PosteriorErrors {
        white_mean: 1.3,
        white_cov: 1.1,
        rel_mean: 0.08,
        rel_cov: 0.021,
    };
    check_dps_case("MRI", &mri_problem(), ZETA_MRI, tol);
}

/// The seed study behind the tolerances above (`--ignored`; `CASES=mri` runs one case,
/// `ZETAS=0.1,0.3` other step sizes): errors of DPS and of the controls for measurements 1…5,
/// then DPS's errors for measurement 1 with four other sets of random numbers (its Monte-Carlo
/// spread).
#[test]
#[ignore]
fn dps_correlated_seed_study() {
    let which = std::env::var("CASES").unwrap_or("ct,mri".into());
    for (name, p, zeta) in [
        ("ct", ct_problem(), ZETA_CT),
        ("mri", mri_problem(), ZETA_MRI),
    ] {
        if !which.contains(name) {
            continue;
        }
        let zetas: Vec<f64> = std::env::var("ZETAS")
            .map(|v| v.split(',').map(|z| z.parse().unwrap()).collect())
            .unwrap_or(vec![zeta]);
        for zeta in zetas {
            for seed in 1..=5 {
                let t = std::time::Instant::now();
                let [ok, controls @ ..] = dps_errors(&p, zeta, seed, 0);
                println!(
                    "{name} ζ {zeta} seed {seed} ({:.1} s)",
                    t.elapsed().as_secs_f64()
                );
                println!("  {:>11}: {ok}", "DPS");
                for (what, e) in CONTROLS.iter().zip(controls) {
                    println!("  {what:>11}: {e}");
                }
            }
            // The Monte-Carlo spread alone: measurement 1, other random numbers for DPS.
            for run in 1..=4 {
                let [ok, ..] = dps_errors(&p, zeta, 1, run);
                println!("{name} ζ {zeta} seed 1 run {run}: DPS {ok}");
            }
        }
    }
}

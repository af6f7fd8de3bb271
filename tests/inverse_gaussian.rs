//! The projection (Song et al. 2022) and replacement (score_sde) samplers against exact
//! Gaussian posteriors, with exact scores of Gaussian priors (`models::analytic`, VE SDE).
//!
//! * The posterior tests: a correlated prior on 8×8 images measured through sparse-view CT and
//!   undersampled MRI with Gaussian noise, λ < 1, against the exact posterior mean and
//!   covariance, with tolerances measured over five measurements and controls (prior draws, a
//!   wrong measurement, λ = 0) that must fail the same check by a wide margin. The comment
//!   above `N_POST` says what the sampler approximates and which λ brings it closest.
//! * Sanity checks on 3×3 images and a pixel mask: exactness where the sampler is exact (kept
//!   and dropped pixels independent, noiseless y, λ = 1; sample moments within 5 Monte-Carlo
//!   standard errors plus a stated discretisation allowance), measurement consistency, the
//!   presets, validation and `ScoreMethod`'s model-space mapping.
mod inverse_util;

use inverse_util::*;
use scoreinv::inverse::posterior;
use scoreinv::inverse::projection::{self, ProjectionConfig};
use scoreinv::inverse::replacement::{self, ReplacementConfig};
use scoreinv::models::analytic::PerturbedMixture;
use scoreinv::operators::LinearOperator;
use scoreinv::sde::{Sde, VeSde};
use std::sync::Arc;
use tch::{Kind, Tensor};

const N_SAMPLES: i64 = 3000;

fn setup(independent: bool) -> (Arc<dyn Sde>, PerturbedMixture) {
    tch::set_num_threads(1);
    // σ_max = 20 covers the prior (largest std 1.3, mean spread 2.4); 200 steps.
    let sde: Arc<dyn Sde> = Arc::new(VeSde::new(0.01, 20.0, 200).unwrap());
    let model = prior(independent).perturbed(sde.clone());
    (sde, model)
}

fn dropped_idx() -> Tensor {
    Tensor::from_slice(&DROPPED.map(|v| v as i64))
}
fn kept_idx() -> Tensor {
    Tensor::from_slice(&KEPT.map(|v| v as i64))
}

/// Checks the dropped block against N(m, c): mean within 5 standard errors (√(c_ii/n)) + 0.03
/// (discretisation of 200 steps), covariance entries within 5 standard errors of a sample
/// covariance (√((c_ii c_jj + c_ij²)/n)) + 0.1: the unadjusted Langevin corrector (step set by
/// snr) inflates the variances; over repeated runs the largest entry error was 0.07–0.16 for
/// the projection sampler (snr 0.206) and 0.02–0.03 for the replacement sampler (snr 0.16),
/// mostly on the diagonal. That is the discretisation error of the PC sampler, not of the
/// conditioning.
fn check_exact(samples: &Tensor, m: &Tensor, c: &Tensor, what: &str) {
    let d = flat(samples).index_select(1, &dropped_idx());
    let (sm, sc) = moments(&d);
    let n = d.size()[0] as f64;
    let var = c.diag(0);
    let se_mean = (&var / n).sqrt();
    let mean_err = (&sm - m).abs() - se_mean * 5.0;
    let diag = var.unsqueeze(1) * var.unsqueeze(0);
    let se_cov = ((diag + c.square()) / n).sqrt();
    let cov_err = (&sc - c).abs() - se_cov * 5.0;
    println!(
        "{what}: mean err {:.4}, cov err {:.4}",
        max_abs(&(&sm - m)),
        max_abs(&(&sc - c))
    );
    assert!(
        mean_err.max().double_value(&[]) < 0.03,
        "{what}: sample mean {sm:?} vs exact {m:?}"
    );
    assert!(
        cov_err.max().double_value(&[]) < 0.1,
        "{what}: sample cov {sc:?} vs exact {c:?}"
    );
}

fn measurement(x: &Tensor) -> Tensor {
    masking().forward(x).unwrap()
}

#[test]
fn projection_lambda1_is_exact_for_independent_blocks() {
    let (sde, model) = setup(true);
    let (x, yk) = truth(true, 1);
    let y = measurement(&x);
    let cfg = ProjectionConfig {
        lambda: 1.0,
        ..ProjectionConfig::default()
    };
    let op = masking();
    let post = posterior::posterior(&y, N_SAMPLES, |yy| {
        Ok(projection::sample(sde.as_ref(), &model, &op, yy, &cfg, &mut |_| {})?.x)
    })
    .unwrap();
    let s = post.samples.reshape([N_SAMPLES, 1, 3, 3]);
    // The final hard projection puts y on the kept pixels exactly (T = I).
    let kept = flat(&s).index_select(1, &kept_idx());
    assert!(max_abs(&(kept - yk.unsqueeze(0))) < 1e-9);
    let (m, c) = posterior_noiseless(true, &yk);
    check_exact(&s, &m, &c, "projection, independent prior");
    // The summary std is the per-pixel sample std of the same samples.
    let std_d = flat(&post.std.unsqueeze(0))
        .get(0)
        .index_select(0, &dropped_idx());
    let exact_std = c.diag(0).sqrt();
    // Relative standard error of a sample std ≈ 1/√(2n) = 1.3 %; 5 of them + 3 %.
    let rel = ((std_d - &exact_std) / &exact_std)
        .abs()
        .max()
        .double_value(&[]);
    assert!(rel < 0.1, "posterior std off by {rel}");
}

#[test]
fn replacement_is_exact_for_independent_blocks() {
    let (sde, model) = setup(true);
    let (x, yk) = truth(true, 2);
    let y = measurement(&x).repeat([N_SAMPLES, 1, 1, 1]);
    let op = masking();
    let out = replacement::sample(
        sde.as_ref(),
        &model,
        &op,
        &y,
        &ReplacementConfig::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.nfe, 400);
    let kept = flat(&out.x).index_select(1, &kept_idx());
    assert!(max_abs(&(kept - yk.unsqueeze(0))) < 1e-9);
    let (m, c) = posterior_noiseless(true, &yk);
    check_exact(&out.x, &m, &c, "replacement, independent prior");
}

/// With a correlated prior, replacing the kept pixels is only approximate. The samples are still
/// measurement-consistent, and their mean of the dropped pixels is much closer to the exact
/// conditional mean than the prior mean is (the correlation reaches the dropped pixels only
/// through the prior score of the replaced state).
#[test]
fn correlated_prior_is_consistent_and_close() {
    let (sde, model) = setup(false);
    let (x, yk) = truth(false, 3);
    let y = measurement(&x).repeat([N_SAMPLES, 1, 1, 1]);
    let op = masking();
    let (m_exact, _) = posterior_noiseless(false, &yk);
    let prior_d = Tensor::from_slice(&mean()).index_select(0, &dropped_idx());
    let prior_err = max_abs(&(&prior_d - &m_exact));
    for (name, x) in [
        (
            "projection",
            projection::sample(
                sde.as_ref(),
                &model,
                &op,
                &y,
                &ProjectionConfig::default(),
                &mut |_| {},
            )
            .unwrap()
            .x,
        ),
        (
            "replacement",
            replacement::sample(
                sde.as_ref(),
                &model,
                &op,
                &y,
                &ReplacementConfig::default(),
                &mut |_| {},
            )
            .unwrap()
            .x,
        ),
    ] {
        let resid = max_abs(&(op.forward(&x).unwrap() - &y));
        assert!(resid < 1e-9, "{name}: ‖A x − y‖∞ = {resid}");
        let d = flat(&x).index_select(1, &dropped_idx());
        let (sm, _) = moments(&d);
        let err = max_abs(&(&sm - &m_exact));
        println!("{name}: posterior-mean error {err:.4} (prior mean error {prior_err:.4})");
        assert!(
            err < 0.25 * prior_err + 0.05,
            "{name}: posterior-mean error {err} vs prior-mean error {prior_err}"
        );
    }
}

#[test]
fn projection_config_presets_and_validation() {
    let ct = ProjectionConfig::ct();
    assert_eq!((ct.snr, ct.lambda), (0.246, 0.841));
    let mri = ProjectionConfig::mri();
    assert_eq!((mri.snr, mri.lambda), (0.517, 1.0));
    let json = serde_json::to_string(&ct).unwrap();
    let back: ProjectionConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ct);
    let partial: ProjectionConfig = serde_json::from_str(r#"{"lambda": 0.5}"#).unwrap();
    assert_eq!(partial.snr, ProjectionConfig::default().snr);
    let (sde, model) = setup(true);
    let bad = ProjectionConfig {
        lambda: 1.5,
        ..ProjectionConfig::default()
    };
    let y = Tensor::zeros([1, 1, 3, 3], (Kind::Double, tch::Device::Cpu));
    let e = projection::sample(sde.as_ref(), &model, &masking(), &y, &bad, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("lambda"), "{e}");
    // Wrong measurement shape names both shapes.
    let y = Tensor::zeros([1, 1, 4, 4], (Kind::Double, tch::Device::Cpu));
    let e = projection::sample(
        sde.as_ref(),
        &model,
        &masking(),
        &y,
        &ProjectionConfig::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("[B, 1, 3, 3]") && e.contains("[1, 1, 4, 4]"),
        "{e}"
    );
}

/// Colorization through the same replacement sampler: `T` is score_sde's orthonormal colour
/// decoupling and `Λ` keeps its gray channel, so every sample reproduces the gray measurement
/// (to f64 rounding: `x_mean`'s kept part is `m(eps) y = y` for VE).
#[test]
fn replacement_colorization_is_measurement_consistent() {
    use scoreinv::models::analytic::GaussianMixture;
    use scoreinv::operators::Grayscale;
    tch::set_num_threads(1);
    let d = 12;
    let cov: Vec<Vec<f64>> = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| 0.2 * 0.5f64.powi((i as i32 - j as i32).abs()))
                .collect()
        })
        .collect();
    let p = GaussianMixture::gaussian(&vec![0.4; d], &cov)
        .unwrap()
        .with_sample_shape(&[3, 2, 2])
        .unwrap();
    let sde: Arc<dyn Sde> = Arc::new(VeSde::new(0.01, 10.0, 50).unwrap());
    let model = p.perturbed(sde.clone());
    let op = Grayscale::new(2, 2).unwrap();
    let x = p.sample(16, Kind::Double, tch::Device::Cpu);
    let y = op.forward(&x).unwrap();
    let out = replacement::sample(
        sde.as_ref(),
        &model,
        &op,
        &y,
        &ReplacementConfig::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.x.size(), vec![16, 3, 2, 2]);
    let resid = max_abs(&(op.forward(&out.x).unwrap() - &y));
    assert!(resid < 1e-9, "‖A x − y‖∞ = {resid}");
}

/// `ScoreMethod` maps `[0, 1]` measurements into a centered model space (`x_model = 2x − 1`, so
/// `y_model = 2y − A 1`) and back: its samples reproduce the `[0, 1]` measurement on the kept
/// pixels exactly, and the summary has one mean and one std map per measurement.
#[test]
fn score_method_maps_centered_model_space() {
    use scoreinv::inverse::score_method::ScoreMethod;
    use scoreinv::inverse::study::Method;
    use scoreinv::models::model_dir::DataInfo;
    // Same σ(t) (σ_min 0.01, σ_max 20) as the method's SDE below, with fewer steps.
    let (_, model) = setup(false);
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, 3, 3],
        centered: true,
        data_range: None,
        source: "test".into(),
    };
    let op = Arc::new(masking());
    let method = ScoreMethod::new(
        Box::new(model),
        Box::new(VeSde::new(0.01, 20.0, 50).unwrap()),
        info,
        Box::new(ProjectionConfig::default()),
        4,
    )
    .unwrap();
    assert_eq!(method.name(), "score");
    let (x, _) = truth(false, 9);
    let x_unit = (x + 1.0) * 0.5;
    let y = op.forward(&Tensor::cat(&[&x_unit, &x_unit], 0)).unwrap();
    let post = method.posterior(op.as_ref(), &y).unwrap();
    assert_eq!(post.samples.size(), vec![2, 4, 1, 3, 3]);
    assert_eq!(post.mean.size(), vec![2, 1, 3, 3]);
    assert_eq!(post.std.size(), vec![2, 1, 3, 3]);
    let yk = flat(&x_unit).get(0).index_select(0, &kept_idx());
    let sk = flat(&post.samples.reshape([8, 1, 3, 3])).index_select(1, &kept_idx());
    assert!(max_abs(&(sk - yk.unsqueeze(0))) < 1e-9);
    // The model's 1-channel 3×3 images do not fit a 3-channel operator.
    let rgb = scoreinv::operators::Masking::from_2d(ndarray::Array2::ones((3, 3)), 3).unwrap();
    let e = method.check_operator(&rgb).unwrap_err().to_string();
    assert!(e.contains("1-channel") && e.contains("3-channel"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The projection sampler against the exact posterior of a correlated prior, noisy y, λ < 1.
// ---------------------------------------------------------------------------------------------
//
// What the sampler approximates. Each of its 2N projections moves the measured part `Λ T x`
// a fraction λ towards `ŷ_t = y + σ(t) Λ T z`, and nothing else in the sampler knows σ_y. Late
// in the run (σ(t) ≪ σ_y) the prior score barely moves `x` per step, so a constant λ pulls the
// measured part onto `y` itself: without the Langevin corrector the samples end on `{A x = y}`
// whatever λ is (MRI problem at σ_y = 0.3, n = 1000, no corrector, no `denoise`: whitened mean
// error 3.6–4.4 for λ from 0.05 to 0.7, like exact draws of the *noiseless* conditional, 4.4),
// i.e. the sampler conditions as if `y` were noiseless, and the final `denoise` projection
// (λ = 1) makes that exact. It is close to the noisy posterior only while σ_y is small against
// the prior's spread in the measured directions (MRI, λ = 0.7, `denoise`: whitened mean error
// 1.2 at σ_y = 0.05 and 0.93 at 0.1, but 4.1 at 0.3, where the noisy and the noiseless
// posteriors are 4.4 apart). What keeps a spread in the measured part is the corrector: its
// step `ε = 2 snr² (‖z‖/‖s‖)²` tends to a constant as σ(t) → 0 instead of shrinking, and each
// step's noise `√(2ε) z` against the λ-contraction leaves the measured part a stationary spread
// `≈ ε/(2λ)` per real measurement (and the pull `ε s(x)` towards the prior against `λ(y − ·)`
// a shrinkage), which match the posterior's `σ_y²/2` (and its shrinkage) for
//
//     λ ≈ ε / σ_y²   (with `denoise = false`),
//
// so λ < 1 is a variance-matching knob that must scale as snr²/σ_y². Measured on the MRI
// problem (n = 1000, exact-sample floors 0.26 / 0.26): without `denoise`, λ = 0.15 at
// σ_y = 0.3 gives whitened mean / cov errors 0.30 / 0.26 — the exact posterior to Monte-Carlo
// accuracy — against 4.1 / 0.78 for λ = 0.7 with `denoise`; λ = 0.054 at σ_y = 0.5 gives
// 0.63 / 0.29; halving snr moves the optimum at σ_y = 0.3 to λ ≈ 0.0375 (0.55 / 0.27). So
// `λ ≈ 0.32 snr² / σ_y²` here (`ε ≈ 0.32 snr²`; the prior alone predicts
// `2 snr² D / tr Σ⁻¹ = 0.44 snr²`). At σ_y = 0.1 that asks for λ > 1; λ = 0.7 and 0.85 without
// `denoise` give 0.66 / 0.43 and 0.62 / 0.55 (0.93 / 0.69 with it). For CT none of this helps:
// `T⁻¹` is the full-view FBP, and a correction that lives on 4 of 16 angle columns comes back
// through it with gains (eigenvalues of `A · FBP · Λᵀ`) between 0 and 0.71, so some measured
// directions are never fitted (rms residual 0.6 against σ_y = 0.3) and the per-pixel variances
// are ≈ 1.6× the posterior's, for every λ tried (0.1–1), with or without `denoise`. None of
// these errors shrinks with more steps (600 instead of 200: the same errors within their
// Monte-Carlo spread): they are the algorithm's, not the discretisation's.

/// Samples per posterior in the correlated-prior tests: Monte-Carlo floors (exact samples,
/// D = 64) `white_mean ≈ √(D/n) = 0.18`, `white_cov ≈ √((D+1)/n) = 0.18`.
const N_POST: i64 = 2000;

/// Samples of a sampler run as a control (λ = 0): its errors are bias, tens of times its
/// Monte-Carlo floors (`√(D/n) = 0.36`, `√((D+1)/n) = 0.36`), so a quarter of `N_POST` does.
const N_CONTROL: i64 = 500;

/// [`ct_problem`] with the CT preset (`λ = 0.841`, `snr = 0.246`, `denoise`).
fn radon_case() -> (Problem, ProjectionConfig) {
    (ct_problem(), ProjectionConfig::ct())
}

/// [`mri_problem`] with `λ = 0.7`, the default `snr = 0.206` and `denoise`.
fn mri_case() -> (Problem, ProjectionConfig) {
    let cfg = ProjectionConfig {
        lambda: 0.7,
        ..ProjectionConfig::default()
    };
    (mri_problem(), cfg)
}

/// `n` projection samples given `y` (VE, σ ∈ [0.01, 20], 200 steps), seeded.
fn projection_samples(
    p: &Problem,
    y: &Tensor,
    cfg: &ProjectionConfig,
    n: i64,
    seed: i64,
) -> Tensor {
    tch::set_num_threads(1);
    let sde: Arc<dyn Sde> = Arc::new(VeSde::new(0.01, 20.0, 200).unwrap());
    let model = p.prior.perturbed(sde.clone());
    let yb = y.repeat_interleave_self_int(n, 0, None::<i64>);
    tch::manual_seed(seed);
    projection::sample(sde.as_ref(), &model, p.op.as_ref(), &yb, cfg, &mut |_| {})
        .unwrap()
        .x
}

/// The errors of the sampler and of three controls for the measurement drawn with `seed`
/// (`run` > 0: the same measurement, other random numbers for the sampler):
/// the sampler; exact draws of the prior; the sampler's samples checked against the posterior
/// of another measurement (`seed + 1000`); the sampler with λ = 0 (only the final `denoise`
/// projection conditions: the measured part is replaced, the correlation never carries it to
/// the rest).
fn projection_errors(
    p: &Problem,
    cfg: &ProjectionConfig,
    seed: i64,
    run: i64,
) -> [PosteriorErrors; 4] {
    let meas = p.measure(seed);
    let s = projection_samples(p, &meas.y, cfg, N_POST, seed + 1 + 100 * run);
    let ok = PosteriorErrors::of(&s, &p.lg, &meas.m, &meas.c);
    tch::manual_seed(seed + 2);
    let prior = gaussian_draws(N_POST, &p.lg.mu, &p.lg.sigma);
    let prior = PosteriorErrors::of(&prior, &p.lg, &meas.m, &meas.c);
    let other = p.measure(seed + 1000);
    let wrong_y = PosteriorErrors::of(&s, &p.lg, &other.m, &other.c);
    let cfg0 = ProjectionConfig {
        lambda: 0.0,
        ..*cfg
    };
    let s0 = projection_samples(p, &meas.y, &cfg0, N_CONTROL, seed + 3);
    let lambda0 = PosteriorErrors::of(&s0, &p.lg, &meas.m, &meas.c);
    [ok, prior, wrong_y, lambda0]
}

const CONTROLS: [&str; 3] = ["prior draws", "wrong y", "λ = 0"];

/// Runs the case for measurement 1: the sampler must pass `tol`, every control must fail it by
/// more than 4× (its largest ratio error / tolerance).
fn check_projection_case(name: &str, (p, cfg): (Problem, ProjectionConfig), tol: PosteriorErrors) {
    let [ok, controls @ ..] = projection_errors(&p, &cfg, 1, 0);
    println!("{name}: sampler {ok} (ratio {:.2})", ok.ratio(&tol));
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

/// Sparse-view CT ([`ct_problem`]: 8×8, correlated prior, 4 of 16 views, σ_y = 0.3) with the
/// CT preset (λ = 0.841, snr 0.246, `denoise`), 2000 samples, against the exact posterior.
///
/// Measured (`projection_correlated_seed_study`) for measurements 1…5: whitened mean 8.24,
/// 2.87, 4.13, 6.51, 2.43; whitened cov 4.86, 5.48, 5.56, 5.36, 5.75; relative mean 0.37,
/// 0.29, 0.24, 0.30, 0.20; relative cov 0.149, 0.137, 0.141, 0.149, 0.146. Monte-Carlo spread
/// (measurement 1, five sets of random numbers): 8.22–8.28, 4.36–4.86, 0.360–0.367,
/// 0.148–0.150, so the spread over measurements dominates. All far above the exact-sample
/// floors (0.18, 0.18, 0.01, 0.02) because of the FBP gain (see above): the sampler is a rough
/// posterior approximation here, and the test pins how rough. Tolerances ≈ 1.4× the largest
/// of the five. Controls, same check: prior draws (whitened cov 371–388: ratio ≥ 46), the
/// samples against another measurement's posterior (whitened mean 61–213: ratio ≥ 5) and λ = 0
/// (whitened cov 202–249, relative mean 0.78–0.86: ratio ≥ 25) all fail by more than 4×.
#[test]
fn projection_ct_correlated_prior_matches_exact_posterior() {
    let tol = PosteriorErrors {
        white_mean: 12.0,
        white_cov: 8.0,
        rel_mean: 0.5,
        rel_cov: 0.2,
    };
    check_projection_case("CT", radon_case(), tol);
}

/// Undersampled MRI ([`mri_problem`]: 8×8, correlated prior, 4 of 8 k-space columns, complex
/// noise σ_y = 0.1) with λ = 0.7, snr 0.206, `denoise`, 2000 samples, against the exact
/// posterior.
///
/// Measured for measurements 1…5: whitened mean 0.93, 0.67, 0.57, 0.68, 0.54; whitened cov
/// 0.70, 0.66, 0.68, 0.68, 0.66; relative mean 0.017, 0.019, 0.013, 0.010, 0.019; relative cov
/// 0.015, 0.014, 0.013, 0.014, 0.014. Monte-Carlo spread (measurement 1, five sets of random
/// numbers): 0.928–0.931, 0.694–0.696, 0.016–0.021, 0.013–0.015. Exact-sample floors 0.18,
/// 0.18, 0.009, 0.014: the unmeasured directions are right (relative cov at the floor); the
/// whitened cov is not, because the final λ = 1 projection leaves no spread in the 24 real
/// measured directions of the mirrored columns 3, 4, 5, whose posterior spread is ≈ σ_y/√2,
/// which alone costs √(24/64) = 0.61 (the unpaired column 1 is only half corrected per
/// projection and keeps some). Tolerances ≈ 1.5× the largest of the five (1.3× for the
/// whitened cov, which barely varies). Controls, same check: prior draws (ratio ≈ 350), the
/// samples against another measurement's posterior (whitened mean 83–219: ratio ≥ 59) and
/// λ = 0 (whitened mean 5.7–10.6, relative mean 0.17–0.22, whitened cov 3.6–3.8: ratio ≥ 6.4)
/// fail by more than 4×.
#[test]
fn projection_mri_correlated_prior_matches_exact_posterior() {
    let tol = PosteriorErrors {
        white_mean: 1.4,
        white_cov: 0.9,
        rel_mean: 0.03,
        rel_cov: 0.022,
    };
    check_projection_case("MRI", mri_case(), tol);
}

/// The seed study behind the tolerances above (`--ignored`; `CASES=mri` runs one case):
/// errors of the sampler and of the controls for measurements 1…5, then the sampler's errors
/// for measurement 1 with four other sets of random numbers (its Monte-Carlo spread).
#[test]
#[ignore]
fn projection_correlated_seed_study() {
    let which = std::env::var("CASES").unwrap_or("ct,mri".into());
    for (name, (p, cfg)) in [("ct", radon_case()), ("mri", mri_case())] {
        if !which.contains(name) {
            continue;
        }
        for seed in 1..=5 {
            let t = std::time::Instant::now();
            let [ok, controls @ ..] = projection_errors(&p, &cfg, seed, 0);
            println!("{name} seed {seed} ({:.1} s)", t.elapsed().as_secs_f64());
            println!("  {:>11}: {ok}", "sampler");
            for (what, e) in CONTROLS.iter().zip(controls) {
                println!("  {what:>11}: {e}");
            }
        }
        // The Monte-Carlo spread alone: measurement 1, other random numbers for the sampler.
        for run in 1..=4 {
            let [ok, ..] = projection_errors(&p, &cfg, 1, run);
            println!("{name} seed 1 run {run}: sampler {ok}");
        }
    }
}

/// The warm start (CCDF, `t0`) where the sampler is exact: started from exact posterior draws
/// diffused to `t0 = 0.3`, the projection sampler (independent blocks, noiseless y, λ = 1)
/// still samples the exact posterior (the dropped block's draws diffused to `t0` have the law
/// of `p_t0`, which the reverse SDE carries back to the prior marginal = the posterior), in
/// about 30 % of the steps. The predictor runs alone (no Langevin corrector, which would mix any
/// start towards `p_t` by itself), so the start's law is what the run transports. Control: a
/// point start (the posterior mean for every sample) has far too little spread after the same
/// run.
#[test]
fn projection_warm_start_from_posterior_draws_is_exact_and_a_point_start_is_not() {
    let (sde, model) = setup(true);
    let (x, yk) = truth(true, 4);
    let y = measurement(&x).repeat([N_SAMPLES, 1, 1, 1]);
    let (m, c) = posterior_noiseless(true, &yk);
    let op = masking();
    let cfg = ProjectionConfig {
        lambda: 1.0,
        t0: Some(0.3),
        corrector: scoreinv::sampling::CorrectorKind::None,
        ..ProjectionConfig::default()
    };
    let start_from = |dropped: Tensor| {
        let s = Tensor::zeros([N_SAMPLES, D as i64], (Kind::Double, tch::Device::Cpu));
        let s = s.index_copy(1, &dropped_idx(), &dropped);
        let s = s.index_copy(
            1,
            &kept_idx(),
            &yk.unsqueeze(0).expand([N_SAMPLES, 5], false),
        );
        s.reshape([N_SAMPLES, 1, H as i64, H as i64])
    };
    let run = |start: &Tensor| {
        projection::sample_warm(
            sde.as_ref(),
            &model,
            &op,
            &y,
            &cfg,
            Some(start),
            &mut |_| {},
        )
        .unwrap()
    };
    tch::manual_seed(11);
    let draws = start_from(gaussian_draws(N_SAMPLES, &m, &c));
    let out = run(&draws);
    // 200 steps from T: those at or below t0 = 0.3, one predictor NFE each, + denoising.
    assert!((59 + 1..=61 + 1).contains(&out.nfe), "nfe {}", out.nfe);
    check_exact(
        &out.x,
        &m,
        &c,
        "projection, warm start from posterior draws",
    );
    // The relative Frobenius error of the sample covariance, exact draws vs a point start.
    let rel_cov = |x: &Tensor| {
        let (_, sc) = moments(&flat(x).index_select(1, &dropped_idx()));
        ((&sc - &c).square().sum(Kind::Double).sqrt() / c.square().sum(Kind::Double).sqrt())
            .double_value(&[])
    };
    let point = start_from(m.unsqueeze(0).expand([N_SAMPLES, 4], false).contiguous());
    let point_out = run(&point);
    let (e_draws, e_point) = (rel_cov(&out.x), rel_cov(&point_out.x));
    println!("relative covariance error: draws {e_draws:.3}, point start {e_point:.3}");
    assert!(e_draws < 0.1, "warm start from posterior draws: {e_draws}");
    assert!(
        e_point > 2.0 * e_draws.max(0.05),
        "a point start kept the posterior spread: {e_point}"
    );
    // The point start at the posterior mean keeps the posterior mean in expectation (each step
    // is affine in the state, and the start's mean is that of the diffused posterior): within
    // 5 standard errors + 0.03 (measured: −0.055, i.e. inside 5 standard errors). Control: a
    // start one posterior standard deviation off moves it (measured 1.08; must exceed 0.1).
    let mean_excess = |x: &Tensor| dropped_mean_excess(x, &m, &c);
    let off = start_from(
        (&m + c.diag(0).sqrt())
            .unsqueeze(0)
            .expand([N_SAMPLES, 4], false)
            .contiguous(),
    );
    let (e_mean, e_off) = (mean_excess(&point_out.x), mean_excess(&run(&off).x));
    println!("mean excess over 5 SE: posterior-mean start {e_mean:.4}, off start {e_off:.4}");
    assert!(
        e_mean < 0.03,
        "a start at the posterior mean moved the mean: {e_mean}"
    );
    assert!(e_off > 0.1, "control: an off start kept the mean: {e_off}");
    // Without t0 a start is refused; t0 outside (eps, T] too.
    let cold = ProjectionConfig { t0: None, ..cfg };
    assert!(projection::sample_warm(
        sde.as_ref(),
        &model,
        &op,
        &y,
        &cold,
        Some(&draws),
        &mut |_| {}
    )
    .is_err());
    let bad = ProjectionConfig {
        t0: Some(1.5),
        ..cfg
    };
    assert!(projection::sample_warm(
        sde.as_ref(),
        &model,
        &op,
        &y,
        &bad,
        Some(&draws),
        &mut |_| {}
    )
    .is_err());
}

//! The projection (Song et al. 2022) and replacement (score_sde) samplers against the exact
//! Gaussian posterior, with the exact score of a Gaussian prior on 3×3 images and a pixel mask
//! (`models::analytic`, VE SDE). Sample moments are compared with tolerances of 5 Monte-Carlo
//! standard errors plus a stated discretisation allowance.
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
    use scoreinv::inverse::score_method::{ScoreAlgorithm, ScoreMethod};
    use scoreinv::inverse::study::Method;
    use scoreinv::models::model_dir::DataInfo;
    // Same σ(t) (σ_min 0.01, σ_max 20) as the method's SDE below, with fewer steps.
    let (_, model) = setup(false);
    let info = DataInfo {
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
        ScoreAlgorithm::Projection(ProjectionConfig::default()),
        Some(op.clone()),
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

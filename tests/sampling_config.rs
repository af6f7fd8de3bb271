//! Names and defaults the CLI maps flags onto, refusals with reasons, and Tweedie's denoiser.
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::sampling::ald::AldConfig;
use scoreinv::sampling::likelihood::{Divergence, LikelihoodConfig};
use scoreinv::sampling::ode::{OdeConfig, OdeSolver};
use scoreinv::sampling::{
    sampler_entry, tweedie_denoise, CorrectorKind, PcConfig, PcSampler, PredictorKind,
};
use scoreinv::sde::{Sde, SubVpSde, VeSde, VpSde};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

#[test]
fn kinds_parse_from_cli_and_score_sde_names() {
    for (s, name) in [
        ("pc", "pc"),
        ("ODE", "ode"),
        ("ald", "ald"),
        ("ancestral", "ancestral"),
        ("ddpm", "ancestral"),
    ] {
        assert_eq!(sampler_entry(s).unwrap().name, name, "{s}");
    }
    assert!(sampler_entry("euler").is_err());
    for (s, p) in [
        ("euler-maruyama", PredictorKind::EulerMaruyama),
        ("euler_maruyama", PredictorKind::EulerMaruyama),
        ("reverse-diffusion", PredictorKind::ReverseDiffusion),
        ("reverse_diffusion", PredictorKind::ReverseDiffusion),
        ("ancestral", PredictorKind::Ancestral),
        ("ancestral_sampling", PredictorKind::Ancestral),
        ("none", PredictorKind::None),
    ] {
        assert_eq!(s.parse::<PredictorKind>().unwrap(), p, "{s}");
    }
    for (s, c) in [
        ("langevin", CorrectorKind::Langevin),
        ("ald", CorrectorKind::Ald),
        ("none", CorrectorKind::None),
    ] {
        assert_eq!(s.parse::<CorrectorKind>().unwrap(), c, "{s}");
    }
    assert_eq!("rk45".parse::<OdeSolver>().unwrap(), OdeSolver::Rk45);
    assert_eq!("exact".parse::<Divergence>().unwrap(), Divergence::Exact);
    let e = "leapfrog".parse::<PredictorKind>().unwrap_err().to_string();
    assert!(
        e.contains("leapfrog") && e.contains("reverse-diffusion"),
        "{e}"
    );
    let e = "mcmc".parse::<CorrectorKind>().unwrap_err().to_string();
    assert!(e.contains("langevin, ald, none"), "{e}");
}

#[test]
fn configs_default_to_published_values_and_round_trip_serde() {
    let pc: PcConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(pc, PcConfig::default());
    assert_eq!(pc.predictor, PredictorKind::ReverseDiffusion);
    assert_eq!(pc.corrector, CorrectorKind::Langevin);
    assert_eq!((pc.snr, pc.n_steps, pc.noise_removal), (0.16, 1, true));
    let json = r#"{"predictor":"euler-maruyama","corrector":"ald","snr":0.075}"#;
    let pc: PcConfig = serde_json::from_str(json).unwrap();
    assert_eq!(pc.predictor, PredictorKind::EulerMaruyama);
    assert_eq!(pc.corrector, CorrectorKind::Ald);
    let back: PcConfig = serde_json::from_str(&serde_json::to_string(&pc).unwrap()).unwrap();
    assert_eq!(back, pc);
    let ald: AldConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(
        (
            ald.sigma_begin,
            ald.sigma_end,
            ald.n_levels,
            ald.n_steps_each,
            ald.step_lr
        ),
        (1.0, 0.01, 10, 100, 2e-5)
    );
    let ode: OdeConfig = serde_json::from_str("{}").unwrap();
    assert_eq!((ode.integrator.rtol, ode.integrator.atol), (1e-5, 1e-5));
    let lik: LikelihoodConfig = serde_json::from_str("{}").unwrap();
    assert_eq!((lik.eps, lik.divergence), (1e-5, Divergence::Rademacher));
}

#[test]
fn bad_settings_are_refused_with_reasons() {
    let ve = VeSde::new(0.01, 10.0, 100).unwrap();
    let subvp = SubVpSde::new(0.1, 20.0, 100).unwrap();
    let err = |r: scoreinv::Result<PcSampler>| r.err().expect("must fail").to_string();
    let e = err(PcSampler::new(
        &subvp,
        PcConfig {
            predictor: PredictorKind::Ancestral,
            ..PcConfig::default()
        },
    ));
    assert!(e.contains("VE and VP SDEs only"), "{e}");
    let e = err(PcSampler::new(
        &ve,
        PcConfig {
            predictor: PredictorKind::None,
            corrector: CorrectorKind::None,
            ..PcConfig::default()
        },
    ));
    assert!(e.contains("would return the prior"), "{e}");
    let e = err(PcSampler::new(
        &ve,
        PcConfig {
            snr: -1.0,
            ..PcConfig::default()
        },
    ));
    assert!(e.contains("snr must be positive"), "{e}");
    let e = err(PcSampler::new(
        &ve,
        PcConfig {
            eps: Some(2.0),
            ..PcConfig::default()
        },
    ));
    assert!(e.contains("0 < eps < T"), "{e}");
    // Wrong per-sample shape and NaN inputs.
    let model = GaussianMixture::gaussian(&[0.0, 0.0], &[vec![1.0, 0.0], vec![0.0, 1.0]])
        .unwrap()
        .perturbed(Arc::new(ve.clone()));
    let s = PcSampler::new(&ve, PcConfig::default()).unwrap();
    let e = s
        .sample_from(
            &model,
            Tensor::zeros([4, 3], (Kind::Float, Device::Cpu)),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected shape [B] ++ [2]"), "{e}");
    let e = s
        .sample_from(
            &model,
            Tensor::full([4, 2], f64::NAN, (Kind::Float, Device::Cpu)),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
}

#[test]
fn tweedie_matches_gaussian_posterior_mean() {
    // For x₀ ~ N(μ, Σ), x_t = m x₀ + s z: E[x₀ | x_t] = μ + m Σ (m²Σ + s²I)⁻¹ (x_t − m μ).
    let mu = [1.0, -2.0];
    let sig = [[2.0, 0.6], [0.6, 1.0]];
    let sde: Arc<dyn Sde> = Arc::new(VpSde::new(0.1, 20.0, 1000).unwrap());
    let g = GaussianMixture::gaussian(&mu, &[sig[0].to_vec(), sig[1].to_vec()]).unwrap();
    let model = g.perturbed(sde.clone());
    let t = 0.4;
    let (m, s) = sde.mean_coeff_std(t);
    let x = Tensor::from_slice(&[0.3f64, 0.7, -1.0, 2.0]).reshape([2, 2]);
    let got =
        Vec::<f64>::try_from(tweedie_denoise(sde.as_ref(), &model, &x, t).flatten(0, -1)).unwrap();
    let c = [
        [m * m * sig[0][0] + s * s, m * m * sig[0][1]],
        [m * m * sig[1][0], m * m * sig[1][1] + s * s],
    ];
    let det = c[0][0] * c[1][1] - c[0][1] * c[1][0];
    let ci = [
        [c[1][1] / det, -c[0][1] / det],
        [-c[1][0] / det, c[0][0] / det],
    ];
    for b in 0..2 {
        let r = [
            x.double_value(&[b, 0]) - m * mu[0],
            x.double_value(&[b, 1]) - m * mu[1],
        ];
        let v = [
            ci[0][0] * r[0] + ci[0][1] * r[1],
            ci[1][0] * r[0] + ci[1][1] * r[1],
        ];
        for i in 0..2 {
            let want = mu[i] + m * (sig[i][0] * v[0] + sig[i][1] * v[1]);
            let have = got[b as usize * 2 + i];
            assert!((have - want).abs() < 1e-10, "Tweedie {have} vs {want}");
        }
    }
}

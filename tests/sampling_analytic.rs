//! The exact mixture scores every sampler test relies on, checked against independent truths:
//! a hand-written 2-D Gaussian density, autograd of the log-density, Bayes' rule, and the
//! Monte-Carlo moments of the mixture's own sampler.
mod sampling_util;

use scoreinv::models::analytic::GaussianMixture;
use scoreinv::models::ScoreModel;
use scoreinv::sde::{Sde, SubVpSde, VeSde, VpSde};
use std::f64::consts::PI;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

fn mixture3d() -> GaussianMixture {
    GaussianMixture::new(
        &[0.3, 0.7],
        &[vec![1.0, -2.0, 0.5], vec![-1.5, 0.5, 2.0]],
        &[
            vec![
                vec![1.0, 0.3, 0.1],
                vec![0.3, 0.5, -0.2],
                vec![0.1, -0.2, 0.8],
            ],
            vec![
                vec![0.4, 0.0, 0.1],
                vec![0.0, 2.0, 0.3],
                vec![0.1, 0.3, 0.7],
            ],
        ],
    )
    .unwrap()
}

fn vals(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// log N(x; μ, Σ) for 2-D, written out with the explicit 2×2 inverse and determinant.
fn log_normal_2d(x: [f64; 2], mu: [f64; 2], s: [f64; 4]) -> f64 {
    let det = s[0] * s[3] - s[1] * s[2];
    let (dx, dy) = (x[0] - mu[0], x[1] - mu[1]);
    let quad = (s[3] * dx * dx - (s[1] + s[2]) * dx * dy + s[0] * dy * dy) / det;
    -0.5 * quad - 0.5 * det.ln() - (2.0 * PI).ln()
}

#[test]
fn gaussian_log_prob_matches_closed_form_at_every_time() {
    let mu = [0.7, -1.2];
    let s = [1.5, 0.4, 0.4, 0.6];
    let g = GaussianMixture::gaussian(&mu, &[vec![s[0], s[1]], vec![s[2], s[3]]]).unwrap();
    let pts = [[0.0, 0.0], [1.0, -1.0], [3.0, 2.0], [-2.0, 0.5]];
    let x = Tensor::from_slice(&pts.concat()).reshape([4, 2]);
    let lp = vals(&g.log_prob(&x));
    for (p, l) in pts.iter().zip(&lp) {
        // f64 closed form vs eigendecomposition: agreement to rounding (1e-10).
        assert!(
            (l - log_normal_2d(*p, mu, s)).abs() < 1e-10,
            "{l} vs closed form"
        );
    }
    // Perturbed by VP at t = 0.3: N(m μ, m² Σ + s² I).
    let sde: Arc<dyn Sde> = Arc::new(VpSde::new(0.1, 20.0, 1000).unwrap());
    let (m, sd) = sde.mean_coeff_std(0.3);
    let pm = g.perturbed(sde);
    let lp = vals(&pm.log_prob(&x, &Tensor::full([4], 0.3, (Kind::Double, Device::Cpu))));
    let sc = [
        m * m * s[0] + sd * sd,
        m * m * s[1],
        m * m * s[2],
        m * m * s[3] + sd * sd,
    ];
    for (p, l) in pts.iter().zip(&lp) {
        let want = log_normal_2d(*p, [m * mu[0], m * mu[1]], sc);
        assert!((l - want).abs() < 1e-10, "perturbed {l} vs {want}");
    }
}

#[test]
fn mixture_score_is_gradient_of_log_prob_for_every_sde() {
    tch::manual_seed(0);
    let mix = mixture3d();
    let sdes: Vec<Arc<dyn Sde>> = vec![
        Arc::new(VeSde::new(0.01, 10.0, 100).unwrap()),
        Arc::new(VpSde::new(0.1, 20.0, 100).unwrap()),
        Arc::new(SubVpSde::new(0.1, 20.0, 100).unwrap()),
    ];
    for sde in sdes {
        let pm = mix.perturbed(sde);
        // A different t per sample, including small t where the score is steep.
        let x = Tensor::randn([6, 3], (Kind::Double, Device::Cpu)) * 2.0;
        let t = Tensor::from_slice(&[1e-3, 0.01, 0.1, 0.3, 0.7, 1.0]);
        let xg = x.set_requires_grad(true);
        let lp = pm.log_prob(&xg, &t).sum(Kind::Double);
        let g = Tensor::run_backward(&[lp], &[&xg], false, false)
            .pop()
            .unwrap();
        let s = pm.score(&x.detach(), &t);
        let err = vals(&(&s - &g).abs().max());
        let scale = vals(&g.abs().max())[0].max(1.0);
        // Same f64 quantities by two routes: agreement to 1e-9 relative.
        assert!(err[0] < 1e-9 * scale, "score vs autograd: {err:?}");
        // Class posterior sums to one and its log-gradient matches autograd.
        let post = pm.class_posterior(&x.detach(), &t);
        let sums = vals(&post.sum_dim_intlist(1, false, Kind::Double));
        assert!(sums.iter().all(|v| (v - 1.0).abs() < 1e-12));
        let labels = Tensor::from_slice(&[0i64, 1, 0, 1, 1, 0]);
        let xg = x.detach().set_requires_grad(true);
        let lpost = pm
            .class_log_posterior(&xg, &t)
            .gather(1, &labels.unsqueeze(1), false)
            .sum(Kind::Double);
        let g = Tensor::run_backward(&[lpost], &[&xg], false, false)
            .pop()
            .unwrap();
        let cg = pm.class_log_posterior_grad(&x.detach(), &t, &labels);
        let err = vals(&(&cg - &g).abs().max())[0];
        assert!(
            err < 1e-9 * vals(&g.abs().max())[0].max(1.0),
            "classifier grad {err}"
        );
    }
}

#[test]
fn posterior_is_bayes_rule_on_closed_form_densities() {
    let w = [0.2, 0.8];
    let mus = [[-3.0, 0.0], [2.0, 1.0]];
    let covs = [[0.5, 0.1, 0.1, 0.3], [1.0, -0.2, -0.2, 0.7]];
    let mix = GaussianMixture::new(
        &w,
        &[mus[0].to_vec(), mus[1].to_vec()],
        &[
            vec![covs[0][..2].to_vec(), covs[0][2..].to_vec()],
            vec![covs[1][..2].to_vec(), covs[1][2..].to_vec()],
        ],
    )
    .unwrap();
    let pts = [[-1.0, 0.2], [0.0, 0.0], [1.0, 1.5]];
    let x = Tensor::from_slice(&pts.concat()).reshape([3, 2]);
    let post = vals(&mix.posterior(&x));
    let lp = vals(&mix.log_prob(&x));
    for (i, p) in pts.iter().enumerate() {
        let a = w[0] * log_normal_2d(*p, mus[0], covs[0]).exp();
        let b = w[1] * log_normal_2d(*p, mus[1], covs[1]).exp();
        assert!((post[2 * i] - a / (a + b)).abs() < 1e-12);
        assert!((lp[i] - (a + b).ln()).abs() < 1e-10);
    }
}

#[test]
fn mixture_sampler_matches_mixture_moments() {
    tch::manual_seed(7);
    let mix = mixture3d();
    let n = 20000;
    let x = mix.sample(n, Kind::Double, Device::Cpu);
    assert_eq!(x.size(), vec![n, 3]);
    // 4 standard errors of the sample mean/covariance, no bias allowance (exact sampler).
    sampling_util::assert_moments("mixture sampler", &x, &mix.mean(), &mix.covariance(), 0.0);
}

#[test]
fn invalid_mixtures_are_refused_with_a_reason() {
    let e = GaussianMixture::gaussian(&[0.0, 0.0], &[vec![1.0, 2.0], vec![2.0, 1.0]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not positive definite"), "{e}");
    let e = GaussianMixture::gaussian(&[0.0, 0.0], &[vec![1.0, 0.5], vec![0.0, 1.0]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not symmetric"), "{e}");
    let e = GaussianMixture::isotropic(&[0.5, -0.5], &[vec![0.0], vec![1.0]], &[1.0, 1.0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("positive"), "{e}");
    let e = GaussianMixture::new(&[1.0], &[vec![0.0, 1.0]], &[vec![vec![1.0]]])
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected shape [2, 2]"), "{e}");
}

//! Probability-flow ODE: samples match Gaussian data, encode → decode is the identity, the
//! fixed-step solvers converge at their order, and slerp keeps latent norms.
mod sampling_util;

use sampling_util::{assert_moments, describe};
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::sampling::ode::{
    integrate, interpolate, IntegratorConfig, OdeConfig, OdeSampler, OdeSolver,
};
use scoreinv::sde::{Sde, VeSde, VpSde};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

const MU: [f64; 2] = [1.0, -0.5];
const SIGMA: [f64; 4] = [1.0, 0.5, 0.5, 0.8];

fn data() -> GaussianMixture {
    GaussianMixture::gaussian(&MU, &[SIGMA[..2].to_vec(), SIGMA[2..].to_vec()]).unwrap()
}

#[test]
fn rk45_ode_samples_match_gaussian_moments() {
    tch::set_num_threads(1);
    tch::manual_seed(31);
    let sdes: Vec<(&str, Arc<dyn Sde>)> = vec![
        ("vp", Arc::new(VpSde::new(0.1, 20.0, 1000).unwrap())),
        ("ve", Arc::new(VeSde::new(0.01, 50.0, 1000).unwrap())),
    ];
    for (label, sde) in sdes {
        let model = data().perturbed(sde.clone());
        let sampler = OdeSampler::new(sde.as_ref(), OdeConfig::default()).unwrap();
        let out = sampler
            .sample(&model, 3000, None, (Kind::Double, Device::Cpu), &mut |_| {})
            .unwrap();
        eprintln!(
            "ODE {label}: nfe {} ({} accepted, {} rejected), {}",
            out.nfe,
            out.n_accepted,
            out.n_rejected,
            describe(&out.x, &MU, &SIGMA)
        );
        // One RK45 step = 6 evaluations, + 2 for the initial step, + 1 noise removal.
        assert_eq!(out.nfe, 6 * (out.n_accepted + out.n_rejected) + 3);
        // The ODE with the exact score is deterministic, so the prior mismatch is never
        // forgotten: the true p_T is N(m μ, m²Σ + s²I), the sampler starts from N(0, s² I),
        // which the flow carries to a mean offset ≈ m |μ_i| √λ_max / s(T): VP 0.0066 · 1.2,
        // VE (σ_max = 50, published) 1 · 1.2 / 50 = 0.024. We allow 0.03 on top of 4 SE; the
        // solver error (rtol 1e-5) is negligible.
        assert_moments(&format!("ODE {label}"), &out.x, &MU, &SIGMA, 0.03);
    }
}

#[test]
fn encode_decode_round_trip() {
    tch::set_num_threads(1);
    tch::manual_seed(32);
    let sde: Arc<dyn Sde> = Arc::new(VpSde::new(0.1, 20.0, 1000).unwrap());
    let model = data().perturbed(sde.clone());
    let cfg = OdeConfig {
        noise_removal: false,
        ..OdeConfig::default()
    };
    let sampler = OdeSampler::new(sde.as_ref(), cfg).unwrap();
    let x = data().sample(64, Kind::Double, Device::Cpu);
    let z = sampler.encode(&model, &x, &mut |_| {}).unwrap();
    // The latent of Gaussian data is (nearly) standard normal: its norm² is ≈ D = 2 on average.
    let zn = z.x.square().sum(Kind::Double).double_value(&[]) / 64.0;
    assert!((zn - 2.0).abs() < 1.0, "mean ‖z‖² = {zn}, expected ≈ 2");
    let back = sampler.decode(&model, &z.x, &mut |_| {}).unwrap();
    let rel = ((&back.x - &x).norm().double_value(&[])) / x.norm().double_value(&[]);
    eprintln!(
        "round trip: relative error {rel:e}, nfe {} + {}",
        z.nfe, back.nfe
    );
    // rtol = atol = 1e-5 both ways: the round trip must be within 1e-3 relative.
    assert!(rel < 1e-3, "encode→decode relative error {rel}");
}

#[test]
fn fixed_step_solvers_converge_at_their_order() {
    // dy/dt = −y t on [0, 1], y(0) = 1: y(1) = e^{−1/2}. Halving h divides the error by 2^p.
    let exact = (-0.5f64).exp();
    let y0 = Tensor::ones([1, 1], (Kind::Double, Device::Cpu));
    for (solver, order) in [
        (OdeSolver::Euler, 1.0),
        (OdeSolver::Heun, 2.0),
        (OdeSolver::Rk4, 4.0),
    ] {
        let err = |n: usize| {
            let cfg = IntegratorConfig {
                solver,
                n_steps: n,
                ..IntegratorConfig::default()
            };
            let sol = integrate(&mut |t, y| y * (-t), &y0, 0.0, 1.0, &cfg, &mut |_| {}).unwrap();
            (sol.y.double_value(&[0, 0]) - exact).abs()
        };
        let rate = (err(20) / err(40)).log2();
        assert!(
            (rate - order).abs() < 0.2,
            "{solver:?}: observed order {rate:.3}, expected {order}"
        );
    }
    // RK45 on the same problem, integrated backwards, meets its tolerance.
    let cfg = IntegratorConfig::default();
    let y1 = Tensor::full([1, 1], exact, (Kind::Double, Device::Cpu));
    let sol = integrate(&mut |t, y| y * (-t), &y1, 1.0, 0.0, &cfg, &mut |_| {}).unwrap();
    assert!((sol.y.double_value(&[0, 0]) - 1.0).abs() < 1e-5);
}

#[test]
fn slerp_keeps_norms_and_endpoints() {
    let z0 = Tensor::from_slice(&[3.0f64, 0.0, 0.0, 1.0]).reshape([2, 2]);
    let z1 = Tensor::from_slice(&[0.0f64, 3.0, 0.0, 1.0]).reshape([2, 2]);
    let path = interpolate(&z0, &z1, 5).unwrap();
    assert_eq!(path.len(), 5);
    assert!((&path[0] - &z0).abs().max().double_value(&[]) < 1e-12);
    assert!((&path[4] - &z1).abs().max().double_value(&[]) < 1e-12);
    // Orthogonal equal-norm latents: every interpolant has norm 3 (linear would dip to 2.12).
    let mid = &path[2];
    let n0 = mid.get(0).norm().double_value(&[]);
    assert!((n0 - 3.0).abs() < 1e-12, "slerp norm {n0}");
    // Identical latents (θ = 0) fall back to linear interpolation without NaN.
    assert!((&path[2].get(1) - z0.get(1)).abs().max().double_value(&[]) < 1e-12);
}

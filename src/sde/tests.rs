//! Tests of the SDE formulas against independent computations: Euler–Maruyama simulation of the
//! forward SDE, the NCSN/DDPM discrete chains, and the Gaussian prior density.

use super::*;
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn full(t: f64, n: i64) -> Tensor {
    Tensor::full([n], t, F64)
}

/// Simulates `dx = f dt + g dw` from `x(0) = x0 (+ extra0 · z)` with `k` Euler–Maruyama steps
/// on `m` independent scalar paths, evaluating `f` and `g` at the step midpoints, and returns
/// `(t, sample mean, sample std)` at each time in `checkpoints` (multiples of 1/k). The drift of
/// these SDEs is linear, `f(x, t) = a(t) x`; `a(t)` and `g(t)` are read from the trait at each
/// step and the paths advanced in plain f64 (cheap, and independent of libtorch's threads).
fn simulate(
    sde: &dyn Sde,
    x0: f64,
    extra0: f64,
    m: usize,
    k: usize,
    checkpoints: &[f64],
) -> Vec<(f64, f64, f64)> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let mut normal = move || -> f64 { StandardNormal.sample(&mut rng) };
    let dt = 1.0 / k as f64;
    let mut x: Vec<f64> = (0..m).map(|_| x0 + extra0 * normal()).collect();
    let one = Tensor::ones([1, 1], F64);
    let mut out = vec![];
    for i in 0..k {
        let t_mid = full((i as f64 + 0.5) * dt, 1);
        let a = sde.drift(&one, &t_mid).double_value(&[0, 0]);
        let g = sde.diffusion(&t_mid).double_value(&[0]);
        let sdt = g * dt.sqrt();
        for v in x.iter_mut() {
            *v += a * *v * dt + sdt * normal();
        }
        let t_now = (i + 1) as f64 * dt;
        if checkpoints.iter().any(|c| (c - t_now).abs() < 0.5 * dt) {
            let mean = x.iter().sum::<f64>() / m as f64;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m as f64 - 1.0);
            out.push((t_now, mean, var.sqrt()));
        }
    }
    out
}

/// `marginal_prob` against the simulated forward SDE. Monte-Carlo error with `M` paths: the
/// sample mean has standard error `s/√M`, the sample standard deviation `≈ s/√(2M)` (Gaussian
/// data); we allow 5 standard errors (a false alarm has probability < 1e-6 per check) plus 1 %
/// of `s` for the Euler–Maruyama bias, which for the midpoint rule is O(Δt²·∫β²) and for the
/// drift product `Π(1 − ½βΔt)` vs `exp(−½∫β)` is ≤ Δt ∫β²/8 ≈ 0.4 % of the mean at Δt = 1/4000.
fn check_marginals(sde: &dyn Sde, x0: f64, extra0: f64) {
    let m = 20_000usize;
    let checkpoints = [0.1, 0.25, 0.5, 1.0];
    let sims = simulate(sde, x0, extra0, m, 4000, &checkpoints);
    assert_eq!(sims.len(), checkpoints.len());
    for (t, mean, std) in sims {
        let x0t = Tensor::full([1, 1], x0, F64);
        let (mu, s) = sde.marginal_prob(&x0t, &full(t, 1));
        let mu = mu.double_value(&[0, 0]);
        let s = s.double_value(&[0]);
        let (mc, sc) = sde.mean_coeff_std(t);
        assert!((mc * x0 - mu).abs() < 1e-12 && (sc - s).abs() < 1e-12);
        let tol_mean = 5.0 * s / (m as f64).sqrt() + 0.01 * s + 0.005 * mu.abs();
        let tol_std = 5.0 * s / (2.0 * m as f64).sqrt() + 0.01 * s;
        assert!(
            (mean - mu).abs() < tol_mean,
            "{:?} t={t}: simulated mean {mean}, marginal_prob {mu} (tol {tol_mean})",
            sde.kind()
        );
        assert!(
            (std - s).abs() < tol_std,
            "{:?} t={t}: simulated std {std}, marginal_prob {s} (tol {tol_std})",
            sde.kind()
        );
    }
}

#[test]
fn ve_marginal_matches_simulation() {
    // score_sde's VE marginal std is σ(t) = σ_min (σ_max/σ_min)^t, while the SDE started at a
    // point only accumulates ∫₀ᵗ g² = σ(t)² − σ_min². The two agree when x(0) already carries
    // N(0, σ_min²) noise, which is how we start the simulation.
    let sde = VeSde::new(0.01, 50.0, 1000).unwrap();
    check_marginals(&sde, 1.5, 0.01);
}

#[test]
fn vp_marginal_matches_simulation() {
    check_marginals(&VpSde::new(0.1, 20.0, 1000).unwrap(), 1.5, 0.0);
}

#[test]
fn subvp_marginal_matches_simulation() {
    check_marginals(&SubVpSde::new(0.1, 20.0, 1000).unwrap(), 1.5, 0.0);
}

/// Times that land robustly on grid index i (t·(N−1) = i + 0.25, away from the floor boundary).
fn grid_times(n: usize) -> Tensor {
    Tensor::from_slice(
        &(0..n)
            .map(|i| ((i as f64 + 0.25) / (n as f64 - 1.0)).min(1.0))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn ve_discretize_telescopes() {
    // G_0 = σ_0 and G_i² = σ_i² − σ_{i−1}² for i ≥ 1, so Σ_{i≥1} G_i² = σ_{N−1}² − σ_0²
    // = σ_max² − σ_min² (exactly, up to f64 rounding of the sum: relative 1e-12).
    let sde = VeSde::new(0.01, 50.0, 1000).unwrap();
    let t = grid_times(1000);
    let x = Tensor::zeros([1000, 2], F64);
    let (f, g) = sde.discretize(&x, &t);
    assert_eq!(f.abs().max().double_value(&[]), 0.0);
    let g: Vec<f64> = Vec::try_from(&g).unwrap();
    assert!((g[0] - 0.01).abs() < 1e-12, "G_0 = {}", g[0]);
    let sum: f64 = g[1..].iter().map(|v| v * v).sum();
    let expected = 50.0f64.powi(2) - 0.01f64.powi(2);
    assert!(
        (sum - expected).abs() < 1e-12 * expected,
        "Σ G_i² = {sum}, σ_max² − σ_min² = {expected}"
    );
    // The grid σ_i are the continuous σ(t) at t = i/(N−1).
    let sig = sde.discrete_sigmas();
    for i in [0usize, 1, 500, 999] {
        let s = sde.sigma(i as f64 / 999.0);
        assert!((sig[i] - s).abs() < 1e-12 * s);
    }
}

/// max_i |ln ᾱ_i − 2 L((i+1)/N)| for the DDPM chain read through `discretize`.
fn vp_log_alpha_gap(n: usize) -> f64 {
    let sde = VpSde::new(0.1, 20.0, n).unwrap();
    let t = grid_times(n);
    let x = Tensor::ones([n as i64, 1], F64);
    let (f, g) = sde.discretize(&x, &t);
    let sqrt_alpha: Vec<f64> = Vec::try_from(&(f + 1.0).flatten(0, -1)).unwrap();
    let g: Vec<f64> = Vec::try_from(&g).unwrap();
    let betas = sde.discrete_betas();
    let cum = sde.alphas_cumprod();
    let mut log_abar = 0.0;
    let mut gap: f64 = 0.0;
    for i in 0..n {
        // G_i = √β_i and the drift part is (√(1−β_i) − 1) x.
        assert!((g[i] * g[i] - betas[i]).abs() < 1e-14);
        assert!((sqrt_alpha[i] * sqrt_alpha[i] - (1.0 - betas[i])).abs() < 1e-14);
        log_abar += (sqrt_alpha[i] * sqrt_alpha[i]).ln();
        assert!((log_abar.exp() - cum[i]).abs() < 1e-12);
        let l = sde.log_mean_coeff((i + 1) as f64 / n as f64);
        gap = gap.max((log_abar - 2.0 * l).abs());
    }
    gap
}

#[test]
fn vp_discretize_matches_continuous_schedule() {
    // ln ᾱ_i = Σ_{j≤i} ln(1 − β_j) with β_j = β(j/(N−1))/N, while 2L(t) = −∫₀ᵗ β. The gap is
    // the second-order term Σ β_j²/2 ≤ ∫β² /(2N) ≈ 134/(2N) plus an O(1/N) Riemann error, so
    // it is below 0.1 at N = 1000 and shrinks like 1/N (ratio ≈ 4 from N = 1000 to 4000).
    let g1 = vp_log_alpha_gap(1000);
    let g4 = vp_log_alpha_gap(4000);
    assert!(g1 < 0.1, "gap at N=1000: {g1}");
    let ratio = g1 / g4;
    assert!(
        (3.5..4.5).contains(&ratio),
        "gap should be O(1/N): N=1000 {g1}, N=4000 {g4}, ratio {ratio}"
    );
}

#[test]
fn subvp_discretize_is_euler_maruyama() {
    let sde = SubVpSde::new(0.1, 20.0, 100).unwrap();
    let t = Tensor::from_slice(&[0.05f64, 0.5, 0.9]);
    let x = Tensor::from_slice(&[1.0f64, -2.0, 3.0]).reshape([3, 1]);
    let (f, g) = sde.discretize(&x, &t);
    let dt = 0.01;
    let f_ref = sde.drift(&x, &t) * dt;
    let g_ref = sde.diffusion(&t) * dt.sqrt();
    assert!((f - f_ref).abs().max().double_value(&[]) < 1e-15);
    assert!((g - g_ref).abs().max().double_value(&[]) < 1e-15);
}

/// log N(z; 0, s² I) summed by hand.
fn gaussian_logp(z: &[f64], s: f64) -> f64 {
    z.iter()
        .map(|v| -0.5 * v * v / (s * s) - 0.5 * (2.0 * std::f64::consts::PI * s * s).ln())
        .sum()
}

#[test]
fn prior_logp_is_gaussian_density() {
    let vals: Vec<f64> = (0..24).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let z = Tensor::from_slice(&vals).reshape([2, 3, 2, 2]);
    let cases: [(Box<dyn Sde>, f64); 3] = [
        (Box::new(VeSde::new(0.01, 50.0, 1000).unwrap()), 50.0),
        (Box::new(VpSde::new(0.1, 20.0, 1000).unwrap()), 1.0),
        (Box::new(SubVpSde::new(0.1, 20.0, 1000).unwrap()), 1.0),
    ];
    for (sde, s) in cases {
        let lp: Vec<f64> = Vec::try_from(&sde.prior_logp(&z)).unwrap();
        for b in 0..2 {
            let want = gaussian_logp(&vals[b * 12..(b + 1) * 12], s);
            assert!(
                (lp[b] - want).abs() < 1e-10 * want.abs(),
                "{:?}: prior_logp {} vs {want}",
                sde.kind(),
                lp[b]
            );
        }
        // The prior sampler draws from the same Gaussian: its std is s.
        let p = sde.prior_sampling(&[20_000, 1], F64);
        let std = p.std(true).double_value(&[]);
        // 5 standard errors of a sample std (s/√(2M)).
        assert!(
            (std - s).abs() < 5.0 * s / (40_000f64).sqrt(),
            "prior std {std}"
        );
    }
}

/// The on-device σ_i / β_i used by `discretize` equal the host tables (f64, to 1e-14 relative),
/// for N = 1 and larger N, so the loop can compute them without uploading a table.
#[test]
fn discrete_tables_on_device_equal_the_host_tables() {
    for n in [1usize, 2, 7, 1000] {
        let idx = Tensor::arange(n as i64, (Kind::Int64, Device::Cpu));
        let ve = ve::VeSde::new(0.01, 50.0, n).unwrap();
        let vp = vp::VpSde::new(0.1, 20.0, n).unwrap();
        for (dev, host) in [
            (ve.discrete_sigma_at(&idx), ve.discrete_sigmas()),
            (vp.discrete_beta_at(&idx), vp.discrete_betas()),
        ] {
            assert_eq!(dev.kind(), Kind::Double);
            let d = Vec::<f64>::try_from(dev).unwrap();
            assert_eq!(d.len(), host.len());
            for (a, b) in d.iter().zip(&host) {
                assert!((a - b).abs() <= 1e-14 * b.abs(), "n={n}: {a} vs {b}");
            }
        }
    }
}

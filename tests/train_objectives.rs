//! Losses against closed forms for Gaussian data, and the optimiser against its formulas.
//!
//! Closed form used throughout: for `x₀ ~ N(μ, Σ)` in `d` dimensions and
//! `x_t = m x₀ + s z`, `p_t = N(mμ, C)` with `C = m²Σ + s²I` and exact score
//! `s*(x) = −C⁻¹(x − mμ)`. Then `s·s*(x_t) + z = −s m C⁻¹(x₀ − μ) + (I − s²C⁻¹) z`, so
//! `E‖s·s*(x_t) + z‖² = s²m² tr(C⁻¹ΣC⁻¹) + tr((I − s²C⁻¹)²)`
//! `= s² tr(C⁻¹(C − s²I)C⁻¹) + d − 2s² tr C⁻¹ + s⁴ tr C⁻² = d − s² tr C⁻¹`
//! (using `m²Σ = C − s²I`). This is the minimum of the DSM objective at time t.
//! For SSM with variance reduction: `E[vᵀ∇(vᵀs*)] = tr ∇s* = −tr C⁻¹` and
//! `E[½‖s*‖²] = ½ tr C⁻¹`, so `E[ℓ]/s² = −½ tr C⁻¹`.
//!
//! Every Monte-Carlo check allows 5 standard errors of the mean of the per-sample losses
//! (computed from their sample standard deviation), a false alarm rate below 1e-6.

use scoreinv::sde::{Sde, SdeConfig, SubVpSde, VeSde, VpSde};
use scoreinv::train::config::{preset, TrainConfig};
use scoreinv::train::data::Gaussian2d;
use scoreinv::train::losses::{ddpm_per_sample, dsm_per_sample, ncsn_per_sample, ssm_per_sample};
use scoreinv::train::optim::{
    clip_grad_norm, clip_grad_norm_flat, zero_grads, Adam, Ema, FlatParams, OptimConfig,
};
use scoreinv::train::rng::{Purpose, Stream};
use tch::{Device, Kind, Tensor};

const N: usize = 100_000;

fn data(seed: u64) -> (Gaussian2d, Tensor, Tensor) {
    tch::set_num_threads(1);
    let g = Gaussian2d::toy();
    let x0 = g.sample(N, seed).to_kind(Kind::Double);
    let z = Stream::new(seed, 1, Purpose::Loss).normal(&[N as i64, 2], Kind::Double, Device::Cpu);
    (g, x0, z)
}

fn check_mc(per_sample: &Tensor, expected: f64, what: &str) {
    let mean = per_sample.mean(Kind::Double).double_value(&[]);
    let se = per_sample.std(true).double_value(&[]) / (per_sample.size()[0] as f64).sqrt();
    assert!(
        (mean - expected).abs() < 5.0 * se + 1e-12,
        "{what}: Monte-Carlo loss {mean}, closed form {expected} (5 SE = {})",
        5.0 * se
    );
}

#[test]
fn dsm_of_exact_score_equals_closed_form() {
    let (g, x0, z) = data(1);
    let sdes: Vec<Box<dyn Sde>> = vec![
        Box::new(VeSde::new(0.01, 50.0, 1000).unwrap()),
        Box::new(VpSde::new(0.1, 20.0, 1000).unwrap()),
        Box::new(SubVpSde::new(0.1, 20.0, 1000).unwrap()),
    ];
    for sde in &sdes {
        for &t in &[0.01, 0.2, 0.5, 0.9] {
            let tt = Tensor::full([N as i64], t, (Kind::Double, Device::Cpu));
            let score = |x: &Tensor, t: &Tensor| g.perturbed_score(sde.as_ref(), x, t);
            let min = g.dsm_minimum(sde.as_ref(), t);
            let what = format!("{:?} t={t}", sde.kind());
            // Default reduction ½Σ over the d = 2 dimensions.
            let l = dsm_per_sample(&score, sde.as_ref(), &x0, &tt, &z, false, false);
            check_mc(&l, 0.5 * min, &format!("{what} sum"));
            // reduce_mean: mean over dimensions.
            let l = dsm_per_sample(&score, sde.as_ref(), &x0, &tt, &z, true, false);
            check_mc(&l, min / 2.0, &format!("{what} mean"));
            // Likelihood weighting: ½Σ‖s + z/σ‖² g² = ½ (d − σ² tr C⁻¹) g²/σ².
            let (_, s) = sde.mean_coeff_std(t);
            let g2 = sde
                .diffusion(&Tensor::from_slice(&[t]))
                .double_value(&[0])
                .powi(2);
            let l = dsm_per_sample(&score, sde.as_ref(), &x0, &tt, &z, false, true);
            check_mc(&l, 0.5 * min * g2 / (s * s), &format!("{what} likelihood"));
        }
    }
}

#[test]
fn dsm_of_wrong_score_is_larger() {
    // A score off by a constant vector δ adds ½ s² ‖δ‖² to the ½Σ loss in expectation: the
    // test would catch a loss that ignores the model.
    let (g, x0, z) = data(2);
    let sde = VpSde::new(0.1, 20.0, 1000).unwrap();
    let t = 0.3;
    let tt = Tensor::full([N as i64], t, (Kind::Double, Device::Cpu));
    let delta = Tensor::from_slice(&[0.5f64, -0.25]);
    let score = |x: &Tensor, t: &Tensor| g.perturbed_score(&sde, x, t) + &delta;
    let (_, s) = sde.mean_coeff_std(t);
    let l = dsm_per_sample(&score, &sde, &x0, &tt, &z, false, false);
    check_mc(
        &l,
        0.5 * g.dsm_minimum(&sde, t) + 0.5 * s * s * (0.25 + 0.0625),
        "shifted score",
    );
}

#[test]
fn ssm_of_exact_score_equals_closed_form() {
    let (g, x0, z) = data(3);
    let n = N as i64;
    let sde = VeSde::new(0.01, 50.0, 1000).unwrap();
    for &t in &[0.2, 0.6] {
        let tt = Tensor::full([n], t, (Kind::Double, Device::Cpu));
        let score = |x: &Tensor, t: &Tensor| g.perturbed_score(&sde, x, t);
        let (m, s) = sde.mean_coeff_std(t);
        let c = g.cov_with(m, s);
        let tr_inv = (c[0][0] + c[1][1]) / (c[0][0] * c[1][1] - c[0][1] * c[1][0]);
        let expected = -0.5 * s * s * tr_inv;
        let mut rng = Stream::new(9, 0, Purpose::Loss);
        let projections = [
            (
                "rademacher",
                rng.rademacher(&[n, 2], Kind::Double, Device::Cpu),
            ),
            ("gaussian", rng.normal(&[n, 2], Kind::Double, Device::Cpu)),
        ];
        for (name, v) in projections {
            for vr in [true, false] {
                let l = ssm_per_sample(&score, &sde, &x0, &tt, &z, &v, vr, false, false);
                check_mc(&l, expected, &format!("SSM {name} vr={vr} t={t}"));
            }
        }
        // Two particles per sample average to the same expectation.
        let v2 = rng.rademacher(&[2 * n, 2], Kind::Double, Device::Cpu);
        let l = ssm_per_sample(&score, &sde, &x0, &tt, &z, &v2, true, false, false);
        assert_eq!(l.size(), vec![n]);
        check_mc(&l, expected, "SSM 2 particles");
    }
}

#[test]
fn ncsn_and_ddpm_of_exact_score_equal_closed_form() {
    let (g, x0, z) = data(4);
    let n = N as i64;
    let ve = VeSde::new(0.01, 50.0, 1000).unwrap();
    let sig = ve.discrete_sigmas();
    for &i in &[0usize, 300, 999] {
        let labels = Tensor::full([n], i as i64, (Kind::Int64, Device::Cpu));
        let s_i = sig[i];
        // The exact score at noise level σ_i (VE: m = 1, s = σ_i), checking the σ the loss
        // passes to the score function.
        let score = |x: &Tensor, sigma: &Tensor| {
            let sv: Vec<f64> = Vec::try_from(sigma).unwrap();
            assert!(sv.iter().all(|&v| (v - s_i).abs() < 1e-12 * s_i));
            g.score_with(x, &vec![(1.0, s_i); sv.len()])
        };
        let l = ncsn_per_sample(&score, &ve, &x0, &labels, &z, false);
        check_mc(
            &l,
            0.5 * g.dsm_minimum_with(1.0, s_i),
            &format!("NCSN i={i}"),
        );
    }
    let vp = VpSde::new(0.1, 20.0, 1000).unwrap();
    let abar = vp.alphas_cumprod();
    for &i in &[0usize, 100, 500, 999] {
        let labels = Tensor::full([n], i as i64, (Kind::Int64, Device::Cpu));
        let (m, s) = (abar[i].sqrt(), (1.0 - abar[i]).sqrt());
        // ε*(x, i) = −s · ∇log q_i(x), the optimal noise predictor.
        let eps = |x: &Tensor, c: &Tensor| {
            let cv: Vec<f64> = Vec::try_from(c).unwrap();
            assert!(
                cv.iter().all(|&v| v == i as f64),
                "DDPM passes the timestep index"
            );
            g.score_with(x, &vec![(m, s); cv.len()]) * (-s)
        };
        let l = ddpm_per_sample(&eps, &vp, &x0, &labels, &z, true);
        check_mc(&l, g.dsm_minimum_with(m, s) / 2.0, &format!("DDPM i={i}"));
    }
}

#[test]
fn published_defaults() {
    let o = OptimConfig::default();
    assert_eq!(
        (
            o.lr,
            o.beta1,
            o.beta2,
            o.eps,
            o.warmup,
            o.grad_clip,
            o.ema_rate,
            o.weight_decay
        ),
        (2e-4, 0.9, 0.999, 1e-8, 5000, 1.0, 0.999, 0.0)
    );
    let c = TrainConfig::default();
    assert_eq!(c.training.batch_size, 128);
    assert_eq!(c.loss.eps, 1e-5);
    assert!(!c.loss.reduce_mean && !c.loss.likelihood_weighting);
    assert_eq!(c.sde, SdeConfig::ve_default());
    // An empty TOML gives the defaults; TOML round-trips; unknown keys are refused.
    let empty: TrainConfig = toml::from_str("").unwrap();
    assert_eq!(empty, c);
    let p = preset("toy2d").unwrap();
    let back: TrainConfig = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    let err = toml::from_str::<TrainConfig>("[optim]\nlearning_rate = 1.0\n").unwrap_err();
    assert!(err.to_string().contains("learning_rate"), "{err}");
    assert!(preset("ct-ellipses")
        .unwrap_err()
        .to_string()
        .contains("tiny"));
    // Warm-up: lr · min(k/warmup, 1), first step at lr 0 as upstream.
    assert_eq!(o.lr_at(0), 0.0);
    assert!((o.lr_at(2500) - 1e-4).abs() < 1e-18);
    assert_eq!(o.lr_at(5000), 2e-4);
    assert_eq!(o.lr_at(1_000_000), 2e-4);
}

#[test]
fn adam_matches_scalar_reference() {
    // Loss Σ c_j p_j² / 2 → gradient c_j p_j; three steps against the scalar formulas in f64.
    let cfg = OptimConfig {
        lr: 0.1,
        weight_decay: 0.01,
        ..OptimConfig::default()
    };
    let p = Tensor::from_slice(&[1.0f64, -2.0, 0.5]).set_requires_grad(true);
    let c = [0.3, 1.0, 4.0];
    let ct = Tensor::from_slice(&c);
    let mut adam = Adam::new(std::slice::from_ref(&p));
    let mut rp = [1.0f64, -2.0, 0.5];
    let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
    for k in 1..=3 {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
        (p.square() * &ct * 0.5).sum(Kind::Double).backward();
        adam.step(std::slice::from_ref(&p), &cfg, cfg.lr);
        for j in 0..3 {
            let gj = c[j] * rp[j] + cfg.weight_decay * rp[j];
            m[j] = 0.9 * m[j] + 0.1 * gj;
            v[j] = 0.999 * v[j] + 0.001 * gj * gj;
            let mh = m[j] / (1.0 - 0.9f64.powi(k));
            let denom = v[j].sqrt() / (1.0 - 0.999f64.powi(k)).sqrt() + cfg.eps;
            rp[j] -= cfg.lr * mh / denom;
        }
    }
    let got: Vec<f64> = Vec::try_from(&p.detach()).unwrap();
    for j in 0..3 {
        // f64 throughout; only the order of floating-point operations differs.
        assert!(
            (got[j] - rp[j]).abs() < 1e-12,
            "p[{j}] = {}, reference {}",
            got[j],
            rp[j]
        );
    }
}

#[test]
fn clipping_and_ema_follow_their_formulas() {
    let a = Tensor::from_slice(&[3.0f32]).set_requires_grad(true);
    let b = Tensor::from_slice(&[4.0f32]).set_requires_grad(true);
    (&a * &a * 0.5 + &b * &b * 0.5).sum(Kind::Float).backward(); // grads (3, 4), norm 5
    let norm = clip_grad_norm(&[a.shallow_clone(), b.shallow_clone()], 1.0);
    assert!((norm - 5.0).abs() < 1e-6);
    let ga = a.grad().double_value(&[0]);
    let gb = b.grad().double_value(&[0]);
    // g · 1/(5 + 1e-6), within f32 rounding.
    assert!((ga - 3.0 / (5.0 + 1e-6)).abs() < 1e-6 && (gb - 4.0 / (5.0 + 1e-6)).abs() < 1e-6);
    // Below the threshold nothing changes.
    let n2 = clip_grad_norm(&[a.shallow_clone(), b.shallow_clone()], 10.0);
    assert!((n2 - 1.0).abs() < 1e-5);
    assert_eq!(a.grad().double_value(&[0]), ga);

    // EMA: decay_n = min(rate, (1+n)/(10+n)).
    let p = Tensor::from_slice(&[0.0f64]);
    let mut ema = Ema::new(std::slice::from_ref(&p), 0.999);
    let mut reference = 0.0;
    for (n, target) in [(1.0, 1.0f64), (2.0, 2.0), (3.0, -1.0)] {
        let pt = Tensor::from_slice(&[target]);
        ema.update(std::slice::from_ref(&pt));
        let d: f64 = f64::min(0.999, (1.0 + n) / (10.0 + n));
        reference -= (1.0 - d) * (reference - target);
    }
    assert!((ema.shadow[0].double_value(&[0]) - reference).abs() < 1e-15);
    assert_eq!(ema.num_updates, 3);
}

/// Parameters re-homed into one buffer keep their values and shapes and share the buffer;
/// gradients move into one buffer after the first backward pass and later passes accumulate
/// there; clip, Adam and EMA on the buffers give the per-tensor results (bitwise for Adam and
/// the EMA given the same gradients; the clipped norm up to summation order). A parameter
/// without gradient (frozen) is not moved.
#[test]
fn flat_buffers_match_the_per_tensor_optimiser() {
    let make = |frozen_grad: bool| -> Vec<Tensor> {
        vec![
            Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0, 0.25, -1.5])
                .reshape([2, 3])
                .set_requires_grad(true),
            Tensor::from_slice(&[0.7f32]).set_requires_grad(true),
            Tensor::from_slice(&[4.0f32, 5.0]).set_requires_grad(frozen_grad),
            Tensor::from_slice(&[-0.3f32; 20]).set_requires_grad(true),
        ]
    };
    let loss = |ps: &[Tensor]| -> Tensor {
        ps[0].square().sum(Kind::Float) * 0.8
            + (&ps[1] * 3.0).sin().sum(Kind::Float)
            + ps[2].sum(Kind::Float) * ps[1].sum(Kind::Float)
            + ps[3].pow_tensor_scalar(3).sum(Kind::Float)
    };
    let cfg = OptimConfig {
        lr: 0.05,
        ..OptimConfig::default()
    };
    let trainable = [0usize, 1, 3];
    let (pa, pb) = (make(false), make(false));
    let mut flat = FlatParams::rehome(&pa).unwrap();
    assert_eq!(flat.len(), 4);
    for (a, b) in pa.iter().zip(&pb) {
        assert!(a.equal(b) && a.size() == b.size());
    }
    // Segments start at multiples of 16 elements: 6 → 16, 1 → 32, 2 → 48, 20 → 68 (of 80).
    assert_eq!(flat.data.size(), [80]);
    let _ = flat.data.shallow_clone().get(16).fill_(0.75);
    assert_eq!(pa[1].double_value(&[0]), 0.75);
    let _ = flat.data.shallow_clone().get(16).fill_(0.7);
    let ta: Vec<Tensor> = trainable.iter().map(|&i| pa[i].shallow_clone()).collect();
    let tb: Vec<Tensor> = trainable.iter().map(|&i| pb[i].shallow_clone()).collect();
    let mut adam_a = Adam::with_flat(&flat, &trainable);
    let mut adam_b = Adam::new(&tb);
    let mut ema_a = Ema::with_flat(&flat, 0.9);
    let mut ema_b = Ema::new(&pb, 0.9);
    for step in 0..4 {
        zero_grads(&ta, Some(&flat));
        zero_grads(&tb, None);
        loss(&pa).backward();
        loss(&pb).backward();
        assert!(flat.home_grads(&pa));
        let g = flat.grads().unwrap();
        // The gradient views are the buffer: zeroing the buffer zeroes them.
        assert!(pa[0].grad().equal(&g.narrow(0, 0, 6).view([2, 3])));
        for &i in &trainable {
            assert!(pa[i].grad().equal(&pb[i].grad()), "step {step} grad {i}");
        }
        let max = if step == 2 { 0.5 } else { 100.0 };
        let na = clip_grad_norm_flat(&ta, Some(&flat), max);
        let nb = clip_grad_norm(&tb, max);
        assert!((na - nb).abs() <= 1e-6 * nb, "{na} vs {nb}");
        adam_a.step_flat(&ta, Some(&flat), &cfg, cfg.lr);
        adam_b.step(&tb, &cfg, cfg.lr);
        ema_a.update_flat(&pa, Some(&flat));
        ema_b.update(&pb);
        for i in 0..4 {
            let d = (&pa[i] - &pb[i]).abs().max().double_value(&[]);
            // Bitwise until the clipped step, then within the norm's rounding.
            assert!(
                d <= if step < 2 { 0.0 } else { 1e-6 },
                "step {step} param {i}: {d}"
            );
            let e = (&ema_a.shadow[i] - &ema_b.shadow[i])
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                e <= if step < 2 { 0.0 } else { 1e-6 },
                "step {step} ema {i}: {e}"
            );
        }
    }
    // The frozen parameter never moved; its moments and gradient segment stay zero.
    assert!(pa[2].equal(&Tensor::from_slice(&[4.0f32, 5.0])));
    assert_eq!(
        flat.grads()
            .unwrap()
            .narrow(0, 32, 2)
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
    assert_eq!(adam_a.m.len(), 3);
    // Mixed dtypes cannot share a buffer.
    assert!(FlatParams::rehome(&[
        Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        Tensor::zeros([2], (Kind::Double, tch::Device::Cpu))
    ])
    .is_none());
}

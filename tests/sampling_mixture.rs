//! Mode weights of a two-component mixture (weights 0.2 / 0.8, modes 8 apart, std 0.5):
//! annealed samplers (PC on VE, NCSN annealed Langevin) recover them; plain Langevin with the
//! exact *data* score does not (the motivating example of Song & Ermon 2019, §3.2.2: the score
//! carries no information about the relative mass of separated modes, and Langevin cannot
//! cross the low-density gap between them in reasonable time).
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::sampling::ald::{self, AldConfig};
use scoreinv::sampling::{PcConfig, PcSampler};
use scoreinv::sde::{Sde, VeSde};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

const W_LEFT: f64 = 0.2;

/// The tests seed libtorch's global generator; run them one at a time so that another test's
/// draws cannot interleave with theirs (which made the outcome depend on thread timing).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const N: i64 = 4000;

fn mixture() -> GaussianMixture {
    GaussianMixture::isotropic(
        &[W_LEFT, 1.0 - W_LEFT],
        &[vec![-4.0, 0.0], vec![4.0, 0.0]],
        &[0.5, 0.5],
    )
    .unwrap()
}

/// Fraction of samples in the left mode (x₀ < 0) and the binomial standard error √(w(1−w)/n).
fn left_weight(x: &Tensor) -> (f64, f64) {
    let left = x
        .select(1, 0)
        .lt(0.0)
        .to_kind(Kind::Double)
        .mean(Kind::Double);
    let w = left.double_value(&[]);
    (w, (W_LEFT * (1.0 - W_LEFT) / N as f64).sqrt())
}

/// All samples must sit in a mode (within 3 std of a mean): no stragglers in the gap.
fn assert_in_modes(label: &str, x: &Tensor) {
    let d = (x.select(1, 0).abs() - 4.0).abs().max().double_value(&[]);
    assert!(d < 2.5, "{label}: a sample is {d:.2} from both modes");
}

#[test]
fn pc_sampler_recovers_mode_weights() {
    tch::set_num_threads(1);
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(11);
    // σ_max = 20 ≥ the largest pairwise distance (8), Technique 1 of Song & Ermon 2020.
    let sde: Arc<dyn Sde> = Arc::new(VeSde::new(0.01, 20.0, 400).unwrap());
    let model = mixture().perturbed(sde.clone());
    let sampler = PcSampler::new(sde.as_ref(), PcConfig::default()).unwrap();
    let out = sampler
        .sample(&model, N, None, (Kind::Float, Device::Cpu), &mut |_| {})
        .unwrap();
    let (w, se) = left_weight(&out.x);
    eprintln!("PC: left weight {w:.4} (SE {se:.4})");
    assert!(
        (w - W_LEFT).abs() < 3.0 * se,
        "PC weight {w} vs {W_LEFT} ± 3·{se}"
    );
    assert_in_modes("PC", &out.x);
}

#[test]
fn annealed_langevin_recovers_mode_weights() {
    tch::set_num_threads(1);
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(12);
    let sde: Arc<dyn Sde> = Arc::new(VeSde::new(0.01, 20.0, 1000).unwrap());
    let model = mixture().perturbed(sde.clone());
    // NCSN's ε = 2e-5, σ_L = 0.01, with σ_1 = 10 ≥ mode distance. The weights are fixed at
    // the last level at which Langevin still crosses the gap between the modes; below it the
    // light mode keeps the excess mass 0.6 Φ(−4/σ*) of the level σ* it froze at. Over these
    // three decades NCSN's L = 10 (level ratio 0.46) freezes at σ* ≈ 2.5 (excess ≈ 0.03 > 3 SE);
    // L = 40 levels of T = 50 steps (ratio 0.84, same NFE budget order) lowers σ* to ≈ 1.6 and
    // the excess to ≈ 0.004, below the Monte-Carlo error.
    let cfg = AldConfig {
        sigma_begin: 10.0,
        n_levels: 40,
        n_steps_each: 50,
        ..AldConfig::default()
    };
    let out = ald::sample(
        sde.as_ref(),
        &model,
        &cfg,
        N,
        None,
        (Kind::Float, Device::Cpu),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(out.nfe, 2000);
    let (w, se) = left_weight(&out.x);
    eprintln!("ALD: left weight {w:.4} (SE {se:.4})");
    assert!(
        (w - W_LEFT).abs() < 3.0 * se,
        "ALD weight {w} vs {W_LEFT} ± 3·{se}"
    );
    assert_in_modes("ALD", &out.x);
}

#[test]
fn plain_langevin_with_data_score_gets_mode_weights_wrong() {
    tch::set_num_threads(1);
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(13);
    let data = mixture();
    // Start uniformly in [−8, 8]², run 1000 steps of size 0.1 with the exact data score.
    let x0 = Tensor::rand([N, 2], (Kind::Float, Device::Cpu)) * 16.0 - 8.0;
    let out = ald::langevin(&data, 0.0, 0.1, 1000, x0, &mut |_| {}).unwrap();
    let (w, se) = left_weight(&out.x);
    eprintln!("plain Langevin: left weight {w:.4} (SE {se:.4})");
    // Each sample stays in the basin it started in, so the estimate is ≈ 0.5, not 0.2: we
    // require an error above 0.2 (> 30 standard errors), i.e. the failure is not noise.
    assert!(
        (w - W_LEFT).abs() > 0.2,
        "plain Langevin weight {w} unexpectedly close to {W_LEFT}"
    );
    assert_in_modes("plain Langevin", &out.x);
}

//! Patch training (PaDIS) against exact scores.
//!
//! * The masked patch DSM loss of the exact score of a pixel-independent Gaussian prior whose
//!   mean depends on the position, `x ~ N(μ(r, c), s²)`, is the analytic minimum
//!   `E[ℓ | t, patch] = ½ · n_inside · s² / (s² + σ(t)²)` (per pixel:
//!   `σ s* + z = (s² z − σ e)/v` with `v = s² + σ²`, `e = x₀ − μ`, so `E[(σ s* + z)²] = s²/v`),
//!   within Monte-Carlo error; a score that ignores the position channels is well above it.
//! * A tiny NCSN++ trained by patch DSM on random patches of a stationary Gaussian field reaches
//!   the field's exact patch score `−(Σ_P + σ²I)⁻¹ (x − μ)` on patches inside the image; the
//!   untrained network (zero output, NCSN++'s `init_scale = 0`) is the control.
use scoreinv::models::model_dir::{load_model_dir, DataInfo};
use scoreinv::models::ScoreModel;
use scoreinv::sde::{Sde, SdeConfig};
use scoreinv::train::config::preset;
use scoreinv::train::data::Dataset;
use scoreinv::train::patches::{draw_corners, extract, masked_dsm_per_sample};
use scoreinv::train::rng::{Purpose, Stream};
use scoreinv::train::Trainer;
use tch::{Device, Kind, Tensor};

const S: f64 = 0.2;

/// μ(r, c) from the position channels in [−1, 1].
fn mu(pos: &Tensor) -> Tensor {
    let r = pos.narrow(1, 0, 1);
    let c = pos.narrow(1, 1, 1);
    r * &c * 0.4 + 0.5
}

#[test]
fn masked_patch_dsm_of_the_exact_score_is_the_analytic_minimum() {
    let (b, h, w, p) = (20_000usize, 11i64, 7i64, 4i64);
    let sde_cfg = SdeConfig::Ve {
        sigma_min: 0.01,
        sigma_max: 1.0,
        n: 1000,
    };
    let sde = sde_cfg.build().unwrap();
    let opts = (Kind::Double, Device::Cpu);
    // x₀ = μ(r, c) + s ε on the whole image, positions in the image frame.
    let rows = Tensor::arange(h, opts) * (2.0 / (h - 1) as f64) - 1.0;
    let cols = Tensor::arange(w, opts) * (2.0 / (w - 1) as f64) - 1.0;
    let pos = Tensor::stack(
        &[
            rows.unsqueeze(1).expand([h, w], false),
            cols.unsqueeze(0).expand([h, w], false),
        ],
        0,
    )
    .unsqueeze(0);
    let mut rng = Stream::new(7, 0, Purpose::Synthetic);
    let eps = rng.normal(&[b as i64, 1, h, w], Kind::Double, Device::Cpu);
    let x0 = mu(&pos) + eps * S;
    let corners = draw_corners(&mut rng, b, h, w, p);
    let patches = extract(&x0, p, &corners).unwrap();
    let t = Tensor::from_slice(&rng.uniform(b)).to_kind(Kind::Double) * (1.0 - 1e-5) + 1e-5;
    let z = rng.normal(&patches.x.size(), Kind::Double, Device::Cpu);
    let sigma = sde.marginal_prob(&x0, &t).1;
    let v = sigma.square() + S * S;
    let exact = |input: &Tensor, t: &Tensor| {
        let x = input.narrow(1, 0, 1);
        let pos = input.narrow(1, 1, 2);
        let var = sde.marginal_prob(&x, t).1.square() + S * S;
        -(x - mu(&pos)) / var.reshape([-1, 1, 1, 1])
    };
    let ignores_positions = |input: &Tensor, t: &Tensor| {
        let x = input.narrow(1, 0, 1);
        let var = sde.marginal_prob(&x, t).1.square() + S * S;
        -(x - 0.5) / var.reshape([-1, 1, 1, 1])
    };
    let loss = |f: &dyn Fn(&Tensor, &Tensor) -> Tensor| {
        masked_dsm_per_sample(f, sde.as_ref(), &patches, &t, &z, false, false)
            .mean(Kind::Double)
            .double_value(&[])
    };
    let inside = patches
        .mask
        .flatten(1, -1)
        .sum_dim_intlist(1i64, false, Kind::Double);
    let expected = (inside * 0.5 * (S * S) / v)
        .mean(Kind::Double)
        .double_value(&[]);
    let (l_exact, l_control) = (loss(&exact), loss(&ignores_positions));
    let rel = (l_exact - expected).abs() / expected;
    println!("expected {expected:.5}, exact score {l_exact:.5} (rel {rel:.2e}), no positions {l_control:.5}");
    // Monte-Carlo standard error ≈ 0.3 % at 20 000 patches.
    assert!(rel < 0.015, "exact score: {l_exact} vs analytic {expected}");
    assert!(
        l_control > expected * 1.05,
        "control {l_control} not above the minimum {expected}"
    );
}

/// `[n, 1, h, w]` samples of a stationary Gaussian field with mean `m` and covariance
/// `a² exp(−d²/(2ℓ²))` (plus a small nugget), and the covariance of a `p × p` patch.
fn field(n: i64, h: i64, w: i64, p: i64, seed: u64) -> (Tensor, Tensor) {
    let (a, l, nugget) = (0.2f64, 1.5f64, 1e-4f64);
    let cov = |side_h: i64, side_w: i64| {
        let k = side_h * side_w;
        let idx = Tensor::arange(k, (Kind::Double, Device::Cpu));
        let r = idx.divide_scalar_mode(side_w, "floor");
        let c = idx.remainder(side_w);
        let dr = r.unsqueeze(1) - r.unsqueeze(0);
        let dc = c.unsqueeze(1) - c.unsqueeze(0);
        let d2 = dr.square() + dc.square();
        (d2 * (-0.5 / (l * l))).exp() * (a * a)
            + Tensor::eye(k, (Kind::Double, Device::Cpu)) * nugget
    };
    let chol = cov(h, w).linalg_cholesky(false);
    let mut rng = Stream::new(seed, 0, Purpose::Synthetic);
    let e = rng.normal(&[h * w, n], Kind::Double, Device::Cpu);
    let x = chol.matmul(&e).transpose(0, 1).reshape([n, 1, h, w]) + 0.5;
    (x, cov(p, p))
}

/// The relative L2 error of `σ·s` against the exact `σ·s*` of field patches inside the image.
fn patch_score_error(model: &dyn ScoreModel, sde: &dyn Sde, sigma_t: f64, p: i64) -> f64 {
    let (x, cov_p) = field(256, 8, 8, p, 99);
    let mut rng = Stream::new(5, 0, Purpose::Eval);
    let z = rng.normal(&x.size(), Kind::Double, Device::Cpu);
    // Find t with σ(t) = sigma_t on the VE SDE: σ_min (σ_max/σ_min)^t.
    let lo = sde
        .marginal_prob(&x, &Tensor::from_slice(&[0.0f64]))
        .1
        .double_value(&[0]);
    let hi = sde
        .marginal_prob(&x, &Tensor::from_slice(&[1.0f64]))
        .1
        .double_value(&[0]);
    let t = (sigma_t / lo).ln() / (hi / lo).ln();
    let xt = &x + &z * sigma_t;
    // The 8×8 images are one patch each, at position (0, 0) of a 16×16 image of the field.
    let k = p * p;
    let prec =
        (cov_p + Tensor::eye(k, (Kind::Double, Device::Cpu)) * (sigma_t * sigma_t)).inverse();
    let exact = -(prec.matmul(&(&xt - 0.5).reshape([-1, k]).transpose(0, 1)))
        .transpose(0, 1)
        .reshape(x.size());
    // Position channels of the top-left 8×8 patch of a 16×16 image.
    let pos = scoreinv::train::patches::patch_positions(16, 16, p, (0, 0), &x)
        .unsqueeze(0)
        .expand([256, 2, p, p], false);
    let input = Tensor::cat(&[&xt, &pos], 1).to_kind(Kind::Float);
    let tt = Tensor::full([256], t, (Kind::Float, Device::Cpu));
    let s = tch::no_grad(|| model.score(&input, &tt)).to_kind(Kind::Double);
    let num = ((s - &exact) * sigma_t).square().sum(Kind::Double).sqrt();
    let den = (exact * sigma_t).square().sum(Kind::Double).sqrt();
    (num / den).double_value(&[])
}

/// The network of a patch model directory (no stitching): `[B, C + 2, P, P]` → score.
struct Network(scoreinv::models::score_net::NetScore<dyn scoreinv::models::TimeConditionedNet>);
impl ScoreModel for Network {
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self.0.score(x, t)
    }
}

#[test]
fn patch_dsm_training_reaches_the_exact_patch_score_of_a_stationary_gaussian_field() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let p = 8;
    let (x, _) = field(3000, 16, 16, p, 1);
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, 16, 16],
        centered: false,
        data_range: None,
        source: "stationary Gaussian field (test)".into(),
    };
    let ds = Dataset::new(x.to_kind(Kind::Float), None, info).unwrap();
    let mut cfg = preset("ncsnpp-tiny").unwrap();
    cfg.data.patch_size = Some(p);
    cfg.data.random_flip = false;
    cfg.training.batch_size = 64;
    cfg.training.n_iters = 1500;
    cfg.optim.lr = 2e-3;
    cfg.optim.warmup = 100;
    cfg.optim.ema_rate = 0.99;
    let sde = cfg.sde.build().unwrap();
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The untrained network (zero output) is the control: relative error 1.
    tr.export_model_dir(&dir.path().join("untrained")).unwrap();
    for _ in 0..1500 {
        tr.train_step().unwrap();
    }
    tr.export_model_dir(&dir.path().join("trained")).unwrap();
    let net = |name: &str| {
        let (_, _, cfg) = load_model_dir(&dir.path().join(name), Device::Cpu).unwrap();
        assert_eq!(cfg.patch.as_ref().map(|p| p.size), Some(8));
        // The bare network, to score single patches at a known position.
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let pinfo = cfg.patch.as_ref().unwrap().network_data(&cfg.data);
        let n = cfg
            .model
            .build(&vs.root(), &pinfo, cfg.sde.build().unwrap().kind())
            .unwrap();
        let mut vars = scoreinv::models::sorted_variables(&vs);
        let w = scoreinv::models::model_dir::read_weights(
            &dir.path().join(name),
            &cfg.model,
            &vars,
            Device::Cpu,
        )
        .unwrap();
        tch::no_grad(|| {
            for ((_, v), t) in vars.iter_mut().zip(&w) {
                v.copy_(t);
            }
        });
        Network(scoreinv::models::score_net::NetScore::new(n, cfg.sde, cfg.score).unwrap())
    };
    let (trained, untrained) = (net("trained"), net("untrained"));
    for sigma in [0.05, 0.2, 1.0] {
        let e = patch_score_error(&trained, sde.as_ref(), sigma, p);
        let c = patch_score_error(&untrained, sde.as_ref(), sigma, p);
        println!("σ = {sigma}: trained {e:.3}, untrained {c:.3}");
        assert!(
            e < 0.3,
            "σ = {sigma}: relative error {e} of the trained patch score"
        );
        assert!(c > 0.95, "σ = {sigma}: control {c}");
    }
}

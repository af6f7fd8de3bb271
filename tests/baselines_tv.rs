//! TV-PDHG and the classical baselines against analytic solutions and independent references
//! (least squares through `linalg_pinv`, largest singular values through `linalg_eigvalsh` of
//! `MᵀM`), on small operators defined here: dense real and complex matrices, a 0/1 diagonal mask, the identity
//! and a gray (channel-combination) operator. All f64 on the CPU; a CUDA variant is ignored.
use scoreinv::inverse::baselines::{
    fbp, gradient, gradient_adjoint, gray, operator_norm, total_variation, tv_fista, tv_pdhg,
    zero_filled, Baseline, ComplexPart, Constraint, FistaConfig, Init, PowerIteration, TvConfig,
};
use scoreinv::operators::{LinearOperator, Result as OpResult};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// The tensors here are tiny: one intra-op thread avoids OpenMP oversubscription on a shared
/// machine (libtorch's spinning workers slowed a 450-iteration solve from 0.15 s to 9 s).
fn single_thread() {
    tch::set_num_threads(1);
}

/// `LinearOperator` must be `Sync` and `tch::Tensor` is only `Send`: the test operators keep
/// their tensors behind a mutex and work on shallow clones.
struct Shared(Mutex<Tensor>);

impl Shared {
    fn new(t: Tensor) -> Self {
        Shared(Mutex::new(t))
    }
    fn get(&self) -> Tensor {
        self.0.lock().unwrap().shallow_clone()
    }
}

/// `A x = M vec(x)` for a dense `M` (`[m, n]`, real or complex), inputs `[C, H, W]`.
struct Dense {
    m: Shared,
    in_shape: Vec<i64>,
}

impl Dense {
    fn new(m: Tensor, in_shape: &[i64]) -> Self {
        Dense {
            m: Shared::new(m),
            in_shape: in_shape.to_vec(),
        }
    }
    fn batch_shape(&self, b: i64) -> Vec<i64> {
        let mut s = vec![b];
        s.extend(&self.in_shape);
        s
    }
}

impl LinearOperator for Dense {
    fn name(&self) -> &str {
        "dense"
    }
    fn input_shape(&self) -> Vec<i64> {
        self.in_shape.clone()
    }
    fn output_shape(&self) -> Vec<i64> {
        vec![self.m.get().size()[0]]
    }
    fn forward(&self, x: &Tensor) -> OpResult<Tensor> {
        self.check_input(x)?;
        let xf = x.reshape([x.size()[0], -1]);
        let xf = if self.m.get().is_complex() {
            xf.to_kind(Kind::ComplexDouble)
        } else {
            xf
        };
        Ok(xf.matmul(&self.m.get().tr()))
    }
    fn adjoint(&self, y: &Tensor) -> OpResult<Tensor> {
        self.check_output(y)?;
        let r = y.matmul(&self.m.get().conj().resolve_conj());
        Ok(r.reshape(self.batch_shape(y.size()[0]).as_slice()))
    }
    fn pseudo_inverse(&self, y: &Tensor) -> OpResult<Tensor> {
        self.check_output(y)?;
        let p = self.m.get().linalg_pinv(1e-12, false);
        let r = y.matmul(&p.tr());
        Ok(real(&r).reshape(self.batch_shape(y.size()[0]).as_slice()))
    }
}

fn real(t: &Tensor) -> Tensor {
    if t.is_complex() {
        t.real()
    } else {
        t.shallow_clone()
    }
}

/// `A x = mask ⊙ x` (inpainting), or the identity with an all-ones mask.
struct Diagonal {
    mask: Shared,
}

impl LinearOperator for Diagonal {
    fn name(&self) -> &str {
        "diagonal"
    }
    fn input_shape(&self) -> Vec<i64> {
        self.mask.get().size()
    }
    fn output_shape(&self) -> Vec<i64> {
        self.mask.get().size()
    }
    fn forward(&self, x: &Tensor) -> OpResult<Tensor> {
        self.check_input(x)?;
        Ok(x * &self.mask.get())
    }
    fn adjoint(&self, y: &Tensor) -> OpResult<Tensor> {
        self.check_output(y)?;
        Ok(y * &self.mask.get())
    }
    fn pseudo_inverse(&self, y: &Tensor) -> OpResult<Tensor> {
        self.check_output(y)?;
        Ok(y * &self.mask.get())
    }
}

/// `[3, H, W] → [1, H, W]`, `y = Σ_c w_c x_c`.
struct GrayOp {
    w: Shared,
    hw: [i64; 2],
}

impl LinearOperator for GrayOp {
    fn name(&self) -> &str {
        "gray"
    }
    fn input_shape(&self) -> Vec<i64> {
        vec![3, self.hw[0], self.hw[1]]
    }
    fn output_shape(&self) -> Vec<i64> {
        vec![1, self.hw[0], self.hw[1]]
    }
    fn forward(&self, x: &Tensor) -> OpResult<Tensor> {
        self.check_input(x)?;
        Ok(
            (x * self.w.get().view([1, 3, 1, 1])).sum_dim_intlist(
                [1i64].as_slice(),
                true,
                x.kind(),
            ),
        )
    }
    fn adjoint(&self, y: &Tensor) -> OpResult<Tensor> {
        self.check_output(y)?;
        Ok(y * self.w.get().view([1, 3, 1, 1]))
    }
    fn pseudo_inverse(&self, y: &Tensor) -> OpResult<Tensor> {
        let n2 = self.w.get().square().sum(Kind::Double);
        Ok(self.adjoint(y)? / n2)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn re_inner(a: &Tensor, b: &Tensor) -> f64 {
    if a.is_complex() {
        (a.conj() * b).real().sum(Kind::Double).double_value(&[])
    } else {
        (a * b).sum(Kind::Double).double_value(&[])
    }
}

/// Largest singular value, `sqrt(λ_max(MᵀM))` (CPU `linalg_svdvals` rejects a driver name).
fn smax_of(m: &Tensor) -> f64 {
    let ev = m.tr().matmul(m).linalg_eigvalsh("L");
    ev.max().double_value(&[]).sqrt()
}

fn complex_dense(m: i64, n: i64) -> Tensor {
    Tensor::complex(&Tensor::randn([m, n], F64), &Tensor::randn([m, n], F64))
}

#[test]
fn test_operators_and_gradient_pass_the_dot_product_test() {
    single_thread();
    tch::manual_seed(0);
    let ops: Vec<Box<dyn LinearOperator>> = vec![
        Box::new(Dense::new(Tensor::randn([7, 12], F64), &[1, 3, 4])),
        Box::new(Dense::new(complex_dense(7, 12), &[1, 3, 4])),
        Box::new(Diagonal {
            mask: Shared::new(Tensor::rand([1, 3, 4], F64).gt(0.5).to_kind(Kind::Double)),
        }),
        Box::new(GrayOp {
            w: Shared::new(Tensor::from_slice(&[0.299, 0.587, 0.114])),
            hw: [3, 4],
        }),
    ];
    for op in &ops {
        let mut xs = vec![2];
        xs.extend(op.input_shape());
        let x = Tensor::randn(xs.as_slice(), F64);
        let ax = op.forward(&x).unwrap();
        let y = if ax.is_complex() {
            Tensor::complex(&ax.real().randn_like(), &ax.real().randn_like())
        } else {
            ax.randn_like()
        };
        let lhs = re_inner(&ax, &y);
        let rhs = re_inner(&x, &real(&op.adjoint(&y).unwrap()));
        assert!(
            (lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0),
            "{}: {lhs} vs {rhs}",
            op.name()
        );
    }
    // ∇ and ∇ᵀ: exact adjoints (1e-10 is float rounding on ~100 terms).
    let x = Tensor::randn([2, 3, 5, 7], F64);
    let (qx, qy) = (
        Tensor::randn([2, 3, 5, 7], F64),
        Tensor::randn([2, 3, 5, 7], F64),
    );
    let (gx, gy) = gradient(&x);
    let lhs = re_inner(&gx, &qx) + re_inner(&gy, &qy);
    let rhs = re_inner(&x, &gradient_adjoint(&qx, &qy));
    assert!((lhs - rhs).abs() < 1e-10, "{lhs} vs {rhs}");
    // Known values: a ramp x[i, j] = 2j + 3i has ∂_W = 2, ∂_H = 3 except on the last column/row.
    let ramp = Tensor::from_slice(
        &(0..20)
            .map(|k| (2 * (k % 5) + 3 * (k / 5)) as f64)
            .collect::<Vec<_>>(),
    )
    .view([1, 1, 4, 5]);
    let (gx, gy) = gradient(&ramp);
    assert_eq!(gx.double_value(&[0, 0, 1, 2]), 2.0);
    assert_eq!(gx.double_value(&[0, 0, 1, 4]), 0.0);
    assert_eq!(gy.double_value(&[0, 0, 2, 0]), 3.0);
    assert_eq!(gy.double_value(&[0, 0, 3, 0]), 0.0);
    // TV of the ramp: interior pixels sqrt(13), last column 3, last row 2, corner 0.
    let tv = total_variation(&ramp).double_value(&[0]);
    let want = 12.0 * 13f64.sqrt() + 3.0 * 3.0 + 4.0 * 2.0;
    assert!((tv - want).abs() < 1e-12, "{tv} vs {want}");
}

#[test]
fn operator_norm_matches_singular_values() {
    single_thread();
    tch::manual_seed(1);
    let cfg = PowerIteration {
        n_iter: 2000,
        rtol: 1e-12,
        seed: 3,
    };
    let m = Tensor::randn([20, 12], F64);
    let smax = smax_of(&m);
    let got = operator_norm(&Dense::new(m, &[1, 3, 4]), Kind::Double, Device::Cpu, &cfg).unwrap();
    // Power iteration converges geometrically; 1e-6 relative after ≤ 2000 steps.
    assert!((got - smax).abs() < 1e-6 * smax, "{got} vs {smax}");
    // Complex A on real images: the norm of the stacked real matrix [Re M; Im M].
    let mc = complex_dense(10, 12);
    let stacked = Tensor::cat(&[mc.real(), mc.imag()], 0);
    let smax = smax_of(&stacked);
    let got = operator_norm(&Dense::new(mc, &[1, 3, 4]), Kind::Double, Device::Cpu, &cfg).unwrap();
    assert!((got - smax).abs() < 1e-6 * smax, "complex: {got} vs {smax}");
    let ident = Diagonal {
        mask: Shared::new(Tensor::ones([2, 4, 4], F64)),
    };
    let got = operator_norm(&ident, Kind::Double, Device::Cpu, &cfg).unwrap();
    assert!((got - 1.0).abs() < 1e-12);
    let zero = Diagonal {
        mask: Shared::new(Tensor::zeros([1, 4, 4], F64)),
    };
    assert!(operator_norm(&zero, Kind::Double, Device::Cpu, &cfg).is_err());
}

/// Each row: 6 pixels at 0.2 then 10 at 0.8. TV denoising (A = I) of a single jump of height
/// h between plateaus of n₁ and n₂ pixels moves the plateaus towards each other by λ/n₁ and
/// λ/n₂ as long as λ(1/n₁ + 1/n₂) < h, and gives the constant mean beyond that.
fn step_rows() -> Tensor {
    let row: Vec<f64> = (0..16).map(|j| if j < 6 { 0.2 } else { 0.8 }).collect();
    Tensor::from_slice(&row)
        .view([1, 1, 1, 16])
        .repeat([1, 1, 4, 1])
}

#[test]
fn tv_denoising_of_a_step_matches_the_analytic_solution() {
    single_thread();
    let ident = Diagonal {
        mask: Shared::new(Tensor::ones([1, 4, 16], F64)),
    };
    let y = step_rows();
    let cfg = TvConfig {
        lambda: 0.3,
        n_iter: 20000,
        tol: Some(1e-12),
        check_every: 50,
        ..TvConfig::default()
    };
    let res = tv_pdhg(&ident, &y, &cfg).unwrap();
    let (u1, u2) = (0.2 + 0.3 / 6.0, 0.8 - 0.3 / 10.0);
    let want_row: Vec<f64> = (0..16).map(|j| if j < 6 { u1 } else { u2 }).collect();
    let want = Tensor::from_slice(&want_row)
        .view([1, 1, 1, 16])
        .repeat([1, 1, 4, 1]);
    let err = max_abs_diff(&res.x, &want);
    eprintln!(
        "step: {} iterations, converged {}, max error {err:.2e}",
        res.iterations, res.converged
    );
    assert!(
        res.converged,
        "gap did not reach 1e-12: {:?}",
        res.history.gap.last()
    );
    // A relative gap of 1e-12 on an objective of ~0.2 bounds ½‖x − x*‖² (strong convexity)
    // by ~2e-13, so every pixel is within ~1e-6; 1e-5 leaves room.
    assert!(err < 1e-5, "max error {err}");
    // The optimum's objective: ½Σ(x − y)² + λ·TV, TV = 4 rows × (u₂ − u₁).
    let p_star = 4.0 * (0.5 * (6.0 * (0.3f64 / 6.0).powi(2) + 10.0 * (0.03f64).powi(2)))
        + 0.3 * 4.0 * (u2 - u1);
    let p_last = *res.history.objective.last().unwrap();
    assert!((p_last - p_star).abs() < 1e-9, "{p_last} vs {p_star}");

    // Beyond the threshold λ = 0.6 / (1/6 + 1/10) = 2.25 the solution is the mean 0.575.
    let big = TvConfig {
        lambda: 10.0,
        constraint: Constraint::Box { lo: 0.0, hi: 1.0 },
        ..cfg
    };
    let res = tv_pdhg(&ident, &y, &big).unwrap();
    let err = (&res.x - 0.575).abs().max().double_value(&[]);
    assert!(err < 1e-5, "constant solution off by {err}");
}

#[test]
fn lambda_zero_gives_the_least_squares_solution() {
    single_thread();
    tch::manual_seed(2);
    // Overdetermined, full column rank: the least-squares solution is unique, pinv(M) y.
    let m = Tensor::randn([40, 30], F64);
    let op = Dense::new(m.shallow_clone(), &[1, 5, 6]);
    let y = Tensor::randn([2, 40], F64);
    let x_ls = y
        .matmul(&m.linalg_pinv(1e-12, false).tr())
        .view([2, 1, 5, 6]);
    let cfg = TvConfig {
        lambda: 0.0,
        n_iter: 30000,
        tol: Some(1e-13),
        check_every: 100,
        init: Init::Zero,
        ..TvConfig::default()
    };
    let res = tv_pdhg(&op, &y, &cfg).unwrap();
    let err = max_abs_diff(&res.x, &x_ls);
    eprintln!(
        "real LS: {} iterations, max error {err:.2e}",
        res.iterations
    );
    // Gap 1e-13 relative: ½‖A(x − x*)‖² ≲ 1e-12·P, with σ_min(M) ≈ 1 this is ~1e-6 per entry.
    assert!(err < 1e-5, "max error {err}");
    // The objective decreases from the start and ends at the least-squares residual.
    let h = &res.history.objective;
    let p_ls = 0.5
        * (op.forward(&x_ls).unwrap() - &y)
            .square()
            .sum(Kind::Double)
            .double_value(&[]);
    assert!(h[0] > *h.last().unwrap());
    assert!((h.last().unwrap() - p_ls).abs() < 1e-8 * p_ls);
    assert!(h.windows(2).filter(|w| w[1] > w[0] + 1e-12).count() <= h.len() / 10);

    // Complex measurements of a real image: LS over real x = pinv of [Re M; Im M].
    let mc = complex_dense(25, 30);
    let op = Dense::new(mc.shallow_clone(), &[1, 5, 6]);
    let yc = Tensor::complex(&Tensor::randn([1, 25], F64), &Tensor::randn([1, 25], F64));
    let stacked = Tensor::cat(&[mc.real(), mc.imag()], 0);
    let y_stacked = Tensor::cat(&[yc.real(), yc.imag()], 1);
    let x_ls = y_stacked
        .matmul(&stacked.linalg_pinv(1e-12, false).tr())
        .view([1, 1, 5, 6]);
    let res = tv_pdhg(&op, &yc, &cfg).unwrap();
    let err = max_abs_diff(&res.x, &x_ls);
    eprintln!(
        "complex LS: {} iterations, max error {err:.2e}",
        res.iterations
    );
    assert!(res.x.kind() == Kind::Double && !res.x.is_complex());
    assert!(err < 1e-5, "complex: max error {err}");
}

#[test]
fn tv_with_box_converges_to_a_reference_solve_and_closes_the_gap() {
    single_thread();
    tch::manual_seed(4);
    let m = Tensor::randn([30, 36], F64) / 6.0; // underdetermined: TV picks the solution
    let op = Dense::new(m, &[1, 6, 6]);
    let truth = Tensor::zeros([1, 1, 6, 6], F64);
    let _ = truth.narrow(2, 1, 3).narrow(3, 2, 3).fill_(1.0);
    let y = op.forward(&truth).unwrap() + Tensor::randn([1, 30], F64) * 0.01;
    let cfg = TvConfig {
        lambda: 0.02,
        n_iter: 20000,
        tol: Some(1e-8),
        check_every: 20,
        constraint: Constraint::Box { lo: 0.0, hi: 1.0 },
        ..TvConfig::default()
    };
    let res = tv_pdhg(&op, &y, &cfg).unwrap();
    let g = &res.history.gap;
    eprintln!(
        "box TV: {} iterations, first gap {:.2e}, last gap {:.2e}",
        res.iterations,
        g[0],
        g.last().unwrap()
    );
    assert!(res.converged && res.iterations < cfg.n_iter);
    // With a box the gap is the exact duality gap: non-negative (up to rounding) and below tol.
    assert!(g.iter().all(|&v| v > -1e-12), "negative gap in {g:?}");
    let p = *res.history.objective.last().unwrap();
    assert!(*g.last().unwrap() <= 1e-8 * p);
    // Reference: the same problem with a 1e-13 gap; objectives agree to the first solve's gap.
    let reference = tv_pdhg(
        &op,
        &y,
        &TvConfig {
            tol: Some(1e-13),
            n_iter: 200000,
            check_every: 200,
            ..cfg
        },
    )
    .unwrap();
    let p_ref = *reference.history.objective.last().unwrap();
    assert!(
        p - p_ref >= -1e-12 && p - p_ref <= 1e-8 * p,
        "{p} vs {p_ref}"
    );
    let err = max_abs_diff(&res.x, &reference.x);
    eprintln!("box TV: max |x - x_ref| = {err:.2e}");
    // The TV objective is not strongly convex in every direction, so x is bounded loosely
    // (measured 1.4e-8; bound 1e-4).
    assert!(err < 1e-4, "max error {err}");
    // Every pixel inside the box, and the reconstruction is close to the truth it came from.
    assert!(res.x.min().double_value(&[]) >= 0.0 && res.x.max().double_value(&[]) <= 1.0);
}

#[test]
fn batched_solve_equals_per_sample_solves() {
    single_thread();
    tch::manual_seed(5);
    let op = Dense::new(Tensor::randn([20, 16], F64), &[1, 4, 4]);
    let y = Tensor::randn([3, 20], F64);
    let cfg = TvConfig {
        lambda: 0.1,
        n_iter: 200,
        ..TvConfig::default()
    };
    let all = tv_pdhg(&op, &y, &cfg).unwrap();
    assert_eq!(all.x.size(), vec![3, 1, 4, 4]);
    for i in 0..3 {
        let one = tv_pdhg(&op, &y.narrow(0, i, 1), &cfg).unwrap();
        // Same iterations, same arithmetic per sample: equal to rounding.
        assert!(max_abs_diff(&one.x, &all.x.narrow(0, i, 1)) < 1e-12);
    }
    // Without a tolerance: exactly n_iter iterations and a check every 25 plus the last.
    assert_eq!(all.iterations, 200);
    assert_eq!(
        all.history.iteration,
        (1..=8).map(|k| 25 * k).collect::<Vec<_>>()
    );
}

#[test]
fn f32_and_non_negative_constraint() {
    single_thread();
    tch::manual_seed(9);
    let m = Tensor::randn([20, 16], F64);
    let y = Tensor::randn([2, 20], F64);
    let cfg = TvConfig {
        lambda: 0.1,
        n_iter: 20000,
        tol: Some(1e-10),
        check_every: 50,
        constraint: Constraint::NonNegative,
        ..TvConfig::default()
    };
    let r64 = tv_pdhg(&Dense::new(m.shallow_clone(), &[1, 4, 4]), &y, &cfg).unwrap();
    eprintln!("x >= 0: {} iterations", r64.iterations);
    assert!(
        r64.converged,
        "partial gap (x >= 0, box radius 2 max|x| + 1) did not close"
    );
    assert!(r64.x.min().double_value(&[]) >= 0.0);
    // Random y forces some pixels onto the constraint; the solution is not the unconstrained one.
    assert!(r64.x.eq(0.0).any().int64_value(&[]) == 1);
    // f32 operator and data: the result is f32 and agrees to single-precision accuracy
    // (~1e-7 relative per operation, amplified by the conditioning of M; bound 1e-3).
    let cfg32 = TvConfig {
        tol: None,
        n_iter: 3000,
        ..cfg
    };
    let op32 = Dense::new(m.to_kind(Kind::Float), &[1, 4, 4]);
    let r32 = tv_pdhg(&op32, &y.to_kind(Kind::Float), &cfg32).unwrap();
    assert_eq!(r32.x.kind(), Kind::Float);
    let err = max_abs_diff(&r32.x.to_kind(Kind::Double), &r64.x);
    eprintln!("f32 vs f64: {err:.2e}");
    assert!(err < 1e-3, "f32 vs f64: {err}");
}

#[test]
fn tv_inpainting_fills_the_missing_pixels() {
    single_thread();
    tch::manual_seed(6);
    // Piecewise-constant image: 0.2 background, 0.9 square; half of the pixels observed.
    let truth = Tensor::full([1, 1, 16, 16], 0.2, F64);
    let _ = truth.narrow(2, 4, 8).narrow(3, 5, 7).fill_(0.9);
    let mask = Tensor::rand([1, 16, 16], F64).gt(0.5).to_kind(Kind::Double);
    let op = Diagonal {
        mask: Shared::new(mask.shallow_clone()),
    };
    let y = op.forward(&truth).unwrap();
    let mut cfg =
        scoreinv::inverse::baselines::tv_preset(scoreinv::inverse::baselines::TV_LAMBDA_INPAINTING);
    cfg.n_iter = 1500;
    let res = tv_pdhg(&op, &y, &cfg).unwrap();
    let missing = (mask.ones_like() - &mask).unsqueeze(0);
    let n_missing = missing.sum(Kind::Double).double_value(&[]);
    let err_tv = ((&res.x - &truth).abs() * &missing)
        .sum(Kind::Double)
        .double_value(&[])
        / n_missing;
    let zf = zero_filled(&op, &y, ComplexPart::Real).unwrap();
    let err_zf = ((&zf - &truth).abs() * &missing)
        .sum(Kind::Double)
        .double_value(&[])
        / n_missing;
    eprintln!("inpainting: mean error on missing pixels TV {err_tv:.3}, zero-filled {err_zf:.3}");
    // Zero-filling leaves 0.2–0.9 holes (mean error ≈ 0.36); TV must fill them: edges of a
    // random half-mask are uncertain by a pixel or so, hence the bound 0.05.
    assert!(err_tv < 0.05, "TV inpainting error {err_tv}");
    assert!(err_zf > 0.3);
}

#[test]
fn baseline_names_and_simple_baselines() {
    single_thread();
    for (name, b) in [
        ("fbp", Baseline::Fbp),
        ("tv", Baseline::Tv),
        ("zero-filled", Baseline::ZeroFilled),
        ("gray", Baseline::Gray),
        ("Zero_Filled", Baseline::ZeroFilled),
    ] {
        assert_eq!(name.parse::<Baseline>().unwrap(), b);
    }
    let err = "dps".parse::<Baseline>().unwrap_err().to_string();
    assert!(err.contains("fbp, tv, zero-filled, gray"), "{err}");
    assert_eq!(Baseline::ZeroFilled.to_string(), "zero-filled");

    tch::manual_seed(7);
    // fbp = pseudo-inverse; zero-filled = adjoint, magnitude of complex results.
    let mc = complex_dense(8, 12);
    let op = Dense::new(mc, &[1, 3, 4]);
    let y = op.forward(&Tensor::rand([2, 1, 3, 4], F64)).unwrap();
    let cfg = TvConfig::default();
    let zf = Baseline::ZeroFilled.reconstruct(&op, &y, &cfg).unwrap();
    assert!(max_abs_diff(&zf, &op.adjoint(&y).unwrap().abs()) == 0.0);
    let pi = Baseline::Fbp.reconstruct(&op, &y, &cfg).unwrap();
    assert!(max_abs_diff(&pi, &op.pseudo_inverse(&y).unwrap()) == 0.0);
    assert!(max_abs_diff(&pi, &fbp(&op, &y, ComplexPart::Real).unwrap()) == 0.0);
    // gray: for weights summing to 1, plain replication; A x = y exactly for any weights.
    for w in [[0.299, 0.587, 0.114], [1.0 / 3f64.sqrt(); 3]] {
        let op = GrayOp {
            w: Shared::new(Tensor::from_slice(&w)),
            hw: [5, 6],
        };
        let y = Tensor::rand([2, 1, 5, 6], F64);
        let x = Baseline::Gray.reconstruct(&op, &y, &cfg).unwrap();
        assert_eq!(x.size(), vec![2, 3, 5, 6]);
        assert!(max_abs_diff(&op.forward(&x).unwrap(), &y) < 1e-12);
        assert!(max_abs_diff(&x.narrow(1, 0, 1), &x.narrow(1, 2, 1)) == 0.0);
        if (w.iter().sum::<f64>() - 1.0).abs() < 1e-12 {
            assert!(max_abs_diff(&x.narrow(1, 1, 1), &y) < 1e-12);
        }
    }
    // gray refuses operators that are not [C, H, W] → [1, H, W].
    let ident = Diagonal {
        mask: Shared::new(Tensor::ones([3, 4, 4], F64)),
    };
    assert!(gray(&ident, &Tensor::ones([1, 3, 4, 4], F64)).is_err());
}

#[test]
fn invalid_inputs_are_errors() {
    single_thread();
    let op = Diagonal {
        mask: Shared::new(Tensor::ones([1, 4, 4], F64)),
    };
    let y = Tensor::ones([1, 1, 4, 4], F64);
    let bad_shape = tv_pdhg(&op, &Tensor::ones([1, 1, 4, 5], F64), &TvConfig::default());
    assert!(bad_shape.unwrap_err().to_string().contains("[B, 1, 4, 4]"));
    let nan = &y * f64::NAN;
    assert!(tv_pdhg(&op, &nan, &TvConfig::default()).is_err());
    for cfg in [
        TvConfig {
            lambda: -1.0,
            ..TvConfig::default()
        },
        TvConfig {
            n_iter: 0,
            ..TvConfig::default()
        },
        TvConfig {
            constraint: Constraint::Box { lo: 1.0, hi: 0.0 },
            ..TvConfig::default()
        },
    ] {
        assert!(tv_pdhg(&op, &y, &cfg).is_err(), "{cfg:?} accepted");
    }
}

/// Same problem on CUDA and CPU. Run on a GPU machine with
/// `cargo test --test baselines_tv -- --ignored cuda` (`make gpu-bundle` carries it there).
#[test]
#[ignore = "needs CUDA"]
fn cuda_matches_cpu() {
    single_thread();
    assert!(tch::Cuda::is_available(), "no CUDA device");
    tch::manual_seed(8);
    let m = Tensor::randn([30, 36], F64) / 6.0;
    let y = Tensor::randn([2, 30], F64);
    let cfg = TvConfig {
        lambda: 0.05,
        n_iter: 300,
        op_norm: Some(smax_of(&m)),
        ..TvConfig::default()
    };
    let cpu = tv_pdhg(&Dense::new(m.shallow_clone(), &[1, 6, 6]), &y, &cfg).unwrap();
    let dev = Device::Cuda(0);
    let gpu = tv_pdhg(
        &Dense::new(m.to_device(dev), &[1, 6, 6]),
        &y.to_device(dev),
        &cfg,
    )
    .unwrap();
    assert_eq!(gpu.x.device(), dev);
    let err = max_abs_diff(&cpu.x, &gpu.x.to_device(Device::Cpu));
    assert!(err < 1e-9, "cpu vs cuda: {err}");
}

#[test]
fn fista_reaches_the_same_solutions() {
    single_thread();
    // A = I, the step of `tv_denoising_of_a_step_matches_the_analytic_solution`.
    let ident = Diagonal {
        mask: Shared::new(Tensor::ones([1, 4, 16], F64)),
    };
    let cfg = FistaConfig {
        lambda: 0.3,
        n_iter: 100,
        inner_iter: 20,
        ..FistaConfig::default()
    };
    let res = tv_fista(&ident, &step_rows(), &cfg).unwrap();
    let (u1, u2) = (0.2 + 0.3 / 6.0, 0.8 - 0.3 / 10.0);
    let row: Vec<f64> = (0..16).map(|j| if j < 6 { u1 } else { u2 }).collect();
    let want = Tensor::from_slice(&row)
        .view([1, 1, 1, 16])
        .repeat([1, 1, 4, 1]);
    let err = max_abs_diff(&res.x, &want);
    eprintln!("fista step: max error {err:.2e}");
    // FISTA's O(1/k²) with an inexact (warm-started) inner prox: 1e-4 after 100 iterations.
    assert!(err < 1e-4, "max error {err}");
    assert!(res.history.gap.is_empty());

    // The boxed dense problem: FISTA's objective matches PDHG's (gap 1e-12) closely.
    tch::manual_seed(4);
    let m = Tensor::randn([30, 36], F64) / 6.0;
    let op = Dense::new(m, &[1, 6, 6]);
    let y = Tensor::randn([2, 30], F64) * 0.5;
    let constraint = Constraint::Box { lo: 0.0, hi: 1.0 };
    let reference = tv_pdhg(
        &op,
        &y,
        &TvConfig {
            lambda: 0.02,
            n_iter: 200000,
            tol: Some(1e-12),
            check_every: 100,
            constraint,
            ..TvConfig::default()
        },
    )
    .unwrap();
    let fista = tv_fista(
        &op,
        &y,
        &FistaConfig {
            lambda: 0.02,
            n_iter: 400,
            inner_iter: 10,
            constraint,
            ..FistaConfig::default()
        },
    )
    .unwrap();
    let p_ref = *reference.history.objective.last().unwrap();
    let p = *fista.history.objective.last().unwrap();
    let h = &fista.history.objective;
    eprintln!(
        "fista: objective {p} vs PDHG {p_ref} ({} iterations), first {}",
        reference.iterations, h[0]
    );
    assert!(h[0] > p);
    // Non-negative up to PDHG's own gap (1e-12 relative); FISTA within 1e-6 relative.
    assert!(
        p >= p_ref * (1.0 - 1e-10) && p <= p_ref * (1.0 + 1e-6),
        "{p} vs {p_ref}"
    );
    assert!(fista.x.min().double_value(&[]) >= 0.0 && fista.x.max().double_value(&[]) <= 1.0);
}

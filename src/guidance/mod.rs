//! Class-conditional sampling with a time-dependent classifier (classifier guidance; Song et
//! al. 2021, "Score-Based Generative Modeling through SDEs", §5 and App. I.4; Dhariwal & Nichol
//! 2021 for the guidance scale).
//!
//! Bayes' rule for the perturbed marginals gives the conditional score
//!
//! ```text
//! ∇ₓ log p_t(x | y) = ∇ₓ log p_t(x) + ∇ₓ log p_t(y | x)
//!                   ≈ s_θ(x, t) + w · ∇ₓ log_softmax(f_φ(x, t))_y
//! ```
//!
//! with `f_φ` a classifier trained on data perturbed by the same SDE ([`train`]) and `w` the
//! guidance scale (`w = 1` is exact Bayes; `w > 1` samples `∝ p_t(x) p_t(y | x)^w`, sharper
//! classes). [`ClassGuided`] is that conditional score as a plain
//! [`ScoreModel`], so every sampler (PC, probability-flow ODE, ...) and every operator-based
//! inverse-problem solver uses it unchanged. The classifier gradient is taken by autograd:
//! `x` is detached, marked as requiring grad, `Σ_b log_softmax(f_φ(x_b, t_b))_{y_b}` is
//! back-propagated to it (the samples of a batch are independent, so the gradient of the sum is
//! the per-sample gradient), inside `tch::with_grad` because samplers run under `no_grad`.
//!
//! * [`classifier`]: the [`TimeDependentClassifier`] trait, MLP and convolutional networks, the
//!   exact classifier of a Gaussian mixture.
//! * [`train`]: cross-entropy training on perturbed data, held-out accuracy per noise level,
//!   checkpoints, classifier directories ([`load_classifier_dir`]).
//!
//! `labels` hold one class per sample of the batches the guided score is evaluated on (a batch
//! may mix classes); [`guided_pc_sample`] draws one sample per label.

pub mod classifier;
pub mod train;

pub use classifier::{
    AnalyticClassifier, ClassifierConfig, NetClassifier, TimeDependentClassifier,
};
pub use train::{
    check_guidance_pair, cycled_labels, load_classifier_dir, ClassifierTrainConfig,
    ClassifierTrainer,
};

use crate::models::ScoreModel;
use crate::sampling::{PcConfig, PcSampler, SampleOutput};
use crate::sde::Sde;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// `s(x, t | y) = s_θ(x, t) + w ∇ₓ log p_t(y | x)` for per-sample labels `y`.
pub struct ClassGuided<S: ScoreModel, C: TimeDependentClassifier> {
    score: S,
    classifier: C,
    labels: Tensor,
    scale: f64,
}

// SAFETY: `ScoreModel` requires `Sync`. Besides `S` and `C` (both `Sync`), the only state is
// the labels tensor, which `score(&self, ..)` only reads (gather indices); libtorch supports
// concurrent reads of a tensor (the same argument as `NetScore`).
unsafe impl<S: ScoreModel, C: TimeDependentClassifier> Sync for ClassGuided<S, C> {}

impl<S: ScoreModel, C: TimeDependentClassifier> ClassGuided<S, C> {
    /// Guides `score` towards `labels` (`[B]`, integers in `[0, K)`, one per sample of the
    /// batches it will be called on) with guidance scale `scale` (`w ≥ 0`, finite).
    pub fn new(score: S, classifier: C, labels: &Tensor, scale: f64) -> Result<Self> {
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(Error::Config(format!(
                "guidance scale w must be finite and >= 0, got {scale}"
            )));
        }
        let k = classifier.n_classes();
        let labels = check_labels(labels, k)?;
        if let (Some(a), Some(b)) = (score.sample_shape(), classifier.sample_shape()) {
            if a != b {
                return Err(Error::Shape {
                    what: "classifier input (must match the score model's samples)".into(),
                    expected: format!("{a:?}"),
                    actual: format!("{b:?}"),
                });
            }
        }
        Ok(Self {
            score,
            classifier,
            labels,
            scale,
        })
    }

    /// The labels `[B]` (Int64).
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// The guidance scale `w`.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `∇ₓ log p_t(y | x)` for the stored labels, by autograd through the classifier.
    pub fn classifier_grad(&self, x: &Tensor, t: &Tensor) -> Tensor {
        classifier_log_prob_grad(&self.classifier, x, t, &self.labels)
    }
}

/// Checks labels: a 1-D integer tensor with values in `[0, k)`; returns them as Int64.
fn check_labels(labels: &Tensor, k: i64) -> Result<Tensor> {
    if labels.dim() != 1 || labels.size()[0] < 1 {
        return Err(Error::Shape {
            what: "class labels".into(),
            expected: "[B] with B >= 1".into(),
            actual: format!("{:?}", labels.size()),
        });
    }
    if labels.is_floating_point() || labels.is_complex() {
        return Err(Error::Invalid(format!(
            "class labels must be integers, got {:?}",
            labels.kind()
        )));
    }
    let labels = labels.to_kind(Kind::Int64);
    let lo = labels.min().int64_value(&[]);
    let hi = labels.max().int64_value(&[]);
    if lo < 0 || hi >= k {
        return Err(Error::Invalid(format!(
            "class labels must lie in [0, {k}) for a {k}-class classifier, got values in [{lo}, {hi}]"
        )));
    }
    Ok(labels)
}

/// `∇ₓ Σ_b log softmax(f(x_b, t_b))_{y_b}` (= the per-sample `∇ₓ log p_t(y_b | x_b)`), computed
/// with autograd even under `no_grad`. Panics (a programming error, checked by the public entry
/// points) if `labels` does not have one entry per sample.
pub fn classifier_log_prob_grad(
    classifier: &dyn TimeDependentClassifier,
    x: &Tensor,
    t: &Tensor,
    labels: &Tensor,
) -> Tensor {
    let b = x.size()[0];
    assert_eq!(
        labels.size(),
        vec![b],
        "classifier guidance: {} labels for a batch of {b} samples",
        labels.size().first().copied().unwrap_or(0)
    );
    tch::with_grad(|| {
        let xg = x.detach().set_requires_grad(true);
        let logits = classifier.logits(&xg, &t.detach());
        let logp = logits.log_softmax(1, logits.kind());
        let idx = labels.to_device(x.device()).reshape([b, 1]);
        let sel = logp.gather(1, &idx, false).sum(logp.kind());
        let g = Tensor::run_backward(&[&sel], &[&xg], false, false);
        g.into_iter()
            .next()
            .unwrap_or_else(|| x.zeros_like())
            .to_kind(x.kind())
    })
}

impl<S: ScoreModel, C: TimeDependentClassifier> ScoreModel for ClassGuided<S, C> {
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let s = self.score.score(x, t);
        if self.scale == 0.0 {
            return s;
        }
        s + self.classifier_grad(x, t) * self.scale
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        self.score
            .sample_shape()
            .or_else(|| self.classifier.sample_shape())
    }
}

/// Class-conditional PC sampling: one sample per entry of `labels` (`[B]` integers on the
/// device to sample on), guidance scale `w`, sampler settings `pc_config`, SDE `sde` (the one
/// both the score model and the classifier were trained with). Samples are f32 with the score
/// model's (or else the classifier's) per-sample shape; `progress(i)` after step `i` of `N`.
pub fn guided_pc_sample(
    model: &dyn ScoreModel,
    classifier: &dyn TimeDependentClassifier,
    sde: &dyn Sde,
    labels: &Tensor,
    w: f64,
    pc_config: PcConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    let guided = ClassGuided::new(model, classifier, labels, w)?;
    let batch = guided.labels().size()[0];
    let sampler = PcSampler::new(sde, pc_config)?;
    sampler.sample(
        &guided,
        batch,
        None,
        (Kind::Float, labels.device()),
        progress,
    )
}

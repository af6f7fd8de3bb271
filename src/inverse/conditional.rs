//! Conditional samplers: posterior samples of `x` given `y = A x + n` from an unconditional
//! score model. Each is its settings struct (serde, with the published defaults) implementing
//! [`ConditionalSampler`], in its own file, and one line in [`CONDITIONAL_SAMPLERS`]:
//!
//! | name | sampler | needs `A = P(Λ) T` |
//! |---|---|---|
//! | `score` | projection predictor–corrector (Song, Shen, Xing & Ermon 2022), [`super::projection`] | yes |
//! | `score-sde` | replacement of the measured part (Song et al. 2021, score_sde), [`super::replacement`] | yes |
//! | `dps` | diffusion posterior sampling (Chung et al. 2023), [`super::dps`] | no |
//! | `ddim` | few-step DDIM + data-consistency projection (Song et al. 2021; Wang et al. 2023), [`super::ddim`] | no (CG without) |
//! | `diffpir` | few-step half-quadratic splitting (Zhu et al. 2023), [`super::diffpir`] | no |
//!
//! A sampler's settings come, in order of precedence, from its defaults (or the task's
//! published ones: [`crate::inverse::tasks::Task::projection_config`]), the settings a model
//! records as validated for the task (`"sampler"` in its `config.json`), and the user's
//! settings: a JSON object of which each sampler takes the fields it has (the score methods of
//! one study share `snr`, `lambda`, `zeta`, …).
use crate::inverse::tasks::Task;
use crate::models::model_dir::SamplerSettings;
use crate::models::ScoreModel;
use crate::sampling::SampleOutput;
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::LinearOperator;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::Tensor;

/// A posterior sampler for a linear inverse problem (see the module doc).
pub trait ConditionalSampler: Send + Sync {
    /// The method's name (`score`, `score-sde`, `dps`).
    fn name(&self) -> &'static str;
    /// Whether it needs the operator's `T`/`Λ` decomposition
    /// ([`LinearOperator::as_decomposed`]).
    fn needs_decomposition(&self) -> bool;
    /// Checks the settings against the SDE the model runs on.
    fn validate(&self, sde: &dyn Sde) -> Result<()>;
    /// One sample per row of the measurement batch `y` (model space), `progress` called with
    /// the number of steps done. `start`: a warm-start estimate per row (model space),
    /// diffused to the sampler's `t0` ([`super::warm_start`]); `None`: a cold start.
    fn sample(
        &self,
        sde: &dyn Sde,
        model: &dyn ScoreModel,
        op: &dyn LinearOperator,
        y: &Tensor,
        start: Option<&Tensor>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<SampleOutput>;
    /// The number of steps [`ConditionalSampler::sample`] runs (fewer than the SDE's `N`
    /// with a warm start).
    fn steps(&self, sde: &dyn Sde) -> usize {
        sde.n_steps()
    }
    /// The settings, as recorded.
    fn settings(&self) -> serde_json::Value;
}

/// What a sampler is built from (see the module doc).
pub struct SamplerSources<'a> {
    /// The task (its published settings).
    pub task: &'a dyn Task,
    /// The settings a model records as validated for the task.
    pub validated: Option<&'a SamplerSettings>,
    /// The user's settings (fields the sampler does not have are ignored).
    pub user: &'a serde_json::Value,
}

/// A registered conditional sampler.
pub struct ConditionalEntry {
    pub name: &'static str,
    /// Other names accepted for it (`score_sde`).
    pub aliases: &'static [&'static str],
    pub about: &'static str,
    pub build: fn(&SamplerSources) -> Result<Box<dyn ConditionalSampler>>,
}

/// Every conditional sampler.
pub const CONDITIONAL_SAMPLERS: &[ConditionalEntry] = &[
    super::projection::ENTRY,
    super::replacement::ENTRY,
    super::dps::ENTRY,
    super::ddim::ENTRY,
    super::diffpir::ENTRY,
];

/// The registered sampler called `name` (any letter case, `_` for `-`).
pub fn conditional_sampler(name: &str) -> Option<&'static ConditionalEntry> {
    let n = name.trim().to_ascii_lowercase();
    CONDITIONAL_SAMPLERS
        .iter()
        .find(|e| e.name == n || e.aliases.contains(&n.as_str()))
}

/// `base` with the fields of `over` that `base` has (non-null) put in, read back: how a
/// sampler takes its share of the user's (or a model's) settings.
pub fn overlay<T: Serialize + DeserializeOwned>(base: T, over: &serde_json::Value) -> Result<T> {
    let mut v = serde_json::to_value(&base)
        .map_err(|e| Error::Invalid(format!("sampler settings to JSON: {e}")))?;
    if let (Some(obj), Some(o)) = (v.as_object_mut(), over.as_object()) {
        for (k, x) in o {
            if !x.is_null() && obj.contains_key(k) {
                obj.insert(k.clone(), x.clone());
            }
        }
    }
    serde_json::from_value(v).map_err(|e| Error::Config(format!("sampler settings: {e}")))
}

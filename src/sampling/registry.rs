//! Unconditional samplers behind one trait, [`Sampler`], and one registry by name, [`SAMPLERS`].
//!
//! A sampler file (e.g. [`super::pc`]) holds the algorithm, its serde config with the published
//! defaults (implementing [`SamplerConfig`]), and one [`SamplerEntry`] const: its name, the
//! [`SamplerOptions`] it reads, and a constructor that validates them against the model's SDE. Options a sampler does not read are
//! refused here, once for all samplers, with the names of the samplers that do read them.
//!
//! Adding a sampler = one file with its `ENTRY` + one line in [`SAMPLERS`].
use super::ode::OdeSolver;
use super::{CorrectorKind, PredictorKind, SampleOutput};
use crate::models::ScoreModel;
use crate::sde::{Sde, SdeConfig};
use crate::{Error, Result};
use tch::{Device, Kind};

/// Every unconditional sampler, by name (`scoreinv sample --sampler NAME`).
pub const SAMPLERS: &[SamplerEntry] = &[
    super::pc::ENTRY,
    super::ode::ENTRY,
    super::ald::ENTRY,
    super::ancestral::ENTRY,
];

/// An unconditional sampler with its configuration, checked against the model's SDE.
pub trait Sampler: std::fmt::Debug + Send + Sync {
    /// Its registry name.
    fn name(&self) -> &'static str;
    /// The SDE it runs (the model's, re-discretised by `steps` where the sampler walks the
    /// SDE's own grid: PC, ancestral).
    fn sde(&self) -> SdeConfig;
    /// Its configuration, as recorded with the samples.
    fn settings(&self) -> serde_json::Value;
    /// A one-line description for logs.
    fn describe(&self) -> String;
    /// Progress units of one batch (what `progress` counts up to in [`Sampler::sample`]).
    fn progress_units(&self) -> u64;
    /// `batch` samples of per-sample `shape` from the prior at `T` down to the data.
    fn sample(
        &self,
        model: &dyn ScoreModel,
        sde: &dyn Sde,
        batch: i64,
        shape: &[i64],
        options: (Kind, Device),
        progress: &mut dyn FnMut(u64),
    ) -> Result<SampleOutput>;
}

/// A sampler's settings struct (serde, with the published defaults): what the file of a sampler
/// implements; [`Configured`] makes it a [`Sampler`] on an SDE.
pub trait SamplerConfig: serde::Serialize + Copy + std::fmt::Debug + Send + Sync + 'static {
    /// Its registry name.
    const NAME: &'static str;
    /// A one-line description for logs.
    fn describe(&self, sde: &SdeConfig) -> String;
    /// Progress units of one batch.
    fn progress_units(&self, sde: &SdeConfig) -> u64;
    /// `batch` samples of per-sample `shape` (see [`Sampler::sample`]).
    fn sample(
        &self,
        model: &dyn ScoreModel,
        sde: &dyn Sde,
        batch: i64,
        shape: &[i64],
        options: (Kind, Device),
        progress: &mut dyn FnMut(u64),
    ) -> Result<SampleOutput>;
}

/// A checked sampler configuration on the SDE it runs (see [`Sampler::sde`]).
#[derive(Debug, Clone, Copy)]
pub struct Configured<C> {
    pub config: C,
    pub sde: SdeConfig,
}

impl<C: SamplerConfig> Configured<C> {
    /// Boxed, as a registry constructor returns it.
    pub fn boxed(config: C, sde: SdeConfig) -> Box<dyn Sampler> {
        Box::new(Self { config, sde })
    }
}

impl<C: SamplerConfig> Sampler for Configured<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }
    fn sde(&self) -> SdeConfig {
        self.sde
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self.config).unwrap_or_default()
    }
    fn describe(&self) -> String {
        self.config.describe(&self.sde)
    }
    fn progress_units(&self) -> u64 {
        self.config.progress_units(&self.sde)
    }
    fn sample(
        &self,
        model: &dyn ScoreModel,
        sde: &dyn Sde,
        batch: i64,
        shape: &[i64],
        options: (Kind, Device),
        progress: &mut dyn FnMut(u64),
    ) -> Result<SampleOutput> {
        self.config
            .sample(model, sde, batch, shape, options, progress)
    }
}

/// A registry line: a sampler's name, what it reads, and its constructor.
#[derive(Clone, Copy)]
pub struct SamplerEntry {
    pub name: &'static str,
    /// Other names it answers to (score_sde's spellings).
    pub aliases: &'static [&'static str],
    /// One line for `--help` and the README.
    pub about: &'static str,
    /// The fields of [`SamplerOptions`] it reads (by name); any other set field is refused.
    pub options: &'static [&'static str],
    /// Builds the sampler from the options (already checked against `options`) for a model
    /// trained with `sde`.
    pub build: fn(&SamplerOptions, &SdeConfig) -> Result<Box<dyn Sampler>>,
}

/// The settings a user can give a sampler (`None` = the sampler's default).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerOptions {
    /// A name or alias in [`SAMPLERS`].
    pub sampler: String,
    /// PC / ancestral: the SDE's number of steps `N`; ALD: number of noise levels `L`;
    /// ODE: steps of a fixed-step solver.
    pub steps: Option<usize>,
    pub predictor: Option<PredictorKind>,
    pub corrector: Option<CorrectorKind>,
    pub snr: Option<f64>,
    /// PC: corrector steps per predictor step; ALD: Langevin steps per noise level.
    pub n_corrector_steps: Option<usize>,
    /// ODE: prior samples are `τ z`.
    pub temperature: Option<f64>,
    /// ALD base step size ε.
    pub step_lr: Option<f64>,
    pub ode_solver: Option<OdeSolver>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    /// Skip the final noise-free step (PC `noise_removal`, ODE `denoise`, ALD `denoise`).
    pub no_denoise: bool,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        Self {
            sampler: "pc".into(),
            steps: None,
            predictor: None,
            corrector: None,
            snr: None,
            n_corrector_steps: None,
            temperature: None,
            step_lr: None,
            ode_solver: None,
            rtol: None,
            atol: None,
            no_denoise: false,
        }
    }
}

impl SamplerOptions {
    /// The names of the fields that are set.
    pub fn set_fields(&self) -> Vec<&'static str> {
        [
            ("steps", self.steps.is_some()),
            ("predictor", self.predictor.is_some()),
            ("corrector", self.corrector.is_some()),
            ("snr", self.snr.is_some()),
            ("n_corrector_steps", self.n_corrector_steps.is_some()),
            ("temperature", self.temperature.is_some()),
            ("step_lr", self.step_lr.is_some()),
            ("ode_solver", self.ode_solver.is_some()),
            ("rtol", self.rtol.is_some()),
            ("atol", self.atol.is_some()),
            ("no_denoise", self.no_denoise),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// The registry line of `name` (a name or alias; case and `_`/`-` do not matter).
pub fn sampler_entry(name: &str) -> Result<&'static SamplerEntry> {
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    SAMPLERS
        .iter()
        .find(|e| e.name == n || e.aliases.contains(&n.as_str()))
        .ok_or_else(|| {
            Error::Config(format!(
                "`sampler` '{name}' is not one of {}",
                SAMPLERS
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Builds the sampler `opts.sampler` for a model trained with `sde`. Options the chosen sampler
/// does not read are refused (rather than silently ignored), naming the samplers that read them.
pub fn build_sampler(opts: &SamplerOptions, sde: &SdeConfig) -> Result<Box<dyn Sampler>> {
    let entry = sampler_entry(&opts.sampler)?;
    sde.build()?;
    for field in opts.set_fields() {
        if !entry.options.contains(&field) {
            let readers: Vec<&str> = SAMPLERS
                .iter()
                .filter(|e| e.options.contains(&field))
                .map(|e| e.name)
                .collect();
            return Err(Error::Config(format!(
                "`{field}` does not apply to `sampler` {} (it applies to `sampler` {})",
                entry.name,
                readers.join(" and ")
            )));
        }
    }
    if opts.steps == Some(0) {
        return Err(Error::Config("`steps` must be at least 1".into()));
    }
    (entry.build)(opts, sde)
}

/// `sde` re-discretised with `n` steps, for samplers that walk the SDE's own grid: at least
/// `min` steps, and for VP/sub-VP chains (`β_i = β(t_i)/N`, `√(1 − β_i)`) `N > β_max`.
pub fn rediscretise(sde: &SdeConfig, n: Option<usize>, min: usize, who: &str) -> Result<SdeConfig> {
    let Some(n) = n else { return Ok(*sde) };
    if n < min {
        return Err(Error::Config(format!(
            "`steps` {n}: {who} needs at least {min} steps"
        )));
    }
    match *sde {
        SdeConfig::Vp { beta_max, .. } | SdeConfig::SubVp { beta_max, .. }
            if beta_max / n as f64 >= 1.0 =>
        {
            Err(Error::Config(format!(
                "`steps` {n}: the discrete VP chain has β_i = β(t)/N up to β_max/N = {:.3}, and \
                 needs it below 1 (√(1 − β_i)); use `steps` > {}",
                beta_max / n as f64,
                beta_max.floor() as usize
            )))
        }
        _ => Ok(sde.with_n(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_options_known() {
        let all = SamplerOptions {
            steps: Some(1),
            predictor: Some(PredictorKind::None),
            corrector: Some(CorrectorKind::None),
            snr: Some(1.0),
            n_corrector_steps: Some(1),
            temperature: Some(1.0),
            step_lr: Some(1.0),
            ode_solver: Some(OdeSolver::Rk45),
            rtol: Some(1.0),
            atol: Some(1.0),
            no_denoise: true,
            ..Default::default()
        };
        let known = all.set_fields();
        assert_eq!(known.len(), 11);
        let mut names: Vec<&str> = SAMPLERS
            .iter()
            .flat_map(|e| std::iter::once(e.name).chain(e.aliases.iter().copied()))
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate sampler names");
        for e in SAMPLERS {
            for o in e.options {
                assert!(known.contains(o), "{}: unknown option {o}", e.name);
            }
        }
    }
}

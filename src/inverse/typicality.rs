//! How typical an image is under a score prior, to warn before a prior is used far outside the
//! data it was trained on (a chest slice under a head prior, a T2 slice under a T1 prior).
//!
//! The figure is the prior's own training objective, the denoising score-matching loss per
//! dimension (Vincent 2011; Song et al. 2021, eq. 7 with `λ(t) = σ_t²`),
//!
//! ```text
//!   L(x, t) = E_z ‖σ_t s_θ(μ_t x + σ_t z, t) + z‖² / D,
//! ```
//!
//! at the noise levels [`LEVELS`] (the noise std `σ_t / μ_t` as a fraction of the data range, so
//! that VE, VP and sub-VP priors are probed alike) with fixed noise draws, divided by the same figure on the prior's
//! validation images (recorded once in the model directory as `typicality.json` by
//! `scoreinv typicality`): the *typicality ratio* `r = mean_t L(x, t) / L_ref(t)`. Images like the
//! training data have `r` near 1; images the prior has not seen denoise worse at small noise, so
//! `r` grows. A case is flagged when `r` exceeds the largest ratio among the validation images
//! times [`MARGIN`].
use crate::models::model_dir::DataInfo;
use crate::models::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Kind, Tensor};

/// The noise levels at which the loss is measured, as `σ_t / μ_t` over the data range: small to
/// moderate noise, where the prior's knowledge of the images, not of noise, decides the loss.
pub const LEVELS: [f64; 4] = [0.02, 0.05, 0.1, 0.3];

/// The diffusion time `t` of each of [`LEVELS`] for `sde` (bisection on the monotone
/// `σ_t / μ_t`), for images whose model units span `range` (1 for `[0, 1]`, 2 for centred).
pub fn times(sde: &dyn Sde, range: f64) -> Vec<f64> {
    let rel = |t: f64| {
        let (m, s) = sde.mean_coeff_std(t);
        s / (m * range)
    };
    LEVELS
        .iter()
        .map(|&level| {
            let (mut lo, mut hi) = (sde.sampling_eps(), sde.t_end());
            if rel(lo) >= level {
                return lo;
            }
            if rel(hi) <= level {
                return hi;
            }
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if rel(mid) < level {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            0.5 * (lo + hi)
        })
        .collect()
}

/// Noise draws per level and image.
pub const DRAWS: i64 = 4;

/// A case is flagged when its ratio exceeds the largest validation ratio times this margin.
pub const MARGIN: f64 = 1.5;

/// The file in a model directory that holds the reference.
pub const FILE: &str = "typicality.json";

/// The reference figures of a prior (`typicality.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Always `scoreinv-typicality/1`.
    pub format: String,
    /// The noise levels of [`LEVELS`] the losses were measured at.
    pub levels: Vec<f64>,
    /// Their diffusion times for the prior's SDE.
    pub times: Vec<f64>,
    /// Mean loss `L_ref(t)` over the validation images, per level.
    pub dsm_loss: Vec<f64>,
    /// The ratio `r` of each validation image against `dsm_loss`.
    pub ratios: Vec<f64>,
    /// The validation images (a data spec) and their number.
    pub data: String,
    pub images: usize,
    /// The seed of the noise draws.
    pub seed: i64,
}

impl Reference {
    /// The largest ratio a case may have without a warning.
    pub fn threshold(&self) -> f64 {
        self.ratios.iter().copied().fold(1.0, f64::max) * MARGIN
    }

    /// Reads `dir/typicality.json`, if the prior has one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let r: Reference = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not a typicality reference: {e}")))?;
        if r.levels != LEVELS
            || r.times.len() != LEVELS.len()
            || r.dsm_loss.len() != LEVELS.len()
            || r.dsm_loss.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(Error::format(
                &path,
                format!(
                    "levels {:?} with losses {:?}: expected positive losses at {LEVELS:?} \
                     (re-run `scoreinv typicality`)",
                    r.levels, r.dsm_loss
                ),
            ));
        }
        Ok(Some(r))
    }
}

/// `L(x, t)` per image `[B, |times|]` for images `x` `[B, C, H, W]` in model units, with the
/// noise drawn after `tch::manual_seed(seed)` (the same draws for every call with one seed).
pub fn dsm_losses(
    model: &dyn ScoreModel,
    sde: &dyn Sde,
    x: &Tensor,
    times: &[f64],
    seed: i64,
) -> Result<Vec<Vec<f64>>> {
    let b = x.size()[0];
    let d = x.numel() as f64 / b as f64;
    let mut per_level = Vec::with_capacity(times.len());
    tch::manual_seed(seed);
    tch::no_grad(|| -> Result<()> {
        for &t in times {
            let mut acc = Tensor::zeros([b], (Kind::Double, x.device()));
            for _ in 0..DRAWS {
                let z = x.randn_like();
                let tt = Tensor::full([b], t, (x.kind(), x.device()));
                let (mean, std) = sde.marginal_prob(x, &tt);
                let std = crate::sde::bcast(&std, x);
                let xt = mean + &std * &z;
                let s = model.score(&xt, &tt);
                let l = (s * &std + &z).square().flatten(1, -1).sum_dim_intlist(
                    1i64,
                    false,
                    Kind::Double,
                ) / d;
                acc += l;
            }
            per_level.push(Vec::<f64>::try_from(acc / DRAWS as f64)?);
        }
        Ok(())
    })?;
    Ok((0..b as usize)
        .map(|i| per_level.iter().map(|l| l[i]).collect())
        .collect())
}

/// The ratio `r` of one image's losses against the reference (see the module doc).
pub fn ratio(losses: &[f64], reference: &[f64]) -> f64 {
    losses
        .iter()
        .zip(reference)
        .map(|(l, r)| l / r)
        .sum::<f64>()
        / losses.len().max(1) as f64
}

/// The reference of a prior from validation images `x` `[B, C, H, W]` in `[0, 1]` (`data`
/// names them), normalised to the model's units with `info`.
pub fn reference(
    model: &dyn ScoreModel,
    sde: &dyn Sde,
    info: &DataInfo,
    x: &Tensor,
    data: &str,
    seed: i64,
) -> Result<Reference> {
    let times = times(sde, if info.centered { 2.0 } else { 1.0 });
    let losses = dsm_losses(model, sde, &info.normalize_unit(x)?, &times, seed)?;
    let n = losses.len();
    if n == 0 {
        return Err(Error::Config("`data` named no image".into()));
    }
    let mean: Vec<f64> = (0..LEVELS.len())
        .map(|k| losses.iter().map(|l| l[k]).sum::<f64>() / n as f64)
        .collect();
    let ratios = losses.iter().map(|l| ratio(l, &mean)).collect();
    Ok(Reference {
        format: "scoreinv-typicality/1".into(),
        levels: LEVELS.to_vec(),
        times,
        dsm_loss: mean,
        ratios,
        data: data.to_string(),
        images: n,
        seed,
    })
}

/// The typicality of one case under a prior with a reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Typicality {
    /// The prior and its training data.
    pub prior: String,
    /// Which image was measured (`tv` or the pseudo-inverse of the measurement).
    pub image: String,
    pub dsm_loss: Vec<f64>,
    pub ratio: f64,
    pub threshold: f64,
    /// `ratio > threshold`.
    pub out_of_domain: bool,
}

impl Typicality {
    /// The warning for case `case` when it is outside the prior's domain.
    pub fn warning(&self, case: &str) -> Option<String> {
        self.out_of_domain.then(|| {
            format!(
                "case {case}: its {} reconstruction is far from the images of the prior {} \
                 (typicality ratio {:.2} > {:.2}, the largest on the prior's validation images × \
                 {MARGIN}); the score methods may do worse than the baselines",
                self.image, self.prior, self.ratio, self.threshold
            )
        })
    }
}

/// The typicality of images `x` `[B, C, H, W]` in `[0, 1]` under the prior `prior`.
pub fn assess(
    prior: &str,
    model: &dyn ScoreModel,
    sde: &dyn Sde,
    info: &DataInfo,
    reference: &Reference,
    x: &Tensor,
    image: &str,
) -> Result<Vec<Typicality>> {
    let losses = dsm_losses(
        model,
        sde,
        &info.normalize_unit(x)?,
        &reference.times,
        reference.seed,
    )?;
    let threshold = reference.threshold();
    Ok(losses
        .into_iter()
        .map(|l| {
            let r = ratio(&l, &reference.dsm_loss);
            Typicality {
                prior: prior.to_string(),
                image: image.to_string(),
                dsm_loss: l,
                ratio: r,
                threshold,
                out_of_domain: r > threshold,
            }
        })
        .collect())
}

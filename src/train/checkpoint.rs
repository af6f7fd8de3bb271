//! Training checkpoints of every objective ([`crate::train::Trainer`]): every tensor of the
//! training state in one safetensors file, everything else (config, step, seed, data
//! description) in a JSON file that is the commit point.
//!
//! Layout of a run directory (score matching; a classifier run writes
//! `classifier-checkpoint.json` and `classifier-ckpt-…` the same way, see [`Layout`]):
//! ```text
//! RUN_DIR/checkpoint.json              CheckpointMeta; names the tensor file below
//! RUN_DIR/ckpt-00001000.safetensors    model/<var>, ema/<var>, adam_m/<var>, adam_v/<var> (f32)
//! ```
//! A save writes the new tensor file under a temporary name and renames it, then does the same
//! for the JSON, then deletes the previous tensor file: a crash at any point leaves the JSON
//! naming a complete tensor file (every file is written by [`crate::io::atomic`]). Every
//! tensor's CRC-32 is stored in the safetensors metadata (`crc32/<name>`), so a flipped byte is
//! reported with the tensor's name.
//!
//! Resuming is bit-exact because the training state is the whole state: parameters, EMA,
//! Adam's first and second moments, the step counter (which also drives the warm-up and the EMA's
//! `num_updates`), and the seed; all random draws of a step are a pure function of
//! `(seed, step)` (see [`crate::train::rng`]).

use crate::io::atomic::write_bytes;
pub use crate::io::safetensors::{write_tensors, TensorFile};
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

use super::config::TrainConfig;
use crate::models::model_dir::DataInfo;

/// Name of the JSON file that commits a score-matching checkpoint.
pub const CHECKPOINT_JSON: &str = "checkpoint.json";
/// Version of the score-matching checkpoint format.
pub const CHECKPOINT_FORMAT: &str = "scoreinv-checkpoint/1";

/// Where a kind of run keeps its checkpoint in the run directory, and the format tag it writes
/// (in the JSON and in the tensor file's metadata) and accepts. One layout per objective, so
/// that the run folders of every earlier version resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The JSON file that commits a checkpoint.
    pub json: &'static str,
    /// The format tag.
    pub format: &'static str,
    /// Tensor files are named `{tensor_prefix}{step:08}.safetensors`.
    pub tensor_prefix: &'static str,
}

/// The layout of score-matching runs ([`crate::train::ScoreMatching`]).
pub const SCORE: Layout = Layout {
    json: CHECKPOINT_JSON,
    format: CHECKPOINT_FORMAT,
    tensor_prefix: "ckpt-",
};

/// The non-tensor half of a checkpoint, for a run configured by `C` (a [`TrainConfig`] for
/// score matching, a classifier run's configuration for classifiers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMeta<C = TrainConfig> {
    /// The layout's format tag.
    pub format: String,
    /// Number of optimisation steps taken.
    pub step: u64,
    /// Seed of all random streams (see [`crate::train::rng`]).
    pub seed: u64,
    /// Number of EMA updates so far (score_sde's `num_updates`).
    pub ema_num_updates: u64,
    /// File name, relative to the run directory, of the tensor file.
    pub tensors: String,
    /// The full training configuration.
    pub config: C,
    /// Number of classes of a classifier run (fixed at its start: a resumed run keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_classes: Option<i64>,
    /// The training data the model was fitted to.
    pub data: DataInfo,
    /// Training loss of the last step before the save.
    pub last_loss: Option<f64>,
}

impl Layout {
    /// The tensor file name for `step`.
    pub fn tensors_name(&self, step: u64) -> String {
        format!("{}{step:08}.safetensors", self.tensor_prefix)
    }

    /// Path of the newest checkpoint's JSON in `run_dir`, if any.
    pub fn latest(&self, run_dir: &Path) -> Option<PathBuf> {
        let p = run_dir.join(self.json);
        p.exists().then_some(p)
    }

    /// Reads the JSON in `run_dir` and opens (and checks) the tensor file it names.
    pub fn read<C: DeserializeOwned>(
        &self,
        run_dir: &Path,
    ) -> Result<(CheckpointMeta<C>, TensorFile)> {
        let json = run_dir.join(self.json);
        let text = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
        let meta: CheckpointMeta<C> =
            serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
                path: json.clone(),
                msg: format!("invalid checkpoint JSON: {e}"),
            })?;
        if meta.format != self.format {
            return Err(Error::Checkpoint {
                path: json,
                msg: format!(
                    "format '{}' is not the supported '{}'",
                    meta.format, self.format
                ),
            });
        }
        let tpath = run_dir.join(&meta.tensors);
        let file = TensorFile::read(&tpath)?;
        let step_meta = file.metadata().get("step").cloned();
        if step_meta.as_deref() != Some(meta.step.to_string().as_str()) {
            return Err(Error::Checkpoint {
                path: tpath,
                msg: format!(
                    "tensor file records step {:?}, {} says {}",
                    step_meta, self.json, meta.step
                ),
            });
        }
        Ok((meta, file))
    }

    /// Writes a checkpoint into `run_dir` (created if needed): the tensor file, then the JSON
    /// that commits it, then removes the tensor file the previous JSON named. Returns the JSON
    /// path.
    pub fn write<C: Serialize>(
        &self,
        run_dir: &Path,
        meta: &CheckpointMeta<C>,
        tensors: &[(String, Tensor)],
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let json = run_dir.join(self.json);
        let previous = std::fs::read_to_string(&json)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["tensors"].as_str().map(String::from));
        let mut md = HashMap::new();
        md.insert("step".to_string(), meta.step.to_string());
        md.insert("format".to_string(), self.format.to_string());
        write_tensors(&run_dir.join(&meta.tensors), tensors, md)?;
        let text = serde_json::to_string_pretty(meta)
            .map_err(|e| Error::format(&json, format!("serialising checkpoint metadata: {e}")))?;
        write_bytes(&json, text.as_bytes())?;
        if let Some(prev) = previous {
            if prev != meta.tensors {
                let _ = std::fs::remove_file(run_dir.join(prev));
            }
        }
        Ok(json)
    }
}

/// Path of the newest score-matching checkpoint's JSON in `run_dir`, if any.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    SCORE.latest(run_dir)
}

/// Reads `run_dir/checkpoint.json` (a score-matching run) and opens the tensor file it names.
pub fn read_checkpoint(run_dir: &Path) -> Result<(CheckpointMeta, TensorFile)> {
    SCORE.read(run_dir)
}

/// Writes the model directory (config + EMA weights, as [`crate::train::Trainer`] exports at the
/// end of a run) of the latest checkpoint in `run_dir` to `model_dir`, without the training data
/// and without touching the run: a snapshot of a run still in progress. Returns the step.
///
/// `model_dir` must be apart from the run, and new, empty, or an earlier export (its
/// [`crate::io::output::MANIFEST`] names `export` and it holds nothing else), which only
/// `overwrite` replaces. The model is written into a new temporary folder beside `model_dir`,
/// checked to load, and renamed into place; an earlier export is moved aside first and its
/// files removed afterwards. Nothing else is ever deleted.
pub fn export_model(run_dir: &Path, model_dir: &Path, overwrite: bool) -> Result<u64> {
    use crate::io::output::{check_disjoint, Manifest, OutputDir, Reuse, MANIFEST};
    use crate::models::model_dir::save_model_dir;
    const COMMAND: &str = "export";
    check_disjoint(model_dir, &[run_dir.to_path_buf()])?;
    let invalid =
        |msg: String| Error::Invalid(format!("model folder {}: {msg}", model_dir.display()));
    // What is at `model_dir` now: nothing, an empty folder, or an earlier export.
    let previous: Option<Manifest> = match std::fs::metadata(model_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(model_dir, e)),
        Ok(m) if !m.is_dir() => return Err(invalid("exists and is not a folder".into())),
        Ok(_) => {
            let manifest = Manifest::read(model_dir)?;
            let mut entries = Vec::new();
            for e in std::fs::read_dir(model_dir).map_err(|e| Error::io(model_dir, e))? {
                let e = e.map_err(|e| Error::io(model_dir, e))?;
                entries.push(e.file_name().to_string_lossy().into_owned());
            }
            match manifest {
                None if entries.is_empty() => None,
                None => {
                    return Err(invalid(format!(
                        "is not empty (it holds '{}') and is not an earlier export: choose a new \
                         or empty folder",
                        entries[0]
                    )))
                }
                Some(m) if m.command != COMMAND => {
                    return Err(invalid(format!(
                        "holds the output of `scoreinv {}`, not an export",
                        m.command
                    )))
                }
                Some(m) => {
                    if !overwrite {
                        return Err(invalid(
                            "holds an earlier export: pass `overwrite` to replace it, or choose \
                             another folder"
                                .into(),
                        ));
                    }
                    if let Some(extra) = entries
                        .iter()
                        .find(|n| n.as_str() != MANIFEST && !m.files.contains(n))
                    {
                        return Err(invalid(format!(
                            "holds '{extra}', which no export wrote: move it away first"
                        )));
                    }
                    Some(m)
                }
            }
        }
    };
    let (meta, file) = read_checkpoint(run_dir)?;
    let mut weights = Vec::new();
    let mut names = file.names();
    names.sort();
    for n in &names {
        if let Some(name) = n.strip_prefix("ema/") {
            weights.push((name.to_string(), file.tensor(n, None, Device::Cpu)?));
        }
    }
    if weights.is_empty() {
        return Err(Error::Checkpoint {
            path: run_dir.join(&meta.tensors),
            msg: "no EMA weights ('ema/…' tensors) in the checkpoint".into(),
        });
    }
    let cfg = super::model_dir_config(&meta.config, &meta.data, meta.step);
    // Written into a new folder beside the target (removed on any failure: it is ours) and
    // checked to load before it replaces anything.
    let parent = crate::io::atomic::parent_dir(model_dir);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let name = model_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.export-"))
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755));
    }
    let mut claim = OutputDir::claim(staging.path(), COMMAND, &[], Reuse::Refuse)?;
    claim.register(&["config.json", "model.safetensors"])?;
    save_model_dir(staging.path(), &cfg, &weights)?;
    if let Err(e) = crate::models::model_dir::load_model_dir(staging.path(), Device::Cpu) {
        return Err(Error::Checkpoint {
            path: run_dir.join(&meta.tensors),
            msg: format!("the exported model does not load: {e}"),
        });
    }
    // An earlier export is moved aside (onto a new empty folder of ours), the new one renamed
    // into place, then the earlier one's files removed.
    let aside = match &previous {
        Some(_) => {
            let old = tempfile::Builder::new()
                .prefix(&format!(".{name}.export-old-"))
                .tempdir_in(&parent)
                .map_err(|e| Error::io(&parent, e))?
                .keep();
            std::fs::rename(model_dir, &old).map_err(|e| Error::io(model_dir, e))?;
            Some(old)
        }
        None => None,
    };
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, model_dir) {
        if let Some(old) = &aside {
            let _ = std::fs::rename(old, model_dir);
        }
        let _ = std::fs::remove_dir_all(&staged);
        return Err(Error::io(model_dir, e));
    }
    if let (Some(old), Some(m)) = (aside, previous) {
        for f in m.files.iter().map(String::as_str).chain([MANIFEST]) {
            let _ = std::fs::remove_file(old.join(f));
        }
        let _ = std::fs::remove_dir(&old);
    }
    Ok(meta.step)
}

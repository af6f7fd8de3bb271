//! Tiny trained models for the sample / likelihood / latent tests: a small MLP score model
//! trained for a few DSM steps on 16×16 random-ellipse phantoms quantised to 8 bits, exported as
//! a model directory (the same path `scoreinv train` takes, minus the CLI).
#![allow(dead_code)]

use scoreinv::data::phantom::{random_ellipses_tensor, RandomEllipsesConfig};
use scoreinv::models::mlp::{CondEmbedding, MlpConfig};
use scoreinv::models::model_dir::{DataInfo, ModelConfig};
use scoreinv::sde::SdeConfig;
use scoreinv::train::config::preset;
use scoreinv::train::data::Dataset;
use scoreinv::train::Trainer;
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub const SIZE: i64 = 16;

/// `n` phantoms `[n, 1, 16, 16]` as 8-bit values 0..=255 (f32), clamped from the ellipse sums.
pub fn phantoms_u8(n: usize, seed: u64) -> Tensor {
    let p = random_ellipses_tensor(
        n,
        SIZE as usize,
        &RandomEllipsesConfig::default(),
        seed,
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    // Shift so the background is mid-grey and both signs of the ellipse intensities show.
    ((p + 0.5).clamp(0.0, 1.0) * 255.0).round()
}

/// Which SDE the tiny model uses.
#[derive(Clone, Copy, Debug)]
pub enum Flavor {
    /// VE, σ ∈ [0.01, 10] (the toy presets' range).
    Ve,
    /// VP, β ∈ [0.1, 20] (DDPM).
    Vp,
}

/// Trains a 64-wide MLP for `steps` DSM steps on 24 phantoms and writes the model directory
/// into `dir`. Data space: raw 0..255, model space [0, 1].
pub fn train_tiny(dir: &Path, flavor: Flavor, steps: usize) -> DataInfo {
    tch::manual_seed(0);
    let raw = phantoms_u8(24, 7);
    let info = DataInfo {
        spacing_mm: None,
        shape: vec![1, SIZE, SIZE],
        centered: false,
        data_range: Some((0.0, 255.0)),
        source: "random-ellipse phantoms 16×16 (test)".into(),
    };
    let ds = Dataset::new(info.normalize(&raw), None, info.clone()).unwrap();
    let mut cfg = preset("tiny").unwrap();
    match flavor {
        Flavor::Ve => {
            cfg.sde = SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 10.0,
                n: 1000,
            };
        }
        Flavor::Vp => {
            cfg.sde = SdeConfig::vp_default();
            cfg.score.scale_by_sigma = false;
            cfg.model = ModelConfig::Mlp(MlpConfig {
                hidden: 64,
                n_layers: 2,
                embed_dim: 16,
                embedding: Some(CondEmbedding::Positional),
            });
        }
    }
    cfg.training.n_iters = steps as u64;
    cfg.training.batch_size = 8;
    let mut tr = Trainer::new(cfg, &ds, Device::Cpu).unwrap();
    for _ in 0..steps {
        let s = tr.train_step().unwrap();
        assert!(s.loss.is_finite(), "training diverged: {s:?}");
    }
    tr.export_model_dir(dir).unwrap();
    info
}

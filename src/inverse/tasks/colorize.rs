//! Colorization: the measurement is the gray channel of score_sde's orthonormal colour
//! decoupling of an RGB image (`√3 · mean(R, G, B)`), so `A = P(Λ) T` with `T` the decoupling
//! and `Λ` keeping its gray channel.
use super::{check_chw, stem, Measurement, Task, TaskConfig, TaskOperator};
use crate::inverse::baselines::{tv_preset, Baseline, TvConfig, TV_LAMBDA_COLORIZATION};
use crate::io;
use crate::{Error, Result};
use scoreinv_operators::{Grayscale, LinearOperator};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Tensor};

/// Colorization has no settings of its own.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct ColorizeConfig {}

impl TaskConfig for ColorizeConfig {
    const NAME: &'static str = "colorize";
    const ABOUT: &'static str = "Colorization of gray images (RGB ground truth).";
}

impl Task for ColorizeConfig {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn baselines(&self) -> &'static [(&'static str, Baseline)] {
        &[("gray", Baseline::Gray), ("tv", Baseline::Tv)]
    }
    /// `gray` only: TV is not tuned for colorization.
    fn default_methods(&self) -> Vec<(&'static str, Baseline)> {
        vec![("gray", Baseline::Gray)]
    }
    fn check_image(&self, name: &str, shape: &[i64]) -> Result<()> {
        let (c, _, _) = check_chw("colorize", name, shape)?;
        if c != 3 {
            return Err(Error::Config(format!(
                "colorize needs RGB ground truth (3 channels); '{name}' has {c}"
            )));
        }
        Ok(())
    }
    fn operator(
        &self,
        shape: &[i64],
        _seed: u64,
        _device: Device,
    ) -> Result<Box<dyn TaskOperator>> {
        self.check_image("ground truth", shape)?;
        let op = Grayscale::new(shape[1] as usize, shape[2] as usize)?;
        Ok(Box::new(ColorizeOperator(Arc::new(op))))
    }
    /// A real colorization measurement: a gray image `[H, W]` (png, tif, npy; `mean(R, G, B)`
    /// in `[0, 1]`), turned into the operator's measurement `√3 · gray`.
    fn read_measurement(&self, path: &Path, device: Device) -> Result<Measurement> {
        let what = format!("gray image {}", path.display());
        let img = io::read_image(path)?;
        io::ensure_finite(&img.data, &what)?;
        let (c, h, w) = img.data.dim();
        if c != 1 {
            return Err(Error::Shape {
                what,
                expected: "a gray image [H, W] (colorize reconstructs RGB from one channel)".into(),
                actual: format!("{c} channels [{c}, {h}, {w}]"),
            });
        }
        let g = Grayscale::new(h, w)?;
        let y = g
            .measurement_from_gray(&io::array_to_tensor(&img.data).unsqueeze(0))?
            .to_device(device);
        Ok(Measurement {
            name: stem(path),
            op: Box::new(ColorizeOperator(Arc::new(g))),
            y,
            normalise: false,
        })
    }
}

/// The gray operator of a colorization task.
struct ColorizeOperator(Arc<Grayscale>);

impl TaskOperator for ColorizeOperator {
    fn op(&self) -> Arc<dyn LinearOperator> {
        self.0.clone()
    }
    fn describe(&self) -> String {
        "colorization: gray = mean(R, G, B)".into()
    }
    /// Were TV used (the default baseline is `gray`): not tuned.
    fn tv_config(&self) -> TvConfig {
        tv_preset(TV_LAMBDA_COLORIZATION)
    }
    fn write_measurement(&self, y: &Tensor, out: &Path) -> Result<()> {
        let gray = self
            .0
            .gray_from_measurement(&y.unsqueeze(0))?
            .squeeze_dim(0);
        io::npy::write_npy(out, &io::tensor_to_array::<f32>(&gray.squeeze_dim(0))?)
    }
}

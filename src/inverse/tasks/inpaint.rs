//! Inpainting: `A x = Λ ⊙ x` with a 0/1 mask `Λ` of observed pixels (score_sde's inpainting;
//! Chan & Shen 2002 for the TV baseline), gray or colour images.
use super::{
    check_chw, check_mask_dims, read_mask_file, stem, Measurement, Task, TaskConfig, TaskOperator,
};
use crate::inverse::baselines::{tv_preset, Baseline, TvConfig, TV_LAMBDA_INPAINTING};
use crate::io;
use crate::{Error, Result};
use ndarray::{Array2, Array3, Axis};
use scoreinv_operators::{InpaintMask, LinearOperator, Masking};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Tensor};

/// Inpainting settings: `mask` is a recipe of [`InpaintMask`] (`box[:S]`, `random:P`,
/// `half[:SIDE]`, `strokes[:SEED]`) or a 0/1 mask file (1 = observed).
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(default)]
pub struct InpaintConfig {
    /// Mask (1 = observed): box[:S], random:P, half[:SIDE], strokes[:SEED] or a 0/1 FILE
    /// (default box). With a real measurement: a FILE, required.
    #[arg(long, default_value = "box")]
    pub mask: String,
}

impl Default for InpaintConfig {
    fn default() -> Self {
        Self { mask: "box".into() }
    }
}

impl InpaintConfig {
    /// The mask file, when `mask` names one rather than a recipe.
    fn mask_path(&self) -> Option<PathBuf> {
        if self.mask.parse::<InpaintMask>().is_ok() {
            return None;
        }
        let (file, _) = io::split_selector(Path::new(&self.mask)).ok()?;
        file.exists().then_some(file)
    }
}

impl TaskConfig for InpaintConfig {
    const NAME: &'static str = "inpaint";
    const ABOUT: &'static str = "Inpainting of gray or colour images.";
}

impl Task for InpaintConfig {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn baselines(&self) -> &'static [(&'static str, Baseline)] {
        &[("zero-filled", Baseline::ZeroFilled), ("tv", Baseline::Tv)]
    }
    fn check_image(&self, name: &str, shape: &[i64]) -> Result<()> {
        check_chw("inpaint", name, shape).map(|_| ())
    }
    fn operator(&self, shape: &[i64], seed: u64, _device: Device) -> Result<Box<dyn TaskOperator>> {
        self.check_image("ground truth", shape)?;
        let (c, h, w) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        let m = inpaint_mask(&self.mask, h, w, seed)?;
        Ok(Box::new(InpaintOperator(Arc::new(Masking::from_2d(m, c)?))))
    }
    fn input_files(&self) -> Vec<PathBuf> {
        self.mask_path().into_iter().collect()
    }
    /// A real inpainting measurement: an image `[C, H, W]` (png, tif, npy) whose missing pixels
    /// are anything, and its 0/1 mask `[H, W]` (a `mask` file; 1 = observed).
    fn read_measurement(&self, path: &Path, device: Device) -> Result<Measurement> {
        let what = format!("image {}", path.display());
        let img = io::read_image(path)?;
        io::ensure_finite(&img.data, &what)?;
        let (c, h, w) = img.data.dim();
        let mask_path = self.mask_path().ok_or_else(|| {
            Error::Config(format!(
                "{what}: inpainting needs the mask of observed pixels: `mask` must name a FILE \
                 (0/1 [H, W], 1 = observed, e.g. the _mask.npy written by `scoreinv simulate \
                 inpaint`), not '{}'",
                self.mask
            ))
        })?;
        let m = read_mask_file(&mask_path)?;
        check_mask_dims(&mask_path, m.dim(), (h, w), "the image")?;
        let op = InpaintOperator(Arc::new(Masking::from_2d(m, c)?));
        let x: Array3<f32> = img.data;
        let y =
            op.0.forward(&io::array_to_tensor(&x).unsqueeze(0))?
                .to_device(device);
        Ok(Measurement {
            name: stem(path),
            op: Box::new(op),
            y,
            normalise: false,
        })
    }
}

/// The `[H, W]` inpainting mask (1 = observed) of a recipe or a file.
pub fn inpaint_mask(spec: &str, h: usize, w: usize, seed: u64) -> Result<Array2<f32>> {
    match spec.parse::<InpaintMask>() {
        Ok(recipe) => Ok(recipe.build(h, w, seed)?),
        Err(recipe_err) => {
            let path = Path::new(spec);
            let (file, _) = io::split_selector(path)?;
            if !file.exists() {
                return Err(Error::Config(format!(
                    "`mask` {spec}: unknown mask kind and no such file ({recipe_err})"
                )));
            }
            let m = read_mask_file(path)?;
            check_mask_dims(path, m.dim(), (h, w), "the images")?;
            Ok(m)
        }
    }
}

/// The masking operator of an inpainting task.
struct InpaintOperator(Arc<Masking>);

impl TaskOperator for InpaintOperator {
    fn op(&self) -> Arc<dyn LinearOperator> {
        self.0.clone()
    }
    fn describe(&self) -> String {
        format!(
            "inpainting: {:.1}% of pixels observed",
            100.0 * self.0.observed_fraction()
        )
    }
    fn tv_config(&self) -> TvConfig {
        tv_preset(TV_LAMBDA_INPAINTING)
    }
    fn measurement_mask(&self, device: Device) -> Result<Option<Tensor>> {
        Ok(Some(
            io::array_to_tensor(self.0.mask_array()).to_device(device),
        ))
    }
    fn side_files(&self) -> Vec<&'static str> {
        vec!["mask"]
    }
    fn write_measurement(&self, y: &Tensor, out: &Path) -> Result<()> {
        io::npy::write_npy(out, &io::tensor_to_array::<f32>(y)?)?;
        let m = self.0.mask_array().index_axis(Axis(0), 0).to_owned();
        io::npy::write_npy(&super::side_path(out, "mask"), &m)
    }
}

//! Colorization with the shipped colour prior: random crops of **held-out** photographs
//! (`data/color-photos-heldout.txt`, scenes the model never saw) are reduced to their gray
//! channel (score_sde's orthonormal colour decoupling, first row (1, 1, 1)/√3), then the two
//! missing decoupled channels are sampled by the projection sampler (Song et al. 2021 App. I.3
//! / 2022: predictor–corrector on the VE SDE with the gray channel re-imposed, noised to the
//! level of `t`, at every step), next to the gray image replicated to RGB, and saved as PNGs.
//!
//! ```text
//! cargo run --release --example colorize -- [MODEL_DIR] [STEPS] [OUT_DIR] [SAMPLES] [CROPS]
//! ```
//! Defaults: `data/models/color-64`, 200 steps, `out/examples/colorize`, 1 posterior sample
//! (with K > 1 the score column is the posterior mean of K samples, batched), 6 crops (the
//! first 6 of a larger CROPS are the same 6: one stream per crop). Needs the photos of
//! `make data` (Debian wallpapers) and `make setup` (scikit-image/scikit-learn wheels).
use scoreinv::inverse::baselines::{tv_preset, Baseline, TV_LAMBDA_COLORIZATION};
use scoreinv::inverse::projection::ProjectionConfig;
use scoreinv::inverse::score_method::ScoreMethod;
use scoreinv::inverse::study::{self, BaselineMethod, Method};
use scoreinv::io::output::{OutputDir, Reuse};
use scoreinv::operators::{Grayscale, LinearOperator};
use scoreinv::train::data::photos::{expand_paths, photo_crops};
use std::path::PathBuf;
use std::sync::Arc;
use tch::Device;

fn main() -> anyhow::Result<()> {
    // glibc's heap set up for tensor work (batched CPU sampling 1.85x faster; see its doc).
    scoreinv::runtime::tune_host_allocator()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = PathBuf::from(args.first().map_or("data/models/color-64", |s| s.as_str()));
    let steps: usize = args.get(1).map_or(Ok(200), |s| s.parse())?;
    let out = PathBuf::from(args.get(2).map_or("out/examples/colorize", |s| s.as_str()));
    let samples: i64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
    let n_crops: usize = args.get(4).map_or(Ok(6), |s| s.parse())?;
    let device = Device::cuda_if_available();
    tch::manual_seed(0);

    // 64×64 crops (multi-scale, as in training) of the held-out scenes.
    let list = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/color-photos-heldout.txt");
    let files = expand_paths(&[list])?;
    let crops = photo_crops(&files, n_crops, 64, 2026)?;

    let op = Arc::new(Grayscale::new(64, 64)?);
    let gray = BaselineMethod {
        baseline: Baseline::Gray,
        tv: tv_preset(TV_LAMBDA_COLORIZATION),
        label: None,
    };
    let score = ScoreMethod::from_model_dir(
        &model,
        device,
        Some(steps),
        // The default projection settings with the model's validated ones for colorization
        // (its config.json's "sampler"."colorize"), as `reconstruct colorize` does.
        Box::new(ProjectionConfig::default().for_model(&model, "colorize")?),
        samples,
    )?;
    let methods: [&dyn Method; 2] = [&gray, &score];
    let no_noise = |y: &tch::Tensor| -> scoreinv::Result<tch::Tensor> { Ok(y.shallow_clone()) };
    // The example owns its output folder: a rerun replaces the files of the last one.
    let mut dir = OutputDir::claim(&out, "example colorize", &[], Reuse::Overwrite)?;
    let cases = (0..crops.size()[0])
        .map(|i| study::Case::new(format!("heldout_crop_{i}"), crops.get(i).to_device(device)));
    let records = study::run_and_write_cases(
        op.as_ref() as &dyn LinearOperator,
        &no_noise,
        cases,
        &methods,
        &mut dir,
    )?;
    print!("{}", study::format_table(&records));
    println!(
        "wrote {}/heldout_crop_*.png (truth | gray | score | |error|×4)",
        out.display()
    );
    Ok(())
}

//! Inpainting with a shipped score prior: the centre box of held-out Fashion-MNIST test images is
//! removed, then filled by the projection sampler (Song et al. 2021/2022: predictor–corrector on
//! the VP SDE with the observed pixels re-imposed, noised to the level of `t`, at every step),
//! next to TV inpainting, and saved as PNGs.
//!
//! ```text
//! cargo run --release --example inpaint -- [MODEL_DIR] [STEPS] [OUT_DIR]
//! ```
//! Defaults: `data/models/fashion-mnist`, 200 steps, `out/examples/inpaint`.
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::inverse::baselines::{tv_preset, Baseline, TV_LAMBDA_INPAINTING};
use scoreinv::inverse::projection::ProjectionConfig;
use scoreinv::inverse::score_method::ScoreMethod;
use scoreinv::inverse::study::{self, BaselineMethod, Method};
use scoreinv::inverse::tasks::inpaint::inpaint_mask;
use scoreinv::io::output::{OutputDir, Reuse};
use scoreinv::operators::{LinearOperator, Masking};
use std::path::PathBuf;
use std::sync::Arc;
use tch::Device;

fn main() -> anyhow::Result<()> {
    // glibc's heap set up for tensor work (batched CPU sampling 1.85x faster; see its doc).
    scoreinv::runtime::tune_host_allocator()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = PathBuf::from(
        args.first()
            .map_or("data/models/fashion-mnist", |s| s.as_str()),
    );
    let steps: usize = args.get(1).map_or(Ok(200), |s| s.parse())?;
    let out = PathBuf::from(args.get(2).map_or("out/examples/inpaint", |s| s.as_str()));
    let device = Device::cuda_if_available();
    tch::manual_seed(0);

    // Four test images (the model never saw the test set) and a 14×14 centre box to fill.
    let cases = load_cases("fashion-mnist:0..4", &CaseOptions::default())?;
    let mask = inpaint_mask("box", 28, 28, 0)?; // 1 = observed
    let op = Arc::new(Masking::from_2d(mask, 1)?);

    let tv = tv_preset(TV_LAMBDA_INPAINTING);
    let tvm = BaselineMethod {
        baseline: Baseline::Tv,
        tv,
        label: None,
    };
    let score = ScoreMethod::from_model_dir(
        &model,
        device,
        Some(steps),
        Box::new(ProjectionConfig::default()),
        1,
    )?;
    let methods: [&dyn Method; 2] = [&tvm, &score];
    let no_noise = |y: &tch::Tensor| -> scoreinv::Result<tch::Tensor> { Ok(y.shallow_clone()) };
    // The example owns its output folder: a rerun replaces the files of the last one.
    let mut dir = OutputDir::claim(&out, "example inpaint", &[], Reuse::Overwrite)?;
    let cases = cases.into_iter().map(|c| study::Case {
        truth: c.truth.to_device(device),
        ..c
    });
    let records = study::run_and_write_cases(
        op.as_ref() as &dyn LinearOperator,
        &no_noise,
        cases,
        &methods,
        &mut dir,
    )?;
    print!("{}", study::format_table(&records));
    println!(
        "wrote {}/fashion_mnist_*.png (truth | TV | score | |error|×4)",
        out.display()
    );
    Ok(())
}

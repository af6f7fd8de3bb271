//! Sparse-view CT with a shipped score prior: 23 of 180 parallel-beam views of a held-out
//! random-ellipse phantom, reconstructed by FBP, TV and the score-based projection sampler of
//! Song et al. 2022 (reduced steps), scored by PSNR/SSIM and saved as one PNG.
//!
//! ```text
//! cargo run --release --example ct_sparse_view -- [MODEL_DIR] [STEPS] [OUT_DIR]
//! ```
//! Defaults: `data/models/ct-ellipses`, 100 steps, `out/examples/ct_sparse_view`.
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::inverse::baselines::{tv_preset, Baseline, TV_LAMBDA_CT};
use scoreinv::inverse::projection::ProjectionConfig;
use scoreinv::inverse::score_method::ScoreMethod;
use scoreinv::inverse::study::{self, BaselineMethod, Method};
use scoreinv::io::output::{OutputDir, Reuse};
use scoreinv::operators::{GaussianNoise, LinearOperator, ParallelBeamRadon};
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Device, Kind};

fn main() -> anyhow::Result<()> {
    // glibc's heap set up for tensor work (batched CPU sampling 1.85x faster; see its doc).
    scoreinv::runtime::tune_host_allocator()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = PathBuf::from(
        args.first()
            .map_or("data/models/ct-ellipses", |s| s.as_str()),
    );
    let steps: usize = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let out = PathBuf::from(
        args.get(2)
            .map_or("out/examples/ct_sparse_view", |s| s.as_str()),
    );
    let device = Device::cuda_if_available();
    tch::manual_seed(0);

    // A held-out phantom at the model's size (64×64 for the shipped CPU-trained prior).
    let size = scoreinv::models::model_dir::read_model_config(&model)?
        .data
        .image_size()
        .map_or(64, |(h, _)| h);
    let opts = CaseOptions {
        size: Some(size),
        ..CaseOptions::default()
    };
    let case = load_cases("phantom:ellipses:1000", &opts)?.remove(0);

    // y = A x + n: 23 views spread over a 180-angle grid, noise 0.5 % of the sinogram's peak.
    let op = Arc::new(ParallelBeamRadon::sparse_view(
        size as usize,
        23,
        180,
        Kind::Float,
        device,
    )?);
    let noise = GaussianNoise::new(0.005)?;
    let noise = |y: &tch::Tensor| -> scoreinv::Result<tch::Tensor> { Ok(noise.apply(y)?) };

    let tv = tv_preset(TV_LAMBDA_CT);
    let fbp = BaselineMethod {
        baseline: Baseline::Fbp,
        tv,
        label: None,
    };
    let tvm = BaselineMethod {
        baseline: Baseline::Tv,
        tv,
        label: None,
    };
    // The published CT settings (snr 0.246, λ 0.841), with the model's validated ones (its
    // config.json's "sampler"."ct": λ 1 for ct-ellipses) in their place, as `reconstruct` does.
    let score = ScoreMethod::from_model_dir(
        &model,
        device,
        Some(steps),
        Box::new(ProjectionConfig::ct().for_model(&model, "ct")?),
        1,
    )?;
    let methods: [&dyn Method; 3] = [&fbp, &tvm, &score];
    let case = study::Case {
        truth: case.truth.to_device(device),
        ..case
    };
    let result = study::run_case(op.as_ref() as &dyn LinearOperator, &noise, &case, &methods)?;
    // The example owns its output folder: a rerun replaces the files of the last one.
    let mut dir = OutputDir::claim(&out, "example ct_sparse_view", &[], Reuse::Overwrite)?;
    study::write_case(&mut dir, &result, &Default::default())?;
    print!("{}", study::format_table(&result.records));
    println!(
        "wrote {}/{}.png (truth | FBP | TV | score | |error|×4)",
        out.display(),
        result.name
    );
    Ok(())
}

//! Sparse-view fan-beam CT with a shipped score prior: 23 of 360 views of a clinical-like
//! scanner (curved detector, source–isocentre 595 mm, source–detector 1085 mm,
//! `data/geometry/clinical_curved_64.toml`) of a held-out random-ellipse phantom,
//! reconstructed by fan-beam FBP, TV and the score-based projection sampler of Song et al. 2022
//! (reduced steps) on the same fan-beam operator, scored by PSNR/SSIM and saved as one PNG.
//!
//! ```text
//! cargo run --release --example ct_fan_beam -- [MODEL_DIR] [STEPS] [OUT_DIR]
//! ```
//! Defaults: `data/models/ct-ellipses`, 100 steps, `out/examples/ct_fan_beam`.
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::inverse::baselines::{tv_preset, Baseline, TV_LAMBDA_CT};
use scoreinv::inverse::projection::ProjectionConfig;
use scoreinv::inverse::score_method::ScoreMethod;
use scoreinv::inverse::study::{self, BaselineMethod, Method};
use scoreinv::inverse::tasks::ct::read_geometry_file;
use scoreinv::io::output::{OutputDir, Reuse};
use scoreinv::operators::{FanBeam, FanGeometryConfig, GaussianNoise, LinearOperator};
use std::path::{Path, PathBuf};
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
            .map_or("out/examples/ct_fan_beam", |s| s.as_str()),
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

    // The scanner of the shipped geometry file, its 256 mm field of view sampled by the
    // model's pixels (the file's 64×64 pixels of 4 mm for a 64×64 prior).
    let scanner = read_geometry_file(Path::new("data/geometry/clinical_curved_64.toml"))?;
    let geometry = FanGeometryConfig {
        image_size: size as usize,
        pixel_spacing_mm: scanner.image_size as f64 * scanner.pixel_spacing_mm / size as f64,
        ..scanner
    };
    // y = A x + n: 23 of the 360 views, noise 0.5 % of the sinogram's peak.
    let op = Arc::new(FanBeam::sparse_view(geometry, 23, Kind::Float, device)?);
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
    // The CT settings of the projection sampler as `reconstruct ct` uses them; the fan-beam
    // operator's `A = Λ T` decomposition (all 360 views, the 23 kept) is what it projects with.
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
    let mut dir = OutputDir::claim(&out, "example ct_fan_beam", &[], Reuse::Overwrite)?;
    study::write_case(&mut dir, &result, &Default::default())?;
    print!("{}", study::format_table(&result.records));
    println!(
        "wrote {}/{}.png (truth | FBP | TV | score | |error|×4)",
        out.display(),
        result.name
    );
    Ok(())
}

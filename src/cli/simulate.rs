//! `scoreinv simulate TASK`: the measurement `y = A x + n` of one ground-truth image, written as
//! NPY with the side files needed to reconstruct it (`scoreinv reconstruct TASK
//! --measurement`). One subcommand per registered task; the work is
//! [`scoreinv::inverse::tasks::simulate_to_file`].
use super::parse::hu_window;
use anyhow::Result;
use scoreinv::inverse::tasks::{self, SimulateConfig, Task};
use std::path::PathBuf;
use tch::Device;

/// `simulate TASK`: the task chosen, the common flags and the task's (parsed by the task).
pub type Args = super::task_command::TaskCommand<Common>;

impl super::task_command::SharedFlags for Common {
    const COMMAND: &'static str = "simulate";
    fn task_help(task: &dyn Task, sub: clap::Command) -> clap::Command {
        super::task_command::noise_help(task, sub)
    }
}

/// Flags every task shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Ground truth: one image (png, tif, npy, nii[.gz], dcm; `#z=K` picks a slice),
    /// `phantom:shepp-logan`, `phantom:ellipses:S`, `invesalius:z=K`.
    #[arg(long = "ground-truth")]
    pub ground_truth: String,
    /// Output measurement FILE.npy (side files are written next to it); none of them may exist
    /// (unless --overwrite) or be an input.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace existing output files (never an input).
    #[arg(long)]
    pub overwrite: bool,
    /// Noise: none, gaussian:SIGMA (relative to the measurement's peak), poisson:I0[:MU] (CT).
    /// Default: gaussian:0.005 for CT, none otherwise.
    #[arg(long)]
    pub noise: Option<String>,
    /// Seed of masks, coil maps and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Resample the image to SIZE×SIZE.
    #[arg(long, value_parser = super::parse::image_size)]
    pub size: Option<i64>,
    /// HU window lo,hi for CT data (DICOM, .inv3); also `lo hi`.
    #[arg(
        long,
        default_value = "-1000,1500",
        value_delimiter = ',',
        num_args = 1..=2,
    )]
    pub window: Vec<f32>,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    let entry = tasks::entry(&args.task)?;
    let task: Box<dyn Task> = (entry.from_arg_matches)(&args.matches)?;
    let c = args.flags;
    let cfg = SimulateConfig {
        ground_truth: c.ground_truth,
        noise: c.noise,
        seed: c.seed,
        size: c.size,
        window: hu_window(&c.window)?,
    };
    let s = tasks::simulate_to_file(task.as_ref(), &cfg, &c.out, c.overwrite, device)?;
    println!("{}, noise {}", s.description, s.noise);
    if let Some(r) = s.acceleration {
        println!("true acceleration: {r:.4}");
    }
    for p in s.written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

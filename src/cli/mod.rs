//! Command-line interface. Each subcommand lives in its own file and maps flags onto the
//! library's config structs.
use anyhow::Result;
use clap::{Parser, Subcommand};
use scoreinv::device::DeviceChoice;

mod doctor;
mod reconstruct;
mod train;
mod train_classifier;

/// Score-based generative models for imaging inverse problems.
#[derive(Debug, Parser)]
#[command(name = "scoreinv", version, about)]
pub struct Cli {
    /// Device: auto (first GPU if any), cpu, cuda, cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    pub device: String,
    /// Number of CPU threads for libtorch and rayon (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report libtorch, CUDA, devices, threads and data locations.
    Doctor(doctor::Args),
    /// Reconstruct from simulated measurements and score against the ground truth.
    Reconstruct(reconstruct::Args),
    /// Train a score model by score matching (DSM, SSM, NCSN, DDPM losses).
    Train(train::Args),
    /// Train a time-dependent (or, with --clean, ordinary) classifier for class guidance.
    TrainClassifier(train_classifier::Args),
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        tch::set_num_threads(n as i32);
        // A second init (e.g. in tests) is harmless: keep the first pool.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    let choice: DeviceChoice = cli.device.parse()?;
    match cli.command {
        Command::Doctor(args) => doctor::run(args, choice),
        Command::Reconstruct(args) => reconstruct::run(args, choice.resolve()?),
        Command::Train(args) => train::run(args, choice),
        Command::TrainClassifier(args) => train_classifier::run(args, choice),
    }
}

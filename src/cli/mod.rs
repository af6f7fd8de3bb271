//! Command-line interface. Each subcommand lives in its own file and maps flags onto the
//! library's config structs.
use anyhow::Result;
use clap::{Parser, Subcommand};
use scoreinv::device::DeviceChoice;

mod bench;
mod doctor;
mod reconstruct;
mod train;

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
    /// Time operators, NCSN++, sampling and training against references run alongside.
    Bench(bench::Args),
    /// Report libtorch, CUDA, devices, threads and data locations.
    Doctor(doctor::Args),
    /// Reconstruct from simulated measurements and score against the ground truth.
    Reconstruct(reconstruct::Args),
    /// Train a score model by score matching (DSM, SSM, NCSN, DDPM losses).
    Train(train::Args),
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
        Command::Bench(args) => bench::run(args, choice),
        Command::Doctor(args) => doctor::run(args, choice),
        Command::Reconstruct(args) => reconstruct::run(args, choice.resolve()?),
        Command::Train(args) => train::run(args, choice),
    }
}

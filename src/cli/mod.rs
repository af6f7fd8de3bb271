//! Command-line interface. Each subcommand lives in its own file and maps flags onto the
//! library's config structs.
use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use scoreinv::device::DeviceChoice;

mod bench;
mod doctor;
mod eval_classifier;
mod latent;
mod likelihood;
mod merge;
mod parse;
mod progress;
mod reconstruct;
mod sample;
mod simulate;
mod task_command;
mod train;
mod train_classifier;
mod typicality;

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
    /// Mixed precision for score-network inference (sample, reconstruct, likelihood, encode,
    /// decode): none (float32), bf16 or f16; convolutions and matmuls run in the lower
    /// precision, the samplers' arithmetic stays float32.
    #[arg(long, global = true, default_value = "none")]
    pub autocast: String,
    #[command(subcommand)]
    pub command: Command,
}

// One value is parsed per run, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Time operators, NCSN++, sampling and training against references run alongside.
    Bench(bench::Args),
    /// Report libtorch, CUDA, devices, threads and data locations.
    Doctor(doctor::Args),
    /// Reconstruct from simulated measurements and score against the ground truth.
    Reconstruct(reconstruct::Args),
    /// Simulate a measurement y = A x + n (CT, MRI, inpainting, colorization) as NPY.
    Simulate(simulate::Args),
    /// Train a score model by score matching (DSM, SSM, NCSN, DDPM losses).
    Train(train::Args),
    /// Join the metrics of several reconstruction studies into one table.
    Merge(merge::Args),
    /// Write the model directory (EMA weights) of a run's latest checkpoint, e.g. mid-run.
    Export(train::ExportArgs),
    /// Draw samples from a trained model (PC, probability-flow ODE, annealed Langevin, DDPM).
    Sample(sample::Args),
    /// Bits/dim of a dataset under a trained model (probability-flow ODE likelihood).
    Likelihood(likelihood::Args),
    /// Map data to latents z = x(T) through the probability-flow ODE.
    Encode(latent::EncodeArgs),
    /// Map latents back to data through the probability-flow ODE.
    Decode(latent::DecodeArgs),
    /// Interpolate between two inputs along slerp paths in latent space.
    Interpolate(latent::InterpolateArgs),
    /// Train a time-dependent (or, with --clean, ordinary) classifier for class guidance.
    TrainClassifier(train_classifier::Args),
    /// Accuracy of a trained classifier on labelled data (e.g. the Fashion-MNIST test set).
    EvalClassifier(eval_classifier::Args),
    /// How typical images are under a prior; --record writes its reference (typicality.json).
    Typicality(typicality::Args),
}

/// `cmd` and all its subcommands read `-1` as a value, not a flag, so a negative number is
/// refused by the flag's own check (`--steps -1`: "must be at least 1") rather than reported as
/// an unknown argument.
fn allow_negative_numbers(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut cmd = cmd.allow_negative_numbers(true);
    for n in names {
        cmd = cmd.mut_subcommand(n, allow_negative_numbers);
    }
    cmd
}

/// `--window -160,240` as `--window=-160,240`: clap reads a negative number as a value, but not
/// a comma-separated list starting with a minus sign (it would take it for a flag); a list of
/// numbers after a flag that takes one is joined to it. Other arguments pass unchanged.
fn join_number_lists(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const LIST_FLAGS: [&str; 2] = ["--window", "--display-window"];
    let is_list = |a: &std::ffi::OsString| {
        a.to_str().is_some_and(|s| {
            s.starts_with('-')
                && s.contains(',')
                && s.split(',').all(|p| p.trim().parse::<f64>().is_ok())
        })
    };
    let mut out: Vec<std::ffi::OsString> = Vec::with_capacity(args.len());
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        let flag = a.to_str().is_some_and(|s| LIST_FLAGS.contains(&s));
        match it.peek() {
            Some(next) if flag && is_list(next) => {
                let mut joined = a.clone();
                joined.push("=");
                joined.push(it.next().expect("peeked"));
                out.push(joined);
            }
            _ => out.push(a),
        }
    }
    out
}

/// Rewrites the settings a library message names by field (`` `ground_truth` ``) to the flags
/// that set them (`--ground-truth`), for every flag of every subcommand; other backticked words
/// stay as they are.
pub fn flagify(msg: &str) -> String {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static FLAGS: OnceLock<HashMap<String, String>> = OnceLock::new();
    fn collect(cmd: &clap::Command, m: &mut HashMap<String, String>) {
        for a in cmd.get_arguments() {
            if let Some(l) = a.get_long() {
                m.entry(a.get_id().to_string())
                    .or_insert_with(|| format!("--{l}"));
            }
        }
        for s in cmd.get_subcommands() {
            collect(s, m);
        }
    }
    let flags = FLAGS.get_or_init(|| {
        let mut m = HashMap::new();
        collect(&Cli::command(), &mut m);
        m
    });
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(a) = rest.find('`') {
        out.push_str(&rest[..a]);
        let after = &rest[a + 1..];
        match after.find('`') {
            Some(b) if flags.contains_key(&after[..b]) => {
                out.push_str(&flags[&after[..b]]);
                rest = &after[b + 1..];
            }
            _ => {
                out.push('`');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn run() -> Result<()> {
    let matches = allow_negative_numbers(Cli::command())
        .get_matches_from(join_number_lists(std::env::args_os().collect()));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    // The first SIGINT/SIGTERM stops long loops at a safe point; a second one exits at once.
    scoreinv::interrupt::install().context("installing the SIGINT/SIGTERM handlers")?;
    // Before any tensor exists: glibc's heap set up for tensor work (see its doc).
    scoreinv::runtime::tune_host_allocator()?;
    if let Some(n) = cli.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        tch::set_num_threads(n as i32);
        // A second init (e.g. in tests) is harmless: keep the first pool.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    scoreinv::autocast::set_inference_autocast(scoreinv::autocast::parse_autocast(&cli.autocast)?);
    let choice: DeviceChoice = cli.device.parse()?;
    match cli.command {
        Command::Bench(args) => bench::run(args, choice),
        Command::Doctor(args) => doctor::run(args, choice),
        Command::Reconstruct(args) => reconstruct::run(args, choice.resolve()?),
        Command::Train(args) => train::run(args, choice),
        Command::Export(args) => train::export(args),
        Command::Merge(args) => merge::run(args),
        Command::Sample(args) => sample::run(args, choice.resolve()?),
        Command::Likelihood(args) => likelihood::run(args, choice.resolve()?),
        Command::Encode(args) => latent::run_encode(args, choice.resolve()?),
        Command::Decode(args) => latent::run_decode(args, choice.resolve()?),
        Command::Interpolate(args) => latent::run_interpolate(args, choice.resolve()?),
        Command::Simulate(args) => simulate::run(args, choice.resolve()?),
        Command::TrainClassifier(args) => train_classifier::run(args, choice),
        Command::EvalClassifier(args) => eval_classifier::run(args, choice.resolve()?),
        Command::Typicality(args) => typicality::run(args, choice.resolve()?),
    }
}

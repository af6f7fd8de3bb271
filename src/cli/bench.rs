//! `scoreinv bench`: operator, network, sampler and training figures next to references
//! (scikit-image, NumPy, PyTorch eager, ASTRA Toolbox) measured in the same run. The harness is [`harness`]:
//! part of this binary, not of the `scoreinv` library.
use anyhow::Result;
use harness::{BenchContext, Suite};
use indicatif::{ProgressBar, ProgressStyle};
use scoreinv::device::{device_name, DeviceChoice};
use std::path::PathBuf;
use std::time::Duration;

mod harness;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to run: all, operators, fanbeam, network, sampler, train, deepinv (not in all), or a
    /// comma-separated list.
    #[arg(default_value = "all")]
    pub what: String,
    /// Small sizes (seconds to minutes on a CPU).
    #[arg(long)]
    pub quick: bool,
    /// Also write the rows as a JSON list of
    /// {name, device, unit, value, reference, reference_value, speedup} (and rel_l2_diff where
    /// the outputs were compared with the reference's, quality where both reconstructed the
    /// same measurements).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args, choice: DeviceChoice) -> Result<()> {
    let suites = Suite::parse_list(&args.what)?;
    let device = choice.resolve()?;
    let cwd = std::env::current_dir()?;
    let python = harness::find_python(&cwd);
    let threads = tch::get_num_threads().max(1) as usize;
    println!("device            {}", device_name(device));
    println!("libtorch threads  {threads}");
    match &python {
        Some(p) => println!("reference python  {}", p.display()),
        None => println!(
            "reference python  none (no .venv/bin/python here and ${} unset): \
             references unavailable",
            harness::PYTHON_ENV
        ),
    }
    let astra_python = harness::find_astra_python(&cwd);
    if suites.contains(&Suite::FanBeam) {
        match &astra_python {
            Some(p) => println!("astra python      {}", p.display()),
            None => println!(
                "astra python      none (no .venv-astra/bin/python here and ${} unset): the \
                 fan-beam rows run without ASTRA",
                harness::ASTRA_PYTHON_ENV
            ),
        }
    }
    let work = tempfile::tempdir()?;
    let ctx = BenchContext {
        device,
        quick: args.quick,
        python,
        astra_python,
        scripts: harness::scripts_dir(&cwd),
        threads,
        work_dir: work.path().to_path_buf(),
    };
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")?);
    spinner.enable_steady_tick(Duration::from_millis(200));
    let rows = harness::run_suites(&ctx, &suites, &|m: &str| spinner.set_message(m.to_string()));
    spinner.finish_and_clear();
    let rows = rows?;
    harness::print_table(&rows);
    println!("speedup > 1: scoreinv is faster (times: reference/scoreinv; throughputs: scoreinv/reference)");
    if let Some(p) = &args.json {
        harness::write_json(&rows, p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

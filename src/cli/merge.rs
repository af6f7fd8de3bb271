//! `scoreinv merge`: joins the metrics tables of several reconstruction studies (shards of one
//! study, or the per-model parts of the demo) into one `metrics.json/.csv/.txt` and prints it.
use anyhow::{Context, Result};
use scoreinv::inverse::study;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Study folders written by `scoreinv reconstruct` (each with metrics.json).
    #[arg(required = true)]
    pub studies: Vec<PathBuf>,
    /// Folder for the merged metrics (created).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let dirs: Vec<&std::path::Path> = args.studies.iter().map(|p| p.as_path()).collect();
    let records = study::merge_metrics(&dirs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    study::write_metrics(&args.out, &records)?;
    print!("{}", study::format_table(&records));
    println!("wrote {}/metrics.{{json,csv,txt}}", args.out.display());
    Ok(())
}

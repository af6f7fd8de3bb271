//! `scoreinv merge`: joins several reconstruction studies (the `--shard K/N` parts of one study,
//! or the per-model parts of the demo) into one folder: every per-case file is copied, and the
//! metrics tables are joined into one `metrics.json/.csv/.txt`, which is printed.
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
    let out_canon = args.out.canonicalize()?;
    for d in &dirs {
        if d.canonicalize()? == out_canon {
            continue;
        }
        for e in std::fs::read_dir(d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let name = e.file_name();
            let is_metrics = name.to_string_lossy().starts_with("metrics.");
            if e.file_type()?.is_file() && !is_metrics {
                std::fs::copy(e.path(), args.out.join(&name))
                    .with_context(|| format!("copying {}", e.path().display()))?;
            }
        }
    }
    study::write_metrics(&args.out, &records)?;
    print!("{}", study::format_table(&records));
    println!("wrote {}/metrics.{{json,csv,txt}}", args.out.display());
    Ok(())
}

//! `scoreinv merge`: joins several reconstruction studies (the `--shard K/N` parts of one study,
//! or the per-model parts of the demo) into one folder: every per-case file is copied, the
//! metrics tables are joined into one `metrics.json/.csv/.txt`, which is printed, and the
//! slices of a ground-truth volume spread over the shards are stacked into one
//! `{stem}_{method}.nii.gz` per method (see [`scoreinv::inverse::volumes`]).
use anyhow::{Context, Result};
use scoreinv::inverse::study;
use scoreinv::inverse::volumes::{self, VolumeManifest};
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
    let manifests = dirs
        .iter()
        .map(|d| VolumeManifest::read(d))
        .collect::<scoreinv::Result<Vec<_>>>()?;
    let manifest = volumes::merge_manifests(&manifests)?;
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
            let is_metrics = name.to_string_lossy().starts_with("metrics.")
                || name.to_string_lossy() == volumes::MANIFEST;
            if e.file_type()?.is_file() && !is_metrics {
                std::fs::copy(e.path(), args.out.join(&name))
                    .with_context(|| format!("copying {}", e.path().display()))?;
            }
        }
    }
    study::write_metrics(&args.out, &records)?;
    manifest.write(&args.out)?;
    let written = volumes::write_volumes(&args.out, &manifest)?;
    print!("{}", study::format_table(&records));
    for p in &written {
        println!("volume: {}", p.display());
    }
    println!("wrote {}/metrics.{{json,csv,txt}}", args.out.display());
    Ok(())
}

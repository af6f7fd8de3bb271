//! `scoreinv merge`: joins several reconstruction studies (the `--shard K/N` parts of one study,
//! or, with `--allow-mixed`, different studies such as the per-model parts of the demo) into
//! one folder: every per-case file is copied, the metrics tables are joined into one
//! `metrics.json/.csv/.txt`, which is printed, and the slices of a ground-truth volume spread
//! over the shards are stacked into one `{stem}_{method}.nii.gz` per method (see
//! [`scoreinv::inverse::volumes`]). Parts whose settings differ, an incomplete set of shards
//! and interrupted parts are refused unless allowed ([`study::merge_reports`]).
use anyhow::{Context, Result};
use scoreinv::inverse::study::{self, MergePolicy};
use scoreinv::inverse::volumes::{self, VolumeManifest};
use scoreinv::io::output::{Manifest, OutputDir, Reuse, MANIFEST};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Study folders written by `scoreinv reconstruct` (each with metrics.json).
    #[arg(required = true)]
    pub studies: Vec<PathBuf>,
    /// Folder for the merged study: new, empty, or an earlier merge (with --overwrite); apart
    /// from the studies.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier merge in --out (only the files it wrote).
    #[arg(long)]
    pub overwrite: bool,
    /// Merge an incomplete set of shards, or interrupted studies: the table then covers only
    /// what is there, and metrics.json says it is incomplete.
    #[arg(long = "allow-partial")]
    pub allow_partial: bool,
    /// Join studies whose settings differ (e.g. one study per model) into one table; each
    /// part's settings are kept in metrics.json.
    #[arg(long = "allow-mixed")]
    pub allow_mixed: bool,
}

/// The per-case files of a study folder to copy: those its manifest lists (all regular files
/// of a folder written before manifests existed), without its metrics and volume manifest,
/// which are merged instead.
fn case_files(dir: &Path) -> Result<Vec<String>> {
    let merged =
        |n: &str| study::METRICS_FILES.contains(&n) || n == volumes::MANIFEST || n == MANIFEST;
    let names: Vec<String> = match Manifest::read(dir)? {
        Some(m) => m.files,
        None => {
            let mut v = Vec::new();
            for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
                let e = e?;
                if e.file_type()?.is_file() {
                    v.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            v.sort();
            v
        }
    };
    Ok(names.into_iter().filter(|n| !merged(n)).collect())
}

pub fn run(args: Args) -> Result<()> {
    let policy = MergePolicy {
        allow_partial: args.allow_partial,
        allow_mixed: args.allow_mixed,
    };
    let mut parts = Vec::new();
    for d in &args.studies {
        let r = study::read_report(d).with_context(|| format!("study {}", d.display()))?;
        parts.push((d.display().to_string(), r));
    }
    let report = study::merge_reports(&parts, policy)?;
    let manifests = args
        .studies
        .iter()
        .map(|d| VolumeManifest::read(d))
        .collect::<scoreinv::Result<Vec<_>>>()?;
    let manifest = volumes::merge_manifests(&manifests)?;
    let mut files = Vec::new();
    for d in &args.studies {
        for name in case_files(d)? {
            files.push((d.join(&name), name));
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (src, name) in &files {
        if let Some(first) = seen.insert(name.clone(), src.clone()) {
            anyhow::bail!(
                "{} and {} have the same name: the studies overlap",
                first.display(),
                src.display()
            );
        }
    }
    let reuse = if args.overwrite {
        Reuse::Overwrite
    } else {
        Reuse::Refuse
    };
    let mut out = OutputDir::claim(&args.out, "merge", &args.studies, reuse).context("--out")?;
    for (src, name) in &files {
        let dst = out.file(name)?;
        // Per-case files may lie in subfolders (`dicom/METHOD/CASE.dcm`).
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        scoreinv::io::atomic::write_bytes(&dst, &bytes)?;
    }
    study::write_metrics(&mut out, &report)?;
    manifest.write(&mut out)?;
    let written = volumes::write_volumes(&mut out, &manifest)?;
    print!("{}", study::format_table(&report.records));
    for p in &written {
        println!("volume: {}", p.display());
    }
    if !report.complete {
        println!("note: the merged study is incomplete (--allow-partial)");
    }
    println!("wrote {}/metrics.{{json,csv,txt}}", args.out.display());
    Ok(())
}

//! Outputs a command owns. A command writes only
//! * into an **output folder** that is new, empty, or marked as its own by an earlier run of the
//!   same command: the mark is a small manifest, [`MANIFEST`], listing every file the command
//!   wrote there. `--overwrite` removes exactly those files (nothing else in the folder) before
//!   the new run writes; `--resume` keeps them and adds to the list. Any other non-empty folder
//!   is refused;
//! * or into **output files** that do not exist yet (or, with `--overwrite`, exist and are not
//!   inputs).
//!
//! An output that is, contains, or lies inside any input of the command is refused before
//! anything is written ([`check_disjoint`]), whatever the flags.
//!
//! The manifest is rewritten atomically whenever files are added
//! ([`OutputDir::register`]), before they are written, so an interrupted run still lists every
//! file it may have created.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// The manifest's file name inside an output folder.
pub const MANIFEST: &str = ".scoreinv-output.json";
/// Version of the manifest format.
pub const MANIFEST_FORMAT: &str = "scoreinv-output/1";

/// What a command does with an output folder that an earlier run of it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Refuse it (the default).
    Refuse,
    /// Remove the files the earlier run listed, then write anew (`--overwrite`).
    Overwrite,
    /// Keep them and add to them (`--resume`).
    Resume,
}

impl Reuse {
    /// [`Reuse::Overwrite`] when `overwrite` (an `--overwrite` flag), else [`Reuse::Refuse`].
    pub fn from_flag(overwrite: bool) -> Self {
        if overwrite {
            Reuse::Overwrite
        } else {
            Reuse::Refuse
        }
    }
}

/// The contents of [`MANIFEST`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The command that owns the folder, e.g. `reconstruct ct`.
    pub command: String,
    /// The scoreinv version that wrote it last.
    pub version: String,
    /// The files written into the folder, as relative paths, in the order first written.
    pub files: Vec<String>,
}

impl Manifest {
    fn new(command: &str) -> Self {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            command: command.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            files: Vec::new(),
        }
    }

    /// The manifest of `dir`, `None` when it has none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not a scoreinv output manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(Error::format(
                &path,
                format!(
                    "manifest format '{}' is not the supported '{MANIFEST_FORMAT}'",
                    m.format
                ),
            ));
        }
        for f in &m.files {
            check_relative(f).map_err(|msg| Error::format(&path, msg))?;
        }
        Ok(Some(m))
    }
}

/// A listed file name must stay inside its folder: relative, no `..`, no root.
fn check_relative(name: &str) -> std::result::Result<(), String> {
    let p = Path::new(name);
    let ok = !name.is_empty()
        && name != MANIFEST
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a plain file name inside the folder"
        ))
    }
}

/// An output folder claimed by a command (see the module doc).
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    manifest: Manifest,
    created: bool,
}

impl OutputDir {
    /// Claims `path` for `command`, after [`check_disjoint`] against `inputs`:
    /// * a missing folder is created; an empty one is taken;
    /// * a folder whose manifest names `command` is refused, or with [`Reuse::Overwrite`] the
    ///   files its manifest lists are removed, or with [`Reuse::Resume`] they are kept;
    /// * anything else (a file, a non-empty folder without a manifest, another command's
    ///   folder) is refused, naming what is there.
    ///
    /// The manifest is written at once, so the folder is marked as the command's.
    pub fn claim(path: &Path, command: &str, inputs: &[PathBuf], reuse: Reuse) -> Result<Self> {
        check_disjoint(path, inputs)?;
        let invalid =
            |msg: String| Error::Invalid(format!("output folder {}: {msg}", path.display()));
        let (manifest, created) = match std::fs::metadata(path) {
            Ok(m) if !m.is_dir() => return Err(invalid("exists and is not a folder".into())),
            Ok(_) => {
                let previous = Manifest::read(path)?;
                match previous {
                    None => {
                        let first = first_entry(path)?;
                        if let Some(name) = first {
                            return Err(invalid(format!(
                                "is not empty (it holds '{name}') and was not written by \
                                 `scoreinv {command}`: choose a new or empty folder (scoreinv \
                                 writes only into folders it owns)"
                            )));
                        }
                        if reuse == Reuse::Resume {
                            return Err(invalid(format!(
                                "is empty: there is no earlier `scoreinv {command}` to resume"
                            )));
                        }
                        (Manifest::new(command), false)
                    }
                    Some(m) if m.command != command => {
                        return Err(invalid(format!(
                            "holds the output of `scoreinv {}`, not of `scoreinv {command}`: \
                             choose another folder",
                            m.command
                        )))
                    }
                    Some(m) => match reuse {
                        Reuse::Refuse => {
                            return Err(invalid(format!(
                                "holds the output of an earlier `scoreinv {command}`: pass \
                                 `overwrite` to replace it{}, or choose another folder",
                                if command.starts_with("reconstruct") {
                                    " (or `resume` to continue it)"
                                } else {
                                    ""
                                }
                            )))
                        }
                        Reuse::Overwrite => {
                            for f in &m.files {
                                let p = path.join(f);
                                match std::fs::remove_file(&p) {
                                    Ok(()) => {}
                                    // (A path below a regular file is "not a directory": creating it says so.)
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::NotFound
                                                | std::io::ErrorKind::NotADirectory
                                        ) => {}
                                    Err(e) => return Err(Error::io(&p, e)),
                                }
                            }
                            (Manifest::new(command), false)
                        }
                        Reuse::Resume => {
                            let mut m = m;
                            m.version = env!("CARGO_PKG_VERSION").into();
                            (m, false)
                        }
                    },
                }
            }
            // (A path below a regular file is "not a directory": creating it says so.)
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                if reuse == Reuse::Resume {
                    return Err(invalid(format!(
                        "does not exist: there is no earlier `scoreinv {command}` to resume"
                    )));
                }
                std::fs::create_dir_all(path).map_err(|e| {
                    Error::io(
                        path,
                        std::io::Error::new(e.kind(), format!("cannot create output folder: {e}")),
                    )
                })?;
                (Manifest::new(command), true)
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let out = OutputDir {
            path: path.to_path_buf(),
            manifest,
            created,
        };
        if let Err(e) = out.write_manifest() {
            out.abandon();
            return Err(e);
        }
        Ok(out)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files listed so far.
    pub fn files(&self) -> &[String] {
        &self.manifest.files
    }

    /// Whether `name` is listed.
    pub fn owns(&self, name: &str) -> bool {
        self.manifest.files.iter().any(|f| f == name)
    }

    /// Lists `names` (relative paths) in the manifest, which is rewritten atomically, and
    /// returns their paths: call it before writing them.
    pub fn register<S: AsRef<str>>(&mut self, names: &[S]) -> Result<Vec<PathBuf>> {
        let mut added = false;
        for n in names {
            let n = n.as_ref();
            check_relative(n)
                .map_err(|msg| Error::Invalid(format!("output {}: {msg}", self.path.display())))?;
            if !self.owns(n) {
                self.manifest.files.push(n.to_string());
                added = true;
            }
        }
        if added {
            self.write_manifest()?;
        }
        Ok(names.iter().map(|n| self.path.join(n.as_ref())).collect())
    }

    /// [`Self::register`] of one file.
    pub fn file(&mut self, name: &str) -> Result<PathBuf> {
        Ok(self.register(&[name])?.remove(0))
    }

    fn write_manifest(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.manifest)
            .map_err(|e| Error::Invalid(format!("output manifest to JSON: {e}")))?;
        super::atomic::write_bytes(&self.path.join(MANIFEST), text.as_bytes())
    }

    /// Undoes the claim of a folder this claim created when none of the files it listed
    /// exists (a command that failed before writing, or removed what it had written, leaves
    /// nothing behind). Anything else stays.
    pub fn abandon(&self) {
        if !self.created
            || self
                .manifest
                .files
                .iter()
                .any(|f| self.path.join(f).exists())
        {
            return;
        }
        let _ = std::fs::remove_file(self.path.join(MANIFEST));
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The first entry of a folder (its name), `None` when it is empty.
fn first_entry(dir: &Path) -> Result<Option<String>> {
    let mut it = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(match it.next() {
        Some(e) => Some(
            e.map_err(|e| Error::io(dir, e))?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        ),
        None => None,
    })
}

/// `path` made absolute with every existing part resolved (symbolic links, `..`): the longest
/// existing prefix is canonicalised and the rest appended, so paths that do not exist yet
/// compare correctly with ones that do.
pub fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    // Component by component: while the path exists, each step is canonicalised (so a `..`
    // after a symbolic link leaves the link's target); past the first missing part, the rest
    // is appended lexically.
    let mut out = PathBuf::new();
    let mut exists = true;
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
                // Back inside the existing (canonical) part.
                exists = exists || out.exists();
            }
            Component::Normal(name) => {
                out.push(name);
                if exists {
                    match out.canonicalize() {
                        Ok(canon) => out = canon,
                        Err(_) => exists = false,
                    }
                }
            }
        }
    }
    out
}

/// Refuses an output `out` that is, contains, or lies inside one of `inputs` (files or
/// folders; paths that do not exist are skipped), naming the input.
pub fn check_disjoint(out: &Path, inputs: &[PathBuf]) -> Result<()> {
    let o = resolve(out);
    for input in inputs {
        if !input.exists() {
            continue;
        }
        let i = resolve(input);
        let relation = if o == i {
            "is"
        } else if i.starts_with(&o) {
            "contains"
        } else if o.starts_with(&i) {
            "lies inside"
        } else {
            continue;
        };
        return Err(Error::Invalid(format!(
            "output {} {relation} the input {}: choose an output apart from the inputs",
            out.display(),
            input.display()
        )));
    }
    Ok(())
}

/// Checks output files before anything is written: none is, contains or lies inside an input
/// ([`check_disjoint`]), none is a folder, and none exists unless `overwrite`.
pub fn check_output_files(files: &[PathBuf], inputs: &[PathBuf], overwrite: bool) -> Result<()> {
    for f in files {
        check_disjoint(f, inputs)?;
        match std::fs::symlink_metadata(f) {
            Ok(m) if m.is_dir() => {
                return Err(Error::Invalid(format!(
                    "output file {} is a folder",
                    f.display()
                )))
            }
            Ok(_) if !overwrite => {
                return Err(Error::Invalid(format!(
                    "output file {} exists: pass `overwrite` to replace it, or choose another name",
                    f.display()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_handles_missing_tails_and_dotdot() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().canonicalize().unwrap();
        assert_eq!(resolve(&d.path().join("a/b/../c")), base.join("a/c"));
        std::fs::create_dir(d.path().join("x")).unwrap();
        assert_eq!(resolve(&d.path().join("x/../y")), base.join("y"));
    }

    #[test]
    fn disjointness_in_all_three_relations() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in");
        std::fs::create_dir(&input).unwrap();
        let inputs = vec![input.clone()];
        for (out, word) in [
            (input.clone(), " is "),
            (d.path().to_path_buf(), " contains "),
            (input.join("sub"), " lies inside "),
        ] {
            let e = check_disjoint(&out, &inputs).unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
        check_disjoint(&d.path().join("other"), &inputs).unwrap();
    }

    #[test]
    fn claim_refuses_foreign_folders_and_overwrites_only_listed_files() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let mut o = OutputDir::claim(&out, "test", &[], Reuse::Refuse).unwrap();
        let p = o.file("a.txt").unwrap();
        std::fs::write(&p, "a").unwrap();
        std::fs::write(out.join("mine.txt"), "user").unwrap();
        let e = OutputDir::claim(&out, "test", &[], Reuse::Refuse)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`overwrite`"), "{e}");
        let e = OutputDir::claim(&out, "other", &[], Reuse::Overwrite)
            .unwrap_err()
            .to_string();
        assert!(e.contains("scoreinv test"), "{e}");
        let o = OutputDir::claim(&out, "test", &[], Reuse::Overwrite).unwrap();
        assert!(!out.join("a.txt").exists());
        assert_eq!(
            std::fs::read_to_string(out.join("mine.txt")).unwrap(),
            "user"
        );
        assert!(o.files().is_empty());
        // A folder without a manifest that holds anything is refused.
        let foreign = d.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("x"), "x").unwrap();
        let e = OutputDir::claim(&foreign, "test", &[], Reuse::Overwrite)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not empty") && e.contains("'x'"), "{e}");
    }

    #[test]
    fn manifest_entries_cannot_leave_the_folder() {
        let d = tempfile::tempdir().unwrap();
        let m = Manifest {
            files: vec!["../victim".into()],
            ..Manifest::new("test")
        };
        std::fs::write(d.path().join(MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
        let e = OutputDir::claim(d.path(), "test", &[], Reuse::Overwrite)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a plain file name"), "{e}");
    }
}

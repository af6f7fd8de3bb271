//! Atomic file writing: every writer of [`crate::io`] writes into a temporary file created in the
//! destination folder and renames it onto the destination only once everything was written
//! (`tempfile::NamedTempFile::persist`, a `rename(2)` within one file system). A failure at any
//! point (encoder error, full disk, NaN found late) leaves no partial file behind: the temporary
//! file is removed when it is dropped.
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// The folder a file at `path` will be written into (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that `path`'s folder exists and is a folder, naming the folder otherwise.
pub fn check_output_dir(path: &Path) -> Result<PathBuf> {
    let dir = parent_dir(path);
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(Error::Invalid(format!(
            "output path '{}' does not name a file",
            path.display()
        )));
    }
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(Error::io(
            &dir,
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!(
                    "cannot write '{}': output folder is not a folder (it is a file)",
                    path.display()
                ),
            ),
        )),
        Err(e) => Err(Error::io(
            &dir,
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot write '{}': output folder does not exist or is not accessible ({e})",
                    path.display()
                ),
            ),
        )),
    }
}

/// A temporary file in `path`'s folder whose name ends in `suffix` (some encoders pick the
/// format from the extension).
fn temp_in_dir(path: &Path, suffix: &str) -> Result<NamedTempFile> {
    let dir = check_output_dir(path)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".scoreinv-tmp-").suffix(suffix);
    // A temporary file is private (0600) by default; the output should get the permissions of
    // any new file, 0666 less the umask, like `File::create`.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(&dir).map_err(|e| {
        Error::io(
            &dir,
            std::io::Error::new(
                e.kind(),
                format!("cannot create a file in output folder: {e}"),
            ),
        )
    })
}

fn persist(tmp: NamedTempFile, path: &Path) -> Result<()> {
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes `path` atomically: `write` fills a buffered writer on a temporary file in the same
/// folder, which is flushed, synced and renamed onto `path` only if `write` succeeded.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&File>) -> Result<()>,
{
    let tmp = temp_in_dir(path, "")?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        write(&mut w)?;
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}

/// [`write_atomic`] of a byte string (its folder must exist).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// For writers that insist on opening a path themselves (the `nifti` crate): `write` receives
/// the path of a temporary file in the destination folder, ending in `suffix`, which is renamed
/// onto `path` only if `write` succeeded.
pub fn write_atomic_via_path<F>(path: &Path, suffix: &str, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_in_dir(path, suffix)?;
    write(tmp.path())?;
    File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}

//! The client's private files under the XDG state directory (the cookie
//! jar, the known servers): where they live, and how they are written so
//! that no one else can read them and no crash leaves half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `$XDG_STATE_HOME/porter` (by default `~/.local/state/porter`); `None`
/// without a home directory.
pub(crate) fn state_dir() -> Option<PathBuf> {
    use etcetera::app_strategy::{AppStrategy, AppStrategyArgs, Xdg};
    let strategy = Xdg::new(AppStrategyArgs {
        top_level_domain: String::new(),
        author: String::new(),
        app_name: "porter".into(),
    })
    .ok()?;
    strategy.state_dir()
}

/// Replaces `path` with `bytes`: its directory created with mode 0700, the
/// file with mode 0600 from the moment it exists, through a temporary file
/// in the same directory, synced, then renamed over the old one. Two
/// writers at once both succeed; the later rename wins.
///
/// # Errors
/// The path that failed (the directory or the file) and why.
pub(crate) fn write_private_atomically(
    path: &Path,
    bytes: &[u8],
) -> Result<(), (PathBuf, io::Error)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| (dir.to_owned(), e))?;
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = write_private(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err((path.to_owned(), source));
    }
    Ok(())
}

/// The contents of `path`; `None` when there is no such file.
pub(crate) fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file: File = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

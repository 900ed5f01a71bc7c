//! The server's log file: opened and checked before anything else happens,
//! then fed by `tracing` through a non-blocking writer.
//!
//! The console is for people (the listening line, chat lines, fatal errors);
//! every event goes to the file, with timestamps, levels and structured
//! fields, as text or as JSON lines.
//!
//! The file is opened here (create + append) and a first line is written
//! synchronously, so a missing folder, a permission problem or a full disk
//! stops `porter serve` at once with a clear message, instead of a server
//! that runs without its log.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, anyhow};
use clap::ValueEnum;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps the log writer's worker alive: dropping it flushes what is queued.
/// Hold it until the very end of `main`'s work.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Opens `path` for appending, writes a first event to it synchronously,
/// then installs the global subscriber writing there in `format`, filtered
/// by `level` (an `EnvFilter` directive such as `info` or
/// `porter_server=debug`). Returns the guard and the absolute path.
///
/// # Errors
/// An invalid level; a file that cannot be opened or written (missing
/// folder, permissions, full disk).
pub fn init(path: &Path, level: &str, format: LogFormat) -> anyhow::Result<(LogGuard, PathBuf)> {
    let path = std::path::absolute(path)
        .with_context(|| format!("cannot locate the log file {}", path.display()))?;
    let filter =
        || EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"));
    filter()?;
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;

    // The first event is formatted like all the others, into memory, and
    // written and synced by hand: that write is the check.
    let first = Buffer::default();
    let sink = first.clone();
    let subscriber = builder(filter()?, move || sink.clone());
    let emit = || {
        tracing::info!(
            pid = std::process::id(),
            version = %env!("CARGO_PKG_VERSION"),
            "porter serve starting"
        );
    };
    match format {
        LogFormat::Text => tracing::subscriber::with_default(subscriber.finish(), emit),
        LogFormat::Json => tracing::subscriber::with_default(subscriber.json().finish(), emit),
    }
    file.write_all(&first.take())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot write the log file {}", path.display()))?;

    // Never drop a line: under pressure the server waits for the log
    // rather than lose what happened.
    let (writer, worker) = NonBlockingBuilder::default().lossy(false).finish(file);
    let subscriber = builder(filter()?, writer);
    let installed = match format {
        LogFormat::Text => subscriber.try_init(),
        LogFormat::Json => subscriber.json().try_init(),
    };
    installed.map_err(|e| anyhow!("cannot install the logger: {e}"))?;
    Ok((LogGuard { _worker: worker }, path))
}

fn builder<W>(
    filter: EnvFilter,
    writer: W,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format,
    EnvFilter,
    W,
>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer)
}

/// An in-memory writer for the first log line.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log file in a folder that does not exist must fail before anything
/// else (the binary's tests check the message end to end).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join("porter-no-such-folder-for-tests");
        let err = init(&dir.join("porter.log"), "info", LogFormat::Text)
            .err()
            .expect("opened a file in a missing folder");
        let text = format!("{err:#}");
        assert!(text.contains("cannot open the log file"), "{text}");
        assert!(text.contains("porter-no-such-folder-for-tests"), "{text}");
    }

    #[test]
    fn a_bad_level_is_refused() {
        let err = init(Path::new("unused.log"), "info,=[", LogFormat::Text)
            .err()
            .expect("accepted a bad level");
        assert!(format!("{err:#}").contains("invalid --log-level"));
    }
}

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
//!
//! Where it goes, and for how long: `-` is stderr (journald, containers);
//! `--log-rotate hourly|daily` moves on to a dated file by itself
//! (tracing-appender's rolling appender) and keeps the last `--log-keep`;
//! and [`Log::reopen`], on SIGHUP, opens the file again by its name, which
//! is what logrotate (or an operator who moved the file) expects. The
//! worker writes through a [`Swappable`] writer, so a reopen swaps the file
//! under it without losing a queued line. The filter is behind a reload
//! handle, so SIGHUP can change `--log-level` too.
//!
//! Log fields cannot be forged. The server logs what clients chose (`user =
//! %name`, the `client` of `hello`) as Display values, which the default text
//! format writes bare: the chat name `x participants=9 user=root` would read
//! as three fields, and a newline would start a line of its own. The text
//! format therefore writes fields through [`SafeFields`], which quotes and
//! escapes every value that is not plain printable ASCII, so the server code
//! needs no care of its own. The JSON format is JSON whatever the values
//! (serde escapes them).

use std::error::Error;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, anyhow, bail};
use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// When the log moves on to a new file by itself (`--log-rotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogRotation {
    /// One file, for ever (logrotate and SIGHUP can still rotate it).
    Never,
    /// A new file every hour: PATH.YYYY-MM-DD-HH.
    Hourly,
    /// A new file every day: PATH.YYYY-MM-DD.
    Daily,
}

/// Rotated log files kept by default: a week of daily files.
pub const DEFAULT_LOG_KEEP: usize = 7;

/// What the log is, as `porter serve`'s options say.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions<'a> {
    /// The file, or `-` for stderr.
    pub file: &'a Path,
    /// An `EnvFilter` directive such as `info` or `porter_server=debug`.
    pub level: &'a str,
    /// Text or JSON lines.
    pub format: LogFormat,
    /// Whether it moves on to new files by itself.
    pub rotation: LogRotation,
    /// With rotation: files kept (0: all).
    pub keep: usize,
}

/// The running log: its writer's worker (dropping it flushes what is
/// queued, so hold it until the very end of `main`'s work), and what
/// SIGHUP changes: the file it writes to and its filter.
#[must_use = "dropping the log stops its writer"]
pub struct Log {
    _worker: WorkerGuard,
    destination: Destination,
    /// The worker's writer, whose file [`Log::reopen`] swaps.
    writer: Swappable,
    /// Replaces the filter in force.
    set_filter: SetFilter,
}

/// Replaces the log's filter (the reload handle's type depends on the
/// format, so it is kept behind a closure).
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Where log lines go.
#[derive(Debug, Clone)]
enum Destination {
    Stderr,
    /// This file (absolute), appended to.
    File(PathBuf),
    /// Files named after this one (absolute), with a date.
    Rolling {
        path: PathBuf,
        rotation: LogRotation,
        keep: usize,
    },
}

impl Destination {
    /// Opens the destination, writes `first` (the first event) and makes
    /// sure it is on disk: that write is the check that the log works.
    fn open(&self, first: &[u8]) -> anyhow::Result<Box<dyn Write + Send>> {
        match self {
            Destination::Stderr => {
                let mut stderr = io::stderr();
                stderr
                    .write_all(first)
                    .context("cannot write the log to stderr")?;
                Ok(Box::new(stderr))
            }
            Destination::File(path) => {
                let mut file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the log file {}", path.display()))?;
                file.write_all(first)
                    .and_then(|()| file.sync_data())
                    .with_context(|| format!("cannot write the log file {}", path.display()))?;
                Ok(Box::new(file))
            }
            Destination::Rolling {
                path,
                rotation,
                keep,
            } => {
                let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                    bail!("the log file {} has no file name", path.display());
                };
                let mut builder = RollingFileAppender::builder()
                    .rotation(match rotation {
                        LogRotation::Never => Rotation::NEVER,
                        LogRotation::Hourly => Rotation::HOURLY,
                        LogRotation::Daily => Rotation::DAILY,
                    })
                    .filename_prefix(name.to_string_lossy());
                if *keep > 0 {
                    builder = builder.max_log_files(*keep);
                }
                let mut appender = builder
                    .build(dir)
                    .with_context(|| format!("cannot open the log file {}.*", path.display()))?;
                appender
                    .write_all(first)
                    .and_then(|()| appender.flush())
                    .with_context(|| format!("cannot write the log file {}.*", path.display()))?;
                Ok(Box::new(appender))
            }
        }
    }
}

impl Log {
    /// Where the log goes, for people: `stderr`, or the file's absolute
    /// path (with `.*` when it rotates).
    pub fn location(&self) -> String {
        match &self.destination {
            Destination::Stderr => "stderr".into(),
            Destination::File(path) => path.display().to_string(),
            Destination::Rolling { path, .. } => format!("{}.*", path.display()),
        }
    }

    /// The folder of the log file; `None` when it goes to stderr.
    pub fn dir(&self) -> Option<&Path> {
        match &self.destination {
            Destination::Stderr => None,
            Destination::File(path) | Destination::Rolling { path, .. } => path.parent(),
        }
    }

    /// Opens the log file again, by its name, and writes on there: after
    /// logrotate (or anyone) moved the old file away, lines land in a new
    /// one. What was queued before goes to the old file.
    ///
    /// # Errors
    /// When the file cannot be opened or written; the old one is kept.
    pub fn reopen(&self) -> anyhow::Result<()> {
        if matches!(self.destination, Destination::Stderr) {
            return Ok(());
        }
        let fresh = self.destination.open(b"")?;
        self.writer.swap(fresh);
        Ok(())
    }

    /// Replaces the log filter with `level`.
    ///
    /// # Errors
    /// An invalid filter; the old one stays.
    pub fn set_level(&self, level: &str) -> anyhow::Result<()> {
        let filter = check_level(level)?;
        (self.set_filter)(filter).map_err(|e| anyhow!("cannot change the log level: {e}"))
    }
}

/// `level` as a filter.
///
/// # Errors
/// When it is not a level nor tracing directives.
pub fn check_level(level: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"))
}

/// A writer whose destination can be replaced while the log's worker
/// writes through it. Only that worker writes, so the lock is uncontended
/// but for a reopen.
#[derive(Clone)]
struct Swappable(Arc<Mutex<Box<dyn Write + Send>>>);

impl Swappable {
    fn new(inner: Box<dyn Write + Send>) -> Swappable {
        Swappable(Arc::new(Mutex::new(inner)))
    }

    /// Writes on to `fresh` from now on, after flushing the old one.
    fn swap(&self, fresh: Box<dyn Write + Send>) {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = inner.flush();
        *inner = fresh;
    }
}

impl Write for Swappable {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// Opens the log `options` describe (a file is created or appended to;
/// `-` is stderr), writes a first event to it synchronously, then installs
/// the global subscriber writing there in `options.format`, filtered by
/// `options.level`.
///
/// # Errors
/// An invalid level; a file that cannot be opened or written (missing
/// folder, permissions, full disk).
pub fn init(options: &LogOptions<'_>) -> anyhow::Result<Log> {
    let destination = if options.file == Path::new("-") {
        Destination::Stderr
    } else {
        let path = std::path::absolute(options.file)
            .with_context(|| format!("cannot locate the log file {}", options.file.display()))?;
        match options.rotation {
            LogRotation::Never => Destination::File(path),
            rotation => Destination::Rolling {
                path,
                rotation,
                keep: options.keep,
            },
        }
    };
    let level = options.level;
    check_level(level)?;

    // The first event is formatted like all the others, into memory, and
    // written by hand: that write is the check.
    let first = Buffer::default();
    let sink = first.clone();
    let subscriber = builder(check_level(level)?, move || sink.clone());
    let emit = || {
        tracing::info!(
            pid = std::process::id(),
            version = %env!("CARGO_PKG_VERSION"),
            "porter serve starting"
        );
    };
    match options.format {
        LogFormat::Text => tracing::subscriber::with_default(subscriber.finish(), emit),
        LogFormat::Json => tracing::subscriber::with_default(subscriber.json().finish(), emit),
    }
    let writer = Swappable::new(destination.open(&first.take())?);

    // Never drop a line: under pressure the server waits for the log
    // rather than lose what happened.
    let (non_blocking, worker) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(writer.clone());
    let subscriber = builder(check_level(level)?, non_blocking);
    let (set_filter, installed): (SetFilter, _) = match options.format {
        LogFormat::Text => {
            let subscriber = subscriber.with_filter_reloading();
            let handle = subscriber.reload_handle();
            (
                Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
                subscriber.try_init(),
            )
        }
        LogFormat::Json => {
            let subscriber = subscriber.json().with_filter_reloading();
            let handle = subscriber.reload_handle();
            (
                Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
                subscriber.try_init(),
            )
        }
    };
    installed.map_err(|e| anyhow!("cannot install the logger: {e}"))?;
    Ok(Log {
        _worker: worker,
        destination,
        writer,
        set_filter,
    })
}

fn builder<W>(
    filter: EnvFilter,
    writer: W,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    SafeFields,
    tracing_subscriber::fmt::format::Format,
    EnvFilter,
    W,
>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(SafeFields)
        .with_ansi(false)
        .with_writer(writer)
}

/// The text format's fields, written so that no value passes for another
/// field or another line: `name=value` when the value is plain printable
/// ASCII (no space, quote, backslash or `=`), `name="value"` with Rust-style
/// escapes (`\"`, `\\`, `\n`, `\u{202e}`) otherwise, and for every string
/// field (as the default format does). The message is written bare, as
/// usual, with quotes, backslashes, control and invisible characters
/// escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeFields;

impl<'writer> FormatFields<'writer> for SafeFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = SafeVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one event's (or span's) fields for [`SafeFields`].
struct SafeVisitor<'writer> {
    writer: Writer<'writer>,
    /// Nothing written yet: no separating space before the next field.
    empty: bool,
    result: fmt::Result,
}

impl SafeVisitor<'_> {
    /// Writes `name=value`, quoted when `quote` says so or when `value` is
    /// not bare.
    fn field(&mut self, field: &Field, value: &str, quote: bool) {
        let name = field.name();
        // Metadata of events from the `log` crate, which the format has
        // already written.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let separator = if std::mem::take(&mut self.empty) {
            ""
        } else {
            " "
        };
        self.result = if name == "message" {
            write!(self.writer, "{separator}").and_then(|()| escape(&mut self.writer, value))
        } else if !quote && is_bare(value) {
            write!(self.writer, "{separator}{name}={value}")
        } else {
            write!(self.writer, "{separator}{name}=\"")
                .and_then(|()| escape(&mut self.writer, value))
                .and_then(|()| self.writer.write_char('"'))
        };
    }
}

impl Visit for SafeVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Strings are quoted as the default format quotes them
        // (`result="registered"`).
        self.field(field, value, true);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        // The error and its causes, as one value.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.field(field, &text, false);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Display values (`%name`) arrive here too, as their text.
        self.field(field, &format!("{value:?}"), false);
    }
}

/// Whether `value` can be written without quotes and still read as one
/// field: printable ASCII, not empty, nothing that quotes, escapes or
/// assigns.
fn is_bare(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\' | b'='))
}

/// Writes `value` with Rust-style escapes for quotes, backslashes, control
/// characters and what the name policy calls hidden (invisible or
/// reordering characters); everything else as it is.
fn escape(writer: &mut Writer<'_>, value: &str) -> fmt::Result {
    for c in value.chars() {
        match c {
            '"' => writer.write_str("\\\"")?,
            '\\' => writer.write_str("\\\\")?,
            '\n' => writer.write_str("\\n")?,
            '\r' => writer.write_str("\\r")?,
            '\t' => writer.write_str("\\t")?,
            c if porter_server::auth::is_hidden(c) => write!(writer, "\\u{{{:x}}}", u32::from(c))?,
            c => writer.write_char(c)?,
        }
    }
    Ok(())
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

    fn options<'a>(file: &'a Path, level: &'a str) -> LogOptions<'a> {
        LogOptions {
            file,
            level,
            format: LogFormat::Text,
            rotation: LogRotation::Never,
            keep: 0,
        }
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join("porter-no-such-folder-for-tests");
        let err = init(&options(&dir.join("porter.log"), "info"))
            .err()
            .expect("opened a file in a missing folder");
        let text = format!("{err:#}");
        assert!(text.contains("cannot open the log file"), "{text}");
        assert!(text.contains("porter-no-such-folder-for-tests"), "{text}");
    }

    /// Formats one event the way the text log does.
    fn text_line(emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = builder(EnvFilter::new("info"), move || sink.clone())
            .without_time()
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buffer.take()).unwrap()
    }

    /// Issue 9: a chat name cannot pass for more fields, nor for another line.
    #[test]
    fn values_that_could_pass_for_fields_or_lines_are_quoted_and_escaped() {
        let name = "x participants=9 user=root";
        let line = text_line(|| tracing::info!(user = %name, participants = 2, "joined chat"));
        assert_eq!(
            line,
            " INFO joined chat user=\"x participants=9 user=root\" participants=2\n"
        );
        let line = text_line(|| {
            tracing::info!(
                user = %"a\"b\\c\nINFO forged=1\u{202e}\u{0}",
                peer = %"127.0.0.1:9",
                result = "login ok",
                "authentication"
            )
        });
        assert_eq!(
            line,
            " INFO authentication user=\"a\\\"b\\\\c\\nINFO forged=1\\u{202e}\\u{0}\" \
             peer=127.0.0.1:9 result=\"login ok\"\n"
        );
        let line = text_line(|| tracing::info!(user = %"", word = %"é", "x"));
        assert_eq!(line, " INFO x user=\"\" word=\"é\"\n");
    }

    #[test]
    fn plain_values_and_numbers_stay_bare() {
        let line = text_line(
            || tracing::info!(peer = %"127.0.0.1:9", user = %"ada", attempt = 2u32, ok = true, "done"),
        );
        assert_eq!(
            line,
            " INFO done peer=127.0.0.1:9 user=ada attempt=2 ok=true\n"
        );
    }

    #[test]
    fn errors_are_one_value_with_their_causes() {
        let err = io::Error::other("disk on fire");
        let line = text_line(|| tracing::warn!(cause = &err as &dyn Error, "failed"));
        assert_eq!(line, " WARN failed cause=\"disk on fire\"\n");
    }

    #[test]
    fn a_bad_level_is_refused() {
        let err = init(&options(Path::new("unused.log"), "info,=["))
            .err()
            .expect("accepted a bad level");
        assert!(format!("{err:#}").contains("invalid --log-level"));
    }
}

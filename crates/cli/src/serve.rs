//! `porter serve`: its options, and the start-up sequence: log file, the
//! limits checked (named by their flags), address (flag, environment,
//! prompt, default), the database (for `--auth ip` and `password`), bind
//! with port hunting, the listening line, then the server until Ctrl-C or
//! SIGTERM.
//!
//! At a terminal the server has a console: a line editor (rustyline-async,
//! as `porter connect` uses) whose lines go to the chat room as from
//! `server`, while the room's lines are printed above what is being typed,
//! escaped like every remote text ([`porter_wire::text`]). The echo service
//! has no room: the console says so once, at the first line typed.

use std::convert::Infallible;
use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{ArgMatches, Args, FromArgMatches};
use porter_client::view::CONTINUATION;
use porter_server::throttle::ThrottlePolicy;
use porter_server::{
    AuthMode, BusConfig, Config, Console, ConsoleLine, DEFAULT_FRAME_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_HISTORY, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOGGED_CONNECTIONS_PER_MINUTE, DEFAULT_MAX_AUTH_ATTEMPTS,
    DEFAULT_MAX_CONCURRENT_HASHES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_FRAME_LEN,
    DEFAULT_MAX_PER_ADDRESS, DEFAULT_MAX_SESSIONS_PER_USER, DEFAULT_MAX_STARTUPS,
    DEFAULT_OUTGOING_QUEUE, DEFAULT_PORT_TRIES, DEFAULT_PRE_LOGIN_MAX_FRAME_LEN,
    DEFAULT_SEND_BUFFER, DEFAULT_SHUTDOWN_GRACE, Registration, ServiceKind,
};
use porter_wire::text::{printable, printable_lines};
use rustyline_async::{Readline, ReadlineEvent, SharedWriter};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::logging::{self, Log, LogFormat, LogOptions, LogRotation};
use crate::password::HashCostArgs;
use crate::settings::{self, FileSettings, Resolved};
use crate::tls::{TlsArgs, certificate_names};
use crate::{duration, exporter, modes, prompt, store, systemd};

/// The host a server listens on when none is given: loopback only, as
/// Mosquitto 2 does until it is configured, so that a server started
/// without thought is not on the network (`--host 0.0.0.0` puts it there).
const DEFAULT_HOST: &str = "127.0.0.1";
/// The port a server listens on when none is given.
const DEFAULT_PORT: u16 = 9090;
/// Console lines typed but not yet taken by the server. Typing is slow; a
/// small buffer is plenty.
const CONSOLE_INPUT_QUEUE: usize = 64;
/// Chat lines waiting to be printed on the console. The server drops (and
/// counts) lines rather than wait when this is full.
const CONSOLE_OUTPUT_QUEUE: usize = 1024;
/// The console's prompt.
const CONSOLE_PROMPT: &str = "server> ";

/// Options of `porter serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML; keys are these options' long names) [default:
    /// porter.toml in the XDG config directory, if there]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print the effective configuration, with the source of each value
    /// (flag, env, file, default), and exit
    #[arg(long)]
    print_config: bool,

    /// Address to listen on: an IP address or a host name; 0.0.0.0 for every
    /// IPv4 interface [default: 127.0.0.1; asked at a terminal]
    #[arg(long)]
    host: Option<String>,

    /// Port to listen on; when it is busy the next ones are tried (see
    /// --port-tries). 0 lets the system choose [default: 9090; asked at a
    /// terminal]
    #[arg(long)]
    port: Option<u16>,

    /// What the server does with each line after the handshake
    #[arg(long, value_parser = modes::service(), default_value_t = ServiceKind::Chat)]
    service: ServiceKind,

    /// File the log is appended to; `-` for stderr (journald, containers).
    /// SIGHUP reopens it
    #[arg(long, value_name = "PATH", default_value = "porter.log")]
    log_file: PathBuf,

    /// Start a new log file every hour or day (PATH.YYYY-MM-DD[-HH]),
    /// without logrotate
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = LogRotation::Never)]
    log_rotate: LogRotation,

    /// With --log-rotate: log files kept, the oldest deleted; 0 keeps all
    #[arg(long, value_name = "N", default_value_t = logging::DEFAULT_LOG_KEEP)]
    log_keep: usize,

    /// Directory of the server's own files: the database (porter.db) and
    /// the generated TLS certificate and key [default: the log file's
    /// directory]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(flatten)]
    tls: TlsArgs,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing
    /// directives such as "info,porter_server=debug"
    #[arg(long, value_name = "FILTER", default_value = "info")]
    log_level: String,

    /// How log lines are written
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Connections served at once; beyond it newcomers get a `busy` error
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Handshakes in progress at once; past half of it newcomers are dropped
    /// at random, more often as it fills (at most --max-connections counts)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_STARTUPS)]
    max_startups: usize,

    /// Connections from one IP address at once; 0 for no cap
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PER_ADDRESS)]
    max_per_address: usize,

    /// Live connections of one user at once; 0 for no cap
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SESSIONS_PER_USER)]
    max_sessions_per_user: usize,

    /// Connections per IP address per minute logged one by one; past it
    /// they are counted and summarised; 0 logs every one
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LOGGED_CONNECTIONS_PER_MINUTE)]
    log_connections_per_minute: u32,

    /// Bytes the system may buffer on the way out to one client
    /// (SO_SNDBUF); 0 for the system's autotuning
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SEND_BUFFER)]
    send_buffer: usize,

    /// Seconds a client has from connecting to `ready`
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_HANDSHAKE_TIMEOUT.as_secs())]
    handshake_timeout: u64,

    /// Seconds a logged-in client may send nothing (keep-alives count)
    /// before it is closed; 0 for never
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,

    /// Seconds a frame may take to arrive once its first byte has
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_FRAME_TIMEOUT.as_secs())]
    frame_timeout: u64,

    /// Largest frame payload accepted, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME_LEN)]
    max_frame_len: usize,

    /// Frames queued for one client before it counts as not reading and is
    /// disconnected
    #[arg(long, value_name = "FRAMES", default_value_t = DEFAULT_OUTGOING_QUEUE)]
    queue_len: usize,

    /// Chat: the room on NATS JetStream (nats://HOST:PORT), shared by every
    /// instance with the same bus and --bus-prefix, instead of in this
    /// process; the stream keeps --history lines
    #[arg(long, value_name = "URL", env = "PORTER_BUS", hide_env_values = true)]
    bus: Option<String>,

    /// With --bus (ignored without): names the room's stream ({PREFIX}_room) and subjects
    /// ({PREFIX}.*); letters, digits, - and _
    #[arg(long, value_name = "PREFIX", default_value = porter_server::DEFAULT_BUS_PREFIX)]
    bus_prefix: String,

    /// Chat: room lines a newcomer is sent on joining, marked as history
    /// (at most --queue-len)
    #[arg(long, value_name = "LINES", default_value_t = DEFAULT_HISTORY)]
    history: usize,

    /// Ports tried in all when the requested one is busy
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PORT_TRIES)]
    port_tries: u16,

    /// Seconds given to clients to receive `bye` at shutdown
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SHUTDOWN_GRACE.as_secs())]
    shutdown_grace: u64,

    /// How clients are identified: not at all, by IP address (asked a name
    /// once), or by user name and password with session tokens
    #[arg(long, value_parser = modes::auth_mode(), default_value_t = AuthMode::Password)]
    auth: AuthMode,

    /// Database of names, users and sessions (ip and password modes): an
    /// SQLite file path, sqlite://PATH, or postgres://USER@HOST/DATABASE
    /// (shared by several instances) [default: porter.db in the data
    /// directory]
    // A URL may hold a password: `--help` does not show the variable's value.
    #[arg(long, value_name = "PATH", hide_env_values = true)]
    db: Option<PathBuf>,

    /// Whether unknown user names may register themselves
    #[arg(long, value_parser = modes::registration(), default_value_t = Registration::Open)]
    registration: Registration,

    /// With open registration: new accounts per client address per hour;
    /// 0 for no limit
    #[arg(long, value_name = "N", default_value_t = ThrottlePolicy::REGISTRATIONS.allowed_failures)]
    max_registrations_per_hour: u32,

    /// How long a session token logs its user in: a number with a unit,
    /// s, m, h or d (`90s`, `30m`, `12h`, `7d`); 0 makes tokens that are
    /// expired at once
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = duration::parse)]
    session_ttl: Duration,

    /// Password attempts per connection before `bye`
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_AUTH_ATTEMPTS)]
    max_auth_attempts: u32,

    /// Largest frame payload accepted before `ready`, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_PRE_LOGIN_MAX_FRAME_LEN)]
    pre_login_max_frame_len: usize,

    #[command(flatten)]
    hash_cost: HashCostArgs,

    /// Password hashes computed at once; more logins wait their turn
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENT_HASHES)]
    max_concurrent_hashes: usize,

    /// Serve Prometheus metrics over HTTP on this address (such as
    /// 127.0.0.1:9100); off when not given
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

/// The limits of `porter serve`, for `porter serve --help`: each one, its
/// default, and what it protects against (as Redis's `redis.conf` does).
pub const LIMITS_HELP: &str = "\
Limits (each a flag above; defaults for a small public server):
  --max-connections 1024       clients served at once; beyond it, busy. Lowered at
                               start to what the open-files limit allows.
  --max-startups 256           handshakes in progress; past half, newcomers are
                               dropped at random, more often as it fills: strangers
                               who never log in cannot take every slot.
  --max-per-address 128        connections from one IP address: one machine cannot
                               hold the server (0: no cap).
  --max-sessions-per-user 32   live connections of one user: one account cannot
                               hold every slot by resuming its token (0: no cap).
  --handshake-timeout 30       seconds from connecting to ready.
  --idle-timeout 600           seconds a logged-in client may send nothing
                               (keep-alives count; 0: never).
  --frame-timeout 30           seconds a frame may take once its first byte came:
                               no dribbling a frame a byte at a time.
  --pre-login-max-frame-len 4096, --max-frame-len 65536
                               bytes per frame (per line for telnet and nc)
                               before and after ready; below 16 MiB.
  --queue-len 1024             frames waiting for a client that does not read;
                               full, it is disconnected.
  --send-buffer 65536          bytes the kernel may hold for one client (SO_SNDBUF),
                               so a non-reader is cut by the queue, not megabytes later.
  --max-auth-attempts 3        passwords per connection.
  failed passwords             10 per address and 5 per user in 10 minutes, then
                               refused 30 s doubling to 10 minutes; invalid tokens
                               count for the address; each attempt is reserved
                               before it is verified, so parked guesses cannot race.
  --max-registrations-per-hour 3
                               new accounts per address (0: no limit).
  --max-concurrent-hashes 2    Argon2 hashes at once, each in a reused buffer: the
                               memory of hashing is this many times the cost.
  --history 20                 chat lines a newcomer is sent (at most --queue-len).
  --log-connections-per-minute 30
                               connections per address logged one by one; past it,
                               counted and summarised: a flood cannot fill the disk.";

/// The `serve` command as clap knows it, with a `PORTER_…` variable for
/// every option: the one description that the command line, the
/// environment, the config file and `--print-config` are all read against.
pub fn command() -> clap::Command {
    settings::with_env(ServeArgs::augment_args(clap::Command::new("serve")))
}

/// Where the options of `porter serve` come from: the command line and the
/// environment as they were at start, and the config file, which is read
/// again on SIGHUP.
struct Sources {
    cmd: clap::Command,
    given: ArgMatches,
    file: Option<PathBuf>,
}

impl Sources {
    /// The sources of a server started with `given` (the matches of
    /// [`command`]).
    fn of(given: &ArgMatches) -> Sources {
        let explicit = given.get_one::<PathBuf>("config");
        Sources {
            cmd: command(),
            given: given.clone(),
            file: settings::config_path(explicit.map(PathBuf::as_path)),
        }
    }

    /// The effective options, and where each came from.
    ///
    /// # Errors
    /// A config file that cannot be read or has a bad key or value.
    fn resolve(&self) -> anyhow::Result<(ServeArgs, Resolved)> {
        let file = match &self.file {
            Some(path) => Some(FileSettings::load(path, &self.cmd)?),
            None => None,
        };
        let resolved = settings::resolve(&self.cmd, &self.given, file.as_ref())?;
        let args = ServeArgs::from_arg_matches(&resolved.matches)
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        Ok((args, resolved))
    }
}

/// Runs `porter serve` with `given`, the matches of [`command`].
///
/// # Errors
/// A config file with a bad key or value, a log file that cannot be
/// written, no answer at a prompt, nothing to listen on, an invalid limit.
pub fn run(given: &ArgMatches) -> anyhow::Result<()> {
    let sources = Sources::of(given);
    let (args, resolved) = sources.resolve()?;
    if args.print_config {
        if let Some(path) = &sources.file {
            println!("# porter serve: configuration file {}", path.display());
        }
        print!("{}", resolved.print());
        return Ok(());
    }
    let log = logging::init(&args.log_options())?;
    eprintln!("porter: logging to {}", log.location());
    match &sources.file {
        Some(path) => tracing::info!(file = %path.display(), "configuration file read"),
        None => tracing::info!("no configuration file"),
    }
    let open_files = raise_open_files_limit();
    return_large_frees_to_the_system();

    let interactive = io::stdin().is_terminal();
    let mut config = server_config(&args);
    config.max_connections = connections_within(config.max_connections, open_files);
    // Before anything is asked, opened or bound: a limit that cannot work
    // is refused by the name of its flag, and nothing says "listening".
    check_limits(&config)?;
    if config.bus.is_some() && config.service != ServiceKind::Chat {
        anyhow::bail!("--bus carries the chat room: it needs --service chat");
    }
    let (host, port) = prompt::resolve_address(
        args.host.clone(),
        args.port,
        interactive,
        DEFAULT_HOST,
        DEFAULT_PORT,
    )?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        log.dir()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    // The database is only opened (and created) when the mode needs one.
    let db = (config.auth != AuthMode::None).then(|| {
        args.db
            .clone()
            .unwrap_or_else(|| data_dir.join(store::DEFAULT_DB_FILE))
    });
    config.tls = args.tls.identity(&data_dir, &certificate_names(&host))?;
    let start = Start {
        host,
        port,
        tries: args.port_tries,
        db,
        // The console reads stdin only when a person is there.
        with_console: interactive,
        metrics: args.metrics,
        tls: args.tls.clone(),
    };
    let mut reloader = Reloader {
        log: &log,
        sources,
        current: resolved,
    };

    let runtime = crate::runtime()?;
    let result = runtime.block_on(serve(start, config, &mut reloader));
    runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
    if let Err(err) = &result {
        tracing::error!(error = %format_args!("{err:#}"), "server stopped with an error");
    }
    result
}

impl ServeArgs {
    /// The log's options.
    fn log_options(&self) -> LogOptions<'_> {
        LogOptions {
            file: &self.log_file,
            level: &self.log_level,
            format: self.log_format,
            rotation: self.log_rotate,
            keep: self.log_keep,
        }
    }
}

/// The server's configuration from the options (`max_connections` as
/// asked, before the open-files limit is looked at).
fn server_config(args: &ServeArgs) -> Config {
    Config {
        service: args.service,
        auth: args.auth,
        registration: args.registration,
        registrations_per_address: (args.max_registrations_per_hour > 0)
            .then(|| ThrottlePolicy::registrations_per_hour(args.max_registrations_per_hour)),
        session_ttl: args.session_ttl,
        max_auth_attempts: args.max_auth_attempts,
        pre_login_max_frame_len: args.pre_login_max_frame_len,
        hash_cost: args.hash_cost.cost(),
        max_concurrent_hashes: args.max_concurrent_hashes,
        max_connections: args.max_connections,
        max_startups: args.max_startups,
        max_per_address: args.max_per_address,
        max_sessions_per_user: args.max_sessions_per_user,
        send_buffer: args.send_buffer,
        logged_connections_per_minute: args.log_connections_per_minute,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        frame_timeout: Duration::from_secs(args.frame_timeout),
        max_frame_len: args.max_frame_len,
        outgoing_queue: args.queue_len,
        history: args.history,
        bus: args.bus.clone().map(|url| BusConfig {
            url,
            prefix: args.bus_prefix.clone(),
        }),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        ..Config::default()
    }
}

/// Checks the config file at `path` as `porter serve` would read it, with
/// no flag and no environment variable: every key and value, the limits
/// together, and the log level. Returns the effective configuration, as
/// `--print-config` shows it.
///
/// # Errors
/// The first problem found, naming the file, the line and the key where
/// it has one.
pub fn check_file(path: &Path) -> anyhow::Result<String> {
    let cmd = command().mut_args(|arg| arg.env(None::<&str>));
    let given = cmd
        .clone()
        .try_get_matches_from(["serve"])
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let file = FileSettings::load(path, &cmd)?;
    let resolved = settings::resolve(&cmd, &given, Some(&file))?;
    let args =
        ServeArgs::from_arg_matches(&resolved.matches).map_err(|err| anyhow::anyhow!("{err}"))?;
    if let Err(LimitError { flag, reason }) = limit_error(&server_config(&args)) {
        // Where the limit at fault was set, when the file set it.
        let key = flag.trim_start_matches("--");
        let at = match resolved.get(key).map(|s| &s.source) {
            Some(settings::Source::File(path, line)) => format!("{}:{line}", path.display()),
            _ => path.display().to_string(),
        };
        anyhow::bail!("{at}: key `{key}`: {reason}");
    }
    logging::check_level(&args.log_level)
        .map_err(|err| anyhow::anyhow!("{}: {err:#}", path.display()))?;
    Ok(resolved.print())
}

/// What `serve` needs to start listening.
struct Start {
    host: String,
    port: u16,
    tries: u16,
    db: Option<PathBuf>,
    with_console: bool,
    metrics: Option<SocketAddr>,
    /// Whether clear text beyond loopback is allowed (checked once bound).
    tls: TlsArgs,
}

/// What SIGHUP does: reopens the log file (for logrotate, or after it was
/// moved) and reads the config file again. Of what it reads, only the log
/// level takes effect at once: every other option shapes state built at
/// start (sockets, limits sized into semaphores, the database), and a
/// change to one is logged as waiting for a restart.
struct Reloader<'a> {
    log: &'a Log,
    sources: Sources,
    /// The configuration in force.
    current: Resolved,
}

impl Reloader<'_> {
    fn reload(&mut self) {
        systemd::reloading();
        match self.log.reopen() {
            Ok(()) => tracing::info!(log = %self.log.location(), "log reopened"),
            Err(err) => {
                tracing::error!(error = %format_args!("{err:#}"), "cannot reopen the log; writing on to the old file")
            }
        }
        match self.sources.resolve() {
            Ok((args, resolved)) => self.apply(&args, resolved),
            Err(err) => tracing::warn!(error = %format_args!("{err:#}"),
                "configuration not reloaded; it stays as it was"),
        }
        systemd::ready();
    }

    /// Applies what can change while serving, and says what cannot.
    fn apply(&mut self, args: &ServeArgs, resolved: Resolved) {
        let changed: Vec<String> = resolved
            .settings
            .iter()
            .filter(|new| self.current.get(&new.key).map(|old| &old.value) != Some(&new.value))
            .map(|new| new.key.clone())
            .collect();
        let mut pending = Vec::new();
        for key in changed {
            match key.as_str() {
                "log-level" => match self.log.set_level(&args.log_level) {
                    Ok(()) => tracing::info!(level = %args.log_level, "log level changed"),
                    Err(err) => {
                        tracing::warn!(error = %format_args!("{err:#}"), "log level not changed");
                        continue;
                    }
                },
                _ => pending.push(key),
            }
        }
        if !pending.is_empty() {
            tracing::warn!(options = %pending.join(","),
                "changed in the configuration; they take effect at the next start");
        }
        // What is pending stays "changed" until a restart applies it.
        let mut current = resolved;
        for setting in &mut current.settings {
            if pending.contains(&setting.key)
                && let Some(old) = self.current.get(&setting.key)
            {
                *setting = old.clone();
            }
        }
        self.current = current;
    }
}

/// Checks the limits `porter_server::run` would refuse, naming the flag
/// at fault.
fn check_limits(config: &Config) -> anyhow::Result<()> {
    limit_error(config).map_err(|LimitError { flag, reason }| anyhow::anyhow!("{flag} {reason}"))
}

/// A limit `porter_server::run` would refuse.
#[derive(Debug)]
struct LimitError {
    /// The flag (or flags) that set it.
    flag: String,
    /// What is wrong with it.
    reason: String,
}

/// The limit in `config` that `porter_server::run` would refuse. The store
/// is not there yet (it is opened after), so the check runs as for `--auth
/// none`; `run` checks the store itself.
fn limit_error(config: &Config) -> Result<(), LimitError> {
    let without_store = Config {
        auth: AuthMode::None,
        ..config.clone()
    };
    match without_store.validate() {
        Ok(()) => Ok(()),
        Err(porter_server::Error::InvalidConfig { field, reason }) => Err(LimitError {
            flag: flag_of(field),
            reason,
        }),
        Err(other) => Err(LimitError {
            flag: String::new(),
            reason: other.to_string(),
        }),
    }
}

/// The flag that sets a [`Config`] field.
fn flag_of(field: &str) -> String {
    match field {
        "hash_cost" => "--argon2-memory-kib, --argon2-iterations or --argon2-parallelism".into(),
        "outgoing_queue" => "--queue-len".into(),
        "store" => "--db".into(),
        // The other flags are their fields' names.
        field => format!("--{}", field.replace('_', "-")),
    }
}

/// Raises the soft limit on open files to the hard limit. Every connection
/// is a descriptor, and the usual soft limit (1,024) would stop a server
/// started by hand far below `--max-connections`; the hard limit is what
/// the administrator allows. Failing is logged, not fatal: the server still
/// serves as many as the soft limit lets it.
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    // `None` is "unlimited".
    let shown =
        |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let before = getrlimit(Resource::Nofile);
    if before.current == before.maximum {
        tracing::info!(soft = %shown(before.current), hard = %shown(before.maximum),
            "open files limit already at the hard limit");
        return before.current;
    }
    let raised = Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            let after = getrlimit(Resource::Nofile);
            tracing::info!(before = %shown(before.current), after = %shown(after.current),
                "open files limit raised");
            after.current
        }
        Err(err) => {
            tracing::warn!(soft = %shown(before.current), hard = %shown(before.maximum),
                cause = %err, "cannot raise the open files limit");
            before.current
        }
    }
}

/// Allocations of 1 MiB or more (the password hashing buffers, 19 MiB each)
/// are mapped on their own, always, so that freeing one gives it back to
/// the system. By default glibc raises this threshold after the first such
/// free and serves later ones from arenas it keeps: a login flood then left
/// the server at hundreds of MiB for good.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_frees_to_the_system() {
    const THRESHOLD: libc::c_int = 1024 * 1024;
    // SAFETY: mallopt only changes an allocator setting; it is called once,
    // at start, before the server's threads exist.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) };
    if set != 1 {
        tracing::warn!("cannot set glibc's mmap threshold; freed hashing memory may be kept");
    }
}

/// Other allocators return large frees on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_frees_to_the_system() {}

/// Descriptors `porter serve` needs besides its clients: the listener, the
/// log, the database and its WAL, the runtime's own, and room for a busy
/// refusal or two.
const SPARE_DESCRIPTORS: u64 = 64;

/// `max_connections` lowered to what the open-files limit allows, with a
/// warning, so that a client beyond it gets `busy` rather than silence (a
/// connection the server cannot accept gets neither `welcome` nor `busy`).
fn connections_within(max_connections: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else {
        return max_connections;
    };
    let room = usize::try_from(limit.saturating_sub(SPARE_DESCRIPTORS)).unwrap_or(usize::MAX);
    if room >= max_connections {
        return max_connections;
    }
    let lowered = room.max(1);
    eprintln!(
        "porter: the open-files limit ({limit}) is too low for --max-connections {max_connections}; serving at most {lowered} (raise it with `ulimit -n`)"
    );
    tracing::warn!(
        open_files = limit,
        max_connections,
        lowered,
        "open-files limit below --max-connections, lowered"
    );
    lowered
}

async fn serve(
    start: Start,
    mut config: Config,
    reloader: &mut Reloader<'_>,
) -> anyhow::Result<()> {
    if let Some(addr) = start.metrics {
        // Before the store and the listener: a metrics address that cannot
        // be had stops the start, as the listener's would.
        exporter::install(addr)?;
        eprintln!("porter: metrics on http://{addr}/metrics");
        tracing::info!(addr = %addr, "serving metrics");
    }
    if let Some(path) = &start.db {
        // As given: it may be a URL, which `absolute` would mangle (the store
        // makes an SQLite file path absolute itself).
        config.store = Some(store::open(path).await?);
        tracing::info!(db = %porter_store::redact_location(path), auth = %config.auth,
            "database opened");
    }
    let store = config.store.clone();
    let result = listen_and_serve(&start, config, reloader).await;
    if let Some(store) = store {
        // A clean close checkpoints the WAL; every acknowledged write is
        // durable without it.
        store.close().await;
    }
    result
}

async fn listen_and_serve(
    start: &Start,
    config: Config,
    reloader: &mut Reloader<'_>,
) -> anyhow::Result<()> {
    // Installed before the listening line, so a signal sent as soon as that
    // line is seen is already ours (SIGHUP would otherwise end the process).
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let shutdown = async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        systemd::stopping();
        tracing::info!(signal = %name, "shutting down");
    };

    let bound = porter_server::bind(&start.host, start.port, start.tries).await?;
    // Before the listening line: a refused server never says it listens.
    if let Some(notice) = start.tls.check_exposure(bound.local_addr, config.auth)? {
        eprintln!("{notice}");
        tracing::warn!(addr = %bound.local_addr, auth = %config.auth, "serving in clear text beyond loopback");
    }
    let mut line = format!("porter: listening on {}", bound.local_addr);
    if bound.moved() {
        line.push_str(&format!(" ({} was busy)", bound.requested_port));
    }
    let mut stdout = io::stdout();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    systemd::ready();

    let (console, console_task) = match start.with_console {
        true => {
            let (console, task) = start_console(config.service)?;
            (console, Some(task))
        }
        false => (None, None),
    };
    let served = tokio::select! {
        served = porter_server::run(bound.listener, config, console, shutdown) => served,
        never = reload_on_hangup(hangup, reloader) => match never {},
    };
    if let Some(task) = console_task {
        // Dropping the line editor gives the terminal back (raw mode off).
        task.abort();
        let _ = task.await;
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Reloads on every SIGHUP, for as long as the server runs.
async fn reload_on_hangup(mut hangup: Signal, reloader: &mut Reloader<'_>) -> Infallible {
    loop {
        hangup.recv().await;
        tracing::info!(signal = "SIGHUP", "reloading");
        reloader.reload();
    }
}

/// The server's console at a terminal: a line editor whose lines go to the
/// chat room (as from `server`) and above which the room's lines are
/// printed as `from: text`, escaped. With the echo service there is no
/// room: the first line typed gets a note saying so, and no `Console` is
/// handed to the server.
///
/// The editor holds the terminal in raw mode, where Ctrl-C is a key rather
/// than a signal: it raises SIGINT, so it stops the server exactly as
/// before. Ctrl-D closes the console and the server serves on.
fn start_console(service: ServiceKind) -> anyhow::Result<(Option<Console>, JoinHandle<()>)> {
    let (editor, writer) = Readline::new(CONSOLE_PROMPT.to_owned())
        .context("cannot start the console's line editor")?;
    if service != ServiceKind::Chat {
        let task = tokio::spawn(run_console(editor, writer, None, None));
        return Ok((None, task));
    }
    let (input_tx, input) = mpsc::channel(CONSOLE_INPUT_QUEUE);
    let (output, output_rx) = mpsc::channel::<ConsoleLine>(CONSOLE_OUTPUT_QUEUE);
    let task = tokio::spawn(run_console(editor, writer, Some(input_tx), Some(output_rx)));
    Ok((Some(Console { input, output }), task))
}

/// The console's loop: typed lines to `input` (the room), the room's lines
/// from `output` above the prompt. Without a room (`input` is `None`), a
/// note once.
async fn run_console(
    mut editor: Readline,
    mut shown: SharedWriter,
    input: Option<mpsc::Sender<String>>,
    mut output: Option<mpsc::Receiver<ConsoleLine>>,
) {
    let mut told_no_room = false;
    loop {
        tokio::select! {
            // The editor first: polling it is what prints `shown`.
            biased;
            event = editor.readline() => match event {
                Ok(ReadlineEvent::Line(line)) => {
                    if line.is_empty() {
                        continue;
                    }
                    editor.add_history_entry(line.clone());
                    match &input {
                        // Fails only once the server has stopped reading
                        // the console, on its way out.
                        Some(room) => {
                            let _ = room.send(line).await;
                        }
                        None if !told_no_room => {
                            told_no_room = true;
                            let _ = writeln!(
                                shown,
                                "porter: the echo service has no room: lines typed here reach no one"
                            );
                        }
                        None => {}
                    }
                }
                Ok(ReadlineEvent::Interrupted) => interrupt_self(),
                Ok(ReadlineEvent::Eof) => {
                    let _ = writeln!(shown, "porter: console closed; the server serves on (Ctrl-C or SIGTERM stops it)");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "console input failed");
                    break;
                }
            },
            line = recv_line(&mut output) => match line {
                Some(ConsoleLine { from, text }) => {
                    let _ = writeln!(shown, "{}: {}", printable(&from), printable_lines(&text, CONTINUATION));
                }
                None => output = None,
            },
        }
    }
    let _ = editor.flush();
}

/// The next line from `output`; pending for ever without one.
async fn recv_line(output: &mut Option<mpsc::Receiver<ConsoleLine>>) -> Option<ConsoleLine> {
    match output {
        Some(output) => output.recv().await,
        None => std::future::pending().await,
    }
}

/// Ctrl-C at the console (a key in raw mode): the SIGINT the terminal would
/// have sent, so that shutdown takes its one usual path.
fn interrupt_self() {
    use rustix::process::{Signal, getpid, kill_process};
    if let Err(err) = kill_process(getpid(), Signal::INT) {
        tracing::warn!(error = %err, "cannot stop the server from the console");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: the README promises a variable for every option, and the
    /// config file a key; an option added later gets both from `command`.
    #[test]
    fn every_option_of_serve_has_a_porter_variable_and_a_file_key() {
        let cmd = command();
        cmd.clone().debug_assert();
        let mut keys = 0;
        for arg in cmd.get_arguments() {
            let long = arg.get_long().expect("every option of serve is long");
            if long == "print-config" {
                assert_eq!(arg.get_env(), None);
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert_eq!(env, Some(settings::env_name(long)), "--{long}");
            keys += 1;
        }
        assert!(keys >= 30, "{keys} options");
        // Every key is accepted by the file: the option's default, written
        // back, reads.
        let path = Path::new("every-key.toml");
        let mut text = String::new();
        for arg in cmd.get_arguments() {
            let long = arg.get_long().unwrap_or_default();
            if let Some(default) = arg.get_default_values().first() {
                let value = default.to_string_lossy();
                text.push_str(&format!("{long} = \"{value}\"\n"));
            }
        }
        let file = FileSettings::parse_for_tests(path, &text, &cmd);
        assert!(file.is_ok(), "{file:?}\n{text}");
    }
}

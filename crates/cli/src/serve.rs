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

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
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
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::logging::{self, LogFormat};
use crate::password::HashCostArgs;
use crate::tls::{TlsArgs, certificate_names};
use crate::{duration, modes, prompt, store};

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
    /// Address to listen on: an IP address or a host name; 0.0.0.0 for every
    /// IPv4 interface [default: 127.0.0.1; asked at a terminal]
    #[arg(long, env = "PORTER_HOST")]
    host: Option<String>,

    /// Port to listen on; when it is busy the next ones are tried (see
    /// --port-tries). 0 lets the system choose [default: 9090; asked at a
    /// terminal]
    #[arg(long, env = "PORTER_PORT")]
    port: Option<u16>,

    /// What the server does with each line after the handshake
    #[arg(long, value_parser = modes::service(), default_value_t = ServiceKind::Chat)]
    service: ServiceKind,

    /// File the log is appended to
    #[arg(long, value_name = "PATH", default_value = "porter.log")]
    log_file: PathBuf,

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
    #[arg(long, value_name = "URL", env = "PORTER_BUS")]
    bus: Option<String>,

    /// With --bus: names the room's stream ({PREFIX}_room) and subjects
    /// ({PREFIX}.*); letters, digits, - and _
    #[arg(long, value_name = "PREFIX", default_value = porter_server::DEFAULT_BUS_PREFIX, requires = "bus")]
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
    #[arg(long, value_parser = modes::auth_mode(), env = "PORTER_AUTH", default_value_t = AuthMode::Password)]
    auth: AuthMode,

    /// Database of names, users and sessions (ip and password modes): an
    /// SQLite file path, sqlite://PATH, or postgres://USER@HOST/DATABASE
    /// (shared by several instances) [default: porter.db in the data
    /// directory]
    #[arg(long, value_name = "PATH", env = "PORTER_DB")]
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
                               bytes per frame before and after ready.
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

/// Runs `porter serve`.
///
/// # Errors
/// A log file that cannot be written, no answer at a prompt, nothing to
/// listen on, an invalid limit.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (_log_guard, log_path) = logging::init(&args.log_file, &args.log_level, args.log_format)?;
    eprintln!("porter: logging to {}", log_path.display());
    let open_files = raise_open_files_limit();
    return_large_frees_to_the_system();

    let interactive = io::stdin().is_terminal();
    let auth = args.auth;
    let mut config = Config {
        service: args.service,
        auth,
        registration: args.registration,
        registrations_per_address: (args.max_registrations_per_hour > 0)
            .then(|| ThrottlePolicy::registrations_per_hour(args.max_registrations_per_hour)),
        session_ttl: args.session_ttl,
        max_auth_attempts: args.max_auth_attempts,
        pre_login_max_frame_len: args.pre_login_max_frame_len,
        hash_cost: args.hash_cost.cost(),
        max_concurrent_hashes: args.max_concurrent_hashes,
        max_connections: connections_within(args.max_connections, open_files),
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
    };
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
        log_path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    // The database is only opened (and created) when the mode needs one.
    let db = (auth != AuthMode::None).then(|| {
        args.db
            .clone()
            .unwrap_or_else(|| data_dir.join(store::DEFAULT_DB_FILE))
    });
    config.tls = args.tls.identity(&data_dir, &certificate_names(&host))?;
    // The console reads stdin only when a person is there.
    let with_console = interactive;

    let runtime = crate::runtime()?;
    let result = runtime.block_on(serve(
        &host,
        port,
        args.port_tries,
        config,
        db.as_deref(),
        with_console,
        &args.tls,
    ));
    runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
    if let Err(err) = &result {
        tracing::error!(error = %format_args!("{err:#}"), "server stopped with an error");
    }
    result
}

/// Checks the limits `porter_server::run` would refuse, naming the flag
/// at fault. The store is not there yet (it is opened after), so the check
/// runs as for `--auth none`; `run` checks the store itself.
fn check_limits(config: &Config) -> anyhow::Result<()> {
    let without_store = Config {
        auth: AuthMode::None,
        ..config.clone()
    };
    match without_store.validate() {
        Ok(()) => Ok(()),
        Err(porter_server::Error::InvalidConfig { field, reason }) => {
            anyhow::bail!("{} {reason}", flag_of(field))
        }
        Err(other) => Err(other.into()),
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
    host: &str,
    port: u16,
    tries: u16,
    mut config: Config,
    db: Option<&Path>,
    with_console: bool,
    tls: &TlsArgs,
) -> anyhow::Result<()> {
    if let Some(path) = db {
        // As given: it may be a URL, which `absolute` would mangle (the store
        // makes an SQLite file path absolute itself).
        config.store = Some(store::open(path).await?);
        tracing::info!(db = %porter_store::redact_location(path), auth = %config.auth,
            "database opened");
    }
    let store = config.store.clone();
    let result = listen_and_serve(host, port, tries, config, with_console, tls).await;
    if let Some(store) = store {
        // A clean close checkpoints the WAL; every acknowledged write is
        // durable without it.
        store.close().await;
    }
    result
}

async fn listen_and_serve(
    host: &str,
    port: u16,
    tries: u16,
    config: Config,
    with_console: bool,
    tls: &TlsArgs,
) -> anyhow::Result<()> {
    // Installed before the listening line, so a signal sent as soon as that
    // line is seen is already ours.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let shutdown = async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = %name, "shutting down");
    };

    let bound = porter_server::bind(host, port, tries).await?;
    // Before the listening line: a refused server never says it listens.
    if let Some(notice) = tls.check_exposure(bound.local_addr, config.auth)? {
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

    let (console, console_task) = match with_console {
        true => {
            let (console, task) = start_console(config.service)?;
            (console, Some(task))
        }
        false => (None, None),
    };
    let served = porter_server::run(bound.listener, config, console, shutdown).await;
    if let Some(task) = console_task {
        // Dropping the line editor gives the terminal back (raw mode off).
        task.abort();
        let _ = task.await;
    }
    served?;
    tracing::info!("stopped");
    Ok(())
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

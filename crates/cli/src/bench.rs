//! `porter bench`: its options and the call into `porter_client::bench`,
//! which does the work. See that module for what is measured and how.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use porter_client::bench::{self, BenchOptions, IdleOptions, Limit};
use porter_client::{ConnectOptions, DEFAULT_CONNECT_TIMEOUT};
use porter_wire::{AuthMode, Secret, ServiceKind};

use crate::modes;

/// The server benchmarked when none is given.
const DEFAULT_HOST: &str = "localhost";
/// Its port.
const DEFAULT_PORT: u16 = 9090;
/// Length of a run when neither --duration nor --messages is given.
const DEFAULT_DURATION_SECS: f64 = 5.0;

/// Options of `porter bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server to load: an IP address or a host name
    #[arg(long, env = "PORTER_HOST", default_value = DEFAULT_HOST)]
    host: String,

    /// Server port
    #[arg(long, env = "PORTER_PORT", default_value_t = DEFAULT_PORT)]
    port: u16,

    /// Connections
    #[arg(long, value_name = "N", default_value_t = 1)]
    conns: usize,

    /// Requests in flight per connection
    #[arg(long, value_name = "P", default_value_t = 1)]
    pipeline: usize,

    /// Bytes of text per message
    #[arg(long, value_name = "BYTES", default_value_t = bench::DEFAULT_SIZE)]
    size: usize,

    /// Seconds to send for [default: 5 unless --messages is given]
    #[arg(long, value_name = "SECS", conflicts_with = "messages")]
    duration: Option<f64>,

    /// Messages to send in all, shared among the connections
    #[arg(long, value_name = "N")]
    messages: Option<u64>,

    /// The service the server runs: echo (replies) or chat (deliveries to
    /// the other connections)
    #[arg(long, value_parser = modes::service(), default_value_t = ServiceKind::Echo)]
    service: ServiceKind,

    /// How connections log in; password registers and logs in bench users
    /// first and reports that phase apart
    #[arg(long, value_parser = modes::auth_mode_of(&[AuthMode::None, AuthMode::Password]), default_value_t = AuthMode::None)]
    auth: AuthMode,

    /// Password of the bench users with --auth password
    #[arg(long, env = "PORTER_PASSWORD", hide_env_values = true,
          default_value = bench::DEFAULT_BENCH_PASSWORD, hide_default_value = true)]
    password: String,

    /// Token resumes in the login phase [default: 20 per connection]
    #[arg(long, value_name = "N")]
    resumes: Option<u64>,

    /// Process id of the server (same machine): report its CPU time per
    /// login and per resume
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Talk to the bare baseline echo server: no handshake
    #[arg(long)]
    raw: bool,

    /// Hold N connections past the handshake until Ctrl-C or --hold, instead
    /// of sending; prints "idle: N connections ready" once they are up
    #[arg(long, value_name = "N", conflicts_with_all = ["messages", "duration"])]
    idle: Option<usize>,

    /// With --idle: seconds to hold the connections [default: until Ctrl-C]
    #[arg(long, value_name = "SECS", requires = "idle")]
    hold: Option<f64>,

    /// Print one JSON object instead of the summary
    #[arg(long)]
    json: bool,
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

/// Runs `porter bench`.
///
/// # Errors
/// Invalid options, no connection at all, and any error counted during the
/// run (after the report is printed), so that scripts notice.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let connect = ConnectOptions {
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        ..ConnectOptions::new(args.host.clone(), args.port)
    };
    if let Some(conns) = args.idle {
        return run_idle(&args, connect, conns);
    }
    let limit = match (args.messages, args.duration) {
        (Some(messages), _) => Limit::Messages(messages),
        (None, Some(secs)) => Limit::Duration(seconds(secs, "--duration")?),
        (None, None) => Limit::Duration(Duration::from_secs_f64(DEFAULT_DURATION_SECS)),
    };
    let options = BenchOptions {
        conns: args.conns,
        pipeline: args.pipeline,
        size: args.size,
        limit,
        service: args.service,
        auth: args.auth,
        password: Secret::new(args.password),
        resumes: args.resumes,
        server_pid: args.server_pid,
        raw: args.raw,
        progress: !args.json && io::stdout().is_terminal(),
        ..BenchOptions::new(connect)
    };
    options.validate()?;
    let runtime = crate::runtime()?;
    let result = runtime.block_on(bench::run(&options));
    runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
    let report = result?;
    let mut stdout = io::stdout();
    if args.json {
        writeln!(stdout, "{}", report.to_json())
    } else {
        write!(stdout, "{report}")
    }
    .and_then(|()| stdout.flush())
    .context("cannot write to stdout")?;
    let errors = report.total_errors();
    if errors > 0 {
        bail!("{errors} errors during the run");
    }
    Ok(())
}

fn run_idle(args: &BenchArgs, connect: ConnectOptions, conns: usize) -> anyhow::Result<()> {
    let hold = args.hold.map(|s| seconds(s, "--hold")).transpose()?;
    let options = IdleOptions {
        connect,
        conns,
        raw: args.raw,
    };
    let runtime = crate::runtime()?;
    let result = runtime.block_on(async {
        let stop = async {
            match hold {
                Some(hold) => tokio::time::sleep(hold).await,
                // If Ctrl-C cannot be handled, hold until killed.
                None => {
                    if tokio::signal::ctrl_c().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        bench::run_idle(
            &options,
            |report| {
                let mut stdout = io::stdout();
                let _ = writeln!(stdout, "idle: {} connections ready", report.ready);
                if report.errors.total() > 0 {
                    let _ = writeln!(
                        stdout,
                        "idle: {} connections failed (first: {})",
                        report.errors.total(),
                        report.errors.samples.first().map_or("", String::as_str)
                    );
                }
                let _ = stdout.flush();
            },
            stop,
        )
        .await
    });
    runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
    let report = result?;
    if args.json {
        println!("{}", report.to_json());
    }
    if report.errors.total() > 0 {
        bail!("{} connections failed", report.errors.total());
    }
    Ok(())
}

//! `porter bench`: its flags, their defaults, the plan they make and the
//! messages that name them when it cannot work, and the call into
//! `porter_client::bench`, which does the work. See that module for what is
//! measured and how.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use porter_client::ConnectOptions;
use porter_client::bench::{self, IdlePlan, Limit, Plan, PlanError, Resumes};
use porter_wire::{AuthMode, Secret, ServiceKind};

use crate::modes;
use crate::trust::ClientTlsArgs;

/// The server benchmarked when none is given.
const DEFAULT_HOST: &str = "localhost";
/// Its port.
const DEFAULT_PORT: u16 = 9090;
/// Length of a run when neither --duration nor --messages is given.
const DEFAULT_DURATION_SECS: f64 = 5.0;
/// Text size when none is given, as redis-benchmark's default payload order.
const DEFAULT_SIZE: usize = 64;
/// The password of bench users when none is given. Bench users are throwaway
/// accounts on a test server; a fixed password keeps runs repeatable.
const DEFAULT_BENCH_PASSWORD: &str = "porter-bench-password";
/// Token resumes per user in the login phase when --resumes is not given:
/// enough server work to measure its CPU time with clock-tick resolution.
const DEFAULT_RESUMES_PER_USER: u64 = 20;

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
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SIZE)]
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
          default_value = DEFAULT_BENCH_PASSWORD, hide_default_value = true)]
    password: String,

    /// Token resumes in the login phase [default: 20 per connection]
    #[arg(long, value_name = "N")]
    resumes: Option<u64>,

    /// Process id of the server (same machine): report its CPU use during
    /// the run beside the bench's own, and which of them was the limit
    /// (and, with --auth password, its CPU time per login and per resume)
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Talk to a bare baseline (baseline_echo, or baseline_chat with
    /// --service chat): no handshake, frames sent and counted verbatim
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

    #[command(flatten)]
    tls: ClientTlsArgs,
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

impl BenchArgs {
    fn connect(&self) -> ConnectOptions {
        ConnectOptions::new(self.host.clone(), self.port)
    }

    /// How the server is trusted with TLS, settled before the run (asked
    /// at a terminal the first time, as `porter connect` does).
    async fn trust(&self) -> anyhow::Result<Option<porter_client::tls::Trust>> {
        let ask = io::stdin().is_terminal();
        Ok(self
            .tls
            .trust(&self.connect(), ask)
            .await?
            .map(|(trust, _)| trust))
    }

    /// The plan these flags make, with the defaults of those not given; not
    /// checked yet.
    fn plan(&self) -> anyhow::Result<Plan> {
        let limit = match (self.messages, self.duration) {
            (Some(messages), _) => Limit::Messages(messages),
            (None, Some(secs)) => Limit::Duration(seconds(secs, "--duration")?),
            (None, None) => Limit::Duration(Duration::from_secs_f64(DEFAULT_DURATION_SECS)),
        };
        Ok(Plan {
            connect: self.connect(),
            tls: None,
            conns: self.conns,
            pipeline: self.pipeline,
            size: self.size,
            limit,
            service: self.service,
            auth: self.auth,
            password: Secret::new(self.password.clone()),
            resumes: self
                .resumes
                .map_or(Resumes::PerUser(DEFAULT_RESUMES_PER_USER), Resumes::Total),
            server_pid: self.server_pid,
            raw: self.raw,
            progress: !self.json && io::stdout().is_terminal(),
        })
    }
}

/// Why a plan cannot work, told in terms of the flags that made it.
fn flag_message(err: &PlanError) -> String {
    match err {
        PlanError::Conns { max } => format!("--conns must be 1 to {max}"),
        PlanError::Pipeline { max } => format!("--pipeline must be 1 to {max}"),
        PlanError::ZeroDuration => "--duration must be more than zero".into(),
        PlanError::FewerMessagesThanConns { messages, conns } => format!(
            "--messages ({messages}) must be at least --conns ({conns}): every connection sends"
        ),
        PlanError::MessageTooLarge { size, source } => {
            format!("--size {size} makes frames the server refuses: {source}")
        }
        PlanError::TooMuchInFlight { max } => format!(
            "--pipeline x --size is too large: at most {max} bytes in flight per connection"
        ),
        PlanError::IpAuth => {
            "--auth ip is not benchmarked: bench connections come from one address".into()
        }
        PlanError::RawWithAuth => "--raw talks to the bare baseline: it takes no --auth".into(),
        PlanError::ChatNeedsTwo => "--service chat needs at least 2 connections".into(),
        PlanError::ChatTooSmall { min } => format!(
            "--service chat needs --size of at least {min} (the send time travels in the text)"
        ),
        PlanError::ZeroResumes => "--resumes must be more than zero".into(),
        PlanError::IdleConns { max } => format!("--idle must be 1 to {max}"),
        other => other.to_string(),
    }
}

/// Runs `porter bench`.
///
/// # Errors
/// Invalid options, no connection at all, and any error counted during the
/// run (after the report is printed), so that scripts notice.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(conns) = args.idle {
        return run_idle(&args, conns);
    }
    let mut plan = args.plan()?;
    plan.check().map_err(|err| anyhow!(flag_message(&err)))?;
    let runtime = crate::runtime()?;
    let result = runtime.block_on(async {
        plan.tls = args.trust().await?;
        anyhow::Ok(bench::run(&plan).await?)
    });
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

fn run_idle(args: &BenchArgs, conns: usize) -> anyhow::Result<()> {
    let hold = args.hold.map(|s| seconds(s, "--hold")).transpose()?;
    let mut plan = IdlePlan {
        connect: args.connect(),
        conns,
        raw: args.raw,
        tls: None,
    };
    plan.check().map_err(|err| anyhow!(flag_message(&err)))?;
    let runtime = crate::runtime()?;
    let result = runtime.block_on(async {
        plan.tls = args.trust().await?;
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
            &plan,
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
        .map_err(anyhow::Error::from)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;
    use porter_client::bench::MIN_CHAT_SIZE;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: BenchArgs,
    }

    /// The plan of `porter bench` with no flags, 1,000 messages.
    fn options() -> Plan {
        let args = Command::try_parse_from(["bench", "--messages", "1000"])
            .unwrap()
            .args;
        args.plan().unwrap()
    }

    /// The default plan, changed by `change`.
    fn with(change: impl FnOnce(&mut Plan)) -> Plan {
        let mut plan = options();
        change(&mut plan);
        plan
    }

    fn refused(plan: &Plan) -> String {
        match plan.check() {
            Err(err) => flag_message(&err),
            Ok(()) => panic!("expected an invalid option, got a valid plan"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        options().check().unwrap();
    }

    #[test]
    fn zero_connections_or_an_empty_pipeline_are_refused() {
        let o = with(|o| o.conns = 0);
        assert!(refused(&o).contains("--conns"));
        let o = with(|o| o.pipeline = 0);
        assert!(refused(&o).contains("--pipeline"));
        let o = with(|o| o.pipeline = bench::MAX_PIPELINE + 1);
        assert!(refused(&o).contains("--pipeline"));
    }

    #[test]
    fn fewer_messages_than_connections_are_refused() {
        let o = with(|o| {
            o.conns = 10;
            o.limit = Limit::Messages(9);
        });
        assert!(refused(&o).contains("--messages"));
        let o = with(|o| o.limit = Limit::Duration(Duration::ZERO));
        assert!(refused(&o).contains("--duration"));
    }

    #[test]
    fn a_message_the_server_would_refuse_is_refused_before_connecting() {
        let o = with(|o| o.size = 70_000);
        assert!(refused(&o).contains("--size"));
        let o = with(|o| {
            o.size = 60_000;
            o.pipeline = 100;
        });
        assert!(refused(&o).contains("in flight"));
    }

    #[test]
    fn raw_mode_takes_no_auth_but_drives_the_chat_baseline() {
        let o = with(|o| {
            o.raw = true;
            o.auth = AuthMode::Password;
        });
        assert!(refused(&o).contains("--raw"));
        let o = with(|o| {
            o.raw = true;
            o.service = ServiceKind::Chat;
            o.conns = 2;
        });
        o.check().unwrap();
    }

    #[test]
    fn chat_needs_two_participants_and_room_for_the_stamp() {
        let o = with(|o| o.service = ServiceKind::Chat);
        assert!(refused(&o).contains("2 connections"));
        let o = with(|o| {
            o.service = ServiceKind::Chat;
            o.conns = 2;
            o.size = MIN_CHAT_SIZE - 1;
        });
        assert!(refused(&o).contains("--size"));
    }
}

//! `porter connect`: its options, the address (flag, environment, prompt,
//! default), the answers given in advance (`--user`, `PORTER_PASSWORD`),
//! the cookie jar, and the conversation: interactive at a terminal, scripted
//! when stdin is a pipe or a file. Also `--logout`.
//!
//! Where things are printed in scripted mode: stdout carries only the
//! conversation after `ready` (`from: text`); everything from the handshake
//! (greetings, refused answers, jar warnings) goes to stderr prefixed with
//! `porter: `, so a script's output is the same whatever the auth mode.

use std::io::{self, IsTerminal};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use porter_client::interactive::{self, Reconnect, TerminalAnswerer};
use porter_client::jar::{CookieJar, JarTokens, ServerKey};
use porter_client::scripted::{self, ScriptedOptions};
use porter_client::{
    Answerer, Ask, ConnectOptions, Connection, Connector, DEFAULT_CONNECT_TIMEOUT, Notice,
    ScriptedAnswers, SessionInfo,
};
use porter_wire::Secret;

use crate::password::PASSWORD_ENV;
use crate::prompt;
use crate::trust::{self, ClientTlsArgs};

/// The server a client talks to when none is given.
const DEFAULT_HOST: &str = "localhost";
/// Its port.
const DEFAULT_PORT: u16 = 9090;

/// The `ask` ids a user name answers (`user` for passwords, `name` for ip).
const NAME_IDS: [&str; 2] = ["user", "name"];
/// The `ask` ids a password answers.
const PASSWORD_IDS: [&str; 3] = ["password", "new_password", "repeat_password"];

/// Options of `porter connect`.
#[derive(Debug, Args)]
#[command(
    after_help = "Environment: PORTER_PASSWORD answers the server's password questions \
    (log in, or register with it); its value is never shown. Session tokens are kept per \
    host:port in $XDG_STATE_HOME/porter/tokens.json (mode 0600), and the fingerprints of \
    servers trusted over TLS in $XDG_STATE_HOME/porter/known_servers (mode 0600, see \
    `porter known-servers`); in both, every loopback host (localhost, 127.0.0.1, ::1) \
    at one port counts as one server."
)]
pub struct ConnectArgs {
    /// Server to connect to: an IP address or a host name [default:
    /// localhost; asked at a terminal]
    #[arg(long, env = "PORTER_HOST")]
    host: Option<String>,

    /// Server port [default: 9090; asked at a terminal]
    #[arg(long, env = "PORTER_PORT")]
    port: Option<u16>,

    /// Local IP address to connect from (the source address the server sees)
    #[arg(long, value_name = "IP")]
    bind_addr: Option<IpAddr>,

    /// Seconds to wait for the server to accept the connection
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_CONNECT_TIMEOUT.as_secs())]
    connect_timeout: u64,

    /// User name (auth password) or name (auth ip) to answer with, instead
    /// of being asked
    #[arg(long, value_name = "NAME", env = "PORTER_USER")]
    user: Option<String>,

    /// File whose first line is the password (instead of PORTER_PASSWORD)
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,

    /// Revoke the session held for this server and forget its token
    #[arg(long)]
    logout: bool,

    /// Leave out the local time (HH:MM) shown at the start of each line at
    /// a terminal
    #[arg(long)]
    no_timestamps: bool,

    #[command(flatten)]
    tls: ClientTlsArgs,
}

/// Runs `porter connect`.
///
/// With stdin at a terminal: prompts for what is missing, answers the
/// server's questions at the terminal (unless given in advance), then a line
/// editor until `/quit`. Otherwise each input line is a `say` and each
/// reply is printed as `from: text` (see `porter_client::scripted` for when
/// it stops); a question without an answer given in advance is an error.
///
/// # Errors
/// No answer at a prompt or in advance, a connection that fails, a server
/// that ends the conversation with an error or closes it unexpectedly.
pub fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let interactive = io::stdin().is_terminal() && !args.logout;
    let (host, port) = prompt::resolve_address(
        args.host,
        args.port,
        interactive,
        DEFAULT_HOST,
        DEFAULT_PORT,
    )?;
    let password = read_password(args.password_file.as_deref())?;
    let answers = preset_answers(args.user.as_deref(), password);
    let server = ServerKey::new(&host, port);
    let jar = match CookieJar::default_location() {
        Ok(jar) => JarTokens::open(jar, server.clone()),
        Err(why) if args.logout => {
            return Err(why).context("cannot find the session token to log out");
        }
        Err(why) => JarTokens::unavailable(server.clone(), why),
    };
    if args.logout && !jar.has_token() {
        report_jar_warnings(&mut { jar });
        eprintln!("porter: no session token is kept for {server}; nothing to log out");
        return Ok(());
    }
    let options = ConnectOptions {
        bind_addr: args.bind_addr,
        connect_timeout: Duration::from_secs(args.connect_timeout),
        ..ConnectOptions::new(host, port)
    };
    let shown = interactive::Options {
        timestamps: !args.no_timestamps,
    };
    let mode = if args.logout {
        Mode::Logout
    } else if interactive {
        Mode::Terminal(shown)
    } else {
        Mode::Scripted
    };
    let ask = io::stdin().is_terminal();
    let runtime = crate::runtime()?;
    let result = runtime.block_on(async {
        match args.tls.connector(&options, ask).await? {
            Some((tls, pin)) => converse(&tls, mode, answers, jar)
                .await
                .map_err(|err| trust::explain(err, &pin)),
            None => converse(&options, mode, answers, jar).await,
        }
    });
    runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// What `porter connect` does once connected.
enum Mode {
    /// `--logout`.
    Logout,
    /// A conversation at a terminal.
    Terminal(interactive::Options),
    /// A conversation from piped input.
    Scripted,
}

/// Does what `mode` says over the streams `connector` opens.
async fn converse(
    connector: &impl Connector,
    mode: Mode,
    answers: ScriptedAnswers,
    jar: JarTokens,
) -> anyhow::Result<()> {
    match mode {
        Mode::Logout => logout(connector, jar).await,
        Mode::Terminal(shown) => converse_at_terminal(connector, answers, jar, shown).await,
        Mode::Scripted => converse_scripted(connector, answers, jar).await,
    }
}

/// The password from `--password-file` (its first line) or
/// `PORTER_PASSWORD`, if either is given.
fn read_password(file: Option<&std::path::Path>) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?;
        let line = text.lines().next().unwrap_or_default();
        return Ok(Some(Secret::new(line)));
    }
    match std::env::var_os(PASSWORD_ENV) {
        None => Ok(None),
        Some(value) => match value.into_string() {
            Ok(password) => Ok(Some(Secret::new(password))),
            Err(_) => bail!("{PASSWORD_ENV} is not valid UTF-8"),
        },
    }
}

/// The answers given in advance, with hints naming the flag or variable
/// that would answer what is missing.
fn preset_answers(user: Option<&str>, password: Option<Secret>) -> ScriptedAnswers {
    let mut answers = ScriptedAnswers::new();
    for id in NAME_IDS {
        answers = answers.with_hint(
            id,
            "no terminal to ask on: give --user NAME or set PORTER_USER",
        );
        if let Some(user) = user {
            answers = answers.with(id, user);
        }
    }
    for id in PASSWORD_IDS {
        answers = answers.with_hint(
            id,
            format!("no terminal to ask on: set {PASSWORD_ENV} or give --password-file"),
        );
        if let Some(password) = &password {
            answers = answers.with(id, password.clone());
        }
    }
    answers
}

/// The conversation at a terminal, over whatever stream `connector` opens.
async fn converse_at_terminal(
    connector: &impl Connector,
    answers: ScriptedAnswers,
    mut jar: JarTokens,
    shown: interactive::Options,
) -> anyhow::Result<()> {
    let stream = porter_client::connect(connector).await?;
    let mut conn = Connection::new(stream);
    let mut answerer = TerminalAnswerer::with_preset(answers.clone());
    let handshake = porter_client::handshake(&mut conn, &mut answerer, &mut jar).await;
    report_jar_warnings(&mut jar);
    let info = handshake?;
    let rejoin = Rejoin {
        connector,
        answers,
        jar,
    };
    interactive::run_reconnecting(conn, &info, shown, Some(rejoin)).await?;
    Ok(())
}

/// Reconnecting at a terminal once the line editor owns it: the same
/// server, the session token from the jar, and only the answers given in
/// advance; what the server says during that handshake is not printed
/// over the editor.
struct Rejoin<'a, C> {
    connector: &'a C,
    answers: ScriptedAnswers,
    jar: JarTokens,
}

impl<C: Connector> Reconnect for Rejoin<'_, C> {
    type Stream = C::Stream;

    async fn reconnect(
        &mut self,
        since: Option<u64>,
    ) -> porter_client::Result<(Connection<C::Stream>, SessionInfo)> {
        let stream = porter_client::connect(self.connector).await?;
        let mut conn = Connection::new(stream);
        let mut answers = Quiet(self.answers.clone());
        let info =
            porter_client::handshake_since(&mut conn, &mut answers, &mut self.jar, since).await?;
        let _ = self.jar.take_warnings();
        Ok((conn, info))
    }
}

/// Answers given in advance, with the handshake's notices left unshown.
struct Quiet(ScriptedAnswers);

impl Answerer for Quiet {
    async fn answer(&mut self, ask: &Ask) -> porter_client::Result<Secret> {
        self.0.answer(ask).await
    }

    fn notice(&mut self, _notice: &Notice) {}
}

/// The conversation from piped input, over whatever stream `connector`
/// opens.
async fn converse_scripted(
    connector: &impl Connector,
    answers: ScriptedAnswers,
    mut jar: JarTokens,
) -> anyhow::Result<()> {
    let stream = porter_client::connect(connector).await?;
    let mut conn = Connection::new(stream);
    let mut answerer = answers;
    let handshake = porter_client::handshake(&mut conn, &mut answerer, &mut jar).await;
    report_jar_warnings(&mut jar);
    handshake?;
    scripted::run(
        conn,
        tokio::io::stdin(),
        &mut io::stdout(),
        &mut io::stderr(),
        ScriptedOptions::default(),
    )
    .await?;
    Ok(())
}

/// `--logout`: resume the session with the jar's token, say `logout`, wait
/// for `bye`, forget the token. Nothing is asked: logging in only to log
/// out makes no sense, so a refused token just leaves the jar empty.
async fn logout(connector: &impl Connector, mut jar: JarTokens) -> anyhow::Result<()> {
    let server = jar.server().clone();
    let stream = porter_client::connect(connector).await?;
    let mut conn = Connection::new(stream);
    let mut nothing = ScriptedAnswers::new();
    let handshake = porter_client::handshake(&mut conn, &mut nothing, &mut jar).await;
    report_jar_warnings(&mut jar);
    match handshake {
        Ok(_) => {}
        Err(porter_client::Error::NoAnswer { .. }) if jar.was_refused() => {
            eprintln!(
                "porter: the server no longer accepted the session for {server}; token forgotten"
            );
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    }
    porter_client::logout(&mut conn).await?;
    jar.remove()
        .with_context(|| format!("logged out, but the token for {server} could not be removed"))?;
    eprintln!("porter: logged out of {server}");
    Ok(())
}

/// Prints what went wrong with the cookie jar: never fatal, logging in
/// works without it (with a password).
fn report_jar_warnings(jar: &mut JarTokens) {
    for warning in jar.take_warnings() {
        eprintln!("porter: warning: {:#}", anyhow::Error::from(warning));
    }
}

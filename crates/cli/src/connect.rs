//! `porter connect`: its options, the address (flag, environment, prompt,
//! default), and the conversation: interactive at a terminal, scripted when
//! stdin is a pipe or a file.

use std::io::{self, IsTerminal};
use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use porter_client::interactive::{self, TerminalAnswerer};
use porter_client::scripted::{self, ScriptedOptions};
use porter_client::session::DEFAULT_CONNECT_TIMEOUT;
use porter_client::{ConnectOptions, Connection, NoTokens, ScriptedAnswers};

use crate::prompt;

/// The server a client talks to when none is given.
const DEFAULT_HOST: &str = "localhost";
/// Its port.
const DEFAULT_PORT: u16 = 9090;

/// Options of `porter connect`.
#[derive(Debug, Args)]
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
}

/// Runs `porter connect`.
///
/// With stdin at a terminal: prompts for what is missing, answers the
/// server's questions at the terminal, then a line editor until `/quit`.
/// Otherwise each input line is a `say` and each reply is printed as
/// `from: text` (see `porter_client::scripted` for when it stops).
///
/// # Errors
/// No answer at a prompt, a connection that fails, a server that ends the
/// conversation with an error or closes it unexpectedly.
pub fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let interactive = io::stdin().is_terminal();
    let host = prompt::resolve(
        args.host,
        interactive,
        || prompt::ask_host(DEFAULT_HOST),
        DEFAULT_HOST.to_owned(),
    )?;
    let port = prompt::resolve(
        args.port,
        interactive,
        || prompt::ask_port(DEFAULT_PORT),
        DEFAULT_PORT,
    )?;
    let options = ConnectOptions {
        bind_addr: args.bind_addr,
        connect_timeout: Duration::from_secs(args.connect_timeout),
        ..ConnectOptions::new(host, port)
    };
    let runtime = crate::runtime()?;
    let result = runtime.block_on(converse(options, interactive));
    runtime.shutdown_timeout(crate::RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

async fn converse(options: ConnectOptions, interactive: bool) -> anyhow::Result<()> {
    let stream = porter_client::connect(&options).await?;
    let mut conn = Connection::new(stream);
    if interactive {
        let info =
            porter_client::handshake(&mut conn, &mut TerminalAnswerer::default(), &mut NoTokens)
                .await?;
        interactive::run(conn, &info).await?;
    } else {
        porter_client::handshake(&mut conn, &mut ScriptedAnswers::new(), &mut NoTokens).await?;
        scripted::run(
            conn,
            tokio::io::stdin(),
            &mut io::stdout(),
            &mut io::stderr(),
            ScriptedOptions::default(),
        )
        .await?;
    }
    Ok(())
}

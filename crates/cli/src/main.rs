//! `porter`: the command line over the Porter libraries. It parses the
//! arguments, hands each subcommand to its module, and turns an error into
//! one line on stderr and exit status 1 (never a panic or a backtrace).
//!
//! Each subcommand is a module owning its options and its `run`: `serve`
//! and `connect` now; `users`, `sessions`, `names` and `bench` will follow
//! the same shape.

mod connect;
mod logging;
mod prompt;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Porter: a TCP server that knows who is at the door, and its client.
#[derive(Debug, Parser)]
#[command(name = "porter", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a server (echo or chat) until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Talk to a server: interactively at a terminal, or line by line from
    /// piped input.
    Connect(connect::ConnectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Connect(args) => connect::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("porter: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime every subcommand runs on.
///
/// # Errors
/// When the runtime cannot start (no threads, no epoll).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// How long the runtime waits at exit for blocking work (such as a read of
/// stdin that will never finish) before leaving it behind.
const RUNTIME_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

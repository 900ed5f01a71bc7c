//! `porter`: the command line over the Porter libraries. It parses the
//! arguments, hands each subcommand to its module, and turns an error into
//! one line on stderr and exit status 1 (never a panic or a backtrace).
//!
//! Each subcommand is a module owning its options and its `run`: `serve`,
//! `connect`, and the admin commands `users`, `sessions`, `names` and `kick`, which
//! work on the server's database while it runs (`store`, `password` and
//! `duration` hold what they share); `config`, `completions` and `man` for
//! operators (`settings` is where an option of `serve` comes from: flag,
//! environment, config file or default).

mod bench;
mod config;
mod connect;
mod control;
mod duration;
mod exporter;
mod generate;
mod kick;
mod logging;
mod modes;
mod names;
mod password;
mod prompt;
mod serve;
mod sessions;
mod settings;
mod store;
mod systemd;
mod tls;
mod trust;
mod users;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    #[command(after_long_help = serve::LIMITS_HELP)]
    Serve(Box<serve::ServeArgs>),
    /// Talk to a server: interactively at a terminal, or line by line from
    /// piped input.
    Connect(connect::ConnectArgs),
    /// Manage the users of `--auth password` (the server may be running).
    Users(users::UsersArgs),
    /// List, revoke and purge login sessions (the server may be running).
    Sessions(sessions::SessionsArgs),
    /// List and forget the names of `--auth ip` (the server may be running).
    Names(names::NamesArgs),
    /// Remove someone from the chat room of a running server, now, without
    /// revoking their session.
    Kick(kick::KickArgs),
    /// Print the fingerprint of the certificate `porter serve --tls` serves,
    /// without starting it.
    Fingerprint(tls::FingerprintArgs),
    /// List or forget the servers trusted by certificate fingerprint
    /// (`porter connect --tls`).
    KnownServers(trust::KnownServersArgs),
    /// Load a server and measure it: messages/s, latency percentiles,
    /// logins/s (like redis-benchmark).
    Bench(bench::BenchArgs),
    /// Check the config file of `porter serve` (porter.toml), or say where
    /// it is looked for.
    Config(config::ConfigArgs),
    /// Print a tab-completion script: `porter completions bash > /etc/bash_completion.d/porter`.
    Completions(generate::CompletionsArgs),
    /// Print the manual page (roff): `porter man | man -l -`.
    Man(generate::ManArgs),
}

/// The command line as clap parses it, `serve` with a `PORTER_…`
/// environment variable for every option (and its options' ties to each
/// other checked once its config file is merged). Completions and the
/// manual page are generated from it too.
fn command() -> clap::Command {
    Cli::command().mut_subcommand("serve", |serve| {
        settings::before_merge(settings::with_env(serve))
    })
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let result = match cli.command {
        // `serve` merges its config file into what clap saw, so it takes
        // the matches, which know where each value came from.
        Command::Serve(_) => matches
            .subcommand_matches("serve")
            .map_or_else(|| Err(anyhow::anyhow!("no options for serve")), serve::run),
        Command::Connect(args) => connect::run(args),
        Command::Users(args) => users::run(args),
        Command::Sessions(args) => sessions::run(args),
        Command::Names(args) => names::run(args),
        Command::Kick(args) => kick::run(args),
        Command::Fingerprint(args) => tls::fingerprint(args),
        Command::KnownServers(args) => trust::known_servers(args),
        Command::Bench(args) => bench::run(args),
        Command::Config(args) => config::run(&args),
        Command::Completions(args) => generate::completions(&args),
        Command::Man(args) => generate::man(&args),
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

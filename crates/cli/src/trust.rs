//! The client's side of TLS on the command line: `--tls` and how a server
//! is trusted (a CA file, a fingerprint given, one remembered, or a person
//! asked on first contact), and `porter known-servers`.
//!
//! Trust on first use, as SSH does it: a server met for the first time is
//! probed for its fingerprint (nothing is sent), which is shown at a
//! terminal with the question "Trust this server? [y/N]"; without a
//! terminal it is refused unless `--fingerprint` matches or
//! `--trust-on-first-use` is given. Trusted, it is remembered in
//! `known_servers` and every later connection accepts only that
//! certificate. A changed certificate is refused, loudly, before anything
//! is sent.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use porter_client::ConnectOptions;
use porter_client::jar::ServerKey;
use porter_client::known_servers::{KnownServer, KnownServers};
use porter_client::tls::{TlsConnector, Trust};
use porter_wire::Fingerprint;

/// The TLS options of `porter connect` and `porter bench`.
#[derive(Debug, Clone, Args)]
pub struct ClientTlsArgs {
    /// Connect over TLS. A self-signed server is trusted by the fingerprint
    /// of its certificate: asked at a terminal the first time, then
    /// remembered in $XDG_STATE_HOME/porter/known_servers
    #[arg(long)]
    tls: bool,

    /// Trust the server only if its certificate has this fingerprint
    /// (`porter fingerprint` prints it on the server); implies --tls
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<Fingerprint>,

    /// Trust a server met for the first time without asking, and remember
    /// it (for scripts; a changed certificate is still refused); implies
    /// --tls
    #[arg(long)]
    trust_on_first_use: bool,

    /// Verify the server against the certificate authorities in this PEM
    /// file, with its host name checked, instead of by fingerprint;
    /// implies --tls
    #[arg(long, value_name = "FILE", conflicts_with_all = ["fingerprint", "trust_on_first_use"])]
    ca_file: Option<PathBuf>,
}

/// Where a pinned fingerprint came from, to explain a refusal.
#[derive(Debug, Clone)]
pub struct Pin {
    server: ServerKey,
    remembered: Option<(KnownServer, PathBuf)>,
}

impl ClientTlsArgs {
    /// Whether the connection is to be TLS.
    pub fn enabled(&self) -> bool {
        self.tls || self.fingerprint.is_some() || self.trust_on_first_use || self.ca_file.is_some()
    }

    /// The TLS connector for the server of `tcp`, trust settled: `None`
    /// without TLS. See [`ClientTlsArgs::trust`].
    ///
    /// # Errors
    /// As [`ClientTlsArgs::trust`].
    pub async fn connector(
        &self,
        tcp: &ConnectOptions,
        ask: bool,
    ) -> anyhow::Result<Option<(TlsConnector, Pin)>> {
        Ok(self
            .trust(tcp, ask)
            .await?
            .map(|(trust, pin)| (TlsConnector::new(tcp.clone(), trust), pin)))
    }

    /// How the server of `tcp` is trusted: `None` without TLS. A server
    /// met for the first time is probed and, at a terminal (`ask`), the
    /// person is asked.
    ///
    /// # Errors
    /// A CA file that cannot be used, an unreadable `known_servers`, a
    /// server not trusted, or one whose probe fails.
    pub async fn trust(
        &self,
        tcp: &ConnectOptions,
        ask: bool,
    ) -> anyhow::Result<Option<(Trust, Pin)>> {
        if !self.enabled() {
            return Ok(None);
        }
        let server = ServerKey::new(&tcp.host, tcp.port);
        if let Some(path) = &self.ca_file {
            let trust = Trust::authority_file(path)?;
            let pin = Pin {
                server,
                remembered: None,
            };
            return Ok(Some((trust, pin)));
        }
        let known = KnownServers::default_location()?;
        let remembered = known
            .get(&server)
            .context("cannot check the servers already trusted")?;
        let fingerprint = match (&remembered, self.fingerprint) {
            (Some(entry), Some(given)) if entry.fingerprint != given => bail!(
                "--fingerprint {given} is not the fingerprint remembered for {server} ({}, first seen {}). If the server's certificate was replaced on purpose, forget the old one first: porter known-servers forget {server}",
                entry.fingerprint,
                entry.first_seen
            ),
            (Some(entry), _) => entry.fingerprint,
            (None, given) => self.first_contact(tcp, &server, &known, given, ask).await?,
        };
        let pin = Pin {
            server,
            remembered: remembered.map(|entry| (entry, known.path().to_path_buf())),
        };
        Ok(Some((Trust::Pinned(fingerprint), pin)))
    }

    /// Meets a server not yet known: learns its fingerprint, decides, and
    /// remembers it when trusted.
    async fn first_contact(
        &self,
        tcp: &ConnectOptions,
        server: &ServerKey,
        known: &KnownServers,
        given: Option<Fingerprint>,
        ask: bool,
    ) -> anyhow::Result<Fingerprint> {
        let presented = porter_client::tls::probe(tcp).await?;
        match given {
            Some(given) if given != presented => bail!(
                "the server at {server} presented a certificate with fingerprint {presented}, not the {given} given with --fingerprint; nothing was sent"
            ),
            Some(_) => {}
            None if self.trust_on_first_use => {
                eprintln!(
                    "porter: trusting {server} on first use, fingerprint {presented}; remembered in {}",
                    known.path().display()
                );
            }
            None if ask => {
                let path = known.path().display().to_string();
                let server = server.to_string();
                let trusted =
                    tokio::task::spawn_blocking(move || ask_trust(&server, presented, &path))
                        .await
                        .context("the trust question failed")??;
                if !trusted {
                    bail!("server not trusted; nothing was sent");
                }
            }
            None => bail!(
                "{server} is not a known server; its certificate's fingerprint is {presented}. Compare it with `porter fingerprint` on the server, then connect with --fingerprint {presented} (or --trust-on-first-use)"
            ),
        }
        known
            .remember(server, presented)
            .context("cannot remember the server's fingerprint")?;
        Ok(presented)
    }
}

/// Asks the person at the terminal whether to trust `server`; only `y` or
/// `yes` is a yes.
fn ask_trust(server: &str, fingerprint: Fingerprint, path: &str) -> anyhow::Result<bool> {
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "The server at {server} is not known yet.\n  Its certificate's fingerprint is {fingerprint}\n  (compare it with what `porter fingerprint` prints on the server).\n  If you trust it, it is remembered in {path}."
    );
    let _ = write!(err, "Trust this server? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    let read = io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if read == 0 {
        let _ = writeln!(err);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `err` explained for a person when it is a pinned server's changed
/// certificate: the old and the new fingerprint, when the old one was first
/// seen, and how to forget it.
pub fn explain(err: anyhow::Error, pin: &Pin) -> anyhow::Error {
    let Some(porter_client::Error::CertificateChanged {
        expected,
        presented,
        ..
    }) = err.downcast_ref::<porter_client::Error>()
    else {
        return err;
    };
    let server = &pin.server;
    let first_seen = match &pin.remembered {
        Some((entry, path)) => format!(
            "first seen {}, remembered in {}",
            entry.first_seen,
            path.display()
        ),
        None => "given with --fingerprint".to_owned(),
    };
    anyhow::anyhow!(
        "THE CERTIFICATE OF {server} HAS CHANGED.\n  trusted:   {expected} ({first_seen})\n  presented: {presented}\nSomeone may be intercepting the connection, or the server's certificate was replaced. Nothing was sent.\nIf you know it was replaced, forget the old one and connect again: porter known-servers forget {server}"
    )
}

/// Options of `porter known-servers`.
#[derive(Debug, Args)]
pub struct KnownServersArgs {
    #[command(subcommand)]
    command: KnownServersCommand,
}

#[derive(Debug, Subcommand)]
enum KnownServersCommand {
    /// List the servers trusted by fingerprint, and since when.
    List,
    /// Forget a server's fingerprint: the next connection is a first
    /// contact again.
    Forget {
        /// The server as HOST:PORT (`[::1]:9090` for an IPv6 address); every
        /// loopback host (localhost, 127.0.0.1, ::1) is one server
        server: String,
    },
}

/// Runs `porter known-servers`.
///
/// # Errors
/// An unreadable or unwritable file; a server to forget that is not known
/// or not `HOST:PORT`.
pub fn known_servers(args: KnownServersArgs) -> anyhow::Result<()> {
    let known = KnownServers::default_location()?;
    match args.command {
        KnownServersCommand::List => {
            let all = known.list()?;
            if all.is_empty() {
                eprintln!(
                    "porter: no server is trusted yet ({})",
                    known.path().display()
                );
            }
            for (server, entry) in all {
                println!(
                    "{server}  {}  first seen {}",
                    entry.fingerprint, entry.first_seen
                );
            }
        }
        KnownServersCommand::Forget { server } => {
            let key = parse_server(&server)?;
            if !known.forget(&key)? {
                bail!("{key} is not a known server (see `porter known-servers list`)");
            }
            println!("porter: forgot {key}");
        }
    }
    Ok(())
}

/// `HOST:PORT`, `[V6]:PORT`, as a key.
fn parse_server(server: &str) -> anyhow::Result<ServerKey> {
    let (host, port) = server
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .with_context(|| format!("{server:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("{server:?} is not HOST:PORT: {port:?} is not a port"))?;
    Ok(ServerKey::new(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_to_forget_are_host_port() {
        assert_eq!(
            parse_server("localhost:9090").unwrap().key(),
            "127.0.0.1:9090"
        );
        assert_eq!(parse_server("[::1]:9090").unwrap().key(), "127.0.0.1:9090");
        assert_eq!(
            parse_server("Chat.Example:1").unwrap().key(),
            "chat.example:1"
        );
        for bad in ["localhost", ":9090", "h:port", "h:70000"] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }
}

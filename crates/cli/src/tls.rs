//! The server's side of TLS on the command line: its options, the identity
//! they select (generated in the data directory, or PEM files given), the
//! rule that keeps passwords off the network in clear, and
//! `porter fingerprint`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use porter_server::AuthMode;
use porter_server::tls::{self, Provenance, TlsIdentity};

/// The TLS options of `porter serve`.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Serve over TLS. Without --tls-cert, a self-signed certificate and its
    /// key (mode 0600) are made in the data directory on first start and
    /// reused after; its fingerprint is printed for clients to pin
    #[arg(long)]
    tls: bool,

    /// A PEM certificate chain (leaf first) to serve instead of the
    /// generated one; implies --tls and needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Allow --auth password in clear text on an address other than
    /// loopback, where anyone on the path can read passwords and tokens
    #[arg(long)]
    insecure_plaintext: bool,
}

impl TlsArgs {
    /// Whether the server is to serve over TLS.
    pub fn enabled(&self) -> bool {
        self.tls || self.tls_cert.is_some()
    }

    /// The identity to serve with, when TLS is on: loaded from the given
    /// files, or from `data_dir` (made there first if need be, for
    /// `names`). Says on stdout and in the log what it is and its
    /// fingerprint.
    ///
    /// # Errors
    /// Files that cannot be read, written or used together.
    pub fn identity(
        &self,
        data_dir: &Path,
        names: &[String],
    ) -> anyhow::Result<Option<TlsIdentity>> {
        if !self.enabled() {
            return Ok(None);
        }
        let (identity, how) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (TlsIdentity::load(cert, key)?, Provenance::Loaded),
            _ => TlsIdentity::load_or_generate(data_dir, names)
                .context("cannot set up the server's TLS certificate")?,
        };
        let what = match how {
            Provenance::Generated => "generated",
            Provenance::Loaded => "loaded",
        };
        println!(
            "porter: TLS certificate {} ({what}), fingerprint {}",
            identity.cert_path().display(),
            identity.fingerprint()
        );
        tracing::info!(cert = %identity.cert_path().display(), how = what,
            fingerprint = %identity.fingerprint(), "TLS certificate");
        Ok(Some(identity))
    }

    /// The rule of PROTOCOL.md section 1a: passwords and tokens do not
    /// cross a network in clear unless the operator says so. `--auth
    /// password` on an address other than loopback needs `--tls` or
    /// `--insecure-plaintext`; the other modes get a notice (returned, to
    /// be printed) when they serve in clear beyond loopback.
    ///
    /// # Errors
    /// `--auth password` in clear text beyond loopback, undeclared.
    pub fn check_exposure(
        &self,
        addr: SocketAddr,
        auth: AuthMode,
    ) -> anyhow::Result<Option<String>> {
        if self.enabled() || is_loopback(addr.ip()) {
            return Ok(None);
        }
        if auth == AuthMode::Password && !self.insecure_plaintext {
            anyhow::bail!(
                "refusing to serve --auth password in clear text on {addr}: passwords and session tokens would cross the network readable by anyone on the path. Add --tls to encrypt connections, or --insecure-plaintext if that is a deliberate choice (or listen on 127.0.0.1)"
            );
        }
        Ok(Some(format!(
            "porter: notice: serving in clear text on {addr}; anyone on the network path can read {} (--tls encrypts it)",
            if auth == AuthMode::Password {
                "passwords, tokens and the conversation"
            } else {
                "the conversation"
            }
        )))
    }
}

/// Loopback, IPv4-mapped loopback included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The names a generated certificate is made for: loopback's, and the
/// host the server listens on when it is a name or a specific address.
pub fn certificate_names(host: &str) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let unspecified = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    if !host.is_empty() && !unspecified && !names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
        names.push(host.to_owned());
    }
    names
}

/// Options of `porter fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// The server's data directory, where `porter serve --tls` keeps its
    /// certificate (the server's default is the log file's directory)
    #[arg(long, value_name = "DIR", default_value = ".")]
    data_dir: PathBuf,

    /// A PEM certificate file to read instead (`porter serve --tls-cert`)
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
}

/// Runs `porter fingerprint`: prints the fingerprint alone on stdout, as
/// clients take it (`porter connect --tls --fingerprint ...`).
///
/// # Errors
/// No certificate where it is looked for, or an unreadable one.
pub fn fingerprint(args: FingerprintArgs) -> anyhow::Result<()> {
    let cert = args
        .tls_cert
        .unwrap_or_else(|| args.data_dir.join(tls::CERT_FILE));
    if args_missing(&cert) {
        anyhow::bail!(
            "no certificate at {}: `porter serve --tls` makes one there on its first start (or pass --data-dir or --tls-cert)",
            cert.display()
        );
    }
    println!("{}", tls::fingerprint_of(&cert)?);
    Ok(())
}

fn args_missing(cert: &Path) -> bool {
    matches!(cert.try_exists(), Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tls: bool, insecure: bool) -> TlsArgs {
        TlsArgs {
            tls,
            tls_cert: None,
            tls_key: None,
            insecure_plaintext: insecure,
        }
    }

    #[test]
    fn passwords_in_clear_beyond_loopback_need_a_declaration() {
        let public: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9090".parse().unwrap();
        let err = args(false, false)
            .check_exposure(public, AuthMode::Password)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--tls") && err.contains("--insecure-plaintext"),
            "{err}"
        );
        assert!(
            args(true, false)
                .check_exposure(public, AuthMode::Password)
                .unwrap()
                .is_none()
        );
        assert!(
            args(false, true)
                .check_exposure(public, AuthMode::Password)
                .unwrap()
                .is_some()
        );
        assert!(
            args(false, false)
                .check_exposure(local, AuthMode::Password)
                .unwrap()
                .is_none()
        );
        assert!(
            args(false, false)
                .check_exposure(mapped, AuthMode::Password)
                .unwrap()
                .is_none()
        );
        for auth in [AuthMode::None, AuthMode::Ip] {
            let notice = args(false, false)
                .check_exposure(public, auth)
                .unwrap()
                .unwrap();
            assert!(notice.contains("clear text"), "{notice}");
        }
    }

    #[test]
    fn certificate_names_add_the_listening_host() {
        assert_eq!(certificate_names("0.0.0.0").len(), 3);
        assert_eq!(certificate_names("[::]").len(), 3);
        assert_eq!(certificate_names("localhost").len(), 3);
        assert!(certificate_names("chat.example").contains(&"chat.example".to_owned()));
        assert!(certificate_names("192.0.2.7").contains(&"192.0.2.7".to_owned()));
    }
}

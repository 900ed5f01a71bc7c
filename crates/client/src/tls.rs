//! TLS to a server: the [`Connector`] that wraps TCP in TLS, and the two
//! ways it trusts a server (PROTOCOL.md section 1a).
//!
//! - [`Trust::Authority`]: the usual PKI. The chain is verified against the
//!   roots of a CA file and the host name is checked; nothing is pinned.
//! - [`Trust::Pinned`]: a self-signed server, trusted by the SHA-256
//!   fingerprint of its certificate, as SSH trusts host keys. Any other
//!   certificate is refused during the handshake, before a byte of the
//!   protocol is sent.
//!
//! Pinning does not skip the proof of possession: the verifier checks the
//! handshake's signature with the provider's algorithms, so a server that
//! replays a pinned certificate without its private key fails (rustls does
//! not do this for a custom verifier; many examples wrongly return
//! "valid" unchecked).
//!
//! [`probe`] is the first contact of trust on first use: a handshake that
//! only learns the fingerprint (its signature checked too), then closes
//! without sending anything. Whoever decides to trust it (a person at a
//! prompt, a flag) connects again with [`Trust::Pinned`], so a person who
//! takes a minute to decide never races the server's handshake deadline.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use porter_wire::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::connect::{ConnectOptions, Connector};
use crate::error::{Error, Result};

/// How a TLS client decides that it reached the right server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Verify the chain against these roots, with the host name checked.
    Authority(Arc<RootCertStore>),
    /// Only the certificate with this fingerprint, its key proven.
    Pinned(Fingerprint),
}

impl Trust {
    /// Trust the certificate authorities in the PEM file `path`.
    ///
    /// # Errors
    /// [`Error::CaFile`] when it cannot be read or holds no certificate.
    pub fn authority_file(path: &Path) -> Result<Trust> {
        let ca_error = |reason: String| Error::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|items| items.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|err| ca_error(pem_reason(err)))?;
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ca_error("no usable CA certificate in it".into()));
        }
        Ok(Trust::Authority(Arc::new(roots)))
    }
}

/// A PEM error in words that never quote the file.
fn pem_reason(err: rustls::pki_types::pem::Error) -> String {
    match err {
        rustls::pki_types::pem::Error::Io(err) => err.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM certificate in it".into(),
        _ => "not a well-formed PEM file".into(),
    }
}

/// Connects over TCP with its [`ConnectOptions`], then runs a TLS handshake
/// that trusts the server as its [`Trust`] says.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    tcp: ConnectOptions,
    trust: Trust,
}

impl TlsConnector {
    /// TLS to the server of `tcp`, trusted as `trust` says.
    pub fn new(tcp: ConnectOptions, trust: Trust) -> TlsConnector {
        TlsConnector { tcp, trust }
    }

    /// The TCP options underneath.
    pub fn tcp(&self) -> &ConnectOptions {
        &self.tcp
    }
}

impl Connector for TlsConnector {
    type Stream = TlsStream<TcpStream>;

    /// # Errors
    /// The TCP connector's errors, then [`Error::CertificateChanged`] for a
    /// pinned server that presents another certificate, or [`Error::Tls`]
    /// for any other failed handshake (an unverifiable chain, a bad
    /// handshake signature, a server that does not speak TLS).
    async fn connect(&self) -> Result<TlsStream<TcpStream>> {
        match &self.trust {
            Trust::Authority(roots) => {
                let config = builder()?
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth();
                handshake(&self.tcp, config).await
            }
            Trust::Pinned(expected) => {
                let verifier = Arc::new(PinVerifier::new(Some(*expected)));
                let config = pinned_config(verifier.clone())?;
                handshake(&self.tcp, config)
                    .await
                    .map_err(|err| match verifier.refused() {
                        Some(presented) => Error::CertificateChanged {
                            server: host_port(&self.tcp),
                            expected: *expected,
                            presented,
                        },
                        None => err,
                    })
            }
        }
    }
}

/// First contact: the fingerprint of the certificate the server at `tcp`
/// presents, its handshake signature checked, learnt by a connection that
/// is then closed without sending anything.
///
/// # Errors
/// The TCP connector's errors, or [`Error::Tls`].
pub async fn probe(tcp: &ConnectOptions) -> Result<Fingerprint> {
    let config = pinned_config(Arc::new(PinVerifier::new(None)))?;
    let stream = handshake(tcp, config).await?;
    presented_fingerprint(&stream).ok_or_else(|| Error::Tls {
        server: host_port(tcp),
        source: io::Error::other("the server presented no certificate"),
    })
}

/// The fingerprint of the certificate the server presented on `stream`.
pub fn presented_fingerprint(stream: &TlsStream<TcpStream>) -> Option<Fingerprint> {
    let (_, connection) = stream.get_ref();
    let leaf = connection.peer_certificates()?.first()?;
    Some(Fingerprint::of_der(leaf))
}

/// The crypto provider: ring, chosen explicitly, as the server's.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls {
            server: String::new(),
            source: io::Error::other(err),
        })
}

fn pinned_config(verifier: Arc<PinVerifier>) -> Result<ClientConfig> {
    Ok(builder()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

async fn handshake(tcp: &ConnectOptions, config: ClientConfig) -> Result<TlsStream<TcpStream>> {
    let stream = tcp.connect().await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name(&tcp.host), stream)
        .await
        .map_err(|source| Error::Tls {
            server: host_port(tcp),
            source,
        })
}

/// The name the handshake is for: the host, without brackets around an
/// IPv6 address; a placeholder for a host that is no valid name (only a
/// pinned server can be reached then).
fn server_name(host: &str) -> ServerName<'static> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("porter.invalid").expect("a valid DNS name"))
}

fn host_port(tcp: &ConnectOptions) -> String {
    if tcp.host.contains(':') && !tcp.host.starts_with('[') {
        format!("[{}]:{}", tcp.host, tcp.port)
    } else {
        format!("{}:{}", tcp.host, tcp.port)
    }
}

/// Trusts a certificate by fingerprint (any, with `None`: first contact),
/// and checks every handshake signature with the provider's algorithms.
#[derive(Debug)]
struct PinVerifier {
    expected: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
    /// The fingerprint of a certificate refused for not being the expected
    /// one, for the error.
    refused: Mutex<Option<Fingerprint>>,
}

impl PinVerifier {
    fn new(expected: Option<Fingerprint>) -> PinVerifier {
        PinVerifier {
            expected,
            provider: provider(),
            refused: Mutex::new(None),
        }
    }

    fn refused(&self) -> Option<Fingerprint> {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity);
        match self.expected {
            Some(expected) if expected != presented => {
                *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(presented);
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_for_hosts_as_typed() {
        assert!(matches!(server_name("localhost"), ServerName::DnsName(_)));
        assert!(matches!(server_name("127.0.0.1"), ServerName::IpAddress(_)));
        assert!(matches!(server_name("[::1]"), ServerName::IpAddress(_)));
        assert!(matches!(server_name("::1"), ServerName::IpAddress(_)));
        assert!(matches!(server_name("not a name"), ServerName::DnsName(_)));
    }

    #[test]
    fn a_pinned_verifier_refuses_another_certificate_and_says_which() {
        let pinned = PinVerifier::new(Some(Fingerprint::of_der(b"one")));
        let other = CertificateDer::from(b"two".to_vec());
        let name = server_name("localhost");
        let refused = pinned.verify_server_cert(&other, &[], &name, &[], UnixTime::now());
        assert!(refused.is_err());
        assert_eq!(pinned.refused(), Some(Fingerprint::of_der(b"two")));
        let same = CertificateDer::from(b"one".to_vec());
        assert!(
            pinned
                .verify_server_cert(&same, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
    }
}

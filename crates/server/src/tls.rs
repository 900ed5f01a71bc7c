//! The server's TLS identity: the certificate it presents, the key that
//! proves it, and the rustls configuration built from them.
//!
//! Two sources, as `porter serve` offers them:
//! - [`TlsIdentity::load_or_generate`]: a self-signed certificate kept in the
//!   server's data directory, made with rcgen on first start and reused
//!   after, so that its fingerprint (which clients pin, trusting on first
//!   use) stays the same across restarts;
//! - [`TlsIdentity::load`]: PEM files from elsewhere (a certificate
//!   authority's, say), read with rustls-pki-types.
//!
//! The crypto provider is ring, chosen explicitly for every configuration,
//! so that no process-wide default is needed and none can conflict.
//! Errors name the file concerned and never quote a key.

use std::fmt;
use std::fs;
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use porter_wire::Fingerprint;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// File name of the generated certificate in the data directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// File name of the generated private key in the data directory (mode 0600).
pub const KEY_FILE: &str = "tls-key.pem";

/// Why a TLS identity could not be loaded or made. Never quotes a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read, written or created.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A file holds no usable PEM item of the kind expected.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words (never the file's content).
        what: String,
    },
    /// Only one of the two generated files exists: regenerating would
    /// change the fingerprint every client pinned, so nothing is touched.
    #[error(
        "{present} exists but {missing} does not; restore it, or delete {present} to make a new certificate (clients that pinned the old one will refuse the new)"
    )]
    HalfPresent {
        /// The file that is there.
        present: PathBuf,
        /// The file that is not.
        missing: PathBuf,
    },
    /// rcgen could not make a certificate.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate or the key (a key that does not
    /// belong to the certificate, say).
    #[error("{cert} and {key} cannot be used together: {reason}")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// How a [`TlsIdentity`] came to be, for the start-up message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Generated now, on this start.
    Generated,
    /// Read from files.
    Loaded,
}

/// A certificate chain and its key, ready to serve: cheap to clone.
#[derive(Clone)]
pub struct TlsIdentity {
    config: Arc<ServerConfig>,
    fingerprint: Fingerprint,
    cert_path: PathBuf,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// The identity kept in `dir` ([`CERT_FILE`], [`KEY_FILE`]), generated
    /// there first if neither file exists: a self-signed certificate for
    /// `names` (host names or IP addresses; `localhost` when empty), its key
    /// written with mode 0600 through a temporary file and a rename. `dir`
    /// is created (mode 0700) when missing.
    ///
    /// # Errors
    /// Unreadable or unwritable files, only one of the two present, or
    /// files rustls refuses.
    pub fn load_or_generate(
        dir: &Path,
        names: &[String],
    ) -> Result<(TlsIdentity, Provenance), TlsError> {
        let cert = dir.join(CERT_FILE);
        let key = dir.join(KEY_FILE);
        match (exists(&cert)?, exists(&key)?) {
            (true, true) => Ok((TlsIdentity::load(&cert, &key)?, Provenance::Loaded)),
            (true, false) => Err(TlsError::HalfPresent {
                present: cert,
                missing: key,
            }),
            (false, true) => Err(TlsError::HalfPresent {
                present: key,
                missing: cert,
            }),
            (false, false) => {
                generate(dir, &cert, &key, names)?;
                Ok((TlsIdentity::load(&cert, &key)?, Provenance::Generated))
            }
        }
    }

    /// The identity in PEM files: `cert` holds the chain, leaf first;
    /// `key` its private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// Unreadable files, files without the PEM item expected, or a key that
    /// does not belong to the certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let chain = read_chain(cert)?;
        let private =
            PrivateKeyDer::from_pem_file(key).map_err(|err| pem_error(key, err, "private key"))?;
        let fingerprint = Fingerprint::of_der(&chain[0]);
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_no_client_auth()
                    .with_single_cert(chain, private)
            })
            .map_err(|err| TlsError::Rejected {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                reason: err.to_string(),
            })?;
        Ok(TlsIdentity {
            config: Arc::new(config),
            fingerprint,
            cert_path: cert.to_path_buf(),
        })
    }

    /// The fingerprint of the certificate presented (the chain's leaf).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The rustls configuration connections are accepted with.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

/// The fingerprint of the leaf certificate in the PEM file `cert`, without
/// its key: what `porter fingerprint` prints.
///
/// # Errors
/// An unreadable file, or one without a certificate.
pub fn fingerprint_of(cert: &Path) -> Result<Fingerprint, TlsError> {
    Ok(Fingerprint::of_der(&read_chain(cert)?[0]))
}

/// The crypto provider every configuration is built with: ring, as the
/// project chose (aws-lc-rs adds ~17 s to every clean build).
///
/// rustls 0.23.48 deprecates ring's provider because it lacks post-quantum
/// key exchange (ML-KEM); classical X25519/P-256 is what remains. Moving to
/// aws-lc-rs, when its build cost is acceptable, is the way to get it.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|err| pem_error(path, err, "certificate"))?;
    if chain.is_empty() {
        return Err(pem_error(path, pem::Error::NoItemsFound, "certificate"));
    }
    Ok(chain)
}

/// A PEM error in words that never quote the file.
fn pem_error(path: &Path, err: pem::Error, kind: &str) -> TlsError {
    let what = match err {
        pem::Error::Io(source) => {
            return TlsError::Io {
                path: path.to_path_buf(),
                source,
            };
        }
        pem::Error::NoItemsFound => format!("no PEM {kind} found"),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_owned(),
        _ => "not a well-formed PEM file".to_owned(),
    };
    TlsError::Pem {
        path: path.to_path_buf(),
        what,
    }
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    path.try_exists().map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a self-signed certificate for `names` and writes it and its key:
/// the key first, so that a certificate on disk always has its key.
fn generate(dir: &Path, cert: &Path, key: &Path, names: &[String]) -> Result<(), TlsError> {
    let names = if names.is_empty() {
        vec!["localhost".to_owned()]
    } else {
        names.to_vec()
    };
    let generation = |err: rcgen::Error| TlsError::Generate(err.to_string());
    let mut params = rcgen::CertificateParams::new(names).map_err(generation)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "porter server");
    let signing_key = rcgen::KeyPair::generate().map_err(generation)?;
    let made = params.self_signed(&signing_key).map_err(generation)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    create_dir(dir).map_err(io(dir))?;
    let key_pem = Zeroizing::new(signing_key.serialize_pem());
    write_new(key, key_pem.as_bytes(), 0o600).map_err(io(key))?;
    write_new(cert, made.pem().as_bytes(), 0o644).map_err(io(cert))?;
    Ok(())
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path` with `mode` from the first byte on, through a
/// temporary file in the same directory that is synced then renamed, so
/// that a crash leaves either no file or the whole one.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(mode);
    let result = (|| {
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (first, how) = TlsIdentity::load_or_generate(&data, &[]).unwrap();
        assert_eq!(how, Provenance::Generated);
        let (again, how) = TlsIdentity::load_or_generate(&data, &[]).unwrap();
        assert_eq!(how, Provenance::Loaded);
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(
            fingerprint_of(&data.join(CERT_FILE)).unwrap(),
            first.fingerprint()
        );
        #[cfg(unix)]
        {
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&data), 0o700);
        }
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&data).unwrap().count(), 2);
    }

    #[test]
    fn a_missing_half_is_an_error_and_nothing_is_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        TlsIdentity::load_or_generate(dir.path(), &[]).unwrap();
        let key = dir.path().join(KEY_FILE);
        fs::remove_file(&key).unwrap();
        let err = TlsIdentity::load_or_generate(dir.path(), &[]).unwrap_err();
        assert!(matches!(err, TlsError::HalfPresent { .. }), "{err}");
        assert!(!key.exists());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_by_name() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        TlsIdentity::load_or_generate(a.path(), &[]).unwrap();
        TlsIdentity::load_or_generate(b.path(), &[]).unwrap();
        let err =
            TlsIdentity::load(&a.path().join(CERT_FILE), &b.path().join(KEY_FILE)).unwrap_err();
        assert!(matches!(err, TlsError::Rejected { .. }), "{err}");
    }

    #[test]
    fn errors_name_the_file_and_never_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        fs::write(&cert, "-----BEGIN CERTIFICATE-----\nc2VjcmV0IQ\n").unwrap();
        let err = fingerprint_of(&cert).unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        let missing = fingerprint_of(&dir.path().join("nope.pem")).unwrap_err();
        assert!(matches!(missing, TlsError::Io { .. }), "{missing}");
    }
}

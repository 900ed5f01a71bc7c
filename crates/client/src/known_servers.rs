//! The servers a client trusts by fingerprint, remembered as SSH's
//! `known_hosts` remembers host keys (trust on first use, PROTOCOL.md
//! section 1a).
//!
//! They live in one JSON file, `porter/known_servers` under the user's XDG
//! state directory, beside the cookie jar and written the same way (mode
//! 0600, through a temporary file and a rename). Each entry is keyed by the
//! server's `host:port` as [`ServerKey`] spells it, so that `localhost`,
//! `127.0.0.1` and `::1` at one port are one server here exactly as in the
//! cookie jar: the token a server handed out and the certificate it is
//! trusted by are always found under the same key.
//!
//! An entry holds the fingerprint and when it was first seen, which the
//! refusal of a changed certificate shows.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use porter_wire::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::jar::ServerKey;
use crate::state;

/// File name of the known servers inside the state directory.
const KNOWN_SERVERS_FILE: &str = "known_servers";

/// Why the known servers could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnownServersError {
    /// No home directory to put the state directory in.
    #[error("cannot find the user's state directory (is HOME set?)")]
    NoStateDir,
    /// Reading or writing the file failed.
    #[error("known servers {path}")]
    Io {
        /// The file or its directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The file is not what this module writes.
    #[error("known servers {path} is corrupt; fix or delete it (every server will be new again)")]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
}

/// What is remembered of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownServer {
    /// The fingerprint of its certificate.
    pub fingerprint: Fingerprint,
    /// When it was first trusted, RFC 3339.
    pub first_seen: String,
}

/// An entry as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    fingerprint: String,
    first_seen: String,
}

/// The known servers, in a file.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// The file at its default place under the XDG state directory.
    ///
    /// # Errors
    /// [`KnownServersError::NoStateDir`] when there is no home directory.
    pub fn default_location() -> Result<KnownServers, KnownServersError> {
        let dir = state::state_dir().ok_or(KnownServersError::NoStateDir)?;
        Ok(KnownServers::at(dir.join(KNOWN_SERVERS_FILE)))
    }

    /// The known servers in the file `path`.
    pub fn at(path: impl Into<PathBuf>) -> KnownServers {
        KnownServers { path: path.into() }
    }

    /// Where they are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is remembered of `server`, if anything.
    ///
    /// # Errors
    /// An unreadable or corrupt file.
    pub fn get(&self, server: &ServerKey) -> Result<Option<KnownServer>, KnownServersError> {
        Ok(self.list()?.remove(server.key()))
    }

    /// Every known server by key, in key order.
    ///
    /// # Errors
    /// An unreadable or corrupt file.
    pub fn list(&self) -> Result<BTreeMap<String, KnownServer>, KnownServersError> {
        self.load()?
            .into_iter()
            .map(|(key, entry)| {
                let fingerprint = entry.fingerprint.parse().map_err(|_| self.corrupt())?;
                Ok((
                    key,
                    KnownServer {
                        fingerprint,
                        first_seen: entry.first_seen,
                    },
                ))
            })
            .collect()
    }

    /// Remembers `fingerprint` for `server`, first seen now, replacing
    /// what was remembered.
    ///
    /// # Errors
    /// An unreadable, corrupt or unwritable file.
    pub fn remember(
        &self,
        server: &ServerKey,
        fingerprint: Fingerprint,
    ) -> Result<(), KnownServersError> {
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        self.remember_at(server, fingerprint, &now.to_string())
    }

    fn remember_at(
        &self,
        server: &ServerKey,
        fingerprint: Fingerprint,
        now: &str,
    ) -> Result<(), KnownServersError> {
        let mut entries = self.load()?;
        entries.insert(
            server.key().to_owned(),
            Entry {
                fingerprint: fingerprint.to_string(),
                first_seen: now.to_owned(),
            },
        );
        self.save(&entries)
    }

    /// Forgets `server`; whether it was known.
    ///
    /// # Errors
    /// An unreadable, corrupt or unwritable file.
    pub fn forget(&self, server: &ServerKey) -> Result<bool, KnownServersError> {
        let mut entries = self.load()?;
        let known = entries.remove(server.key()).is_some();
        if known {
            self.save(&entries)?;
        }
        Ok(known)
    }

    fn load(&self) -> Result<BTreeMap<String, Entry>, KnownServersError> {
        match state::read_if_present(&self.path) {
            Ok(None) => Ok(BTreeMap::new()),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|_| self.corrupt()),
            Err(source) => Err(KnownServersError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn save(&self, entries: &BTreeMap<String, Entry>) -> Result<(), KnownServersError> {
        let bytes = serde_json::to_vec_pretty(entries).unwrap_or_default();
        state::write_private_atomically(&self.path, &bytes)
            .map_err(|(path, source)| KnownServersError::Io { path, source })
    }

    fn corrupt(&self) -> KnownServersError {
        KnownServersError::Corrupt {
            path: self.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_per_server_with_loopback_as_one_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::at(dir.path().join("porter").join(KNOWN_SERVERS_FILE));
        let a = Fingerprint::of_der(b"a");
        let localhost = ServerKey::new("localhost", 9090);
        assert_eq!(known.get(&localhost).unwrap(), None);
        known
            .remember_at(&localhost, a, "2026-12-07T10:00:00Z")
            .unwrap();
        for same in ["127.0.0.1", "::1", "[::1]", "LOCALHOST"] {
            let entry = known.get(&ServerKey::new(same, 9090)).unwrap().unwrap();
            assert_eq!(entry.fingerprint, a, "{same}");
            assert_eq!(entry.first_seen, "2026-12-07T10:00:00Z");
        }
        assert_eq!(known.get(&ServerKey::new("localhost", 9091)).unwrap(), None);
        assert!(known.forget(&ServerKey::new("::1", 9090)).unwrap());
        assert!(!known.forget(&localhost).unwrap());
        assert_eq!(known.get(&localhost).unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_0600_in_a_0700_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::at(dir.path().join("state").join(KNOWN_SERVERS_FILE));
        known
            .remember(&ServerKey::new("h", 1), Fingerprint::of_der(b"x"))
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(known.path()), 0o600);
        assert_eq!(mode(known.path().parent().unwrap()), 0o700);
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KNOWN_SERVERS_FILE);
        std::fs::write(
            &path,
            r#"{"h:1":{"fingerprint":"MD5:xx","first_seen":"t"}}"#,
        )
        .unwrap();
        let err = KnownServers::at(&path).list().unwrap_err();
        assert!(matches!(err, KnownServersError::Corrupt { .. }), "{err}");
    }
}

//! The cookie jar: one session token per server, kept between runs.
//!
//! Tokens live in one JSON file, `porter/tokens.json` under the user's XDG
//! state directory (`$XDG_STATE_HOME`, by default `~/.local/state`), keyed by
//! the server's `host:port` as [`ServerKey`] spells it: one key per server
//! however it is written, so that a token stored when connecting to
//! `localhost` is presented when connecting to `127.0.0.1`. The directory is created with mode 0700 and the
//! file is written with mode 0600 from the moment it exists: through a
//! temporary file in the same directory, synced, then renamed over the old
//! one, so a crash never leaves a half-written jar or a readable token.
//!
//! Two clients updating the jar at once both succeed; the later rename wins.
//!
//! [`JarTokens`] plugs a jar into the handshake as its [`TokenJar`], for one
//! server. A jar that cannot be read or written never stops anyone logging
//! in: its errors are kept as warnings for the caller to show.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use porter_wire::Secret;

use crate::state;
use crate::tokens::TokenJar;

/// File name of the jar inside the state directory.
const JAR_FILE: &str = "tokens.json";

/// Why the jar could not be read or written. Never carries a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JarError {
    /// No home directory to put the state directory in.
    #[error("cannot find the user's state directory (is HOME set?)")]
    NoStateDir,
    /// Reading or writing the file failed.
    #[error("cookie jar {path}")]
    Io {
        /// The jar file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The file is not a JSON object of strings.
    #[error("cookie jar {path} is corrupt; delete it to start afresh")]
    Corrupt {
        /// The jar file.
        path: PathBuf,
    },
}

/// The loopback address every loopback host is keyed as.
const LOOPBACK: &str = "127.0.0.1";

/// The key of one server in the jar, and the keys it may have been stored
/// under before.
///
/// The key is `host:port` with the host spelled one way:
///
/// - any loopback host (`localhost`, a name under `.localhost`, an address
///   in 127.0.0.0/8, `::1`, an IPv4-mapped loopback) is `127.0.0.1`: they
///   are all this machine, reached through whichever address the name
///   resolves to first;
/// - a name is in lower case, without a trailing dot (DNS names are
///   case-insensitive);
/// - an IP address is in its canonical form (`0:0::1` is `::1`), an IPv6
///   one in brackets.
///
/// Jars written before this rule keyed `host:port` exactly as typed; those
/// keys are still read ([`ServerKey::legacy`]), and replaced by the key
/// when a new token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKey {
    key: String,
    legacy: Vec<String>,
}

impl ServerKey {
    /// The key of the server `host` (a name or an IP address, with or
    /// without brackets) at `port`.
    pub fn new(host: &str, port: u16) -> ServerKey {
        let host = host.trim();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let spelled = match bare.parse::<std::net::IpAddr>() {
            Ok(ip) if is_loopback(ip) => LOOPBACK.to_owned(),
            Ok(ip) => ip.to_string(),
            Err(_) => {
                let name = bare.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    LOOPBACK.to_owned()
                } else {
                    name
                }
            }
        };
        let key = join(&spelled, port);
        let mut legacy = Vec::new();
        // What an earlier Porter wrote: the host as typed.
        let as_typed = join(bare, port);
        if as_typed != key {
            legacy.push(as_typed);
        }
        if spelled == LOOPBACK {
            for other in ["localhost", "::1"] {
                let other = join(other, port);
                if other != key && !legacy.contains(&other) {
                    legacy.push(other);
                }
            }
        }
        ServerKey { key, legacy }
    }

    /// The key tokens are stored under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Keys an earlier Porter may have stored this server's token under,
    /// most likely first.
    pub fn legacy(&self) -> &[String] {
        &self.legacy
    }

    /// The key, then the legacy keys.
    fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str()).chain(self.legacy.iter().map(String::as_str))
    }
}

impl std::fmt::Display for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

/// `host:port`, an IPv6 address in brackets.
fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Session tokens by server, in a file.
#[derive(Debug, Clone)]
pub struct CookieJar {
    path: PathBuf,
}

impl CookieJar {
    /// The jar at its default place under the XDG state directory.
    ///
    /// # Errors
    /// [`JarError::NoStateDir`] when there is no home directory.
    pub fn default_location() -> Result<Self, JarError> {
        let dir = state::state_dir().ok_or(JarError::NoStateDir)?;
        Ok(CookieJar::at(dir.join(JAR_FILE)))
    }

    /// A jar in the file `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        CookieJar { path: path.into() }
    }

    /// Where the jar lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token held for `server`, if any. A missing file is an empty jar.
    ///
    /// # Errors
    /// [`JarError::Io`] or [`JarError::Corrupt`].
    pub fn get(&self, server: &str) -> Result<Option<Secret>, JarError> {
        Ok(self.load()?.remove(server).map(Secret::from))
    }

    /// Stores `token` for `server`, replacing any older one.
    ///
    /// # Errors
    /// [`JarError::Io`] or [`JarError::Corrupt`].
    pub fn put(&self, server: &str, token: &Secret) -> Result<(), JarError> {
        let mut tokens = self.load()?;
        tokens.insert(server.to_owned(), token.expose().to_owned());
        self.save(&tokens)
    }

    /// Forgets the token for `server`; `true` if there was one.
    ///
    /// # Errors
    /// [`JarError::Io`] or [`JarError::Corrupt`].
    pub fn remove(&self, server: &str) -> Result<bool, JarError> {
        let mut tokens = self.load()?;
        if tokens.remove(server).is_none() {
            return Ok(false);
        }
        self.save(&tokens)?;
        Ok(true)
    }

    /// The token held for `server` under its key or, failing that, under
    /// one of its legacy keys.
    ///
    /// # Errors
    /// [`JarError::Io`] or [`JarError::Corrupt`].
    pub fn get_for(&self, server: &ServerKey) -> Result<Option<Secret>, JarError> {
        let mut tokens = self.load()?;
        Ok(server
            .all()
            .find_map(|key| tokens.remove(key))
            .map(Secret::from))
    }

    /// Stores `token` for `server` under its key, and drops what its legacy
    /// keys held.
    ///
    /// # Errors
    /// [`JarError::Io`] or [`JarError::Corrupt`].
    pub fn put_for(&self, server: &ServerKey, token: &Secret) -> Result<(), JarError> {
        let mut tokens = self.load()?;
        for key in server.legacy() {
            tokens.remove(key);
        }
        tokens.insert(server.key().to_owned(), token.expose().to_owned());
        self.save(&tokens)
    }

    /// Forgets the token of `server`, under its key and its legacy keys;
    /// `true` if there was one.
    ///
    /// # Errors
    /// [`JarError::Io`] or [`JarError::Corrupt`].
    pub fn remove_for(&self, server: &ServerKey) -> Result<bool, JarError> {
        let mut tokens = self.load()?;
        let mut removed = false;
        for key in server.all() {
            removed |= tokens.remove(key).is_some();
        }
        if removed {
            self.save(&tokens)?;
        }
        Ok(removed)
    }

    fn load(&self) -> Result<BTreeMap<String, String>, JarError> {
        let bytes = match state::read_if_present(&self.path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(BTreeMap::new()),
            Err(source) => return Err(self.io_error(&self.path, source)),
        };
        serde_json::from_slice(&bytes).map_err(|_| JarError::Corrupt {
            path: self.path.clone(),
        })
    }

    fn save(&self, tokens: &BTreeMap<String, String>) -> Result<(), JarError> {
        let bytes = serde_json::to_vec_pretty(tokens).unwrap_or_default();
        state::write_private_atomically(&self.path, &bytes)
            .map_err(|(path, source)| self.io_error(&path, source))
    }

    fn io_error(&self, path: &Path, source: io::Error) -> JarError {
        JarError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The [`TokenJar`] of one server, backed by a [`CookieJar`].
///
/// The token is read once, when the handshake starts; a new `session`
/// replaces it in the file, `session_invalid` removes it. Failures are
/// collected (see [`take_warnings`](Self::take_warnings)) rather than
/// returned, so a broken jar only costs the user a password prompt.
#[derive(Debug)]
pub struct JarTokens {
    /// `None` when the jar could not even be located.
    jar: Option<CookieJar>,
    /// The server's key in the jar.
    server: ServerKey,
    /// The token held for the server, as last read or written.
    token: Option<Secret>,
    /// Whether the server refused the token (`session_invalid`).
    forgotten: bool,
    warnings: Vec<JarError>,
}

impl JarTokens {
    /// The tokens of `server` in `jar`, reading its token now. A jar that
    /// cannot be read counts as empty, with a warning.
    pub fn open(jar: CookieJar, server: ServerKey) -> Self {
        let mut warnings = Vec::new();
        let token = jar.get_for(&server).unwrap_or_else(|err| {
            warnings.push(err);
            None
        });
        JarTokens {
            jar: Some(jar),
            server,
            token,
            forgotten: false,
            warnings,
        }
    }

    /// No jar at all (it could not be located): nothing is presented or
    /// kept. `why` is kept as the first warning.
    pub fn unavailable(server: ServerKey, why: JarError) -> Self {
        JarTokens {
            jar: None,
            server,
            token: None,
            forgotten: false,
            warnings: vec![why],
        }
    }

    /// The key of this server in the jar.
    pub fn server(&self) -> &ServerKey {
        &self.server
    }

    /// Whether a token is held for the server.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the server refused the presented token during the handshake
    /// (it was removed from the jar then).
    pub fn was_refused(&self) -> bool {
        self.forgotten
    }

    /// Removes the server's token from the jar (after `logout`).
    ///
    /// # Errors
    /// [`JarError`] when the file cannot be rewritten; the token is
    /// forgotten in memory anyway.
    pub fn remove(&mut self) -> Result<bool, JarError> {
        self.token = None;
        match &self.jar {
            Some(jar) => jar.remove_for(&self.server),
            None => Ok(false),
        }
    }

    /// The errors met so far, oldest first, emptying the list.
    pub fn take_warnings(&mut self) -> Vec<JarError> {
        std::mem::take(&mut self.warnings)
    }
}

impl TokenJar for JarTokens {
    fn token(&self) -> Option<Secret> {
        self.token.clone()
    }

    fn store(&mut self, token: Secret, _user: &str, _expires_at: &str) {
        if let Some(jar) = &self.jar
            && let Err(err) = jar.put_for(&self.server, &token)
        {
            self.warnings.push(err);
        }
        self.token = Some(token);
    }

    fn forget(&mut self) {
        self.forgotten = true;
        self.token = None;
        if let Some(jar) = &self.jar
            && let Err(err) = jar.remove_for(&self.server)
        {
            self.warnings.push(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn put_get_remove_round_trip_per_server() {
        let dir = tempfile::tempdir().unwrap();
        let jar = CookieJar::at(dir.path().join("state/porter/tokens.json"));
        assert_eq!(jar.get("localhost:9090").unwrap(), None);
        jar.put("localhost:9090", &Secret::new("tok-a")).unwrap();
        jar.put("example:1", &Secret::new("tok-b")).unwrap();
        assert_eq!(
            jar.get("localhost:9090").unwrap().unwrap().expose(),
            "tok-a"
        );
        jar.put("localhost:9090", &Secret::new("tok-c")).unwrap();
        assert_eq!(
            jar.get("localhost:9090").unwrap().unwrap().expose(),
            "tok-c"
        );
        assert!(jar.remove("localhost:9090").unwrap());
        assert!(!jar.remove("localhost:9090").unwrap());
        assert_eq!(jar.get("localhost:9090").unwrap(), None);
        assert_eq!(jar.get("example:1").unwrap().unwrap().expose(), "tok-b");
    }

    #[cfg(unix)]
    #[test]
    fn jar_file_is_0600_and_its_directory_0700() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let jar = CookieJar::at(dir.path().join("porter/tokens.json"));
        jar.put("h:1", &Secret::new("t")).unwrap();
        let file_mode = fs::metadata(jar.path()).unwrap().permissions().mode() & 0o777;
        let dir_mode = fs::metadata(jar.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(file_mode, 0o600);
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn corrupt_jar_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, b"not json").unwrap();
        assert!(matches!(
            CookieJar::at(&path).get("h:1"),
            Err(JarError::Corrupt { .. })
        ));
    }

    #[test]
    fn jar_tokens_present_store_and_forget_one_servers_token() {
        let dir = tempfile::tempdir().unwrap();
        let jar = CookieJar::at(dir.path().join("porter/tokens.json"));
        jar.put("other:1", &Secret::new("keep-me")).unwrap();
        let mut tokens = JarTokens::open(jar.clone(), ServerKey::new("h", 1));
        assert_eq!(tokens.token(), None);
        tokens.store(Secret::new("tok"), "ada", "2030-01-01T00:00:00Z");
        assert_eq!(jar.get("h:1").unwrap().unwrap().expose(), "tok");
        let mut again = JarTokens::open(jar.clone(), ServerKey::new("h", 1));
        assert_eq!(again.token().unwrap().expose(), "tok");
        again.forget();
        assert!(again.was_refused());
        assert_eq!(again.token(), None);
        assert_eq!(jar.get("h:1").unwrap(), None);
        assert_eq!(jar.get("other:1").unwrap().unwrap().expose(), "keep-me");
        assert!(again.take_warnings().is_empty());
    }

    #[test]
    fn a_broken_jar_is_a_warning_and_an_empty_jar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, b"not json").unwrap();
        let mut tokens = JarTokens::open(CookieJar::at(&path), ServerKey::new("h", 1));
        assert_eq!(tokens.token(), None);
        tokens.store(Secret::new("secret-token"), "ada", "2030-01-01T00:00:00Z");
        // Still usable in memory for this run.
        assert_eq!(tokens.token().unwrap().expose(), "secret-token");
        let warnings = tokens.take_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        for warning in &warnings {
            assert!(!warning.to_string().contains("secret-token"));
        }
    }

    #[test]
    fn every_spelling_of_this_machine_is_one_key() {
        for host in [
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "0:0:0:0:0:0:0:1",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(ServerKey::new(host, 9090).key(), "127.0.0.1:9090", "{host}");
        }
        assert_eq!(ServerKey::new("Example.COM.", 1).key(), "example.com:1");
        assert_eq!(ServerKey::new("2001:DB8::1", 1).key(), "[2001:db8::1]:1");
        assert_eq!(ServerKey::new("[2001:db8::1]", 1).key(), "[2001:db8::1]:1");
        assert_eq!(ServerKey::new("10.0.0.1", 1).key(), "10.0.0.1:1");
        assert!(ServerKey::new("10.0.0.1", 1).legacy().is_empty());
    }

    /// Issue 9: a token stored for localhost was not presented to
    /// 127.0.0.1, which asked for the password again.
    #[test]
    fn a_token_stored_for_localhost_is_presented_to_127_0_0_1() {
        let dir = tempfile::tempdir().unwrap();
        let jar = CookieJar::at(dir.path().join("porter/tokens.json"));
        let mut first = JarTokens::open(jar.clone(), ServerKey::new("localhost", 9090));
        first.store(Secret::new("tok"), "ada", "2030-01-01T00:00:00Z");
        let second = JarTokens::open(jar.clone(), ServerKey::new("127.0.0.1", 9090));
        assert_eq!(second.token().unwrap().expose(), "tok");
        let third = JarTokens::open(jar, ServerKey::new("::1", 9090));
        assert_eq!(third.token().unwrap().expose(), "tok");
    }

    #[test]
    fn a_jar_written_before_the_rule_is_read_and_rewritten_under_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(
            &path,
            br#"{"localhost:9090": "old", "Example.com:1": "other", "keep:2": "k"}"#,
        )
        .unwrap();
        let jar = CookieJar::at(&path);
        let mut tokens = JarTokens::open(jar.clone(), ServerKey::new("127.0.0.1", 9090));
        assert_eq!(tokens.token().unwrap().expose(), "old");
        let other = JarTokens::open(jar.clone(), ServerKey::new("Example.com", 1));
        assert_eq!(other.token().unwrap().expose(), "other");
        tokens.store(Secret::new("new"), "ada", "2030-01-01T00:00:00Z");
        assert_eq!(jar.get("127.0.0.1:9090").unwrap().unwrap().expose(), "new");
        assert_eq!(jar.get("localhost:9090").unwrap(), None);
        assert_eq!(jar.get("keep:2").unwrap().unwrap().expose(), "k");
        // Forgetting removes the old spelling too.
        fs::write(
            &path,
            br#"{"localhost:9090": "old", "[::1]:9090": "older"}"#,
        )
        .unwrap();
        let mut tokens = JarTokens::open(jar.clone(), ServerKey::new("localhost", 9090));
        tokens.forget();
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), "{}");
    }

    #[test]
    fn errors_do_not_show_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, br#"{"h:1": 5}"#).unwrap();
        let err = CookieJar::at(&path).get("h:1").unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }
}

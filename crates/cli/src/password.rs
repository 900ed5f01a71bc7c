//! Passwords at the command line: the Argon2id cost flags shared by `serve`
//! and `users`, and asking for a new password.
//!
//! A new password is asked twice with hidden input at a terminal
//! (`porter_client::terminal::read_secret`, the client's own reader, which
//! keeps the input hidden across Ctrl-Z and `fg`, and restores the terminal
//! on Ctrl-C), after the policy is stated, and the first entry is checked
//! against it before the repeat is asked; without a terminal it comes from
//! `PORTER_PASSWORD`, so scripts and tests need no terminal. It is asked
//! before any tokio runtime or signal handler exists.

use std::io::{self, IsTerminal};

use anyhow::{Context, bail};
use clap::Args;
use porter_server::credentials::{
    self, HashCost, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PasswordHasher,
};
use porter_wire::Secret;

/// The environment variable holding a password for scripts.
pub const PASSWORD_ENV: &str = "PORTER_PASSWORD";

/// Tries at the terminal before giving up on a password the policy refuses.
const MAX_TRIES: u32 = 3;

/// Argon2id cost of new password hashes.
#[derive(Debug, Clone, Copy, Args)]
pub struct HashCostArgs {
    /// Argon2id memory per hash, in KiB (OWASP's minimum by default)
    #[arg(long, value_name = "KIB", default_value_t = HashCost::default().memory_kib)]
    pub argon2_memory_kib: u32,

    /// Argon2id passes over memory
    #[arg(long, value_name = "N", default_value_t = HashCost::default().iterations)]
    pub argon2_iterations: u32,

    /// Argon2id lanes
    #[arg(long, value_name = "N", default_value_t = HashCost::default().parallelism)]
    pub argon2_parallelism: u32,
}

impl HashCostArgs {
    /// The cost as the server's credentials module takes it.
    pub fn cost(&self) -> HashCost {
        HashCost {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    /// A hasher with this cost, one hash at a time, without the server's
    /// decoy hash: an admin command never verifies an unknown user, so the
    /// decoy would be one wasted hash.
    ///
    /// # Errors
    /// When Argon2 refuses the cost.
    pub fn hasher(&self) -> anyhow::Result<PasswordHasher> {
        PasswordHasher::without_decoy(self.cost(), 1).context("invalid --argon2-* parameters")
    }
}

/// A new password for `user`: asked twice, hidden, at a terminal (the policy
/// stated first, the first entry checked before the repeat is asked); else
/// `PORTER_PASSWORD`. Checked against the server's policy either way.
///
/// # Errors
/// No terminal and no `PORTER_PASSWORD`; a password the policy refuses
/// (three times at a terminal); the terminal failing.
pub fn new_password(user: &str) -> anyhow::Result<Secret> {
    if !io::stdin().is_terminal() {
        let Some(password) = std::env::var_os(PASSWORD_ENV) else {
            bail!("no terminal to ask the password on: set {PASSWORD_ENV}");
        };
        let password = password
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSWORD_ENV} is not valid UTF-8"))?;
        credentials::check_password_policy(&password)
            .with_context(|| format!("the password in {PASSWORD_ENV} is refused"))?;
        return Ok(Secret::new(password));
    }
    eprintln!("A password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters.");
    let ask = |prompt: &str| {
        porter_client::terminal::read_secret(&format!("{prompt}: "))
            .context("cannot read the password")
    };
    for _ in 0..MAX_TRIES {
        let prompt = format!("New password for {}", crate::store::printable(user));
        let password = ask(&prompt)?;
        if let Err(why) = credentials::check_password_policy(password.expose()) {
            eprintln!("{why}; try again.");
            continue;
        }
        let repeated = ask("Repeat the password")?;
        if repeated.expose() == password.expose() {
            return Ok(password);
        }
        eprintln!("The passwords differ; try again.");
    }
    bail!("no acceptable password after {MAX_TRIES} tries")
}

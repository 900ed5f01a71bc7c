//! `porter users`: accounts of `--auth password`, managed on the server's
//! database while it runs.
//!
//! - `add NAME`: a new user, whose name passes the server's name policy and
//!   looks like no other user's; the password is asked twice, hidden (or
//!   read from `PORTER_PASSWORD` without a terminal), checked against the
//!   server's policy and hashed with Argon2id at the `--argon2-*` cost.
//! - `list`: names (escaped where a name from before the policy holds an
//!   invisible or reordering character) and dates; never a hash.
//! - `remove NAME`: the user and, by the store's cascade, their sessions.
//! - `passwd NAME`: a new password, and every session of the user revoked,
//!   so that a stolen token dies with the old password.
//!
//! The user is looked up before the password is asked, so nobody types a
//! password for a command that cannot succeed; the write itself still
//! reports a change made meanwhile by someone else.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use porter_server::auth::check_user_name;
use porter_store::StoreErrorKind;

use crate::control::ControlArgs;
use crate::password::{self, HashCostArgs};
use crate::store::{self, DbArgs};

/// Options of `porter users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    control: ControlArgs,

    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user on an existing database (the password is asked twice,
    /// hidden; without a terminal it is read from PORTER_PASSWORD)
    Add {
        /// The user name: 1 to 32 characters, no spaces, nothing invisible,
        /// not a look-alike of another user's
        name: String,
        #[command(flatten)]
        cost: HashCostArgs,
    },
    /// List the users
    List,
    /// Remove a user and all their sessions
    Remove {
        /// The user name
        name: String,
    },
    /// Set a new password (asked like for `add`) and revoke the user's
    /// sessions
    Passwd {
        /// The user name
        name: String,
        #[command(flatten)]
        cost: HashCostArgs,
    },
}

/// Runs `porter users`.
///
/// # Errors
/// A database that cannot be opened; an unknown user (or an existing one
/// for `add`); an invalid name; no password.
pub fn run(args: UsersArgs) -> anyhow::Result<()> {
    let db = args.db.db;
    match args.command {
        UsersCommand::Add { name, cost } => {
            let name = check_user_name(&name)?;
            let name = name.as_str();
            let (exists, look_alike) = store::with_store(&db, |s| async move {
                Ok((s.user(name).await?, s.look_alike_user(name).await?))
            })?;
            if exists.is_some() {
                bail!("user {name:?} already exists");
            }
            if let Some(other) = look_alike {
                bail!(
                    "the name {name:?} is taken: it looks like the existing user {}",
                    store::printable(&other)
                );
            }
            let password = password::new_password(name)?;
            let hasher = cost.hasher()?;
            store::with_store(&db, |s| async move {
                let hash = hasher.hash(password.expose()).await?;
                match s.create_user(name, &hash, store::now()).await {
                    Ok(()) => Ok(()),
                    Err(err) if err.kind() == StoreErrorKind::UserExists => {
                        bail!("user {name:?}, or one that looks like it, already exists")
                    }
                    Err(err) => Err(err).context("cannot create the user"),
                }
            })?;
            println!("added user {name}");
        }
        UsersCommand::List => {
            let users = store::with_store(&db, |s| async move { Ok(s.list_users().await?) })?;
            let rows: Vec<Vec<String>> = users
                .into_iter()
                .map(|u| {
                    vec![
                        store::printable(&u.name),
                        store::rfc3339(u.created_at),
                        store::rfc3339(u.updated_at),
                    ]
                })
                .collect();
            store::print_table(&["USER", "CREATED", "PASSWORD SET"], &rows);
        }
        UsersCommand::Remove { name } => {
            let name = name.as_str();
            let removed =
                store::with_store(&db, |s| async move { Ok(s.remove_user(name).await?) })?;
            if !removed {
                bail!("no such user: {name:?}");
            }
            args.control.nudge();
            println!("removed user {name} and their sessions");
        }
        UsersCommand::Passwd { name, cost } => {
            let name = name.as_str();
            let exists = store::with_store(&db, |s| async move { Ok(s.user(name).await?) })?;
            if exists.is_none() {
                bail!("no such user: {name:?}");
            }
            let password = password::new_password(name)?;
            let hasher = cost.hasher()?;
            let revoked = store::with_store(&db, |s| async move {
                let hash = hasher.hash(password.expose()).await?;
                let now = store::now();
                if !s.set_password(name, &hash, now).await? {
                    bail!("no such user: {name:?}");
                }
                Ok(s.revoke_user_sessions(name, now).await?)
            })?;
            println!("password changed for {name}; {revoked} session(s) revoked");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_the_servers_rule() {
        assert_eq!(check_user_name(" ada ").unwrap(), "ada");
        assert!(check_user_name("").is_err());
        assert!(check_user_name("ada lovelace").is_err());
        assert!(check_user_name("Server").is_err());
        assert!(check_user_name(&"x".repeat(33)).is_err());
        assert!(check_user_name(&"é".repeat(32)).is_ok());
    }
}

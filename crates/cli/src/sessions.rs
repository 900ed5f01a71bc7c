//! `porter sessions`: the login sessions of `--auth password`, on the
//! server's database while it runs.
//!
//! - `list [USER]`: id, user, created, expires, last seen and state. The id
//!   is a prefix of the token's hash: it names a session, it never logs
//!   anyone in, and the token itself is stored nowhere.
//! - `revoke USER`, `revoke --all`, `revoke --id ID`: the next connection
//!   presenting a revoked token gets `session_invalid`.
//! - `purge`: deletes expired and revoked sessions, which `list` otherwise
//!   shows forever (a running server also purges them hourly).

use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand};

use crate::control::ControlArgs;
use crate::store::{self, DbArgs};

/// Options of `porter sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    control: ControlArgs,

    #[command(subcommand)]
    command: SessionsCommand,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// List sessions (of one user, or of everyone), including ended ones
    List {
        /// Only this user's sessions
        user: Option<String>,
    },
    /// Revoke the live sessions of a user, one session, or all of them
    #[command(group(ArgGroup::new("which").required(true).args(["user", "all", "id"])))]
    Revoke {
        /// The user whose sessions to revoke
        user: Option<String>,
        /// Revoke every live session
        #[arg(long)]
        all: bool,
        /// Revoke the session with this id (as `sessions list` shows it)
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
    /// Delete expired and revoked sessions (a running server also does so hourly)
    Purge,
}

/// Runs `porter sessions`.
///
/// # Errors
/// A database that cannot be opened; an unknown user or session id.
pub fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let db = args.db.db;
    match args.command {
        SessionsCommand::List { user } => {
            let shown = user.clone().unwrap_or_default();
            let (sessions, known) = store::with_store(&db, |s| async move {
                let known = match &user {
                    Some(name) => s.user(name).await?.is_some(),
                    None => true,
                };
                Ok((s.list_sessions(user.as_deref()).await?, known))
            })?;
            if !known {
                bail!("no such user: {shown:?}");
            }
            let now = store::now();
            let rows: Vec<Vec<String>> = sessions
                .into_iter()
                .map(|s| {
                    let state = match s.revoked_at {
                        Some(_) => "revoked",
                        None if s.is_active(now) => "active",
                        None => "expired",
                    };
                    vec![
                        s.id,
                        store::printable(&s.user),
                        store::rfc3339(s.created_at),
                        store::rfc3339(s.expires_at),
                        store::rfc3339(s.last_seen),
                        state.to_owned(),
                    ]
                })
                .collect();
            store::print_table(
                &["ID", "USER", "CREATED", "EXPIRES", "LAST SEEN", "STATE"],
                &rows,
            );
        }
        SessionsCommand::Revoke { user, all, id } => {
            let revoked = store::with_store(&db, |s| async move {
                let now = store::now();
                if all {
                    return Ok(s.revoke_all_sessions(now).await?);
                }
                if let Some(id) = id {
                    let revoked = s.revoke_session_by_id(id.trim(), now).await?;
                    if revoked == 0 {
                        bail!("no live session with id {id:?}");
                    }
                    return Ok(revoked);
                }
                let Some(user) = user else {
                    // clap requires one of the three.
                    bail!("say which sessions: USER, --all or --id ID");
                };
                if s.user(&user).await?.is_none() {
                    bail!("no such user: {user:?}");
                }
                Ok(s.revoke_user_sessions(&user, now).await?)
            })?;
            args.control.nudge();
            println!("{revoked} session(s) revoked");
        }
        SessionsCommand::Purge => {
            let purged =
                store::with_store(
                    &db,
                    |s| async move { Ok(s.purge_sessions(store::now()).await?) },
                )?;
            println!("{purged} session(s) purged");
        }
    }
    Ok(())
}

//! `porter names`: the names remembered by address under `--auth ip`, on
//! the server's database while it runs.
//!
//! - `list`: address, name (escaped where it holds what the name policy
//!   now refuses), first and last seen.
//! - `forget ADDR`: the next connection from that address is asked its name
//!   again.

use std::net::IpAddr;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::store::{self, DbArgs};

/// Options of `porter names`.
#[derive(Debug, Args)]
pub struct NamesArgs {
    #[command(flatten)]
    db: DbArgs,

    #[command(subcommand)]
    command: NamesCommand,
}

#[derive(Debug, Subcommand)]
enum NamesCommand {
    /// List the remembered addresses and their names
    List,
    /// Forget the name of an address
    Forget {
        /// The IP address (IPv4 or IPv6)
        addr: IpAddr,
    },
}

/// Runs `porter names`.
///
/// # Errors
/// A database that cannot be opened; an address with no name.
pub fn run(args: NamesArgs) -> anyhow::Result<()> {
    let db = args.db.db;
    match args.command {
        NamesCommand::List => {
            let names = store::with_store(&db, |s| async move { Ok(s.list_names().await?) })?;
            let rows: Vec<Vec<String>> = names
                .into_iter()
                .map(|n| {
                    vec![
                        n.addr.to_string(),
                        store::printable(&n.name),
                        store::rfc3339(n.first_seen),
                        store::rfc3339(n.last_seen),
                    ]
                })
                .collect();
            store::print_table(&["ADDRESS", "NAME", "FIRST SEEN", "LAST SEEN"], &rows);
        }
        NamesCommand::Forget { addr } => {
            let forgotten =
                store::with_store(&db, |s| async move { Ok(s.forget_name(addr).await?) })?;
            if !forgotten {
                bail!("no name is remembered for {addr}");
            }
            println!("forgot the name of {addr}");
        }
    }
    Ok(())
}

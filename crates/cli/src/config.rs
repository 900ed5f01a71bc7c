//! `porter config`: the config file of `porter serve` (`porter.toml`)
//! without starting a server. The file itself is read by `settings`, the
//! one mechanism `serve` uses too.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::settings::{self, CONFIG_FILE};

/// Options of `porter config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config file: every key, every value and the limits
    /// together, as `porter serve` would read them (without flags or
    /// environment); print the effective configuration
    Check {
        /// The file to check
        file: PathBuf,
    },
    /// Print where `porter serve` looks for its config file without
    /// `--config`
    Path,
}

/// Runs `porter config`.
///
/// # Errors
/// A file that does not pass: one line naming the file, the line and the
/// key.
pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    match &args.command {
        ConfigCommand::Check { file } => {
            let effective = crate::serve::check_file(file)?;
            print!("{effective}");
            eprintln!("porter: {} is valid", file.display());
            Ok(())
        }
        ConfigCommand::Path => {
            match settings::xdg_config_file() {
                Some(path) => println!("{}", path.display()),
                None => anyhow::bail!("no home directory: no default place for {CONFIG_FILE}"),
            }
            Ok(())
        }
    }
}

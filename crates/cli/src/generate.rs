//! `porter completions SHELL` and `porter man`: tab completion and the
//! manual page, both generated from the very `Command` that parses the
//! arguments (`crate::command`), so neither can drift from the options.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clap_complete::Shell;

/// Options of `porter completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: Shell,
}

/// Options of `porter man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (porter.1, porter-serve.1, ...) into
    /// this folder instead of printing porter.1
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script for the shell asked.
///
/// # Errors
/// When stdout cannot be written.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut crate::command(), "porter", &mut out);
    write_stdout(&out)
}

/// Prints the manual page (roff), or writes every command's page to a
/// folder.
///
/// # Errors
/// When the folder or stdout cannot be written.
pub fn man(args: &ManArgs) -> anyhow::Result<()> {
    let cmd = crate::command();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        return clap_mangen::generate_to(cmd, dir)
            .with_context(|| format!("cannot write the pages into {}", dir.display()));
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .context("cannot render the manual page")?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

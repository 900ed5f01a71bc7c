//! Asking for a host and a port at the terminal, shared by `serve` and
//! `connect`.
//!
//! A value comes from the flag, then the environment (clap merges the two),
//! then this prompt (only when stdin is a terminal), then the default. The
//! prompt shows the default in brackets and Enter keeps it; a wrong answer is
//! explained in one line and asked again; the end of input (Ctrl-D) gives up
//! with an error instead of guessing.
//!
//! These prompts read plain lines rather than use `dialoguer::Input`:
//! dialoguer reads keys in raw mode, where Ctrl-D is just another character,
//! so a user could never leave; a cooked-mode line read reports Ctrl-D as the
//! end of input, and Ctrl-C keeps its usual meaning.

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, ToSocketAddrs};

use anyhow::{Context, bail};

/// Resolves the address of `serve` or `connect`: the host, then the port,
/// each the given value (flag or environment), else asked when
/// `interactive`, else the default.
///
/// # Errors
/// When input ends (Ctrl-D) or cannot be read at a prompt.
pub fn resolve_address(
    host: Option<String>,
    port: Option<u16>,
    interactive: bool,
    default_host: &str,
    default_port: u16,
) -> anyhow::Result<(String, u16)> {
    let host = resolve(
        host,
        interactive,
        || ask_host(default_host),
        default_host.to_owned(),
    )?;
    let port = resolve(port, interactive, || ask_port(default_port), default_port)?;
    Ok((host, port))
}

/// Resolves one setting: the given value (flag or environment), else the
/// prompt when `interactive`, else the default.
///
/// # Errors
/// Those of `ask`.
fn resolve<T>(
    given: Option<T>,
    interactive: bool,
    ask: impl FnOnce() -> anyhow::Result<T>,
    default: T,
) -> anyhow::Result<T> {
    match given {
        Some(value) => Ok(value),
        None if interactive => ask(),
        None => Ok(default),
    }
}

/// Asks `Host [default]: ` on the terminal until the answer is an IP address
/// or a name that resolves.
///
/// # Errors
/// When input ends (Ctrl-D) or cannot be read.
pub fn ask_host(default: &str) -> anyhow::Result<String> {
    let stdin = io::stdin();
    ask(
        &mut stdin.lock(),
        &mut io::stderr(),
        "Host",
        default,
        check_host,
    )
}

/// Asks `Port [default]: ` on the terminal until the answer is a port
/// number (0 to 65535).
///
/// # Errors
/// When input ends (Ctrl-D) or cannot be read.
pub fn ask_port(default: u16) -> anyhow::Result<u16> {
    let stdin = io::stdin();
    ask(
        &mut stdin.lock(),
        &mut io::stderr(),
        "Port",
        &default.to_string(),
        parse_port,
    )
}

/// The prompt loop, over any input and output so that it can be tested.
fn ask<T>(
    input: &mut impl BufRead,
    output: &mut impl Write,
    label: &str,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<T> {
    loop {
        write!(output, "{label} [{default}]: ")
            .and_then(|()| output.flush())
            .context("cannot write the prompt")?;
        let mut raw = Vec::new();
        let read = input
            .read_until(b'\n', &mut raw)
            .context("cannot read the answer")?;
        if read == 0 {
            // Leave the cursor on a fresh line for the error message.
            let _ = writeln!(output);
            bail!("no answer for {}, giving up", label.to_lowercase());
        }
        let Ok(line) = String::from_utf8(raw) else {
            let _ = writeln!(output, "That is not valid text; try again.");
            continue;
        };
        let answer = line.trim();
        let answer = if answer.is_empty() { default } else { answer };
        match parse(answer) {
            Ok(value) => return Ok(value),
            Err(why) => {
                let _ = writeln!(output, "{why}; try again.");
            }
        }
    }
}

/// A port number, with a one-line explanation when it is not one.
pub fn parse_port(answer: &str) -> Result<u16, String> {
    answer
        .parse::<u16>()
        .map_err(|_| format!("{answer:?} is not a port number (0 to 65535)"))
}

/// An IP address or a host name that resolves.
pub fn check_host(answer: &str) -> Result<String, String> {
    if answer.parse::<IpAddr>().is_ok() {
        return Ok(answer.to_owned());
    }
    let resolves = (answer, 0)
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.next().is_some());
    if resolves {
        Ok(answer.to_owned())
    } else {
        Err(format!(
            "{answer:?} is neither an IP address nor a host name that resolves"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_prompt(input: &str) -> (anyhow::Result<u16>, String) {
        let mut output = Vec::new();
        let result = ask(
            &mut input.as_bytes(),
            &mut output,
            "Port",
            "9090",
            parse_port,
        );
        (result, String::from_utf8(output).unwrap())
    }

    #[test]
    fn enter_keeps_the_default() {
        let (result, output) = run_prompt("\n");
        assert_eq!(result.unwrap(), 9090);
        assert_eq!(output, "Port [9090]: ");
    }

    #[test]
    fn wrong_ports_are_explained_and_asked_again() {
        let (result, output) = run_prompt("abc\n70000\n-1\n 8080 \n");
        assert_eq!(result.unwrap(), 8080);
        assert_eq!(output.matches("Port [9090]: ").count(), 4);
        assert!(output.contains("\"abc\" is not a port number"), "{output}");
        assert!(
            output.contains("\"70000\" is not a port number"),
            "{output}"
        );
        assert!(output.contains("\"-1\" is not a port number"), "{output}");
    }

    #[test]
    fn end_of_input_gives_up_with_an_error() {
        let (result, _) = run_prompt("abc\n");
        let err = result.unwrap_err().to_string();
        assert!(err.contains("giving up"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_asked_again() {
        let mut output = Vec::new();
        let result = ask(
            &mut &b"\xff\xfe\n42\n"[..],
            &mut output,
            "Port",
            "9090",
            parse_port,
        );
        assert_eq!(result.unwrap(), 42);
    }

    #[test]
    fn without_a_terminal_given_values_win_and_defaults_fill_in() {
        let resolved = resolve_address(None, Some(1234), false, "localhost", 9090).unwrap();
        assert_eq!(resolved, ("localhost".to_owned(), 1234));
        let resolved = resolve_address(Some("::1".into()), None, false, "localhost", 9090).unwrap();
        assert_eq!(resolved, ("::1".to_owned(), 9090));
    }

    #[test]
    fn hosts_are_addresses_or_resolvable_names() {
        assert!(check_host("127.0.0.1").is_ok());
        assert!(check_host("::1").is_ok());
        assert!(check_host("localhost").is_ok());
        assert!(check_host("not a host").is_err());
        assert!(check_host("999.1.1.1").is_err());
    }
}

//! The address prompts through a real pseudo-terminal (rexpect): defaults on
//! Enter, wrong answers explained and asked again, and a clean exit on
//! Ctrl-D. Every expectation has a timeout.

mod common;

use std::net::TcpListener;
use std::process::Command;

use rexpect::process::Signal;
use rexpect::session::spawn_command;

use common::{TIMEOUT_MS, exit_code};

/// `porter args…` in `dir`, with a clean environment.
fn porter(args: &[&str], dir: &std::path::Path) -> Command {
    let mut command = common::porter(args);
    command
        .current_dir(dir)
        // The prompts are the same whatever the auth mode; none spares a
        // database and a hash at start-up.
        .env("PORTER_AUTH", "none")
        .env("RUST_BACKTRACE", "1");
    command
}

#[test]
fn serve_host_prompt_keeps_the_default_on_enter() {
    let dir = tempfile::tempdir().unwrap();
    // The port comes from the environment (0: any free one), so only the
    // host is asked; 9090 may well be busy on this machine.
    let mut command = porter(&["serve", "--service", "echo"], dir.path());
    command.env("PORTER_PORT", "0");
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    p.exp_string("Host [127.0.0.1]: ").unwrap();
    p.send_line("").unwrap();
    p.exp_regex(r"porter: listening on 127\.0\.0\.1:\d+")
        .unwrap();
    p.process_mut().signal(Signal::SIGINT).unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(0));
}

#[test]
fn serve_port_prompt_reasks_on_wrong_answers() {
    let dir = tempfile::tempdir().unwrap();
    let command = porter(
        &["serve", "--service", "echo", "--host", "127.0.0.1"],
        dir.path(),
    );
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    for wrong in ["abc", "70000", "-1"] {
        p.exp_string("Port [9090]: ").unwrap();
        p.send_line(wrong).unwrap();
        p.exp_string(&format!("\"{wrong}\" is not a port number"))
            .unwrap();
    }
    p.exp_string("Port [9090]: ").unwrap();
    p.send_line("0").unwrap();
    p.exp_regex(r"porter: listening on 127\.0\.0\.1:\d+")
        .unwrap();
    p.process_mut().signal(Signal::SIGINT).unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&p), Some(0));
}

#[test]
fn serve_host_prompt_reasks_on_a_name_that_does_not_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = porter(&["serve", "--service", "echo"], dir.path());
    command.env("PORTER_PORT", "0");
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    p.exp_string("Host [127.0.0.1]: ").unwrap();
    p.send_line("300.1.2.3").unwrap();
    p.exp_string("neither an IP address nor a host name that resolves")
        .unwrap();
    p.exp_string("Host [127.0.0.1]: ").unwrap();
    p.send_line("127.0.0.1").unwrap();
    p.exp_regex(r"porter: listening on 127\.0\.0\.1:\d+")
        .unwrap();
    p.process_mut().signal(Signal::SIGINT).unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn ctrl_d_at_a_prompt_exits_cleanly_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let command = porter(&["serve"], dir.path());
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
    p.exp_string("Host [127.0.0.1]: ").unwrap();
    p.send_control('d').unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains("porter: no answer for host, giving up"),
        "{rest}"
    );
    assert!(!rest.contains("panicked"), "{rest}");
    assert!(!rest.contains("backtrace"), "{rest}");
    assert_eq!(exit_code(&p), Some(1));
}

#[test]
fn connect_prompts_use_their_defaults_and_reach_a_server() {
    // A server for the client to find: a plain listener that accepts, so
    // the test does not depend on 9090 being free.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn_command(porter(&["connect"], dir.path()), Some(TIMEOUT_MS)).unwrap();
    p.exp_string("Host [localhost]: ").unwrap();
    p.send_line("").unwrap();
    p.exp_string("Port [9090]: ").unwrap();
    p.send_line("99999").unwrap();
    p.exp_string("\"99999\" is not a port number").unwrap();
    p.exp_string("Port [9090]: ").unwrap();
    p.send_line(&port.to_string()).unwrap();
    // "localhost" may try ::1 first; wait for the IPv4 connection.
    let (stream, _) = listener.accept().unwrap();
    // Close without a welcome: the client must say so and fail cleanly.
    drop(stream);
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains("porter: the server ended the conversation"),
        "{rest}"
    );
    assert_eq!(exit_code(&p), Some(1));
}

//! The login phase of `--auth password`, measured apart from the
//! conversation: Argon2 bounds it by design.
//!
//! Three steps, all users at once (bounded by [`super::OPEN_CONCURRENCY`]):
//! 1. registration: each bench user `bench-<run>-<i>` is new, so the server
//!    asks for a new password twice and hashes it once;
//! 2. password login: the same users log in again (one verification each),
//!    and the tokens they get are kept;
//! 3. token resume: connections present those tokens, several rounds.
//!
//! With the server's process id (same machine, Linux), the server's CPU
//! time is read from `/proc/PID/stat` around steps 2 and 3, to compare what
//! a login and a resume cost it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use porter_wire::{ClientMessage, EncodedFrame, FrameCodec, Secret};
use tokio::io::AsyncWriteExt;

use super::conn::{self, BenchStream, Login, Ready};
use super::cpu::{USER_HZ, cpu_ticks};
use super::report::{Failure, FailureKind, ServerCpu};
use super::{ErrorSummary, LoginReport, Plan, Resumes};

/// A name no earlier run has used: the process id and the clock.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos & 0xff_ffff_ffff)
}

/// Runs the three steps; returns the report and the tokens of the users
/// that logged in.
pub(super) async fn run(plan: &Plan) -> (LoginReport, Vec<Secret>) {
    let run = run_id();
    let users: Vec<Login> = (0..plan.conns)
        .map(|i| Login::Password {
            user: format!("bench-{run}-{i}"),
            password: plan.password.clone(),
        })
        .collect();
    let mut report = LoginReport {
        users: users.len() as u64,
        ..LoginReport::default()
    };

    let registered = step(plan, users.clone(), &mut report.errors).await;
    report.registrations = registered.done.len() as u64;
    report.registrations_per_sec = registered.per_sec;

    let logged_in = step(plan, users, &mut report.errors).await;
    report.logins = logged_in.done.len() as u64;
    report.logins_per_sec = logged_in.per_sec;
    let tokens: Vec<Secret> = logged_in.done.into_iter().flatten().collect();

    let rounds = match plan.resumes {
        Resumes::Total(total) => total.div_ceil(tokens.len().max(1) as u64),
        Resumes::PerUser(rounds) => rounds,
    };
    let resumes: Vec<Login> = (0..rounds)
        .flat_map(|_| tokens.iter().cloned().map(Login::Token))
        .collect();
    let resumed = step(plan, resumes, &mut report.errors).await;
    report.resumes = resumed.done.len() as u64;
    report.resumes_per_sec = resumed.per_sec;

    if let (Some(login_ticks), Some(resume_ticks)) = (logged_in.cpu_ticks, resumed.cpu_ticks) {
        let per = |ticks: u64, n: u64| ticks as f64 / USER_HZ * 1000.0 / n.max(1) as f64;
        report.server_cpu = Some(ServerCpu {
            ms_per_login: per(login_ticks, report.logins),
            ms_per_resume: per(resume_ticks, report.resumes),
        });
    }
    (report, tokens)
}

/// What one step (registration, login or resume) gave.
struct Step {
    /// The token of each handshake that succeeded.
    done: Vec<Option<Secret>>,
    /// Successful handshakes per second of the step.
    per_sec: f64,
    /// Server CPU ticks spent during the step, when its pid is known.
    cpu_ticks: Option<u64>,
}

/// Runs `logins` all at once, timed, with the server's CPU time read around
/// them; failures are added to `errors`.
async fn step(plan: &Plan, logins: Vec<Login>, errors: &mut ErrorSummary) -> Step {
    let cpu_before = plan.server_pid.and_then(cpu_ticks);
    let started = Instant::now();
    let (done, failures) = each(plan, logins).await;
    let elapsed = started.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let cpu_after = plan.server_pid.and_then(cpu_ticks);
    errors.merge(failures);
    Step {
        per_sec: done.len() as f64 / elapsed,
        done,
        cpu_ticks: cpu_before.zip(cpu_after).map(|(a, b)| b.saturating_sub(a)),
    }
}

/// Connects and completes one handshake per login, then says `bye`.
/// Returns the token each successful handshake got.
async fn each(plan: &Plan, logins: Vec<Login>) -> (Vec<Option<Secret>>, ErrorSummary) {
    let bye = EncodedFrame::message(&FrameCodec::new(), &ClientMessage::Bye).ok();
    let dial = plan.dial();
    conn::gather(logins, |login| {
        let bye = bye.clone();
        async move {
            let ready = conn::open_one(dial, &login, false).await?;
            if let Login::Token(_) = login {
                // A resume hands out no new token; keep the one used.
            } else if ready.token.is_none() {
                return Err(Failure::new(
                    FailureKind::Protocol,
                    "a password login ended without a session token",
                ));
            }
            Ok(close(ready, bye).await)
        }
    })
    .await
}

/// Says `bye` and closes; returns the connection's token.
async fn close(ready: Ready<BenchStream>, bye: Option<EncodedFrame>) -> Option<Secret> {
    let Ready { mut io, token, .. } = ready;
    if let Some(bye) = bye {
        let _ = io.write_all(bye.as_bytes()).await;
    }
    let _ = io.shutdown().await;
    token
}

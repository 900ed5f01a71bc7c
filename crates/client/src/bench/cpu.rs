//! CPU time of processes from `/proc/PID/stat`, and which side of a run
//! was the limit.
//!
//! A ratio of two servers' messages/s means something only if the load
//! generator could have gone faster: a bench at a full core with a server
//! that still has room measured the bench (issue 15). So the measured
//! phase reads the CPU time of the bench itself and, with `--server-pid`,
//! of the server, and the report says which one was saturated.

use std::time::Instant;

use super::report::{Bound, CpuUse};

/// Clock ticks per second of `/proc/PID/stat` times: Linux's `USER_HZ`,
/// 100 on every architecture it runs on (the kernel scales to it).
pub(crate) const USER_HZ: f64 = 100.0;

/// A bench at or above this share of one core is saturated: the ticks are
/// 10 ms apart, and a runtime that is never idle still loses a little to
/// the timer and the scheduler.
pub const BENCH_SATURATED_PERCENT: f64 = 95.0;

/// A server at or above this share of one core is saturated, and the run
/// measured it. Lower than the bench's mark: a server saturated by its
/// clients still waits on them now and then.
pub const SERVER_SATURATED_PERCENT: f64 = 90.0;

/// User + system CPU ticks of a process, from `/proc/PID/stat`; `None` when
/// it cannot be read (another system, a process that is gone).
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// Fields 14 and 15 (utime, stime), counted after the command name, which
/// is in parentheses and may itself hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of the bench and the server at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    at: Instant,
    bench: Option<u64>,
    server: Option<u64>,
}

impl CpuSample {
    /// Reads both now; the server only when its pid is known.
    pub(crate) fn now(server_pid: Option<u32>) -> Self {
        CpuSample {
            at: Instant::now(),
            bench: cpu_ticks(std::process::id()),
            server: server_pid.and_then(cpu_ticks),
        }
    }

    /// What each side used between `self` and `later`, as a share of one
    /// core; `None` when the bench's own time cannot be read.
    pub(crate) fn until(&self, later: &CpuSample) -> Option<CpuUse> {
        let secs = (later.at - self.at).as_secs_f64().max(f64::MIN_POSITIVE);
        let percent = |a: u64, b: u64| b.saturating_sub(a) as f64 / USER_HZ / secs * 100.0;
        let bench = percent(self.bench?, later.bench?);
        let server = self.server.zip(later.server).map(|(a, b)| percent(a, b));
        Some(CpuUse {
            bench_percent: bench,
            server_percent: server,
            bound: server.map(|server| bound(bench, server)),
        })
    }
}

/// Which side limited a run, from the CPU each used (% of one core).
pub fn bound(bench_percent: f64, server_percent: f64) -> Bound {
    if server_percent >= SERVER_SATURATED_PERCENT {
        Bound::Server
    } else if bench_percent >= BENCH_SATURATED_PERCENT {
        Bound::Bench
    } else {
        Bound::Neither
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces() {
        let stat = "1234 (porter (x) y) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 40 0 0 20 0 3";
        assert_eq!(parse_cpu_ticks(stat), Some(290));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_readable_cpu_ticks() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }

    #[test]
    fn a_saturated_bench_with_a_server_that_has_room_is_bench_bound() {
        assert_eq!(bound(100.0, 70.0), Bound::Bench);
        assert_eq!(bound(95.0, 89.9), Bound::Bench);
    }

    #[test]
    fn a_saturated_server_is_the_limit_whatever_the_bench_used() {
        assert_eq!(bound(60.0, 99.0), Bound::Server);
        assert_eq!(bound(100.0, 90.0), Bound::Server);
    }

    #[test]
    fn two_sides_with_room_are_neither_saturated() {
        // What a machine shared with other work gives: each side got only
        // part of its core.
        assert_eq!(bound(42.0, 44.0), Bound::Neither);
        assert_eq!(bound(94.9, 89.9), Bound::Neither);
    }

    #[test]
    fn cpu_use_is_a_share_of_one_core_over_the_wall_time_between_samples() {
        let start = Instant::now();
        let before = CpuSample {
            at: start,
            bench: Some(1000),
            server: Some(500),
        };
        let after = CpuSample {
            at: start + std::time::Duration::from_secs(2),
            bench: Some(1000 + 196),
            server: Some(500 + 120),
        };
        let cpu = before.until(&after).unwrap();
        assert!((cpu.bench_percent - 98.0).abs() < 1e-9, "{cpu:?}");
        assert_eq!(cpu.server_percent, Some(60.0));
        assert_eq!(cpu.bound, Some(Bound::Bench));
        let no_server = CpuSample {
            server: None,
            ..after
        };
        let cpu = before.until(&no_server).unwrap();
        assert_eq!((cpu.server_percent, cpu.bound), (None, None));
    }
}

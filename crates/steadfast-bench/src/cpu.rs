//! CPU time: of this process (`CLOCK_PROCESS_CPUTIME_ID`, the user plus
//! system time `getrusage(RUSAGE_SELF)` reports, at nanosecond resolution)
//! and of other processes on this machine (`/proc/PID/stat`), for the
//! "cores used" figures.

use std::time::{Duration, Instant};

use rustix::time::{ClockId, clock_gettime};

/// The CPU time (user + system, every thread) this process has used.
pub fn process_cpu() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The CPU time process `pid` has used (user + system, from
/// `/proc/PID/stat`, in clock ticks), `None` when it is not visible.
pub fn pid_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&stat, rustix::param::clock_ticks_per_second())
}

/// utime + stime of a `/proc/PID/stat` line (fields 14 and 15, counted
/// after the parenthesised command name, which may hold spaces).
fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state (3), ppid (4), … utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    let per_second = ticks_per_second.max(1);
    Some(
        Duration::from_secs(ticks / per_second)
            + Duration::from_secs_f64((ticks % per_second) as f64 / per_second as f64),
    )
}

/// A wall-clock and CPU-clock reading of this process, to compute the
/// cores it used over an interval.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    wall: Instant,
    cpu: Duration,
}

impl Usage {
    /// Reads both clocks now.
    pub fn now() -> Usage {
        Usage {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }

    /// The CPU time used since `self`, and that time divided by the wall
    /// time elapsed (the cores used on average).
    pub fn since(&self) -> (Duration, f64) {
        let cpu = process_cpu().saturating_sub(self.cpu);
        (cpu, cores(cpu, self.wall.elapsed()))
    }
}

/// `cpu / wall`: the cores used on average (0 when `wall` is zero).
pub fn cores(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        0.0
    } else {
        cpu.as_secs_f64() / wall.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        // A command name with spaces and a parenthesis, as the kernel shows it.
        let line = "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    250 75 0 0 20 0 1 0 100 1000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn this_process_uses_cpu() {
        let before = Usage::now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (cpu, _) = before.since();
        assert!(cpu > Duration::ZERO);
        let own = pid_cpu(std::process::id());
        assert!(own.is_some());
    }
}

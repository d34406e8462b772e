//! What /proc says about a pool: its process tree, CPU time (user + sys), master RSS
//! and per-worker PSS, and the machine's own busy time.

use std::fs;

/// Clock ticks per second for `utime`/`stime` in /proc/PID/stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects; a failure is -1.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Fields of /proc/PID/stat after the command name: (ppid, utime, stime) in ticks.
fn stat_of(pid: u32) -> Option<(u32, u64, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15
    Some((
        f.get(1)?.parse().ok()?,
        f.get(11)?.parse().ok()?,
        f.get(12)?.parse().ok()?,
    ))
}

/// On-CPU nanoseconds from /proc/PID/schedstat (precise, not tick-sampled).
fn schedstat_ns(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if stat_of(p).is_some_and(|(ppid, _, _)| ppid == pid) {
            out.push(p);
        }
    }
    out.sort_unstable();
    out
}

/// CPU used so far by a process tree (master and its children).
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeCpu {
    /// user + sys, in clock ticks.
    pub ticks: u64,
    /// On-CPU time from schedstat, nanoseconds.
    pub sched_ns: u64,
    /// Processes counted.
    pub procs: usize,
}

/// Sums CPU over `master` and its children (workers of a static pool never exit, so
/// a before/after difference is the pool's CPU in between).
pub fn tree_cpu(master: u32) -> TreeCpu {
    let mut t = TreeCpu::default();
    for pid in std::iter::once(master).chain(children(master)) {
        if let Some((_, u, s)) = stat_of(pid) {
            t.ticks += u + s;
            t.sched_ns += schedstat_ns(pid).unwrap_or(0);
            t.procs += 1;
        }
    }
    t
}

fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    kb_field(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS:",
    )
}

/// Pss of a process from smaps_rollup, KiB.
pub fn pss_kib(pid: u32) -> Option<u64> {
    kb_field(
        &fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?,
        "Pss:",
    )
}

/// Private memory (USS: Private_Clean + Private_Dirty) of a process, KiB. Unlike PSS it
/// does not move when unrelated processes map the same files (other PHP servers).
pub fn uss_kib(pid: u32) -> Option<u64> {
    let t = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(kb_field(&t, "Private_Clean:")? + kb_field(&t, "Private_Dirty:")?)
}

/// (busy, total) jiffies of the whole machine from /proc/stat.
pub fn machine_jiffies() -> (u64, u64) {
    let Ok(s) = fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = s.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

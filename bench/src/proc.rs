//! What `/proc` says about a process (CPU seconds, RSS), the machine load, the
//! open-files limit and the commit id: everything a report states about the
//! conditions it was measured in.

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started (all threads).
    pub cpu_s: f64,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB.
    pub peak_rss_kib: u64,
}

impl ProcSample {
    /// Sum of samples (CPU and RSS add up; peaks add up as an upper bound).
    pub fn sum(samples: impl IntoIterator<Item = ProcSample>) -> ProcSample {
        samples
            .into_iter()
            .fold(ProcSample::default(), |a, b| ProcSample {
                cpu_s: a.cpu_s + b.cpu_s,
                rss_kib: a.rss_kib + b.rss_kib,
                peak_rss_kib: a.peak_rss_kib + b.peak_rss_kib,
            })
    }
}

/// Read `/proc/<pid>/stat` and `/proc/<pid>/status` (`None` for this process).
/// A process that is gone reads as zeros.
pub fn sample(pid: Option<u32>) -> ProcSample {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let (user, system) = cpu_times(&format!("{dir}/stat"));
    let cpu_s = user + system;
    let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    ProcSample {
        cpu_s,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    }
}

/// User and system CPU seconds in a `/proc/.../stat` file (a process's, or
/// `/proc/thread-self/stat` for the calling thread); zeros if unreadable.
pub fn cpu_times(stat_path: &str) -> (f64, f64) {
    std::fs::read_to_string(stat_path)
        .ok()
        .and_then(|s| {
            // The command name may hold spaces: fields start after the last ')'.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime / TICKS_PER_SEC, stime / TICKS_PER_SEC))
        })
        .unwrap_or((0.0, 0.0))
}

/// CPU seconds the whole machine has been busy (all CPUs, `/proc/stat`:
/// user + nice + system + irq + softirq + steal).
pub fn machine_busy_s() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) / TICKS_PER_SEC
}

/// `/proc/loadavg`'s three load averages.
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Online CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Soft and hard limits on open files of this process.
pub fn nofile_limits() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            let mut v = l["Max open files".len()..].split_whitespace();
            let parse = |s: Option<&str>| match s? {
                "unlimited" => Some(u64::MAX),
                n => n.parse().ok(),
            };
            Some((parse(v.next())?, parse(v.next())?))
        })
        .unwrap_or((1024, 1024))
}

/// Raise this process's soft open-files limit to the hard one (children
/// inherit it). The workspace forbids `unsafe`, so this asks `prlimit(1)`
/// (util-linux) to call `prlimit(2)` on us. Returns the soft limit in effect.
pub fn raise_nofile() -> u64 {
    let (soft, hard) = nofile_limits();
    if soft >= hard {
        return soft;
    }
    let arg = format!("--nofile={hard}:{hard}");
    let pid = std::process::id().to_string();
    let ok = std::process::Command::new("prlimit")
        .args(["--pid", pid.as_str(), arg.as_str()])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "roomcast-bench: could not raise the open-files limit from {soft} to {hard} (prlimit missing?); run `ulimit -n {hard}` first"
        );
    }
    nofile_limits().0
}

/// The commit the working tree is at (short id), `+dirty` when it has
/// uncommitted changes.
pub fn commit_id() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(id) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{id}+dirty") } else { id }
}

/// Today's UTC date, `YYYY-MM-DD` (civil-from-days, no calendar crate).
pub fn utc_date() -> String {
    let secs = common::time::now_ms() / 1000;
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(None);
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib, "{s:?}");
        let gone = sample(Some(u32::MAX));
        assert_eq!(gone.rss_kib, 0);
    }

    #[test]
    fn date_is_well_formed() {
        let d = utc_date();
        assert_eq!(d.len(), 10, "{d}");
        assert!(d.starts_with("20"), "{d}");
    }
}

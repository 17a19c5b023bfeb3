//! The machine and the operating system: cores, memory, kernel, file
//! system, the memory of a process.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// What the benchmark ran on.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// `std::thread::available_parallelism`.
    pub cores: usize,
    /// `MemTotal` of /proc/meminfo, in MiB.
    pub mem_total_mib: u64,
    /// /proc/sys/kernel/osrelease (`uname -r`).
    pub kernel: String,
    /// The file system of the directory the databases (or the fsync probe)
    /// live in: `"ext4 on /"`.
    pub fs: String,
    /// Whether this is an optimised build.
    pub release: bool,
}

impl Machine {
    /// Reads the machine; `dir` is where the databases go.
    pub fn read(dir: &Path) -> Machine {
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mem_total_mib: proc_kib("/proc/meminfo", "MemTotal:").unwrap_or(0) / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned()),
            fs: file_system(dir).unwrap_or_else(|| "unknown".to_owned()),
            release: !cfg!(debug_assertions),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        format!(
            "machine: {} cores, {:.1} GiB RAM, Linux {}, databases on {}{}",
            self.cores,
            self.mem_total_mib as f64 / 1024.0,
            self.kernel,
            self.fs,
            if self.release { "" } else { " (DEBUG BUILD)" }
        )
    }

    /// The JSON object embedded in every report line.
    pub fn json(&self) -> Value {
        json!({
            "cores": self.cores,
            "mem_total_mib": self.mem_total_mib,
            "kernel": self.kernel,
            "fs": self.fs,
            "release_build": self.release,
        })
    }
}

/// The value in kB of the line starting with `key` in a /proc file in the
/// `Key:   123 kB` format.
fn proc_kib(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A memory figure of a process (`VmRSS`, `VmHWM`) in MiB; `pid` `None`
/// means this process.
pub fn memory_mib(pid: Option<u32>, key: &str) -> Option<f64> {
    let file = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    proc_kib(&file, &format!("{key}:")).map(|kib| kib as f64 / 1024.0)
}

/// Resets this process's peak RSS (`VmHWM`) to its current RSS by writing
/// 5 to /proc/self/clear_refs (Linux 4.0+); false when that failed.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `"<type> on <mount point>"` of the file system holding `dir`, from the
/// longest matching mount point in /proc/self/mounts.
fn file_system(dir: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount = PathBuf::from(fields.next()?.replace("\\040", " "));
            let kind = fields.next()?;
            dir.starts_with(&mount).then(|| {
                (
                    mount.as_os_str().len(),
                    format!("{kind} on {}", mount.display()),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let machine = Machine::read(Path::new("."));
        assert!(machine.cores >= 1);
        assert!(machine.describe().contains("cores"));
        if cfg!(target_os = "linux") {
            assert!(machine.mem_total_mib > 0);
            assert!(memory_mib(None, "VmRSS").is_some_and(|m| m > 0.0));
            assert_ne!(machine.fs, "unknown");
        }
    }
}

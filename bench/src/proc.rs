//! Figures read from /proc: moto's process, a process's memory, the memory available.

/// The moto server the bench talks to (a `moto_server` process listening on its port).
pub fn moto_pid() -> Option<i32> {
    let port = promotion_tests::moto_endpoint().rsplit(':').next()?.to_owned();
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        (args.iter().any(|a| a.contains("moto_server")) && args.contains(&port)).then_some(pid)
    })
}

/// A `kB` field of `/proc/{pid}/status` (`VmHWM:`, `VmRSS:`).
pub fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(kib)
}

/// `MemAvailable`, in bytes.
pub fn mem_available() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo.lines().find_map(|l| l.strip_prefix("MemAvailable:")).and_then(kib).unwrap_or(0) * 1024
}

fn kib(value: &str) -> Option<u64> {
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

/// A background sampler of a process's peak `VmRSS`, every 100 ms until stopped.
pub struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    pub fn start(pid: i32) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::SeqCst) {
                peak = peak.max(status_kib(pid, "VmRSS:").unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            peak
        });
        Self { stop, handle }
    }

    /// The peak, in KiB.
    pub fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().unwrap_or(0)
    }
}

//! The process's resource use, for the soak: resident memory (`VmRSS` in
//! `/proc/self/status`) and open file descriptors (entries of `/proc/self/fd`),
//! sampled every second on a thread of its own. Linux only; elsewhere the
//! figures are absent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Resident memory in KiB, if the platform says.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open file descriptors (sockets included), if the platform says.
pub fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// One sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Seconds since sampling began.
    pub at_s: u64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Samples taken over a run.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Every sample, oldest first.
    pub samples: Vec<Sample>,
}

impl Usage {
    /// The first sample.
    pub fn start(&self) -> Option<Sample> {
        self.samples.first().copied()
    }

    /// The first sample at or after a tenth of the run (at most 30 s in): the
    /// figure after warm-up (connections open, allocator pools filled).
    pub fn warm(&self) -> Option<Sample> {
        let last = self.samples.last()?.at_s;
        let warm = (last / 10).min(30);
        self.samples.iter().find(|s| s.at_s >= warm).copied()
    }

    /// The last sample.
    pub fn end(&self) -> Option<Sample> {
        self.samples.last().copied()
    }

    /// The highest resident memory and descriptor count seen.
    pub fn max(&self) -> Sample {
        Sample {
            at_s: self.samples.last().map_or(0, |s| s.at_s),
            rss_kib: self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
            fds: self.samples.iter().map(|s| s.fds).max().unwrap_or(0),
        }
    }

    /// As JSON: start, warm, end and max of both figures, and every tenth
    /// sample as `[at_s, rss_kib, fds]`.
    pub fn to_json(&self) -> Value {
        let series: Vec<Value> = self
            .samples
            .iter()
            .step_by(10)
            .chain(self.samples.last())
            .map(|s| json!([s.at_s, s.rss_kib, s.fds]))
            .collect();
        let pick = |s: Option<Sample>| {
            s.map(|s| json!({"at_s": s.at_s, "rss_kib": s.rss_kib, "fds": s.fds}))
        };
        let max = self.max();
        json!({
            "samples": self.samples.len(),
            "start": pick(self.start()),
            "warm": pick(self.warm()),
            "end": pick(self.end()),
            "max": {"rss_kib": max.rss_kib, "fds": max.fds},
            "series": series,
        })
    }
}

/// A thread that samples every second until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Usage>,
}

impl Sampler {
    /// Takes a first sample now, then one a second.
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let began = Instant::now();
            let mut usage = Usage::default();
            let mut next = began;
            loop {
                if Instant::now() >= next {
                    usage.samples.push(Sample {
                        at_s: began.elapsed().as_secs(),
                        rss_kib: rss_kib().unwrap_or(0),
                        fds: open_fds().unwrap_or(0),
                    });
                    next += Duration::from_secs(1);
                }
                if flag.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            usage.samples.push(Sample {
                at_s: began.elapsed().as_secs(),
                rss_kib: rss_kib().unwrap_or(0),
                fds: open_fds().unwrap_or(0),
            });
            usage
        });
        Sampler { stop, thread }
    }

    /// Stops and returns the samples (with a last one taken now).
    pub fn stop(self) -> Usage {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap_or_default()
    }
}

//! Clocks and counters: the process's CPU time, a counting allocator, and
//! percentiles.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The CPU time (user + sys) this process has used so far, all threads, from
/// `/proc/self/stat` (in clock ticks of 10 ms; `USER_HZ` is 100 on Linux).
/// `None` where that file cannot be read.
pub fn cpu_time() -> Option<Duration> {
    proc_cpu_time("/proc/self/stat")
}

/// The CPU time (user + sys) of the processes `pids` (the redis-server
/// nodes), summed; `None` if one cannot be read.
pub(crate) fn cpu_time_of(pids: &[u32]) -> Option<Duration> {
    pids.iter()
        .map(|pid| proc_cpu_time(&format!("/proc/{pid}/stat")))
        .sum()
}

fn proc_cpu_time(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis start with field 3 (state).
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15: the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

static COUNTING: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
static FREE_BYTES: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting allocations while a probe is on. Install
/// it in the benchmark binary with `#[global_allocator]`; without it the
/// allocation probe is skipped. Off, it costs one relaxed load per call.
#[derive(Debug, Default)]
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_free(layout.size());
        // SAFETY: `ptr` came from this allocator (that is, from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_free(layout.size());
        count_alloc(new_size);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[inline]
fn count_alloc(size: usize) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

#[inline]
fn count_free(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        FREE_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

/// Allocation counts over a probe.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AllocCount {
    pub allocs: u64,
    pub bytes: u64,
    pub freed_bytes: u64,
}

impl AllocCount {
    /// Bytes allocated and not freed over the probe (negative: more freed).
    pub(crate) fn live_growth(&self) -> i64 {
        self.bytes as i64 - self.freed_bytes as i64
    }
}

/// Whether [`CountingAlloc`] is the global allocator (it has seen an allocation).
pub(crate) fn counting_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Starts counting from zero.
pub(crate) fn start_counting() {
    for c in [&ALLOCS, &ALLOC_BYTES, &FREE_BYTES] {
        c.store(0, Ordering::Relaxed);
    }
    COUNTING.store(true, Ordering::SeqCst);
}

/// Stops counting and returns the counts.
pub(crate) fn stop_counting() -> AllocCount {
    COUNTING.store(false, Ordering::SeqCst);
    AllocCount {
        allocs: ALLOCS.load(Ordering::Relaxed),
        bytes: ALLOC_BYTES.load(Ordering::Relaxed),
        freed_bytes: FREE_BYTES.load(Ordering::Relaxed),
    }
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank; 0 when empty.
pub(crate) fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of a few figures (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_medians() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&s, 0.5), 50);
        assert_eq!(quantile(&s, 0.99), 99);
        assert_eq!(quantile(&s, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn cpu_time_reads_proc() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_time().is_some());
        }
    }
}

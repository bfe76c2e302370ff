//! The checker: the shared records the clients read and write, the critical
//! sections they ran, and the safety figures computed from them.
//!
//! It streams: per resource it keeps only the sections recent enough that a
//! section still running could have begun before them, so a ten-minute soak
//! does not grow its memory.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redlock_core::Lock;

/// One critical section, as the checker sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Section {
    /// When `acquire` returned the lock.
    pub acquired: Instant,
    /// The end of the section (after the write, before the release), cut at
    /// the lock's validity deadline (the last extension's).
    pub until: Instant,
    /// The fencing token.
    pub token: Option<u64>,
}

/// The record each resource protects, and what the sections did to it.
#[derive(Debug, Default)]
struct Record {
    value: u64,
    writes: u64,
    lost_updates: u64,
}

/// Per resource: sections not yet checked, and the running maxima of the
/// checked ones (in acquisition order).
#[derive(Debug, Default)]
struct Timeline {
    pending: Vec<Section>,
    max_until: Option<Instant>,
    max_token: Option<u64>,
    sections: u64,
    overlaps: u64,
    token_violations: u64,
}

impl Timeline {
    /// Checks, in acquisition order, every pending section acquired before
    /// `cutoff` (all of them when `None`).
    fn settle(&mut self, cutoff: Option<Instant>) {
        self.pending.sort_by_key(|s| s.acquired);
        let ready = match cutoff {
            Some(cutoff) => self.pending.partition_point(|s| s.acquired < cutoff),
            None => self.pending.len(),
        };
        for section in self.pending.drain(..ready) {
            self.sections += 1;
            if self.max_until.is_some_and(|until| section.acquired < until) {
                self.overlaps += 1;
            }
            if let Some(token) = section.token {
                if self.max_token.is_some_and(|max| token <= max) {
                    self.token_violations += 1;
                }
                self.max_token = Some(self.max_token.map_or(token, |m| m.max(token)));
            }
            if section.until > section.acquired {
                self.max_until = Some(
                    self.max_until
                        .map_or(section.until, |m| m.max(section.until)),
                );
            }
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// Written; `lost` if the record changed since it was read.
    Done { lost: bool },
    /// Not written: the lock's validity had (nearly) run out.
    Skipped,
}

/// The checker's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub sections: u64,
    pub writes: u64,
    pub overlaps: u64,
    pub lost_updates: u64,
    pub token_violations: u64,
}

/// The records and timelines of every resource.
pub(crate) struct Checker {
    inner: Mutex<Vec<(Record, Timeline)>>,
    /// Sections acquired longer ago than this are checked and forgotten.
    horizon: Duration,
}

impl Checker {
    /// A checker for `resources` resources whose sections last at most
    /// `longest` each.
    pub fn new(resources: usize, longest: Duration) -> Checker {
        Checker {
            inner: Mutex::new((0..resources).map(|_| Default::default()).collect()),
            horizon: longest * 4,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Record, Timeline)>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads resource `r`'s record.
    pub fn read(&self, r: usize) -> u64 {
        self.lock().get(r).map_or(0, |(record, _)| record.value)
    }

    /// Writes `read + 1` to resource `r`'s record, if `lock` still has more
    /// than `margin` of validity. The check and the write happen under the
    /// record's mutex, as one step: the storage checks the lock at the moment
    /// of the write. A write whose record changed since `read` is a lost update.
    pub fn write_if_valid(&self, r: usize, read: u64, lock: &Lock, margin: Duration) -> Write {
        let mut inner = self.lock();
        let Some((record, _)) = inner.get_mut(r) else {
            return Write::Skipped;
        };
        if lock.remaining_validity() <= margin {
            return Write::Skipped;
        }
        let lost = record.value != read;
        if lost {
            record.lost_updates += 1;
        }
        record.value = read + 1;
        record.writes += 1;
        Write::Done { lost }
    }

    /// Records a finished section of resource `r`.
    pub fn section(&self, r: usize, section: Section) {
        let horizon = self.horizon;
        let mut inner = self.lock();
        let Some((_, timeline)) = inner.get_mut(r) else {
            return;
        };
        timeline.pending.push(section);
        if timeline.pending.len() >= 512 {
            let cutoff = Instant::now().checked_sub(horizon);
            if cutoff.is_some() {
                timeline.settle(cutoff);
            }
        }
    }

    /// Lost updates so far (cheap; for the fault schedule).
    pub fn lost_updates(&self) -> u64 {
        self.lock().iter().map(|(r, _)| r.lost_updates).sum()
    }

    /// Checks every section and sums the figures. Call once the clients stopped.
    pub fn figures(&self) -> Figures {
        let mut inner = self.lock();
        let mut f = Figures::default();
        for (record, timeline) in inner.iter_mut() {
            timeline.settle(None);
            f.sections += timeline.sections;
            f.writes += record.writes;
            f.overlaps += timeline.overlaps;
            f.lost_updates += record.lost_updates;
            f.token_violations += timeline.token_violations;
        }
        f
    }
}

/// Acquire latencies in fixed buckets: 50 µs wide up to 100 ms, then 1 ms
/// wide up to 10 s (the last bucket takes everything longer).
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const FINE_US: u64 = 50;
const FINE_BUCKETS: usize = 2_000; // up to 100 ms
const COARSE_BUCKETS: usize = 9_900; // 100 ms to 10 s

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; FINE_BUCKETS + COARSE_BUCKETS + 1],
            total: 0,
        }
    }

    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = if us < FINE_US * FINE_BUCKETS as u64 {
            (us / FINE_US) as usize
        } else {
            let ms = us / 1000 - 100;
            FINE_BUCKETS + (ms as usize).min(COARSE_BUCKETS)
        };
        self.counts[bucket] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The upper edge of the bucket holding quantile `q`, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let upper_us = if i < FINE_BUCKETS {
                    (i as u64 + 1) * FINE_US
                } else {
                    (100 + (i - FINE_BUCKETS) as u64 + 1) * 1000
                };
                return Some(upper_us as f64 / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn overlaps_and_token_order_in_acquisition_order() {
        let checker = Checker::new(2, Duration::from_secs(1));
        let t = Instant::now();
        let s = |a, u, token| Section {
            acquired: at(t, a),
            until: at(t, u),
            token: Some(token),
        };
        // Recorded out of order; disjoint, tokens rising.
        checker.section(0, s(20, 30, 3));
        checker.section(0, s(0, 10, 1));
        checker.section(0, s(10, 20, 2)); // touches, does not overlap
        assert_eq!(checker.figures().overlaps, 0);
        assert_eq!(checker.figures().token_violations, 0);
        // Resource 1: an overlap and a token that goes back.
        checker.section(1, s(0, 50, 5));
        checker.section(1, s(40, 60, 4));
        checker.section(1, s(70, 80, 6));
        let f = checker.figures();
        assert_eq!((f.sections, f.overlaps, f.token_violations), (6, 1, 1));
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in 1..=100 {
            h.record(Duration::from_micros(ms * 1000 - 10));
        }
        assert_eq!(h.quantile_ms(0.5), Some(50.0));
        assert_eq!(h.quantile_ms(0.99), Some(99.0));
        h.record(Duration::from_secs(3));
        h.record(Duration::from_secs(100));
        assert_eq!(h.quantile_ms(1.0), Some(10_001.0));
    }
}

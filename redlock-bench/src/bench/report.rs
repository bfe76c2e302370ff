//! The figures of a run, the markdown tables and the JSON line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::clients::Impl;
use super::measure::median;
use super::Options;

/// Every figure of a run: per metric, implementation and node count, one
/// value per rep.
#[derive(Clone, Debug)]
pub struct Results {
    figures: BTreeMap<(&'static str, Impl, usize), Vec<f64>>,
    config: Value,
    nodes: Vec<usize>,
    tasks: usize,
    contenders: usize,
    /// Free text put beside the figures (the load average before the run).
    pub note: Option<String>,
}

/// One figure over the reps.
#[derive(Clone, Copy, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Results {
    pub(crate) fn new(options: &Options) -> Results {
        Results {
            figures: BTreeMap::new(),
            config: json!({
                "nodes": options.nodes,
                "seconds": options.seconds,
                "reps": options.reps,
                "tasks": options.tasks,
                "contenders": options.contenders,
                "contended_ttl_ms": options.contended_ttl.as_millis() as u64,
                "threads": options.threads,
                "warmup_ms": options.warmup.as_millis() as u64,
                "alloc_cycles": options.alloc_cycles,
            }),
            nodes: options.nodes.clone(),
            tasks: options.tasks,
            contenders: options.contenders,
            note: None,
        }
    }

    pub(crate) fn push(&mut self, metric: &'static str, which: Impl, n: usize, value: f64) {
        self.figures
            .entry((metric, which, n))
            .or_default()
            .push(value);
    }

    fn stat(&self, metric: &str, which: Impl, n: usize) -> Option<Stat> {
        let values = self
            .figures
            .iter()
            .find(|((m, i, k), _)| *m == metric && *i == which && *k == n)
            .map(|(_, v)| v)?;
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        Some(Stat {
            median: median(&finite),
            min: finite.iter().copied().fold(f64::INFINITY, f64::min),
            max: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    fn med(&self, metric: &str, which: Impl, n: usize) -> Option<f64> {
        self.stat(metric, which, n).map(|s| s.median)
    }

    /// `metric` of `a` over `metric` of `b`, medians.
    fn ratio(&self, metric: &str, a: Impl, b: Impl, n: usize) -> Option<f64> {
        let (a, b) = (self.med(metric, a, n)?, self.med(metric, b, n)?);
        (b != 0.0).then_some(a / b)
    }

    fn impls_with(&self, metric: &str) -> Vec<Impl> {
        let mut impls: Vec<Impl> = self
            .figures
            .keys()
            .filter(|(m, _, _)| *m == metric)
            .map(|(_, i, _)| *i)
            .collect();
        impls.sort();
        impls.dedup();
        impls
    }

    /// Lost updates over every contended run (must be 0).
    pub fn lost_updates(&self) -> u64 {
        self.figures
            .iter()
            .filter(|((m, _, _), _)| *m == "contended_lost_updates")
            .flat_map(|(_, v)| v.iter())
            .map(|v| *v as u64)
            .sum()
    }

    /// The markdown tables, the allocation table and the goals.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if let Some(note) = &self.note {
            let _ = writeln!(out, "{note}\n");
        }
        let cell = |s: Option<Stat>| match s {
            Some(s) if s.min != s.max => {
                format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
            }
            Some(s) => num(s.median),
            None => "–".to_owned(),
        };
        let ratio = |r: Option<f64>| r.map_or("–".to_owned(), |r| format!("{r:.2}x"));

        let latency = self.impls_with("latency_p50_us");
        if !latency.is_empty() {
            let _ = writeln!(
                out,
                "### (a) Latency: one task, acquire + release on fresh resources (µs per cycle; median (min–max) over reps)\n"
            );
            let _ = writeln!(
                out,
                "| N | implementation | p50 µs | p99 µs | p50 vs floor | p50 vs fred_floor | CPU s / 100k cycles |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|");
            for &n in &self.nodes {
                for &i in &latency {
                    let _ = writeln!(
                        out,
                        "| {n} | {} | {} | {} | {} | {} | {} |",
                        i.label(),
                        cell(self.stat("latency_p50_us", i, n)),
                        cell(self.stat("latency_p99_us", i, n)),
                        ratio(self.ratio("latency_p50_us", i, Impl::Floor, n)),
                        ratio(self.ratio("latency_p50_us", i, Impl::FredFloor, n)),
                        cell(self.stat("latency_cpu_s_per_100k", i, n)),
                    );
                }
            }
            out.push('\n');
        }

        let throughput = self.impls_with("throughput_64");
        if !throughput.is_empty() {
            let _ = writeln!(
                out,
                "### (b) Throughput: {} tasks, each on its own resource (cycles/s; median (min–max))\n",
                self.tasks
            );
            let _ = writeln!(
                out,
                "| N | implementation | cycles/s | vs floor | vs fred_floor | vs rslock | client CPU s / 100k cycles | redis-server CPU s / 100k cycles | errors |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
            for &n in &self.nodes {
                for &i in &throughput {
                    let _ = writeln!(
                        out,
                        "| {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        i.label(),
                        cell(self.stat("throughput_64", i, n)),
                        ratio(self.ratio("throughput_64", i, Impl::Floor, n)),
                        ratio(self.ratio("throughput_64", i, Impl::FredFloor, n)),
                        ratio(self.ratio("throughput_64", i, Impl::Rslock, n)),
                        cell(self.stat("throughput_cpu_s_per_100k", i, n)),
                        cell(self.stat("throughput_server_cpu_s_per_100k", i, n)),
                        cell(self.stat("throughput_errors", i, n)),
                    );
                }
            }
            out.push('\n');
        }

        let contended = self.impls_with("contended_handoffs_per_s");
        if !contended.is_empty() {
            let _ = writeln!(
                out,
                "### (c) Contended: {} tasks on ONE resource, acquire -> read-yield-write a counter -> release (median (min–max))\n",
                self.contenders
            );
            let _ = writeln!(
                out,
                "| N | implementation | handoffs/s | vs rslock | wait p50 ms | wait p99 ms | rslock / this (wait p99) | new owner's wait p99 ms | rslock / this (new owner's p99) | max wait ms | release-to-next-owner p99 ms | lost updates | acquire calls out of retries | attempts per acquisition | bystander's release messages |"
            );
            let _ = writeln!(
                out,
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
            let ms = |s: Option<Stat>| {
                cell(s.map(|s| Stat {
                    median: s.median / 1e3,
                    min: s.min / 1e3,
                    max: s.max / 1e3,
                }))
            };
            for &n in &self.nodes {
                for &i in &contended {
                    let inverse = |metric: &str| {
                        self.ratio(metric, Impl::Rslock, i, n)
                            .map_or("–".to_owned(), |r| format!("{r:.1}x"))
                    };
                    let _ = writeln!(
                        out,
                        "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        i.label(),
                        cell(self.stat("contended_handoffs_per_s", i, n)),
                        ratio(self.ratio("contended_handoffs_per_s", i, Impl::Rslock, n)),
                        ms(self.stat("contended_wait_p50_us", i, n)),
                        ms(self.stat("contended_wait_p99_us", i, n)),
                        inverse("contended_wait_p99_us"),
                        ms(self.stat("contended_takeover_wait_p99_us", i, n)),
                        inverse("contended_takeover_wait_p99_us"),
                        ms(self.stat("contended_wait_max_us", i, n)),
                        ms(self.stat("contended_gap_p99_us", i, n)),
                        cell(self.stat("contended_lost_updates", i, n)),
                        cell(self.stat("contended_gave_up", i, n)),
                        cell(self.stat("contended_attempts_per_acquire", i, n)),
                        cell(self.stat("wake_bystander_messages", i, n)),
                    );
                }
            }
            out.push('\n');
        }

        let allocs = self.impls_with("alloc_per_cycle");
        if !allocs.is_empty() {
            let _ = writeln!(
                out,
                "### Allocations per sequential cycle (process-wide, after warm-up) and keys left on the nodes\n"
            );
            let _ = writeln!(
                out,
                "| N | implementation | allocations / cycle | bytes / cycle | live-heap growth B / cycle | keys left after (a)/(b), max |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|");
            for &n in &self.nodes {
                for &i in &allocs {
                    let _ = writeln!(
                        out,
                        "| {n} | {} | {} | {} | {} | {} |",
                        i.label(),
                        cell(self.stat("alloc_per_cycle", i, n)),
                        cell(self.stat("alloc_bytes_per_cycle", i, n)),
                        cell(self.stat("alloc_live_growth_bytes_per_cycle", i, n)),
                        self.stat("keys_left", i, n)
                            .map_or("–".to_owned(), |s| num(s.max)),
                    );
                }
            }
            out.push('\n');
        }

        let goals = self.goals();
        if !goals.is_empty() {
            let _ = writeln!(out, "### Goals (ratios of medians, same run)\n");
            for (text, met) in goals {
                let mark = match met {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "not measured",
                };
                let _ = writeln!(out, "- {text}: **{mark}**");
            }
            out.push('\n');
        }
        out
    }

    /// Each goal of issues 4, 6 and 12 with the ratios reached, and whether it holds.
    fn goals(&self) -> Vec<(String, Option<bool>)> {
        let mut goals = Vec::new();
        let list = |f: &dyn Fn(usize) -> Option<f64>, ns: &[usize], digits: usize| {
            ns.iter()
                .map(|&n| match f(n) {
                    Some(r) => format!("N={n}: {r:.digits$}"),
                    None => format!("N={n}: –"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let all = |f: &dyn Fn(usize) -> Option<f64>, ns: &[usize], ok: &dyn Fn(f64) -> bool| {
            let values: Vec<Option<f64>> = ns.iter().map(|&n| f(n)).collect();
            if values.iter().all(Option::is_none) {
                None
            } else {
                Some(values.iter().all(|v| v.is_some_and(ok)))
            }
        };
        let ns = self.nodes.clone();
        let five: Vec<usize> = ns.iter().copied().filter(|&n| n == 5).collect();
        let multi: Vec<usize> = ns.iter().copied().filter(|&n| n >= 3).collect();

        let lat = |n| self.ratio("latency_p50_us", Impl::Ours, Impl::Floor, n);
        goals.push((
            format!(
                "(a) p50 latency ours <= 1.10x floor ({})",
                list(&lat, &ns, 3)
            ),
            all(&lat, &ns, &|r| r <= 1.10),
        ));
        let tf = |n| self.ratio("throughput_64", Impl::Ours, Impl::Floor, n);
        goals.push((
            format!(
                "(b) throughput ours >= 0.90x floor at N=5 ({}; all N: {})",
                list(&tf, &five, 3),
                list(&tf, &ns, 3)
            ),
            all(&tf, &five, &|r| r >= 0.90),
        ));
        let tr = |n| self.ratio("throughput_64", Impl::Ours, Impl::Rslock, n);
        goals.push((
            format!(
                "(b) throughput ours >= 1.8x rslock at N=5 ({}; all N: {})",
                list(&tr, &five, 2),
                list(&tr, &ns, 2)
            ),
            all(&tr, &five, &|r| r >= 1.8),
        ));
        let fl = |n| self.ratio("latency_p50_us", Impl::Fred, Impl::FredFloor, n);
        goals.push((
            format!(
                "(issue 12) p50 latency fred <= 1.10x fred_floor ({})",
                list(&fl, &ns, 3)
            ),
            all(&fl, &ns, &|r| r <= 1.10),
        ));
        let ft = |n| self.ratio("throughput_64", Impl::Fred, Impl::FredFloor, n);
        goals.push((
            format!(
                "(issue 12) throughput fred >= 0.90x fred_floor ({})",
                list(&ft, &ns, 3)
            ),
            all(&ft, &ns, &|r| r >= 0.90),
        ));
        let fr = |n| self.ratio("throughput_64", Impl::Fred, Impl::Floor, n);
        goals.push((
            format!(
                "(issue 12) throughput fred >= 0.70x floor (redis-rs) ({})",
                list(&fr, &ns, 3)
            ),
            all(&fr, &ns, &|r| r >= 0.70),
        ));
        let ttl_us = self
            .config
            .get("contended_ttl_ms")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
            * 1e3;
        // Issue 12: the contended figures with default settings (which
        // include wake-on-release), for both adapters.
        for (which, name) in [(Impl::Ours, "ours"), (Impl::Fred, "fred")] {
            let hr = move |n| self.ratio("contended_handoffs_per_s", which, Impl::Rslock, n);
            goals.push((
                format!(
                    "(issue 12) handoffs/s {name} (defaults) >= 20x rslock at N=3,5 ({})",
                    list(&hr, &ns, 1)
                ),
                all(&hr, &multi, &|r| r >= 20.0),
            ));
            let wr = move |n| self.ratio("contended_takeover_wait_p99_us", Impl::Rslock, which, n);
            goals.push((
                format!(
                    "(issue 12) a new owner's p99 wait, {name} (defaults) <= 1/20 of rslock's at N=3,5 (rslock/{name}: {})",
                    list(&wr, &ns, 1)
                ),
                all(&wr, &multi, &|r| r >= 20.0),
            ));
            let starve = move |n| {
                let s = self.stat("contended_wait_max_us", which, n)?;
                Some(s.max / 1e3)
            };
            goals.push((
                format!(
                    "(issue 6) no {name} waiter starved longer than one TTL ({:.0} ms; worst max wait over reps, ms: {})",
                    ttl_us / 1e3,
                    list(&starve, &ns, 1)
                ),
                all(&starve, &ns, &|ms| ms * 1e3 <= ttl_us),
            ));
            let by = move |n| {
                let s = self.stat("wake_bystander_messages", which, n)?;
                Some(s.max)
            };
            goals.push((
                format!(
                    "(issue 12) release messages a {name} bystander received while others contended = 0 (worst over reps: {})",
                    list(&by, &ns, 0)
                ),
                all(&by, &ns, &|m| m == 0.0),
            ));
        }
        goals.push((
            format!("lost updates = {}", self.lost_updates()),
            Some(self.lost_updates() == 0),
        ));
        goals
    }

    /// Everything as one JSON value: per metric, implementation and node
    /// count (a string key) the median over reps; the min-max beside it under
    /// `ranges`; the goal ratios under `ratios`.
    pub fn json(&self) -> Value {
        let mut root = Map::new();
        let mut ranges = Map::new();
        let mut metrics: Vec<&'static str> = self.figures.keys().map(|(m, _, _)| *m).collect();
        metrics.dedup();
        metrics.sort_unstable();
        metrics.dedup();
        for metric in metrics {
            let mut by_impl = Map::new();
            let mut range_by_impl = Map::new();
            for which in self.impls_with(metric) {
                let mut by_n = Map::new();
                let mut range_by_n = Map::new();
                for &n in &self.nodes {
                    if let Some(s) = self.stat(metric, which, n) {
                        by_n.insert(n.to_string(), round(s.median));
                        range_by_n.insert(n.to_string(), json!([round(s.min), round(s.max)]));
                    }
                }
                by_impl.insert(which.key().to_owned(), Value::Object(by_n));
                range_by_impl.insert(which.key().to_owned(), Value::Object(range_by_n));
            }
            root.insert(metric.to_owned(), Value::Object(by_impl));
            ranges.insert(metric.to_owned(), Value::Object(range_by_impl));
        }
        root.insert("lost_updates".to_owned(), json!(self.lost_updates()));
        let mut ratios = Map::new();
        let mut ratio = |name: &str, metric: &str, a: Impl, b: Impl| {
            let mut by_n = Map::new();
            for &n in &self.nodes {
                if let Some(r) = self.ratio(metric, a, b, n) {
                    by_n.insert(n.to_string(), round(r));
                }
            }
            ratios.insert(name.to_owned(), Value::Object(by_n));
        };
        ratio(
            "latency_p50_ours_over_floor",
            "latency_p50_us",
            Impl::Ours,
            Impl::Floor,
        );
        ratio(
            "latency_p50_fred_over_floor",
            "latency_p50_us",
            Impl::Fred,
            Impl::Floor,
        );
        ratio(
            "throughput_ours_over_floor",
            "throughput_64",
            Impl::Ours,
            Impl::Floor,
        );
        ratio(
            "throughput_ours_over_rslock",
            "throughput_64",
            Impl::Ours,
            Impl::Rslock,
        );
        ratio(
            "throughput_fred_over_floor",
            "throughput_64",
            Impl::Fred,
            Impl::Floor,
        );
        ratio(
            "latency_p50_fred_over_fred_floor",
            "latency_p50_us",
            Impl::Fred,
            Impl::FredFloor,
        );
        ratio(
            "throughput_fred_over_fred_floor",
            "throughput_64",
            Impl::Fred,
            Impl::FredFloor,
        );
        ratio(
            "throughput_fred_floor_over_floor",
            "throughput_64",
            Impl::FredFloor,
            Impl::Floor,
        );
        ratio(
            "cpu_per_cycle_fred_over_fred_floor",
            "throughput_cpu_s_per_100k",
            Impl::Fred,
            Impl::FredFloor,
        );
        ratio(
            "cpu_per_cycle_ours_over_rslock",
            "throughput_cpu_s_per_100k",
            Impl::Ours,
            Impl::Rslock,
        );
        ratio(
            "cpu_per_cycle_ours_over_floor",
            "throughput_cpu_s_per_100k",
            Impl::Ours,
            Impl::Floor,
        );
        ratio(
            "contended_handoffs_ours_over_rslock",
            "contended_handoffs_per_s",
            Impl::Ours,
            Impl::Rslock,
        );
        ratio(
            "contended_takeover_wait_p99_rslock_over_ours",
            "contended_takeover_wait_p99_us",
            Impl::Rslock,
            Impl::Ours,
        );
        ratio(
            "contended_handoffs_fred_over_rslock",
            "contended_handoffs_per_s",
            Impl::Fred,
            Impl::Rslock,
        );
        ratio(
            "contended_takeover_wait_p99_rslock_over_fred",
            "contended_takeover_wait_p99_us",
            Impl::Rslock,
            Impl::Fred,
        );
        root.insert("ratios".to_owned(), Value::Object(ratios));
        root.insert(
            "goals_met".to_owned(),
            Value::Object(
                self.goals()
                    .into_iter()
                    .map(|(text, met)| (text, met.map_or(Value::Null, Value::Bool)))
                    .collect(),
            ),
        );
        root.insert("ranges".to_owned(), Value::Object(ranges));
        root.insert("config".to_owned(), self.config.clone());
        if let Some(note) = &self.note {
            root.insert("note".to_owned(), json!(note));
        }
        Value::Object(root)
    }

    /// [`json`](Self::json) on one line.
    pub fn json_line(&self) -> String {
        self.json().to_string()
    }
}

/// A figure with about three significant digits.
fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "–".to_owned()
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn round(v: f64) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    let r = if v.abs() >= 100.0 {
        (v * 10.0).round() / 10.0
    } else {
        (v * 1000.0).round() / 1000.0
    };
    json!(r)
}

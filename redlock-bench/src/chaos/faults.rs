//! The fault schedules: what happens to the nodes while the clients work.
//!
//! Each runs on a thread of its own (node control blocks: kill, restart and
//! the readiness wait are synchronous) and, for the safe schedules, never
//! touches more than a minority (two of five nodes) at a time (the safe clock
//! schedule: never more than the same two nodes all run long).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redlock_testkit::proxy::{Latency, Mode, ProxyHandle};
use redlock_testkit::server::RedisNode;

use super::{Ctx, HoldEvent, Schedule, NONE};

/// What the schedule did.
#[derive(Debug, Default)]
pub(crate) struct FaultLog {
    /// Fault actions injected.
    pub injected: u64,
    /// Errors controlling a node (a restart that failed).
    pub errors: Vec<String>,
    /// For the unsafe schedule: majority restarts done while a lock was held.
    pub majority_restarts: u64,
}

pub(crate) struct Faults<'a> {
    pub nodes: &'a [RedisNode],
    pub proxies: &'a [ProxyHandle],
    pub ctx: &'a Ctx,
    pub ttl: Duration,
    pub log: FaultLog,
    pub rng: StdRng,
    pub verbose: bool,
}

/// The kinds of action the mixed schedule draws from.
#[derive(Clone, Copy, Debug)]
enum Action {
    Latency,
    Blackhole,
    CutOff,
    ResetOnce,
    KeepResetting,
    Pause,
    RestartAof,
    RestartDelayed,
}

impl<'a> Faults<'a> {
    pub fn new(
        nodes: &'a [RedisNode],
        proxies: &'a [ProxyHandle],
        ctx: &'a Ctx,
        ttl: Duration,
        seed: u64,
        verbose: bool,
    ) -> Faults<'a> {
        Faults {
            nodes,
            proxies,
            ctx,
            ttl,
            log: FaultLog::default(),
            rng: StdRng::seed_from_u64(seed),
            verbose,
        }
    }

    fn stopping(&self) -> bool {
        self.ctx.stop_faults.load(Ordering::Acquire)
    }

    /// Sleeps `d` in short steps; false if the schedule is stopping.
    fn nap(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while !self.stopping() {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
        false
    }

    fn between(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(self.rng.random_range(low_ms..=high_ms))
    }

    /// One or two distinct nodes: always a minority of five.
    fn minority(&mut self) -> Vec<usize> {
        let n = self.nodes.len();
        let max = (n - 1) / 2;
        let count = self.rng.random_range(1..=max.max(1));
        let mut picked: Vec<usize> = Vec::with_capacity(count);
        while picked.len() < count {
            let i = self.rng.random_range(0..n);
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        picked
    }

    fn note(&self, what: &str, nodes: &[usize]) {
        if self.verbose {
            eprintln!("    fault: {what} on nodes {nodes:?}");
        }
    }

    fn restart(&mut self, i: usize) {
        if let Err(e) = self.nodes[i].restart() {
            self.log.errors.push(format!("restart of node {i}: {e}"));
        }
    }

    /// Runs `schedule` until the clients stop, then heals everything.
    pub fn run(mut self, schedule: Schedule, holds: &Receiver<HoldEvent>) -> FaultLog {
        // Let the clients connect and warm up first.
        if self.nap(Duration::from_millis(300)) {
            match schedule {
                Schedule::Baseline => while self.nap(Duration::from_millis(100)) {},
                Schedule::MajorityRestartNoAof | Schedule::MajorityRestartNoAofQuarantine => {
                    self.majority_restarts(holds)
                }
                Schedule::ClockJumpMinority => self.minority_clock_jumps(),
                Schedule::ClockJumpMajority => self.majority_clock_jumps(holds),
                other => {
                    while !self.stopping() {
                        let action = self.pick(other);
                        self.act(action);
                        let quiet = self.between(150, 500);
                        if !self.nap(quiet) {
                            break;
                        }
                    }
                }
            }
        }
        self.heal();
        self.log
    }

    fn pick(&mut self, schedule: Schedule) -> Action {
        match schedule {
            Schedule::Latency => Action::Latency,
            Schedule::Partition => {
                if self.rng.random_bool(0.5) {
                    Action::Blackhole
                } else {
                    Action::CutOff
                }
            }
            Schedule::Resets => {
                if self.rng.random_bool(0.5) {
                    Action::ResetOnce
                } else {
                    Action::KeepResetting
                }
            }
            Schedule::Pause => Action::Pause,
            Schedule::RestartAof => Action::RestartAof,
            Schedule::RestartDelayed => Action::RestartDelayed,
            _ => {
                const ALL: [Action; 8] = [
                    Action::Latency,
                    Action::Blackhole,
                    Action::CutOff,
                    Action::ResetOnce,
                    Action::KeepResetting,
                    Action::Pause,
                    Action::RestartAof,
                    Action::RestartDelayed,
                ];
                ALL[self.rng.random_range(0..ALL.len())]
            }
        }
    }

    fn act(&mut self, action: Action) {
        let victims = self.minority();
        self.log.injected += 1;
        self.note(&format!("{action:?}"), &victims);
        match action {
            Action::Latency => {
                for &i in &victims {
                    let delay = self.between(10, 80);
                    let jitter = self.between(0, 30);
                    self.proxies[i].set_mode(Mode::Latency(Latency::new(delay).jitter(jitter)));
                }
                let lasting = self.between(300, 1000);
                self.nap(lasting);
                self.heal_proxies(&victims);
            }
            Action::Blackhole | Action::CutOff => {
                for &i in &victims {
                    match action {
                        Action::Blackhole => self.proxies[i].blackhole(),
                        _ => self.proxies[i].cut_off(),
                    }
                }
                let lasting = self.between(300, 1500);
                self.nap(lasting);
                self.heal_proxies(&victims);
            }
            Action::ResetOnce => {
                for &i in &victims {
                    self.proxies[i].reset_connections();
                }
            }
            Action::KeepResetting => {
                for &i in &victims {
                    self.proxies[i].keep_resetting();
                }
                let lasting = self.between(200, 800);
                self.nap(lasting);
                self.heal_proxies(&victims);
            }
            Action::Pause => {
                for &i in &victims {
                    if let Err(e) = self.nodes[i].pause() {
                        self.log.errors.push(format!("pause of node {i}: {e}"));
                    }
                }
                let lasting = self.between(300, 1500);
                self.nap(lasting);
                for &i in &victims {
                    if let Err(e) = self.nodes[i].resume() {
                        self.log.errors.push(format!("resume of node {i}: {e}"));
                    }
                }
            }
            Action::RestartAof => {
                // A crash and an immediate restart: the node keeps every
                // acknowledged write only because it runs with AOF (fsync always).
                for &i in &victims {
                    if self.nodes[i].options().persistence {
                        self.restart(i);
                    } else {
                        self.log.errors.push(format!(
                            "node {i} has no persistence: not restarted at once"
                        ));
                    }
                }
            }
            Action::RestartDelayed => {
                // A crash, and a restart only after every lock the node could
                // have held has expired (longer than the longest TTL).
                for &i in &victims {
                    self.nodes[i].kill();
                }
                let down = self.ttl + Duration::from_millis(300);
                let end = Instant::now() + down;
                // Even when stopping, the node stays down for the whole delay
                // (the clients have stopped by then, but keep the rule anyway).
                while Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(20));
                }
                for &i in &victims {
                    self.restart(i);
                }
            }
        }
    }

    fn heal_proxies(&self, victims: &[usize]) {
        for &i in victims {
            self.proxies[i].heal();
        }
    }

    /// Puts every node and proxy back to normal.
    fn heal(&mut self) {
        for proxy in self.proxies {
            proxy.heal();
        }
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            if node.is_paused() {
                if let Err(e) = node.resume() {
                    self.log.errors.push(format!("resume of node {i}: {e}"));
                }
            }
            if !node.is_running() {
                self.restart(i);
            }
        }
    }

    /// The unsafe schedule: ask one client to hold a lock for nearly its whole
    /// validity, and while it does, crash a majority of the nodes and restart
    /// them at once, without persistence: they come back empty, and another
    /// client can take the same lock. Repeated (a few times at most) until the
    /// checker saw the violation.
    fn majority_restarts(&mut self, holds: &Receiver<HoldEvent>) {
        self.against_a_held_lock(holds, |faults, majority| {
            faults.log.majority_restarts += 1;
            faults.note("kill + immediate restart, no persistence", majority);
            for &i in majority {
                faults.nodes[i].kill();
            }
            for &i in majority {
                faults.restart(i);
            }
        });
    }

    /// The unsafe schedules' loop: a client is asked to hold a lock past its
    /// validity, and while it does, `strike` hits a majority of the nodes.
    /// Repeated (three times at most) until the checker saw a lost update;
    /// then the run ends early.
    fn against_a_held_lock(
        &mut self,
        holds: &Receiver<HoldEvent>,
        mut strike: impl FnMut(&mut Self, &[usize]),
    ) {
        let n = self.nodes.len();
        let majority: Vec<usize> = (0..n / 2 + 1).collect();
        for cycle in 0..3 {
            if self.stopping() {
                return;
            }
            let resource = cycle % self.ctx.resources.len();
            self.ctx.focus.store(resource, Ordering::Release);
            self.ctx.hold_request.store(resource, Ordering::Release);
            let held = self.wait_hold(holds, |e| *e == HoldEvent::Holding(resource));
            if !held {
                self.ctx.hold_request.store(NONE, Ordering::Release);
                self.ctx.focus.store(NONE, Ordering::Release);
                continue;
            }
            self.log.injected += 1;
            strike(self, &majority);
            self.wait_hold(holds, |e| *e == HoldEvent::Done(resource));
            self.ctx.focus.store(NONE, Ordering::Release);
            if self.ctx.checker.lost_updates() > 0 {
                if self.verbose {
                    eprintln!("    fault: the checker saw a lost update; the schedule ends");
                }
                break;
            }
        }
        self.ctx.finish_early.store(true, Ordering::Release);
    }

    /// Moves node `i`'s wall clock forward by `by`.
    fn jump_clock(&mut self, i: usize, by: Duration) {
        if let Err(e) = self.nodes[i].jump_clock(by) {
            self.log.errors.push(format!("clock jump of node {i}: {e}"));
        }
    }

    /// The safe clock schedule: a minority chosen once (the largest, two of
    /// five) and kept for the whole run; again and again, one or both of its
    /// nodes see their wall clock jump forward by more than the TTL, so every
    /// lock key on them expires at once. Always the same nodes: victims that
    /// changed within one lock's lifetime could add up to a majority.
    ///
    /// A node that forgets live keys is a node restarted without persistence,
    /// and even one of them breaks a lock held on a bare quorum that counted
    /// it (locked on A, B, C; C's clock jumps; another client locks C, D, E).
    /// Under contention bare quorums are common (a rival's attempt holds some
    /// nodes until it undoes), and unguarded jumps did produce that overlap
    /// here. So a jumped node is treated as the algorithm requires of a
    /// restarted one: out of service (connections refused, through its proxy)
    /// from just before the jump until every lock it could have held has
    /// expired (TTL + 300 ms), as in `restart-delayed`. After that it serves
    /// again, its clock still ahead.
    fn minority_clock_jumps(&mut self) {
        let n = self.nodes.len();
        let count = ((n - 1) / 2).max(1);
        let mut victims: Vec<usize> = Vec::with_capacity(count);
        while victims.len() < count {
            let i = self.rng.random_range(0..n);
            if !victims.contains(&i) {
                victims.push(i);
            }
        }
        while !self.stopping() {
            let jumping: Vec<usize> = if victims.len() > 1 && self.rng.random_bool(0.5) {
                vec![victims[self.rng.random_range(0..victims.len())]]
            } else {
                victims.clone()
            };
            let by = self.ttl + self.between(100, 1000);
            self.log.injected += 1;
            self.note(
                &format!("wall clock +{by:?}, out of service for the TTL"),
                &jumping,
            );
            // Cut off first: once `cut_off` returns, every connection through
            // the proxy is reset, so no vote from after the jump gets out.
            for &i in &jumping {
                self.proxies[i].cut_off();
            }
            for &i in &jumping {
                self.jump_clock(i, by);
            }
            // Even when stopping, the nodes stay out for the whole delay.
            let end = Instant::now() + self.ttl + Duration::from_millis(300);
            while Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.heal_proxies(&jumping);
            let quiet = self.between(150, 500);
            if !self.nap(quiet) {
                break;
            }
        }
    }

    /// The unsafe clock schedule: ask one client to hold a lock for nearly its
    /// whole validity, and while it does, move the wall clock of a majority
    /// forward by more than the TTL: the holder's keys expire there at once,
    /// and another client can take the same lock. Repeated (a few times at
    /// most) until the checker saw the violation.
    fn majority_clock_jumps(&mut self, holds: &Receiver<HoldEvent>) {
        let by = self.ttl + Duration::from_secs(1);
        self.against_a_held_lock(holds, |faults, majority| {
            faults.note(
                &format!("wall clock +{by:?} while a lock is held"),
                majority,
            );
            for &i in majority {
                faults.jump_clock(i, by);
            }
        });
    }

    fn wait_hold(&self, holds: &Receiver<HoldEvent>, want: impl Fn(&HoldEvent) -> bool) -> bool {
        let end = Instant::now() + self.ttl * 2 + Duration::from_secs(2);
        while !self.stopping() {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            match holds.recv_timeout((end - now).min(Duration::from_millis(50))) {
                Ok(event) if want(&event) => return true,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        false
    }
}

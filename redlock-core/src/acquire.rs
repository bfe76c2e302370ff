//! Acquiring a lock: attempts, each followed by an undo when it fails, with
//! retries, and optionally a fencing token and wake-on-release.
//!
//! One [`Acquisition`] runs one call of [`Redlock::acquire`](crate::Redlock::acquire):
//!
//! 1. Draw a fresh random value (128 bits from a CSPRNG).
//! 2. Attempt: an acquire round on every node ([`Engine::timed_round`]). With
//!    fencing, the acquire also reads each node's fence counter, and a second
//!    round writes the token (the highest counter of the nodes that voted
//!    for, plus one) back where our value still holds; the lock is granted
//!    only if a quorum confirms the token while validity remains.
//! 3. If the attempt failed, release on every node, including those that
//!    failed or were not awaited, so no partial lock outlives the attempt.
//! 4. Ask the [`Retry`] policy for a pause. With wake-on-release (the
//!    default), a contended acquisition first asks the nodes to wake it on a
//!    release of its resources and, once they listen, attempts again at once
//!    (a release during the subscription would otherwise go unseen); after
//!    that it waits for a release or the pause, whichever comes first. When
//!    it ends, however it ends, its interest ends too: the subscriptions no
//!    other waiter needs are dropped (see [`Watching`]).

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{join_all, select, Either};
use rand::RngExt;

use crate::backend::Request;
use crate::error::{Error, QuorumFailure};
use crate::keys::fence_keys;
use crate::lock::{Held, Lock};
use crate::retry::Retry;
use crate::round::{Decide, Engine, Targets};
use crate::settings::Settings;
use crate::stats::{AttemptOutcome, Attempts, NodeOutcome, Operation};
use crate::wake::{release_channel, ReleaseWait};

/// What a successful attempt grants.
struct Grant {
    expiration: Instant,
    fencing_token: Option<u64>,
}

/// A contended acquisition's interest in the releases of its resources.
///
/// Dropping it (the acquisition ended: granted, given up, or cancelled)
/// closes the wait and tells the engine that some subscriptions may have
/// lost their last waiter; the next release (or the failed acquisition
/// itself) then asks the nodes to drop them
/// ([`LockBackend::unwatch_releases`](crate::LockBackend::unwatch_releases)).
struct Watching {
    /// Always `Some` until dropped: taken first in `drop`, so the wait is
    /// closed before the engine hears of it.
    wait: Option<ReleaseWait>,
    /// Whether at least one node accepted the watch.
    listening: bool,
    engine: Arc<Engine>,
}

impl Watching {
    fn generation(&self) -> u64 {
        self.wait.as_ref().map_or(0, ReleaseWait::generation)
    }

    /// Completes once a release arrives after `generation` was read.
    async fn released(&self, generation: u64) {
        match &self.wait {
            Some(wait) => wait.changed(generation).await,
            None => futures::future::pending().await,
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        drop(self.wait.take());
        self.engine.watch_ended();
    }
}

/// One acquisition of a set of resources under one value.
pub(crate) struct Acquisition<'a> {
    engine: &'a Arc<Engine>,
    resources: Arc<[String]>,
    value: Arc<str>,
    /// The fence counter (per slot) of each resource, then its legacy
    /// per-resource counter ([`fence_keys`]); empty without fencing.
    fence_keys: Vec<String>,
    ttl: Duration,
    settings: Arc<Settings>,
    attempts: Attempts,
}

impl<'a> Acquisition<'a> {
    /// An acquisition of checked `resources` for `ttl`, with a fresh value.
    pub(crate) fn new(
        engine: &'a Arc<Engine>,
        resources: Arc<[String]>,
        ttl: Duration,
        settings: Arc<Settings>,
    ) -> Self {
        let fence_keys = if settings.fencing {
            fence_keys(&resources)
        } else {
            Vec::new()
        };
        Acquisition {
            engine,
            resources,
            value: random_value(),
            fence_keys,
            ttl,
            settings,
            attempts: Attempts::default(),
        }
    }

    /// Attempts until the lock is granted or the retry policy gives up.
    ///
    /// The retry budget counts pauses, not attempts: an attempt made because
    /// a release woke the acquisition before its pause ran out does not use
    /// a retry, and if it fails the acquisition waits out the rest of that
    /// same pause. So a waiter is as patient with wake-on-release as without
    /// it (`retry_count` pauses of `retry_delay ± jitter`), and tries once
    /// more for every release it hears in that time.
    pub(crate) async fn run(mut self) -> Result<Lock, Error> {
        let settings = self.settings.clone();
        let mut retry = Retry::new(&settings);
        let mut watch: Option<Watching> = None;
        // The end of the pause under way, if one is.
        let mut pause_ends: Option<Instant> = None;
        loop {
            let seen = watch.as_ref().map(Watching::generation);
            if let Some(grant) = self.attempt(retry.is_first()).await {
                // The value only at debug level: it lets an operator match the
                // keys on the nodes, and it is all a stranger needs to release them.
                tracing::debug!(resources = ?&*self.resources, value = &*self.value, attempts = retry.made() + 1, "lock acquired");
                return Ok(self.into_lock(grant));
            }
            // Undo any partial lock before the next attempt (or before failing).
            // Boxed, as are the other steps of a failed attempt below: inline,
            // their futures would make the whole acquisition's future several
            // times larger, and a future that large is copied whole at every
            // level of each `.await` that starts one, granted or not.
            Box::pin(self.engine.release_round(
                &self.resources,
                &self.value,
                &settings,
                Targets::All,
                false,
            ))
            .await;
            let outcome = self
                .attempts
                .last()
                .map_or(AttemptOutcome::Unavailable, |a| a.outcome);
            let now = self.engine.now();
            let ends = match pause_ends {
                // Woken early: the rest of the same pause.
                Some(ends) if ends > now => ends,
                _ => {
                    let Some(delay) = retry.after(Operation::Acquire, outcome) else {
                        break;
                    };
                    now + delay
                }
            };
            pause_ends = Some(ends);
            if settings.wake_on_release && outcome == AttemptOutcome::Contended && watch.is_none() {
                let watching = Box::pin(self.watch_releases()).await;
                let listening = watching.listening;
                watch = Some(watching);
                if listening {
                    // The nodes listen now; a release that came before they
                    // did is caught by trying again at once.
                    continue;
                }
            }
            let left = ends.saturating_duration_since(self.engine.now());
            match (&watch, seen) {
                // A release during the attempt: retry at once.
                (Some(watching), Some(seen)) if watching.generation() != seen => {}
                (Some(watching), _) => {
                    let now = watching.generation();
                    let sleep = self.engine.runtime().sleep(left);
                    if let Either::Left(_) = select(sleep, pin!(watching.released(now))).await {
                        pause_ends = None;
                    }
                }
                (None, _) => {
                    self.engine.runtime().sleep(left).await;
                    pause_ends = None;
                }
            }
        }
        if let Some(watching) = watch.take() {
            // Nobody will release for us: drop the subscriptions now.
            drop(watching);
            Box::pin(self.engine.unwatch(settings.node_timeout)).await;
        }
        tracing::debug!(resources = ?&*self.resources, attempts = retry.made(), "lock not acquired");
        Err(Error::from_failure(QuorumFailure {
            operation: Operation::Acquire,
            resources: self.resources,
            attempts: self.attempts,
        }))
    }

    /// One attempt: the acquire round and, with fencing, the token's
    /// write-back round.
    ///
    /// The `first` attempt lets backends take a single resource by a plain
    /// `SET NX PX` (see [`Request::plain_set_nx`]): its value was just drawn,
    /// so no node can hold it and the built-in script's re-take of our own
    /// key cannot apply. Retries run the script.
    async fn attempt(&mut self, first: bool) -> Option<Grant> {
        let fencing = !self.fence_keys.is_empty();
        let scripts = self.engine.scripts();
        let script = if fencing {
            scripts.acquire_fenced()
        } else {
            scripts.acquire()
        };
        let request = Request::new(&self.resources, &self.value, self.ttl, script)
            .with_extra_keys(&self.fence_keys)
            .with_plain_set_nx(first && !fencing);
        let (attempt, expiration) = self
            .engine
            .timed_round(Operation::Acquire, &request, &self.settings)
            .await;
        // T = max(counters of the nodes that voted for) + 1; read only when
        // fencing, before the attempt moves into the statistics.
        let highest = if fencing {
            attempt
                .nodes
                .iter()
                .filter(|n| matches!(n.outcome, NodeOutcome::For))
                .filter_map(|n| n.fence)
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        self.attempts.push(attempt, self.settings.attempt_history);
        let expiration = expiration?;
        if !fencing {
            return Some(Grant {
                expiration,
                fencing_token: None,
            });
        }
        let token = highest.saturating_add(1);
        // Boxed: the fence round would otherwise be inline in every
        // acquisition's future, fenced or not.
        Box::pin(self.fence(token, expiration))
            .await
            .then_some(Grant {
                expiration,
                fencing_token: Some(token),
            })
    }

    /// Writes `token` back to a quorum while our value still holds there. Any
    /// two quorums share a node, so a later acquirer reads a counter of at
    /// least `token`. Returns whether a quorum confirmed before `expiration`.
    async fn fence(&mut self, token: u64, expiration: Instant) -> bool {
        let args = [token.to_string()];
        let request = Request::new(
            &self.resources,
            &self.value,
            self.ttl,
            self.engine.script(Operation::Fence),
        )
        .with_extra_keys(&self.fence_keys)
        .with_extra_args(&args);
        let now = self.engine.now();
        let timeout = self
            .settings
            .node_timeout
            .min(expiration.saturating_duration_since(now));
        let mut confirm = self
            .engine
            .round(
                Operation::Fence,
                &request,
                now,
                timeout,
                Targets::All,
                Decide::WhenCertain,
            )
            .await;
        if confirm.outcome == AttemptOutcome::Succeeded && self.engine.now() >= expiration {
            confirm.outcome = AttemptOutcome::TooSlow;
        }
        let held = confirm.outcome == AttemptOutcome::Succeeded;
        self.attempts
            .push_round(confirm, self.settings.attempt_history);
        held
    }

    /// Asks every node to wake us on a release of the resources; nodes that
    /// cannot (or do not answer in time) are skipped: the retry timer stays.
    async fn watch_releases(&self) -> Watching {
        let wait = ReleaseWait::new();
        let waker = wait.waker();
        let channels: Vec<String> = self.resources.iter().map(|r| release_channel(r)).collect();
        let calls = self
            .engine
            .backends()
            .iter()
            .map(|b| b.watch_releases(&channels, &waker));
        let all = pin!(join_all(calls));
        let timer = self.engine.runtime().sleep(self.settings.node_timeout);
        let mut listening = false;
        if let Either::Left((results, _)) = select(all, timer).await {
            for (node, result) in results.into_iter().enumerate() {
                match result {
                    Ok(()) => listening = true,
                    Err(error) => {
                        tracing::debug!(node, %error, "node cannot wake waiters on release");
                    }
                }
            }
        }
        Watching {
            wait: Some(wait),
            listening,
            engine: self.engine.clone(),
        }
    }

    fn into_lock(self, grant: Grant) -> Lock {
        let held = Held {
            engine: self.engine.clone(),
            resources: self.resources,
            value: self.value,
            settings: self.settings,
            fencing_token: grant.fencing_token,
            #[cfg(feature = "metrics")]
            granted: self.engine.now(),
        };
        Lock::new(held, self.ttl, grant.expiration, self.attempts)
    }
}

/// 128 bits from the thread's CSPRNG (ChaCha, seeded from the OS), as 32
/// lowercase hex digits, written straight into the one allocation the lock
/// keeps (no `String` to convert on the hot path).
pub(crate) fn random_value() -> Arc<str> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits: u128 = rand::rng().random();
    let mut digits = [0u8; 32];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((bits >> (4 * (31 - i))) & 0xf) as usize];
    }
    // Hex digits are ASCII, so this never falls back.
    Arc::from(std::str::from_utf8(&digits).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_128_random_bits_in_hex() {
        let a = random_value();
        let b = random_value();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}

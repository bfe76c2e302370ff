//! One round: ask every node in parallel, tally the votes, decide.
//!
//! Every operation of the algorithm is built from rounds. A round sends one
//! [`Request`] to the nodes at once and gathers their replies into an
//! [`Attempt`]. It is split in two so that the counting can be read (and unit
//! tested) apart from the waiting:
//!
//! - [`Tally`] (in [`crate::tally`]) is pure and synchronous: it turns each
//!   node's reply into a vote (for, against, failed), knows when the outcome
//!   is certain, and classifies the finished round ([`AttemptOutcome`]).
//! - [`Engine::round`] polls the node calls side by side with the per-node
//!   timeout, feeds the replies to the tally as they arrive, and stops as soon
//!   as the tally is decided (for acquire and extend), every node answered, or
//!   the timeout expired.
//!
//! [`Engine`] is what a [`Redlock`](crate::Redlock) and every
//! [`Lock`](crate::Lock) it hands out share: the nodes, the scripts, the clock
//! and the error hook.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::future::{join, join_all, select, Either};

use crate::backend::{BackendError, ErrorKind, LockBackend, NodeAge, Reply, Request};
use crate::metrics;
use crate::runtime::Runtime;
use crate::scripts::{Script, Scripts};
use crate::settings::Settings;
use crate::stats::{Attempt, AttemptOutcome, NodeOutcome, Operation, Quarantine};
use crate::wake::release_channel;

pub(crate) use crate::tally::{quorum_size, Decide, Tally};

/// What the error hook sees: one node's vote against or failure.
#[derive(Debug)]
#[non_exhaustive]
pub struct NodeEvent<'a> {
    /// The node's index in the list given to the builder.
    pub node: usize,
    /// The node's [`describe`](LockBackend::describe) name.
    pub name: &'a str,
    /// The operation.
    pub operation: Operation,
    /// The resources.
    pub resources: &'a [String],
    /// [`NodeOutcome::Against`] (contention included) or [`NodeOutcome::Failed`].
    pub outcome: &'a NodeOutcome,
}

/// The error hook registered with [`RedlockBuilder::on_error`](crate::RedlockBuilder::on_error).
pub(crate) type ErrorHook = Arc<dyn Fn(&NodeEvent<'_>) + Send + Sync>;

/// Which nodes a round asks.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Targets<'a> {
    /// Every node.
    All,
    /// Only these (a release re-sent to the nodes that failed it).
    Only(&'a [usize]),
}

impl<'a> Targets<'a> {
    /// The indexes of the targeted nodes among `n`.
    fn iter(self, n: usize) -> TargetIter<'a> {
        match self {
            Targets::All => TargetIter::All(0..n),
            Targets::Only(list) => TargetIter::Only(list.iter(), n),
        }
    }
}

/// See [`Targets::iter`]: a plain range for every node, so that the hot path
/// pays for no chained and flattened iterators.
enum TargetIter<'a> {
    All(std::ops::Range<usize>),
    Only(std::slice::Iter<'a, usize>, usize),
}

impl Iterator for TargetIter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            TargetIter::All(range) => range.next(),
            TargetIter::Only(list, n) => list.find(|&&i| i < *n).copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            TargetIter::All(range) => range.size_hint(),
            TargetIter::Only(list, _) => (0, Some(list.len())),
        }
    }
}

/// One node's call in a round, as the trait's methods return it.
type NodeCall<'a> = Pin<Box<dyn Future<Output = Result<Reply, BackendError>> + Send + 'a>>;

/// What restart quarantine makes of one node before an acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Old enough, or untracked: ask it.
    Vote,
    /// Too young: do not ask; it counts as failed.
    Refuse(Quarantine),
    /// Age unknown: read it first, then decide.
    Refresh,
}

/// Decides restart quarantine for a node of `age` at `now`, given the
/// quarantine window `max_ttl`. Pure.
pub(crate) fn gate(age: NodeAge, max_ttl: Duration, now: Instant) -> Gate {
    match age {
        NodeAge::UpSince(booted) => {
            let up_for = now.saturating_duration_since(booted);
            if up_for >= max_ttl {
                Gate::Vote
            } else {
                Gate::Refuse(Quarantine::Restarted {
                    up_for,
                    left: max_ttl - up_for,
                })
            }
        }
        NodeAge::Unknown => Gate::Refresh,
        // Untracked, and any kind added later that this core does not know.
        _ => Gate::Vote,
    }
}

/// The nodes and how to ask them: what a [`Redlock`](crate::Redlock) and its
/// locks share.
pub(crate) struct Engine {
    backends: Vec<Box<dyn LockBackend>>,
    names: Vec<String>,
    scripts: Scripts,
    runtime: Arc<dyn Runtime>,
    on_error: Option<ErrorHook>,
    /// Set when a waiting acquisition ended: some subscription may have lost
    /// its last waiter (see [`Engine::unwatch`]).
    watch_ended: AtomicBool,
}

impl Engine {
    pub(crate) fn new(
        backends: Vec<Box<dyn LockBackend>>,
        scripts: Scripts,
        runtime: Arc<dyn Runtime>,
        on_error: Option<ErrorHook>,
    ) -> Engine {
        let names = backends.iter().map(|b| b.describe().into_owned()).collect();
        Engine {
            backends,
            names,
            scripts,
            runtime,
            on_error,
            watch_ended: AtomicBool::new(false),
        }
    }

    /// Notes that a waiting acquisition ended, so that the next release
    /// drops the subscriptions nobody needs any more.
    pub(crate) fn watch_ended(&self) {
        self.watch_ended.store(true, Ordering::Release);
    }

    /// If a waiting acquisition ended since the last time, asks every node
    /// to drop the release subscriptions no live waiter needs, waiting at
    /// most `timeout`. If a node fails or is late, the next release asks
    /// again.
    pub(crate) async fn unwatch(&self, timeout: Duration) {
        if !self.watch_ended.swap(false, Ordering::AcqRel) {
            return;
        }
        let calls = self.backends.iter().map(|b| b.unwatch_releases());
        let all = pin!(join_all(calls));
        let timer = self.runtime.sleep(timeout);
        let mut done = false;
        if let Either::Left((results, _)) = select(all, timer).await {
            done = true;
            for (node, result) in results.into_iter().enumerate() {
                if let Err(error) = result {
                    done = false;
                    tracing::debug!(node, %error, "node did not drop its release subscriptions");
                }
            }
        }
        if !done {
            self.watch_ended();
        }
    }

    pub(crate) fn backends(&self) -> &[Box<dyn LockBackend>] {
        &self.backends
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Node `node`'s [`describe`](LockBackend::describe) name.
    fn name(&self, node: usize) -> &str {
        self.names.get(node).map_or("?", String::as_str)
    }

    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    pub(crate) fn runtime(&self) -> &dyn Runtime {
        &*self.runtime
    }

    pub(crate) fn now(&self) -> Instant {
        self.runtime.now()
    }

    pub(crate) fn membership_size(&self) -> usize {
        self.backends.len()
    }

    pub(crate) fn quorum_size(&self) -> usize {
        quorum_size(self.backends.len())
    }

    /// The script an operation runs (the built-in one or its replacement).
    pub(crate) fn script(&self, operation: Operation) -> &Script {
        match operation {
            Operation::Acquire => self.scripts.acquire(),
            Operation::Extend => self.scripts.extend(),
            Operation::Release => self.scripts.release(),
            Operation::Fence => self.scripts.fence(),
        }
    }

    /// An acquire or extend round with the validity check. Returns the attempt
    /// and, if a quorum voted for with validity left, the lock's expiration:
    /// start + TTL − drift. A quorum reached too late is
    /// [`AttemptOutcome::TooSlow`].
    pub(crate) async fn timed_round(
        &self,
        operation: Operation,
        request: &Request<'_>,
        settings: &Settings,
    ) -> (Attempt, Option<Instant>) {
        let started = self.now();
        let ttl = request.ttl();
        let validity = ttl.saturating_sub(settings.drift(ttl));
        // A later answer could not yield a valid lock.
        let timeout = settings.node_timeout.min(validity);
        // Restart quarantine gates acquires only: extend and fence act only
        // where our own value still holds (see `Settings::restart_quarantine`).
        let request = &request.with_restart_quarantine(
            settings
                .restart_quarantine
                .filter(|_| operation == Operation::Acquire),
        );
        let mut attempt = self
            .round(
                operation,
                request,
                started,
                timeout,
                Targets::All,
                Decide::WhenCertain,
            )
            .await;
        if attempt.outcome != AttemptOutcome::Succeeded {
            return (attempt, None);
        }
        let expiration = started + validity;
        // `elapsed` runs to the reply that decided the round, read in the
        // poll that returned it: no later than now by more than that poll.
        if started + attempt.elapsed >= expiration {
            attempt.outcome = AttemptOutcome::TooSlow;
            tracing::debug!(?operation, elapsed = ?attempt.elapsed, "quorum reached with no validity left");
            return (attempt, None);
        }
        (attempt, Some(expiration))
    }

    /// A release round over `targets`, awaiting every node up to the per-node
    /// timeout. With wake-on-release and `announce`, the release also
    /// publishes, one channel per resource, where someone listens. The undo
    /// of a failed attempt does not announce: it would wake the waiters of
    /// this very process (its own subscription included) for a lock that
    /// was never granted, and racing waiters would wake each other. If a
    /// waiting acquisition ended since the last release, the subscriptions it
    /// leaves unused are dropped alongside.
    pub(crate) async fn release_round(
        &self,
        resources: &[String],
        value: &str,
        settings: &Settings,
        targets: Targets<'_>,
        announce: bool,
    ) -> Attempt {
        // A replaced release script runs as given: it does not publish.
        let (script, channels) =
            if announce && settings.wake_on_release && self.scripts.release().is_builtin() {
                let channels: Vec<String> = resources.iter().map(|r| release_channel(r)).collect();
                (self.scripts.release_notify(), channels)
            } else {
                (self.scripts.release(), Vec::new())
            };
        let mut request =
            Request::new(resources, value, Duration::ZERO, script).with_extra_args(&channels);
        if !channels.is_empty() {
            // A Redis Cluster announces on shard channels (`pubsub_kind`).
            request = request.with_sharded_script(self.scripts.release_notify_sharded());
        }
        let started = self.now();
        let release = self.round(
            Operation::Release,
            &request,
            started,
            settings.node_timeout,
            targets,
            Decide::WhenAllAnswered,
        );
        if !self.watch_ended.load(Ordering::Relaxed) {
            return release.await;
        }
        // A waiting acquisition ended since: drop the subscriptions it leaves
        // unused, beside the release (not after it). Boxed, so that this rare
        // path does not make every release's future larger.
        Box::pin(join(release, self.unwatch(settings.node_timeout)))
            .await
            .0
    }

    /// Asks `targets` in parallel and tallies their votes until `decide`
    /// allows a stop, every node answered, or `timeout` expired. Nodes still
    /// pending then are counted as timed out (or as unanswered, when the round
    /// was decided without them), and their calls are dropped.
    pub(crate) async fn round(
        &self,
        operation: Operation,
        request: &Request<'_>,
        started: Instant,
        timeout: Duration,
        targets: Targets<'_>,
        decide: Decide,
    ) -> Attempt {
        let n = self.backends.len();
        let mut tally = Tally::new(operation, request, n, decide);
        // Every node is asked in the first poll, so all N get the request,
        // not just the first quorum to answer.
        let quarantine = request
            .restart_quarantine()
            .filter(|_| operation == Operation::Acquire);
        let mut refused = Vec::new();
        let mut calls: Vec<(usize, Option<NodeCall<'_>>)> = targets
            .iter(n)
            .map(|i| {
                let backend = &self.backends[i];
                if let Some(max_ttl) = quarantine {
                    match gate(backend.node_age(request.resources()), max_ttl, started) {
                        Gate::Vote => {}
                        Gate::Refuse(q) => {
                            refused.push((i, q));
                            return (i, None);
                        }
                        Gate::Refresh => return (i, Some(self.refresh_then_acquire(i, request))),
                    }
                }
                let call = match operation {
                    Operation::Acquire => backend.acquire(request),
                    Operation::Extend => backend.extend(request),
                    Operation::Release => match request.for_pubsub(backend.pubsub_kind()) {
                        // A Redis Cluster announces the release on shard channels.
                        Some(sharded) => Box::pin(async move { backend.release(&sharded).await }),
                        None => backend.release(request),
                    },
                    Operation::Fence => backend.fence(request),
                };
                (i, Some(call))
            })
            .collect();
        for (node, q) in refused {
            let outcome = tally.quarantined(node, q, None);
            self.report(node, operation, request.resources(), outcome);
        }
        let mut timer = self.runtime.sleep(timeout);
        let mut expired = false;
        // When the last reply counted arrived: read once per poll that
        // brings replies, since they all arrived by then.
        let mut ended: Option<Instant> = None;
        poll_fn(|cx| {
            let mut open = 0;
            let mut now = None;
            for (node, slot) in calls.iter_mut() {
                let Some(call) = slot else { continue };
                let Poll::Ready(reply) = call.as_mut().poll(cx) else {
                    open += 1;
                    continue;
                };
                *slot = None;
                let outcome = match reply {
                    // The backend found the node unverified or too young on the
                    // connection it would have used.
                    Err(error) if error.kind() == ErrorKind::Quarantined => {
                        let q = self.quarantine_of(*node, request);
                        tally.quarantined(*node, q, Some(error))
                    }
                    reply => {
                        let at = *now.get_or_insert_with(|| self.now());
                        let latency = at.saturating_duration_since(started);
                        metrics::node_latency(self.name(*node), operation, latency);
                        tally.reply(*node, reply, latency)
                    }
                };
                self.report(*node, operation, request.resources(), outcome);
            }
            if tally.is_decided() || open == 0 {
                ended = now;
                return Poll::Ready(());
            }
            if timer.as_mut().poll(cx).is_ready() {
                expired = true;
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
        for (node, slot) in calls {
            if slot.is_none() {
                continue;
            }
            if expired {
                let outcome = tally.timed_out(node, timeout);
                self.report(node, operation, request.resources(), outcome);
            } else {
                tally.unanswered(node);
            }
        }
        let ended = ended.unwrap_or_else(|| self.now());
        tally.finish(started, ended.saturating_duration_since(started))
    }

    /// For a node of unknown age under quarantine: reads its age, then sends
    /// the acquire if it is old enough; otherwise answers
    /// [`ErrorKind::Quarantined`] without asking for a vote.
    fn refresh_then_acquire<'a>(&'a self, node: usize, request: &'a Request<'a>) -> NodeCall<'a> {
        Box::pin(async move {
            let backend = &self.backends[node];
            backend.refresh_node_age(request.resources()).await?;
            let max_ttl = request.restart_quarantine().unwrap_or_default();
            match gate(backend.node_age(request.resources()), max_ttl, self.now()) {
                Gate::Vote => backend.acquire(request).await,
                Gate::Refuse(q) => Err(BackendError::new(ErrorKind::Quarantined, q.to_string())),
                Gate::Refresh => Err(BackendError::new(
                    ErrorKind::Quarantined,
                    Quarantine::Unverified.to_string(),
                )),
            }
        })
    }

    /// Why node `node` is quarantined for `request`, as far as its age says now.
    fn quarantine_of(&self, node: usize, request: &Request<'_>) -> Quarantine {
        let (Some(backend), Some(max_ttl)) =
            (self.backends.get(node), request.restart_quarantine())
        else {
            return Quarantine::Unverified;
        };
        match gate(backend.node_age(request.resources()), max_ttl, self.now()) {
            Gate::Refuse(q) => q,
            _ => Quarantine::Unverified,
        }
    }

    /// Tells `tracing` and the error hook about a vote against or a failure.
    fn report(
        &self,
        node: usize,
        operation: Operation,
        resources: &[String],
        outcome: &NodeOutcome,
    ) {
        let name = self.name(node);
        match outcome {
            NodeOutcome::Against(refusal) => {
                tracing::debug!(node, name, %operation, %refusal, "node voted against");
            }
            NodeOutcome::Failed(error) => {
                tracing::debug!(node, name, %operation, %error, "node failed");
                metrics::node_failure(name, operation, error.kind());
            }
            _ => return,
        }
        if let Some(hook) = &self.on_error {
            hook(&NodeEvent {
                node,
                name,
                operation,
                resources,
                outcome,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_every_node_or_only_the_listed_ones_that_exist() {
        assert_eq!(Targets::All.iter(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Targets::All.iter(0).count(), 0);
        let only = [2, 0, 7, 1];
        assert_eq!(Targets::Only(&only).iter(3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(Targets::Only(&[]).iter(3).count(), 0);
    }
}

//! One round: ask every node in parallel, tally the votes, decide.
//!
//! Every operation of the algorithm is built from rounds. A round sends one
//! [`Request`] to the nodes at once and gathers their replies into an
//! [`Attempt`]. It is split in two so that the counting can be read (and unit
//! tested) apart from the waiting:
//!
//! - [`Tally`] is pure and synchronous: it turns each node's reply into a vote
//!   (for, against, failed), knows when the outcome is certain, and classifies
//!   the finished round ([`AttemptOutcome`]).
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
use crate::stats::{
    Attempt, AttemptOutcome, NodeOutcome, NodeResult, Operation, Quarantine, Refusal,
};
use crate::wake::release_channel;

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

/// When a round may stop before every node answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decide {
    /// As soon as the outcome is certain: a quorum voted for, or so many voted
    /// against or failed that a quorum is impossible (acquire, extend, fence).
    WhenCertain,
    /// Only when every node answered or the timeout expired (release: every
    /// node should delete its keys, not just a quorum).
    WhenAllAnswered,
}

/// The votes of one round, counted as replies arrive. Pure: no I/O, no clock.
#[derive(Debug)]
pub(crate) struct Tally {
    operation: Operation,
    membership: usize,
    quorum: usize,
    /// Keys the operation must apply to for a vote for.
    keys: usize,
    /// A fenced acquire: a vote for must carry the node's fence counter.
    expect_fence: bool,
    decide: Decide,
    votes_for: usize,
    against: usize,
    failed: usize,
    results: Vec<NodeResult>,
}

impl Tally {
    /// A tally for `request` over `membership` nodes.
    pub(crate) fn new(
        operation: Operation,
        request: &Request<'_>,
        membership: usize,
        decide: Decide,
    ) -> Tally {
        Tally {
            operation,
            membership,
            quorum: quorum_size(membership),
            keys: request.resources().len(),
            expect_fence: operation == Operation::Acquire && !request.extra_keys().is_empty(),
            decide,
            votes_for: 0,
            against: 0,
            failed: 0,
            results: Vec::with_capacity(membership),
        }
    }

    /// Counts node `node`'s reply, received after `latency`, and returns the
    /// outcome it was counted as.
    pub(crate) fn reply(
        &mut self,
        node: usize,
        reply: Result<Reply, BackendError>,
        latency: Duration,
    ) -> &NodeOutcome {
        let fence = reply.as_ref().ok().and_then(|r| r.fence);
        let outcome = match reply {
            // A node that cannot report its fence counter cannot do fencing,
            // which no retry fixes.
            Ok(reply) if reply.applied == self.keys && self.expect_fence && reply.fence.is_none() => {
                NodeOutcome::Failed(BackendError::new(
                    ErrorKind::Unsupported,
                    "the reply to a fenced acquire carried no fence counter: this backend does not implement fencing tokens",
                ))
            }
            Ok(reply) if reply.applied == self.keys => NodeOutcome::For,
            Ok(reply) => NodeOutcome::Against(Refusal {
                operation: self.operation,
                applied: reply.applied,
                of: self.keys,
            }),
            Err(error) => NodeOutcome::Failed(error),
        };
        self.push(node, outcome, Some(latency), fence)
    }

    /// Counts node `node` as failed: restart quarantine kept its vote out.
    pub(crate) fn quarantined(
        &mut self,
        node: usize,
        quarantine: Quarantine,
        error: Option<BackendError>,
    ) -> &NodeOutcome {
        let error = error
            .unwrap_or_else(|| BackendError::new(ErrorKind::Quarantined, quarantine.to_string()));
        let outcome = NodeOutcome::Failed(error);
        let index = self.results.len();
        self.push(node, outcome, None, None);
        self.results[index].quarantine = Some(quarantine);
        &self.results[index].outcome
    }

    /// Counts node `node` as failed: it did not answer within `timeout`.
    pub(crate) fn timed_out(&mut self, node: usize, timeout: Duration) -> &NodeOutcome {
        let outcome = NodeOutcome::Failed(BackendError::timeout(timeout));
        self.push(node, outcome, None, None)
    }

    /// Records that node `node`'s answer was not awaited (the round was
    /// decided first). Not a vote.
    pub(crate) fn unanswered(&mut self, node: usize) {
        self.push(node, NodeOutcome::Unanswered, None, None);
    }

    fn push(
        &mut self,
        node: usize,
        outcome: NodeOutcome,
        latency: Option<Duration>,
        fence: Option<u64>,
    ) -> &NodeOutcome {
        match outcome {
            NodeOutcome::For => self.votes_for += 1,
            NodeOutcome::Against(_) => self.against += 1,
            NodeOutcome::Failed(_) => self.failed += 1,
            NodeOutcome::Unanswered => {}
        }
        self.results.push(NodeResult {
            node,
            outcome,
            latency,
            fence,
            quarantine: None,
        });
        &self.results[self.results.len() - 1].outcome
    }

    /// Whether the round may stop now. With an even N a split vote (N/2 for,
    /// N/2 against) is decided too: a quorum is impossible, so the round fails
    /// instead of waiting for votes that cannot change it.
    pub(crate) fn is_decided(&self) -> bool {
        self.decide == Decide::WhenCertain
            && (self.votes_for >= self.quorum
                || self.against + self.failed > self.membership - self.quorum)
    }

    /// How the round ended, from its votes.
    pub(crate) fn outcome(&self) -> AttemptOutcome {
        if self.votes_for >= self.quorum {
            AttemptOutcome::Succeeded
        } else if self
            .results
            .iter()
            .any(|r| matches!(&r.outcome, NodeOutcome::Failed(e) if e.kind().is_permanent()))
        {
            AttemptOutcome::Rejected
        } else if self.against > 0 && self.against >= self.failed {
            AttemptOutcome::Contended
        } else {
            AttemptOutcome::Unavailable
        }
    }

    /// The finished round, its nodes in index order.
    pub(crate) fn finish(mut self, started: Instant, elapsed: Duration) -> Attempt {
        self.results.sort_by_key(|r| r.node);
        Attempt {
            operation: self.operation,
            started,
            elapsed,
            membership_size: self.membership,
            quorum_size: self.quorum,
            outcome: self.outcome(),
            nodes: self.results,
        }
    }
}

/// floor(N/2)+1.
pub(crate) fn quorum_size(membership: usize) -> usize {
    membership / 2 + 1
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

    fn tally(n: usize, decide: Decide) -> (Tally, Vec<String>) {
        let resources = vec!["r".to_owned()];
        let scripts = Scripts::default();
        let request = Request::new(&resources, "v", Duration::from_secs(1), scripts.acquire());
        (
            Tally::new(Operation::Acquire, &request, n, decide),
            resources,
        )
    }

    const MS: Duration = Duration::from_millis(1);

    fn refused() -> Result<Reply, BackendError> {
        Ok(Reply::applied(0))
    }

    fn granted() -> Result<Reply, BackendError> {
        Ok(Reply::applied(1))
    }

    fn down() -> Result<Reply, BackendError> {
        Err(BackendError::new(ErrorKind::Connection, "refused"))
    }

    #[test]
    fn targets_name_every_node_or_only_the_listed_ones_that_exist() {
        assert_eq!(Targets::All.iter(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Targets::All.iter(0).count(), 0);
        let only = [2, 0, 7, 1];
        assert_eq!(Targets::Only(&only).iter(3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(Targets::Only(&[]).iter(3).count(), 0);
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        let sizes: Vec<usize> = (1..=7).map(quorum_size).collect();
        assert_eq!(sizes, [1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn decided_as_soon_as_a_quorum_votes_for() {
        let (mut t, _) = tally(5, Decide::WhenCertain);
        t.reply(0, granted(), MS);
        t.reply(1, granted(), MS);
        assert!(!t.is_decided());
        t.reply(2, granted(), MS);
        assert!(t.is_decided());
        assert_eq!(t.outcome(), AttemptOutcome::Succeeded);
    }

    #[test]
    fn an_even_split_is_a_decided_failure_not_a_hang() {
        let (mut t, _) = tally(4, Decide::WhenCertain);
        t.reply(0, granted(), MS);
        t.reply(1, granted(), MS);
        t.reply(2, refused(), MS);
        assert!(!t.is_decided(), "one more vote for would still make 3 of 4");
        t.reply(3, refused(), MS);
        assert!(t.is_decided());
        assert_eq!(t.outcome(), AttemptOutcome::Contended);
        // Failures count towards an impossible quorum too.
        let (mut t, _) = tally(4, Decide::WhenCertain);
        t.reply(0, down(), MS);
        assert!(!t.is_decided());
        t.reply(1, refused(), MS);
        assert!(t.is_decided());
    }

    #[test]
    fn a_release_waits_for_every_node() {
        let (mut t, _) = tally(3, Decide::WhenAllAnswered);
        t.reply(0, granted(), MS);
        t.reply(1, granted(), MS);
        assert!(!t.is_decided());
        assert_eq!(t.outcome(), AttemptOutcome::Succeeded);
    }

    #[test]
    fn outcomes_name_the_cause() {
        // More failures than refusals: the nodes are the problem.
        let (mut t, _) = tally(3, Decide::WhenCertain);
        t.reply(0, down(), MS);
        t.timed_out(1, MS);
        t.reply(2, refused(), MS);
        assert_eq!(t.outcome(), AttemptOutcome::Unavailable);
        // As many refusals as failures: someone else holds it.
        let (mut t, _) = tally(3, Decide::WhenCertain);
        t.reply(0, down(), MS);
        t.reply(1, refused(), MS);
        assert_eq!(t.outcome(), AttemptOutcome::Contended);
        // One permanent error decides, whatever the others said.
        let (mut t, _) = tally(3, Decide::WhenCertain);
        t.reply(0, refused(), MS);
        t.reply(1, refused(), MS);
        t.reply(2, Err(BackendError::new(ErrorKind::CrossSlot, "x")), MS);
        assert_eq!(t.outcome(), AttemptOutcome::Rejected);
    }

    #[test]
    fn a_fenced_vote_for_without_a_counter_is_unsupported() {
        let resources = vec!["r".to_owned()];
        let fences = vec!["f".to_owned()];
        let scripts = Scripts::default();
        let request = Request::new(
            &resources,
            "v",
            Duration::from_secs(1),
            scripts.acquire_fenced(),
        )
        .with_extra_keys(&fences);
        let mut t = Tally::new(Operation::Acquire, &request, 1, Decide::WhenCertain);
        let outcome = t.reply(0, granted(), MS);
        assert!(
            matches!(outcome, NodeOutcome::Failed(e) if e.kind() == ErrorKind::Unsupported),
            "{outcome:?}"
        );
        assert_eq!(t.outcome(), AttemptOutcome::Rejected);
        let mut t = Tally::new(Operation::Acquire, &request, 1, Decide::WhenCertain);
        assert!(matches!(
            t.reply(0, Ok(Reply::applied(1).with_fence(7)), MS),
            NodeOutcome::For
        ));
    }

    #[test]
    fn the_finished_attempt_lists_nodes_in_order_with_unanswered_ones() {
        let (mut t, _) = tally(3, Decide::WhenCertain);
        t.reply(2, granted(), MS);
        t.reply(0, granted(), MS);
        t.unanswered(1);
        let started = Instant::now();
        let attempt = t.finish(started, MS);
        let order: Vec<usize> = attempt.nodes.iter().map(|n| n.node).collect();
        assert_eq!(order, [0, 1, 2]);
        assert!(matches!(attempt.nodes[1].outcome, NodeOutcome::Unanswered));
        assert_eq!(attempt.votes_for(), 2);
        assert_eq!(attempt.quorum_size, 2);
        assert_eq!(attempt.outcome, AttemptOutcome::Succeeded);
    }
}

//! Counting one round's votes: pure and synchronous, no I/O and no clock.
//!
//! [`Tally`] turns each node's reply into a vote (for, against, failed),
//! knows when the outcome is certain, and classifies the finished round
//! ([`AttemptOutcome`]). [`Engine::round`](crate::round::Engine::round) feeds
//! it the replies as they arrive; the unit tests below feed it by hand.

use std::time::{Duration, Instant};

use crate::backend::{BackendError, ErrorKind, Reply, Request};
use crate::stats::{
    Attempt, AttemptOutcome, NodeOutcome, NodeResult, Operation, Quarantine, Refusal,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Scripts;

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

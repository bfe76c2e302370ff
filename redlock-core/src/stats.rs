//! Per-attempt, per-node statistics, as node-redlock's `attempts`.
//!
//! Every round the algorithm runs (one acquisition attempt, one extension, one
//! release) is recorded as an [`Attempt`]: who voted for, who voted against and
//! why, who failed and how, and how long each node took. They ride on every
//! [`Lock`](crate::Lock) and on every quorum error, so a caller can see why an
//! acquisition took five attempts without digging in logs.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::backend::BackendError;

/// Which operation a round ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Taking the lock.
    Acquire,
    /// Resetting its TTL.
    Extend,
    /// Letting it go.
    Release,
    /// Writing a fencing token back to a quorum (the second round of a fenced
    /// acquire).
    Fence,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Acquire => "acquire",
            Operation::Extend => "extend",
            Operation::Release => "release",
            Operation::Fence => "fence",
        })
    }
}

/// A node's vote against: the operation applied to fewer keys than asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The operation refused.
    pub operation: Operation,
    /// Keys it applied to.
    pub applied: usize,
    /// Keys asked for.
    pub of: usize,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operation {
            Operation::Acquire => write!(
                f,
                "resource held by another value (applied to {} of {} resources)",
                self.applied, self.of
            ),
            _ => write!(
                f,
                "lock not held by this value (applied to {} of {} resources)",
                self.applied, self.of
            ),
        }
    }
}

/// Why a node's vote was not asked under
/// [restart quarantine](crate::Settings::restart_quarantine). The node
/// counts as failed (with an error of kind
/// [`ErrorKind::Quarantined`](crate::ErrorKind::Quarantined)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Quarantine {
    /// The node came up too recently.
    Restarted {
        /// How long it has been up (at least).
        up_for: Duration,
        /// How long until it may vote again.
        left: Duration,
    },
    /// The node's age is not known yet (never read since the backend
    /// (re)connected, or the connection changed during the call), so it
    /// counts as just restarted.
    Unverified,
}

impl fmt::Display for Quarantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quarantine::Restarted { up_for, left } => write!(
                f,
                "node up for only {up_for:?}: it may have lost its keys in a restart; \
                 it votes again in {left:?}"
            ),
            Quarantine::Unverified => f.write_str(
                "node age not verified since it (re)connected: it may have lost its keys in a restart",
            ),
        }
    }
}

/// What one node did in one round.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NodeOutcome {
    /// The operation applied to every key.
    For,
    /// The node answered but applied to fewer keys: contention, or a lock no
    /// longer held.
    Against(Refusal),
    /// The node could not be asked, or did not answer within the per-node timeout.
    Failed(BackendError),
    /// The round was decided before this node answered; its answer was not awaited.
    Unanswered,
}

/// One node's part in one round.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeResult {
    /// The node's index in the list given to the builder.
    pub node: usize,
    /// What it did.
    pub outcome: NodeOutcome,
    /// How long it took to answer, if it did.
    pub latency: Option<Duration>,
    /// The fence counter it reported (fenced acquire only).
    pub fence: Option<u64>,
    /// Under [restart quarantine](crate::Settings::restart_quarantine): why
    /// its vote was not counted, with the time left. Its outcome is then
    /// [`NodeOutcome::Failed`].
    pub quarantine: Option<Quarantine>,
}

/// How a round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// A quorum voted for and validity remained.
    Succeeded,
    /// Votes against (held by someone else, or no longer ours) made a quorum impossible.
    Contended,
    /// Node failures made a quorum impossible.
    Unavailable,
    /// A quorum voted for, but too late: no validity was left.
    TooSlow,
    /// A node rejected the request in a way retrying cannot fix (see
    /// [`ErrorKind::is_permanent`](crate::ErrorKind::is_permanent)).
    Rejected,
}

/// One round of the algorithm over all nodes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Attempt {
    /// The operation.
    pub operation: Operation,
    /// When it began.
    pub started: Instant,
    /// How long it took to decide.
    pub elapsed: Duration,
    /// How many nodes there are.
    pub membership_size: usize,
    /// How many votes for make a quorum: floor(N/2)+1.
    pub quorum_size: usize,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// One entry per node, in node order.
    pub nodes: Vec<NodeResult>,
}

impl Attempt {
    /// Nodes that voted for.
    pub fn votes_for(&self) -> usize {
        self.count(|o| matches!(o, NodeOutcome::For))
    }

    /// Nodes that voted against.
    pub fn votes_against(&self) -> usize {
        self.count(|o| matches!(o, NodeOutcome::Against(_)))
    }

    /// Nodes that failed.
    pub fn failures(&self) -> usize {
        self.count(|o| matches!(o, NodeOutcome::Failed(_)))
    }

    /// The errors of the nodes that failed, with their index.
    pub fn errors(&self) -> impl Iterator<Item = (usize, &BackendError)> {
        self.nodes.iter().filter_map(|n| match &n.outcome {
            NodeOutcome::Failed(e) => Some((n.node, e)),
            _ => None,
        })
    }

    /// The nodes kept out by restart quarantine, with their index.
    pub fn quarantined(&self) -> impl Iterator<Item = (usize, &Quarantine)> {
        self.nodes
            .iter()
            .filter_map(|n| n.quarantine.as_ref().map(|q| (n.node, q)))
    }

    fn count(&self, f: impl Fn(&NodeOutcome) -> bool) -> usize {
        self.nodes.iter().filter(|n| f(&n.outcome)).count()
    }
}

/// The most recent attempts of one operation, and how many there were in all.
///
/// Bounded by [`Settings::attempt_history`](crate::Settings::attempt_history),
/// so unlimited retries do not grow memory.
#[derive(Clone, Debug, Default)]
pub struct Attempts {
    total: u64,
    /// The oldest kept attempt, held inline: most operations take one round,
    /// and then no queue is allocated.
    first: Option<Attempt>,
    /// The kept attempts after `first`, oldest first; empty while `first` is None.
    rest: VecDeque<Attempt>,
}

impl Attempts {
    pub(crate) fn push(&mut self, attempt: Attempt, keep: usize) {
        self.total += 1;
        self.keep(attempt, keep);
    }

    /// Records a further round of the same attempt (a fenced acquire's
    /// write-back): kept in the history, not counted as another attempt.
    pub(crate) fn push_round(&mut self, attempt: Attempt, keep: usize) {
        self.keep(attempt, keep);
    }

    fn keep(&mut self, attempt: Attempt, keep: usize) {
        while self.len() >= keep.max(1) {
            self.first = self.rest.pop_front();
        }
        if self.first.is_none() {
            self.first = Some(attempt);
        } else {
            self.rest.push_back(attempt);
        }
    }

    /// Attempts made in all, including those no longer kept. A fenced
    /// acquisition's write-back round is part of its attempt, not another one.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept attempts, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Attempt> + ExactSizeIterator {
        Iter {
            first: self.first.as_ref(),
            rest: self.rest.iter(),
        }
    }

    /// The last attempt.
    pub fn last(&self) -> Option<&Attempt> {
        self.rest.back().or(self.first.as_ref())
    }

    /// How many attempts are kept.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

/// The iterator of [`Attempts::iter`]: `first`, then `rest`.
struct Iter<'a> {
    first: Option<&'a Attempt>,
    rest: std::collections::vec_deque::Iter<'a, Attempt>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Attempt;

    fn next(&mut self) -> Option<&'a Attempt> {
        self.first.take().or_else(|| self.rest.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.first.is_some()) + self.rest.len();
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.rest.next_back().or_else(|| self.first.take())
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: usize) -> Attempt {
        Attempt {
            operation: Operation::Acquire,
            started: Instant::now(),
            elapsed: Duration::from_millis(n as u64),
            membership_size: 1,
            quorum_size: 1,
            outcome: AttemptOutcome::Contended,
            nodes: Vec::new(),
        }
    }

    fn kept(a: &Attempts) -> Vec<u128> {
        a.iter().map(|x| x.elapsed.as_millis()).collect()
    }

    #[test]
    fn keeps_the_most_recent_in_order_and_counts_all() {
        let mut a = Attempts::default();
        assert!(a.is_empty() && a.last().is_none() && a.iter().len() == 0);
        a.push(attempt(1), 3);
        assert_eq!(kept(&a), [1]);
        assert_eq!(a.last().map(|x| x.elapsed.as_millis()), Some(1));
        for n in 2..=5 {
            a.push(attempt(n), 3);
        }
        assert_eq!(kept(&a), [3, 4, 5]);
        assert_eq!(
            a.iter()
                .rev()
                .map(|x| x.elapsed.as_millis())
                .collect::<Vec<_>>(),
            [5, 4, 3]
        );
        assert_eq!((a.len(), a.iter().len(), a.total()), (3, 3, 5));
        assert_eq!(a.last().map(|x| x.elapsed.as_millis()), Some(5));
        a.push_round(attempt(6), 3);
        assert_eq!((kept(&a), a.total()), (vec![4, 5, 6], 5));
        // Mixed ends.
        let mut it = a.iter();
        assert_eq!(it.next_back().map(|x| x.elapsed.as_millis()), Some(6));
        assert_eq!(it.next().map(|x| x.elapsed.as_millis()), Some(4));
        assert_eq!(it.len(), 1);
        // A history of one keeps the last.
        let mut one = Attempts::default();
        for n in 1..=4 {
            one.push(attempt(n), 1);
        }
        assert_eq!((kept(&one), one.total()), (vec![4], 4));
        // Zero is read as one.
        one.push(attempt(9), 0);
        assert_eq!(kept(&one), [9]);
    }
}

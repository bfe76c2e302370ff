//! [`Redlock`], its builder, and the quorum round every operation runs.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngExt;
use std::future::poll_fn;
use std::pin::pin;

use futures::future::{join_all, select, Either};
use std::task::Poll;

use crate::backend::{BackendError, ErrorKind, LockBackend, Request};
use crate::error::{ConfigError, Error, InvalidInput, QuorumFailure};
use crate::lock::Lock;
use crate::runtime::Runtime;
use crate::scripts::{Script, Scripts};
use crate::settings::{RetryCount, Settings, MAX_TTL};
use crate::stats::{
    Attempt, AttemptOutcome, Attempts, NodeOutcome, NodeResult, Operation, Refusal,
};
use crate::wake::{release_channel, ReleaseWait};

/// The longest resource name accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 4096;

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

type ErrorHook = Arc<dyn Fn(&NodeEvent<'_>) + Send + Sync>;

/// The lock manager: N independent nodes, one algorithm. Cheap to clone (an
/// `Arc` inside); share one per process.
///
/// ```
/// # futures::executor::block_on(async {
/// use redlock_core::{MemoryBackend, Redlock};
/// use std::time::Duration;
///
/// let nodes = vec![MemoryBackend::new(), MemoryBackend::new(), MemoryBackend::new()];
/// let redlock = Redlock::new(nodes)?;
/// let lock = redlock.acquire(&["invoice:42"], Duration::from_secs(10)).await?;
/// assert_eq!(lock.resources(), ["invoice:42"]);
/// lock.release().await?;
/// # Ok::<(), redlock_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Redlock {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    backends: Vec<Box<dyn LockBackend>>,
    names: Vec<String>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) scripts: Scripts,
    pub(crate) runtime: Arc<dyn Runtime>,
    on_error: Option<ErrorHook>,
}

impl fmt::Debug for Redlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redlock")
            .field("nodes", &self.inner.names)
            .field("settings", &self.inner.settings)
            .field("runtime", &self.inner.runtime)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Redlock`]; see [`Redlock::builder`].
#[must_use]
pub struct RedlockBuilder {
    backends: Vec<Box<dyn LockBackend>>,
    settings: Settings,
    scripts: Scripts,
    runtime: Option<Arc<dyn Runtime>>,
    on_error: Option<ErrorHook>,
}

impl From<u32> for RetryCount {
    fn from(n: u32) -> Self {
        RetryCount::Limited(n)
    }
}

impl RedlockBuilder {
    /// Replaces all settings at once.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }
    /// Retries after the first attempt: a number, or [`RetryCount::Unlimited`].
    pub fn retry_count(mut self, count: impl Into<RetryCount>) -> Self {
        self.settings.retry_count = count.into();
        self
    }
    /// Base delay between attempts.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.settings.retry_delay = delay;
        self
    }
    /// Uniform jitter added to or taken from the delay.
    pub fn retry_jitter(mut self, jitter: Duration) -> Self {
        self.settings.retry_jitter = jitter;
        self
    }
    /// Expected relative clock drift, in `[0, 1)`.
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.settings.drift_factor = factor;
        self
    }
    /// Remaining validity below which `using` extends the lock.
    pub fn automatic_extension_threshold(mut self, threshold: Duration) -> Self {
        self.settings.automatic_extension_threshold = threshold;
        self
    }
    /// How long one round waits for the nodes.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.settings.node_timeout = timeout;
        self
    }
    /// Acquire every lock with a fencing token (see [`Settings::fencing`]).
    pub fn fencing(mut self, enabled: bool) -> Self {
        self.settings.fencing = enabled;
        self
    }
    /// Publish releases and wake waiters on them (see [`Settings::wake_on_release`]).
    pub fn wake_on_release(mut self, enabled: bool) -> Self {
        self.settings.wake_on_release = enabled;
        self
    }
    /// Custom Lua scripts for acquire, extend and release.
    pub fn scripts(mut self, scripts: Scripts) -> Self {
        self.scripts = scripts;
        self
    }
    /// The clock and timer. The default is the runtime of the enabled feature
    /// (tokio, then smol, then async-std), else [`NeutralRuntime`](crate::NeutralRuntime).
    pub fn runtime(mut self, runtime: impl Runtime) -> Self {
        self.runtime = Some(Arc::new(runtime));
        self
    }
    /// A callback that sees every node's vote against (ordinary contention
    /// included) and every node failure, as node-redlock's `on("error")`.
    /// It runs inline on the lock's task: keep it short.
    pub fn on_error(mut self, hook: impl Fn(&NodeEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Checks the configuration and builds the manager.
    pub fn build(self) -> Result<Redlock, Error> {
        if self.backends.is_empty() {
            return Err(ConfigError::NoBackends.into());
        }
        self.settings.validate()?;
        let names = self
            .backends
            .iter()
            .map(|b| b.describe().into_owned())
            .collect();
        Ok(Redlock {
            inner: Arc::new(Inner {
                backends: self.backends,
                names,
                settings: Arc::new(self.settings),
                scripts: self.scripts,
                runtime: self.runtime.unwrap_or_else(default_runtime),
                on_error: self.on_error,
            }),
        })
    }
}

fn default_runtime() -> Arc<dyn Runtime> {
    #[cfg(feature = "tokio")]
    return Arc::new(crate::runtime::TokioRuntime);
    #[cfg(all(not(feature = "tokio"), feature = "smol"))]
    return Arc::new(crate::runtime::SmolRuntime);
    #[cfg(all(not(feature = "tokio"), not(feature = "smol"), feature = "async-std"))]
    return Arc::new(crate::runtime::AsyncStdRuntime);
    #[cfg(not(any(feature = "tokio", feature = "smol", feature = "async-std")))]
    return Arc::new(crate::runtime::NeutralRuntime);
}

/// Which nodes a round asks.
#[derive(Clone, Copy)]
pub(crate) enum Nodes<'a> {
    All,
    Only(&'a [usize]),
}

impl<'a> Nodes<'a> {
    fn iter(self, n: usize) -> impl Iterator<Item = usize> + 'a {
        let (all, only) = match self {
            Nodes::All => (Some(0..n), None),
            Nodes::Only(list) => (None, Some(list.iter().copied().filter(move |&i| i < n))),
        };
        all.into_iter().flatten().chain(only.into_iter().flatten())
    }
}

impl Redlock {
    /// A manager over `backends` (one per independent node) with default settings.
    pub fn new<I, B>(backends: I) -> Result<Redlock, Error>
    where
        I: IntoIterator<Item = B>,
        B: LockBackend + 'static,
    {
        Redlock::builder(backends).build()
    }

    /// A builder over `backends`, one per independent Redis node (or one per
    /// Redis Cluster).
    pub fn builder<I, B>(backends: I) -> RedlockBuilder
    where
        I: IntoIterator<Item = B>,
        B: LockBackend + 'static,
    {
        RedlockBuilder {
            backends: backends
                .into_iter()
                .map(|b| Box::new(b) as Box<dyn LockBackend>)
                .collect(),
            settings: Settings::default(),
            scripts: Scripts::default(),
            runtime: None,
            on_error: None,
        }
    }

    /// The default settings every call uses unless given its own.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// How many nodes.
    pub fn membership_size(&self) -> usize {
        self.inner.backends.len()
    }

    /// How many votes make a quorum: floor(N/2)+1.
    pub fn quorum_size(&self) -> usize {
        self.inner.backends.len() / 2 + 1
    }

    /// A node's name, by index, as statistics refer to it.
    pub fn node_name(&self, node: usize) -> Option<&str> {
        self.inner.names.get(node).map(String::as_str)
    }

    /// Acquires a lock on every resource at once, retrying per the settings.
    ///
    /// The resources are the Redis keys, exactly as given: on a Redis Cluster
    /// they must share a hash tag. On success the lock is valid until
    /// [`Lock::expiration`]; after it, another owner may hold it.
    ///
    /// Errors: [`Error::Held`] when someone else holds a resource,
    /// [`Error::NoQuorum`] when too few nodes answered, [`Error::Rejected`] when
    /// a node refused for good (such as `CROSSSLOT`), [`Error::InvalidInput`]
    /// for bad arguments (nothing is sent then).
    pub async fn acquire<S: AsRef<str>>(
        &self,
        resources: &[S],
        ttl: Duration,
    ) -> Result<Lock, Error> {
        self.acquire_settings(resources, ttl, self.inner.settings.clone())
            .await
    }

    /// One attempt only, no retries: fails at once with [`Error::Held`] if
    /// someone else holds a resource.
    pub async fn try_acquire<S: AsRef<str>>(
        &self,
        resources: &[S],
        ttl: Duration,
    ) -> Result<Lock, Error> {
        let mut settings = (*self.inner.settings).clone();
        settings.retry_count = RetryCount::Limited(0);
        self.acquire_settings(resources, ttl, Arc::new(settings))
            .await
    }

    /// [`acquire`](Self::acquire) with settings for this call (and for the
    /// lock's later extensions and release), as node-redlock's `settings`
    /// argument.
    pub async fn acquire_with<S: AsRef<str>>(
        &self,
        resources: &[S],
        ttl: Duration,
        settings: &Settings,
    ) -> Result<Lock, Error> {
        settings.validate()?;
        self.acquire_settings(resources, ttl, Arc::new(settings.clone()))
            .await
    }

    pub(crate) async fn acquire_settings<S: AsRef<str>>(
        &self,
        resources: &[S],
        ttl: Duration,
        settings: Arc<Settings>,
    ) -> Result<Lock, Error> {
        let resources = validate_resources(resources)?;
        validate_ttl(ttl, &settings)?;
        let value = random_value();
        let fence_keys: Vec<String> = if settings.fencing {
            resources
                .iter()
                .map(|r| crate::keys::fence_key(r))
                .collect()
        } else {
            Vec::new()
        };
        let mut attempts = Attempts::default();
        let mut number = 0u64;
        let mut watch: Option<ReleaseWait> = None;
        loop {
            let seen = watch.as_ref().map(ReleaseWait::generation);
            let granted = self
                .acquire_once(
                    &resources,
                    &value,
                    &fence_keys,
                    ttl,
                    &settings,
                    &mut attempts,
                    number == 0,
                )
                .await;
            if let Some((expiration, token)) = granted {
                tracing::debug!(resources = ?&*resources, attempts = number + 1, "lock acquired");
                return Ok(Lock {
                    redlock: self.clone(),
                    resources,
                    value,
                    ttl,
                    expiration,
                    attempts,
                    settings,
                    fencing_token: token,
                });
            }
            // Undo any partial lock before the next attempt (or before failing),
            // on every node, including those that failed or did not answer.
            self.release_round(&resources, &value, &settings, Nodes::All)
                .await;
            number += 1;
            let rejected = attempts.last().map(|a| a.outcome) == Some(AttemptOutcome::Rejected);
            if rejected || !settings.retry_count.allows(number) {
                break;
            }
            let delay = jittered(settings.retry_delay, settings.retry_jitter);
            let contended = attempts.last().map(|a| a.outcome) == Some(AttemptOutcome::Contended);
            if settings.wake_on_release && contended && watch.is_none() {
                watch = Some(self.watch_releases(&resources, settings.node_timeout).await);
            }
            match (&watch, seen) {
                // A release during the attempt: retry at once.
                (Some(wait), Some(seen)) if wait.generation() != seen => {}
                (Some(wait), _) => {
                    let now = wait.generation();
                    let sleep = self.inner.runtime.sleep(delay);
                    select(sleep, pin!(wait.changed(now))).await;
                }
                (None, _) => self.inner.runtime.sleep(delay).await,
            }
        }
        tracing::debug!(resources = ?&*resources, attempts = number, "lock not acquired");
        Err(Error::from_failure(QuorumFailure {
            operation: Operation::Acquire,
            resources,
            attempts,
        }))
    }

    /// One acquisition attempt: the acquire round and, with fencing, the
    /// token's write-back round. Returns the expiration and the token when
    /// the lock is held with validity left.
    ///
    /// The `first` attempt of an acquisition lets backends take a single
    /// resource by a plain `SET NX PX` (see [`Request::plain_set_nx`]): its
    /// value was just drawn, so no node can hold it and the built-in script's
    /// re-take of our own key cannot apply. Retries run the script.
    #[allow(clippy::too_many_arguments)]
    async fn acquire_once(
        &self,
        resources: &[String],
        value: &str,
        fence_keys: &[String],
        ttl: Duration,
        settings: &Settings,
        attempts: &mut Attempts,
        first: bool,
    ) -> Option<(Instant, Option<u64>)> {
        let scripts = &self.inner.scripts;
        let fencing = !fence_keys.is_empty();
        let script = if fencing {
            scripts.acquire_fenced()
        } else {
            scripts.acquire()
        };
        let request = Request::new(resources, value, ttl, script)
            .with_extra_keys(fence_keys)
            .with_plain_set_nx(first && !fencing);
        let (attempt, expiration) = self
            .quorum_round(Operation::Acquire, &request, settings)
            .await;
        let Some(expiration) = expiration else {
            attempts.push(attempt, settings.attempt_history);
            return None;
        };
        if !fencing {
            attempts.push(attempt, settings.attempt_history);
            return Some((expiration, None));
        }
        // T = max(counters of the nodes that voted for) + 1, written back to a
        // quorum while our value still holds there. Any two quorums share a
        // node, so a later acquirer reads a counter of at least T.
        let highest = attempt
            .nodes
            .iter()
            .filter(|n| matches!(n.outcome, NodeOutcome::For))
            .filter_map(|n| n.fence)
            .max()
            .unwrap_or(0);
        attempts.push(attempt, settings.attempt_history);
        let token = highest.saturating_add(1);
        let args = [token.to_string()];
        let request = Request::new(resources, value, ttl, scripts.fence())
            .with_extra_keys(fence_keys)
            .with_extra_args(&args);
        let now = self.inner.runtime.now();
        let timeout = settings
            .node_timeout
            .min(expiration.saturating_duration_since(now));
        let mut confirm = self
            .round(Operation::Fence, &request, now, timeout, Nodes::All, true)
            .await;
        let granted = confirm.outcome == AttemptOutcome::Succeeded;
        if granted && self.inner.runtime.now() >= expiration {
            confirm.outcome = AttemptOutcome::TooSlow;
        }
        let held = confirm.outcome == AttemptOutcome::Succeeded;
        attempts.push_round(confirm, settings.attempt_history);
        held.then_some((expiration, Some(token)))
    }

    /// Asks every node to wake us on a release of `resources`; nodes that
    /// cannot (or do not answer in time) are skipped: the retry timer stays.
    async fn watch_releases(&self, resources: &[String], timeout: Duration) -> ReleaseWait {
        let wait = ReleaseWait::new();
        let waker = wait.waker();
        let channels: Vec<String> = resources.iter().map(|r| release_channel(r)).collect();
        let calls = self
            .inner
            .backends
            .iter()
            .map(|b| b.watch_releases(&channels, &waker));
        let all = pin!(join_all(calls));
        let timer = self.inner.runtime.sleep(timeout);
        if let Either::Left((results, _)) = select(all, timer).await {
            for (node, result) in results.into_iter().enumerate() {
                if let Err(error) = result {
                    tracing::debug!(node, %error, "node cannot wake waiters on release");
                }
            }
        }
        wait
    }

    /// One acquire or extend round, with the validity check. Returns the
    /// attempt and, if it succeeded with validity left, the expiration.
    pub(crate) async fn quorum_round(
        &self,
        operation: Operation,
        request: &Request<'_>,
        settings: &Settings,
    ) -> (Attempt, Option<Instant>) {
        let started = self.inner.runtime.now();
        let ttl = request.ttl();
        let validity = ttl.saturating_sub(settings.drift(ttl));
        let timeout = settings.node_timeout.min(validity);
        let mut attempt = self
            .round(operation, request, started, timeout, Nodes::All, true)
            .await;
        if attempt.outcome != AttemptOutcome::Succeeded {
            return (attempt, None);
        }
        let expiration = started + validity;
        if self.inner.runtime.now() >= expiration {
            attempt.outcome = AttemptOutcome::TooSlow;
            tracing::debug!(?operation, elapsed = ?attempt.elapsed, "quorum reached with no validity left");
            return (attempt, None);
        }
        (attempt, Some(expiration))
    }

    /// A release round over `nodes`. No early decision: every node is asked
    /// and awaited up to the per-node timeout.
    pub(crate) async fn release_round(
        &self,
        resources: &[String],
        value: &str,
        settings: &Settings,
        nodes: Nodes<'_>,
    ) -> Attempt {
        // With wake-on-release the release also publishes, one channel per resource.
        let (script, channels) = if settings.wake_on_release {
            let channels: Vec<String> = resources.iter().map(|r| release_channel(r)).collect();
            (self.inner.scripts.release_notify(), channels)
        } else {
            (self.inner.scripts.release(), Vec::new())
        };
        let request =
            Request::new(resources, value, Duration::ZERO, script).with_extra_args(&channels);
        let started = self.inner.runtime.now();
        self.round(
            Operation::Release,
            &request,
            started,
            settings.node_timeout,
            nodes,
            false,
        )
        .await
    }

    /// Asks the nodes in parallel and gathers their votes until the outcome is
    /// certain (if `early`), all have answered, or `timeout` expires.
    async fn round(
        &self,
        operation: Operation,
        request: &Request<'_>,
        started: Instant,
        timeout: Duration,
        nodes: Nodes<'_>,
        early: bool,
    ) -> Attempt {
        let inner = &*self.inner;
        let n = inner.backends.len();
        let quorum = n / 2 + 1;
        let keys = request.resources().len();
        let mut results: Vec<NodeResult> = Vec::with_capacity(n);
        // Every node is asked in the first poll (so all N get the request, not
        // just the first quorum to answer); the round ends as soon as the
        // outcome is certain, all have answered, or the timeout expires.
        let mut calls: Vec<_> = nodes
            .iter(n)
            .map(|i| {
                let backend = &inner.backends[i];
                let call = match operation {
                    Operation::Acquire => backend.acquire(request),
                    Operation::Extend => backend.extend(request),
                    Operation::Release => backend.release(request),
                    Operation::Fence => backend.fence(request),
                };
                (i, Some(call))
            })
            .collect();
        // A fenced acquire (the only request with extra keys) must report the
        // fence counter with its vote for; a node that does not cannot do
        // fencing, which no retry fixes.
        let expect_fence = operation == Operation::Acquire && !request.extra_keys().is_empty();
        let (mut votes_for, mut against, mut failed) = (0usize, 0usize, 0usize);
        let mut timer = inner.runtime.sleep(timeout);
        let mut expired = false;
        poll_fn(|cx| {
            let mut open = 0;
            for (node, slot) in calls.iter_mut() {
                let Some(call) = slot else { continue };
                let Poll::Ready(reply) = call.as_mut().poll(cx) else {
                    open += 1;
                    continue;
                };
                *slot = None;
                let fence = reply.as_ref().ok().and_then(|r| r.fence);
                let outcome = match reply {
                    Ok(reply) if reply.applied == keys && expect_fence && reply.fence.is_none() => {
                        failed += 1;
                        NodeOutcome::Failed(BackendError::new(
                            ErrorKind::Unsupported,
                            "the reply to a fenced acquire carried no fence counter: this backend does not implement fencing tokens",
                        ))
                    }
                    Ok(reply) if reply.applied == keys => {
                        votes_for += 1;
                        NodeOutcome::For
                    }
                    Ok(reply) => {
                        against += 1;
                        NodeOutcome::Against(Refusal {
                            operation,
                            applied: reply.applied,
                            of: keys,
                        })
                    }
                    Err(e) => {
                        failed += 1;
                        NodeOutcome::Failed(e)
                    }
                };
                self.report(*node, operation, request.resources(), &outcome);
                results.push(NodeResult {
                    node: *node,
                    outcome,
                    latency: Some(inner.runtime.now().saturating_duration_since(started)),
                    fence,
                });
            }
            let decided = early && (votes_for >= quorum || against + failed > n - quorum);
            if decided || open == 0 {
                return Poll::Ready(());
            }
            if timer.as_mut().poll(cx).is_ready() {
                expired = true;
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
        // Whoever is still pending either timed out or was not awaited.
        for (node, slot) in calls {
            if slot.is_none() {
                continue;
            }
            let outcome = if expired {
                failed += 1;
                let outcome = NodeOutcome::Failed(BackendError::timeout(timeout));
                self.report(node, operation, request.resources(), &outcome);
                outcome
            } else {
                NodeOutcome::Unanswered
            };
            results.push(NodeResult {
                node,
                outcome,
                fence: None,
                latency: None,
            });
        }
        results.sort_by_key(|r| r.node);
        let outcome = if votes_for >= quorum {
            AttemptOutcome::Succeeded
        } else if results
            .iter()
            .any(|r| matches!(&r.outcome, NodeOutcome::Failed(e) if e.kind().is_permanent()))
        {
            AttemptOutcome::Rejected
        } else if against > 0 && against >= failed {
            AttemptOutcome::Contended
        } else {
            AttemptOutcome::Unavailable
        };
        Attempt {
            operation,
            started,
            elapsed: inner.runtime.now().saturating_duration_since(started),
            membership_size: n,
            quorum_size: quorum,
            outcome,
            nodes: results,
        }
    }

    fn report(
        &self,
        node: usize,
        operation: Operation,
        resources: &[String],
        outcome: &NodeOutcome,
    ) {
        let name = self
            .inner
            .names
            .get(node)
            .map(String::as_str)
            .unwrap_or("?");
        match outcome {
            NodeOutcome::Against(refusal) => {
                tracing::debug!(node, name, %operation, %refusal, "node voted against");
            }
            NodeOutcome::Failed(error) => {
                tracing::debug!(node, name, %operation, %error, "node failed");
            }
            _ => return,
        }
        if let Some(hook) = &self.inner.on_error {
            hook(&NodeEvent {
                node,
                name,
                operation,
                resources,
                outcome,
            });
        }
    }

    pub(crate) fn runtime(&self) -> &dyn Runtime {
        &*self.inner.runtime
    }

    pub(crate) fn report_release_failure(&self, error: &Error) {
        tracing::warn!(%error, "release after using() failed; the keys expire at their TTL");
    }
}

/// Checks and copies the resource list.
pub(crate) fn validate_resources<S: AsRef<str>>(
    resources: &[S],
) -> Result<Arc<[String]>, InvalidInput> {
    if resources.is_empty() {
        return Err(InvalidInput::NoResources);
    }
    // A few names (the usual case) are compared pairwise; a set (and its
    // allocation) only pays off for many.
    let mut seen = (resources.len() > 8).then(|| HashSet::with_capacity(resources.len()));
    for (index, r) in resources.iter().enumerate() {
        let r = r.as_ref();
        if r.is_empty() {
            return Err(InvalidInput::EmptyResource { index });
        }
        if r.len() > MAX_RESOURCE_LEN {
            return Err(InvalidInput::ResourceTooLong {
                index,
                len: r.len(),
                max: MAX_RESOURCE_LEN,
            });
        }
        let duplicate = match seen.as_mut() {
            Some(seen) => !seen.insert(r),
            None => resources[..index]
                .iter()
                .any(|earlier| earlier.as_ref() == r),
        };
        if duplicate {
            return Err(InvalidInput::DuplicateResource(r.to_owned()));
        }
    }
    Ok(resources.iter().map(|r| r.as_ref().to_owned()).collect())
}

/// Checks that a TTL can yield a valid lock.
pub(crate) fn validate_ttl(ttl: Duration, settings: &Settings) -> Result<(), InvalidInput> {
    if ttl.as_millis() == 0 {
        return Err(InvalidInput::ZeroTtl);
    }
    if ttl > MAX_TTL {
        return Err(InvalidInput::TtlTooLong { ttl, max: MAX_TTL });
    }
    let drift = settings.drift(ttl);
    if ttl <= drift {
        return Err(InvalidInput::TtlTooShort { ttl, drift });
    }
    Ok(())
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

/// `base` ± uniform(`jitter`), never below zero. Drawn before any await: the
/// thread RNG is not `Send`.
pub(crate) fn jittered(base: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let offset: f64 = rand::rng().random_range(-1.0..=1.0) * jitter.as_secs_f64();
    Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
}

impl Redlock {
    /// The request script for an operation (used by `Lock`).
    pub(crate) fn script(&self, operation: Operation) -> &Script {
        match operation {
            Operation::Acquire => self.inner.scripts.acquire(),
            Operation::Extend => self.inner.scripts.extend(),
            Operation::Release => self.inner.scripts.release(),
            Operation::Fence => self.inner.scripts.fence(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node that records, for every acquire, whether it was allowed as a
    /// plain `SET NX`, and refuses the first `refuse` acquires.
    struct Recording {
        refuse: usize,
        plain: std::sync::Mutex<Vec<bool>>,
    }

    #[async_trait::async_trait]
    impl LockBackend for Recording {
        async fn acquire(
            &self,
            request: &Request<'_>,
        ) -> Result<crate::backend::Reply, BackendError> {
            let mut plain = self.plain.lock().unwrap_or_else(|e| e.into_inner());
            plain.push(request.plain_set_nx().is_some());
            let applied = if plain.len() > self.refuse {
                request.resources().len()
            } else {
                0
            };
            Ok(crate::backend::Reply::applied(applied))
        }
        async fn extend(&self, _: &Request<'_>) -> Result<crate::backend::Reply, BackendError> {
            Ok(crate::backend::Reply::applied(1))
        }
        async fn release(&self, _: &Request<'_>) -> Result<crate::backend::Reply, BackendError> {
            Ok(crate::backend::Reply::applied(1))
        }
    }

    #[test]
    fn only_the_first_attempt_may_run_as_a_plain_set_nx() {
        let node = Arc::new(Recording {
            refuse: 2,
            plain: std::sync::Mutex::new(Vec::new()),
        });
        let redlock = Redlock::builder([node.clone()])
            .retry_delay(Duration::from_millis(1))
            .retry_jitter(Duration::ZERO)
            .build()
            .expect("valid");
        let lock = futures::executor::block_on(redlock.acquire(&["r"], Duration::from_secs(1)))
            .expect("acquired on the third attempt");
        assert_eq!(lock.attempts().total(), 3);
        // Retries run the script: it also re-takes a key our own earlier
        // attempt may have left behind, which a plain SET NX would not.
        assert_eq!(*node.plain.lock().unwrap(), [true, false, false]);

        // Several resources, fencing, or a custom acquire script: never.
        let node = Arc::new(Recording {
            refuse: 0,
            plain: std::sync::Mutex::new(Vec::new()),
        });
        let redlock = Redlock::builder([node.clone()]).build().expect("valid");
        futures::executor::block_on(redlock.acquire(&["a", "b"], Duration::from_secs(1)))
            .expect("acquired");
        let custom = Redlock::builder([node.clone()])
            .scripts(Scripts::default().with_acquire(Script::new("return 1")))
            .build()
            .expect("valid");
        futures::executor::block_on(custom.acquire(&["c"], Duration::from_secs(1)))
            .expect("acquired");
        assert_eq!(*node.plain.lock().unwrap(), [false, false]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let base = Duration::from_millis(200);
        let jitter = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..10_000).map(|_| jittered(base, jitter)).collect();
        let min = samples.iter().min().copied().unwrap_or_default();
        let max = samples.iter().max().copied().unwrap_or_default();
        assert!(
            min >= Duration::from_millis(100) && max <= Duration::from_millis(300),
            "{min:?}..{max:?}"
        );
        assert!(
            min < Duration::from_millis(110) && max > Duration::from_millis(290),
            "{min:?}..{max:?}"
        );
        // Never negative when the jitter exceeds the base.
        assert!((0..1000).all(
            |_| jittered(Duration::from_millis(10), Duration::from_millis(50))
                <= Duration::from_millis(60)
        ));
        assert_eq!(jittered(base, Duration::ZERO), base);
    }

    #[test]
    fn drift_is_rounded_factor_times_ttl_plus_two_ms() {
        let s = Settings::default();
        assert_eq!(
            s.drift(Duration::from_millis(1000)),
            Duration::from_millis(12)
        );
        assert_eq!(
            s.drift(Duration::from_millis(150)),
            Duration::from_millis(4)
        ); // 1.5 rounds to 2
        assert_eq!(
            s.drift(Duration::from_millis(149)),
            Duration::from_millis(3)
        );
    }
}

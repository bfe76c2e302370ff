//! [`Redlock`]: the lock manager's public face. It checks the input and hands
//! the work to the modules that do it: [`acquire`](crate::acquire) for
//! acquisitions, [`round`](crate::round) for the rounds every operation runs,
//! [`Lock`] for extension and release, and [`using`](crate::using) for scoped
//! locks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::field::Empty;

use crate::acquire::Acquisition;
use crate::backend::LockBackend;
use crate::builder::RedlockBuilder;
use crate::doctor::{DoctorOptions, DoctorReport};
use crate::error::Error;
use crate::lock::Lock;
use crate::metrics;
use crate::round::Engine;
use crate::settings::{RetryCount, Settings};
use crate::status::LockStatus;
use crate::validate;

/// The lock manager: N independent nodes, one algorithm. Cheap to clone (two
/// `Arc`s inside); share one per process.
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
    engine: Arc<Engine>,
    settings: Arc<Settings>,
}

impl fmt::Debug for Redlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redlock")
            .field("nodes", &self.engine.names())
            .field("settings", &self.settings)
            .field("runtime", &self.engine.runtime())
            .finish_non_exhaustive()
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
        RedlockBuilder::new(
            backends
                .into_iter()
                .map(|b| Box::new(b) as Box<dyn LockBackend>)
                .collect(),
        )
    }

    pub(crate) fn from_parts(engine: Arc<Engine>, settings: Arc<Settings>) -> Redlock {
        Redlock { engine, settings }
    }

    /// The default settings every call uses unless given its own.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How many nodes.
    pub fn membership_size(&self) -> usize {
        self.engine.membership_size()
    }

    /// How many votes make a quorum: floor(N/2)+1.
    pub fn quorum_size(&self) -> usize {
        self.engine.quorum_size()
    }

    /// A node's name, by index, as statistics refer to it.
    pub fn node_name(&self, node: usize) -> Option<&str> {
        self.engine.names().get(node).map(String::as_str)
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
        self.acquire_settings(resources, ttl, self.settings.clone())
            .await
    }

    /// One attempt only, no retries: fails at once with [`Error::Held`] if
    /// someone else holds a resource.
    pub async fn try_acquire<S: AsRef<str>>(
        &self,
        resources: &[S],
        ttl: Duration,
    ) -> Result<Lock, Error> {
        let mut settings = (*self.settings).clone();
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
        let span = tracing::info_span!(
            "redlock.acquire",
            resources = ?metrics::Names(resources),
            ttl_ms = metrics::millis(ttl),
            outcome = Empty,
            attempts = Empty,
            fencing_token = Empty,
        );
        let acquisition = async {
            let resources = validate::resources(resources)?;
            validate::ttl(ttl, &settings)?;
            Acquisition::new(&self.engine, resources, ttl, settings)
                .run()
                .await
        };
        let result = metrics::in_span(&span, acquisition).await;
        let (outcome, attempts) = metrics::acquisition(result.as_ref());
        span.record("outcome", outcome);
        span.record("attempts", attempts);
        if let Ok(lock) = &result {
            span.record("fencing_token", lock.fencing_token());
        }
        result
    }

    /// Checks every node against Redlock's assumptions (reachable, a master,
    /// listed once, persistence, no eviction, clock, uptime against the
    /// restart quarantine, cluster slot coverage, and the number of nodes)
    /// with [`DoctorOptions::default`]. Read-only; never fails: a node that
    /// cannot be checked is a finding too. See [`doctor`](crate::doctor)
    /// for the checks, and [`DoctorReport::passed`] to act on the result.
    pub async fn doctor(&self) -> DoctorReport {
        self.doctor_with(&DoctorOptions::default()).await
    }

    /// [`doctor`](Self::doctor) with other timeouts and tolerances.
    pub async fn doctor_with(&self, options: &DoctorOptions) -> DoctorReport {
        crate::doctor::doctor(
            self.engine.backends(),
            self.engine.names(),
            self.engine.runtime(),
            &self.settings,
            options,
        )
        .await
    }

    /// Who holds `resources`, node by node: whether each key is there, its
    /// remaining TTL and fence counter, and whether a quorum holds them all
    /// under one value (see [`status`](crate::status)). Read-only. Each node
    /// gets the per-node timeout of the settings, at least one second (this
    /// is not a hot path); a node that fails or cannot be inspected is
    /// reported in its [`NodeStatus`](crate::NodeStatus).
    ///
    /// Errors: only [`Error::InvalidInput`] for bad resource names.
    pub async fn status<S: AsRef<str>>(&self, resources: &[S]) -> Result<LockStatus, Error> {
        let resources = validate::resources(resources)?;
        let timeout = self.settings.node_timeout.max(Duration::from_secs(1));
        Ok(crate::status::status(
            self.engine.backends(),
            self.engine.names(),
            self.engine.runtime(),
            &resources,
            self.engine.quorum_size(),
            timeout,
        )
        .await)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn default_settings(&self) -> &Arc<Settings> {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendError, Request};
    use crate::scripts::{Script, Scripts};

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
}

//! [`FaultyBackend`]: wraps any backend and misbehaves on command, for testing
//! the algorithm (and code that takes locks) against failing nodes.
//!
//! Faults are switched at run time through a shared handle: clones of a
//! `FaultyBackend` share its faults and its call log.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{BackendError, ErrorKind, LockBackend, NodeAge, Reply, Request};
use crate::inspect::{Inspection, ServerReplies};
use crate::runtime::Runtime;
use crate::stats::Operation;
use crate::wake::{PubSubKind, ReleaseWaker};

/// How a [`FaultyBackend`] misbehaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Pass calls through.
    #[default]
    None,
    /// Fail every call with an error of this kind, without reaching the node.
    Fail(ErrorKind),
    /// Wait this long (on the runtime's clock), then pass the call through.
    Delay(Duration),
    /// Never answer.
    Hang,
    /// Answer "applied to 0 keys" without reaching the node.
    VoteAgainst,
}

/// A call the wrapper saw.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// The operation.
    pub operation: Operation,
    /// The resources.
    pub resources: Vec<String>,
    /// The SHA-1 of the script the request carried.
    pub script_sha1: String,
    /// The TTL in milliseconds.
    pub ttl_millis: u64,
}

/// Wraps a backend; see the [module docs](self).
#[derive(Clone)]
pub struct FaultyBackend<B> {
    backend: B,
    runtime: Arc<dyn Runtime>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    faults: [Fault; 4],
    calls: Vec<Call>,
}

fn slot(operation: Operation) -> usize {
    match operation {
        Operation::Acquire => 0,
        Operation::Extend => 1,
        Operation::Release => 2,
        Operation::Fence => 3,
    }
}

impl<B: LockBackend> FaultyBackend<B> {
    /// Wraps `backend`; delays use `runtime`'s timer.
    pub fn new(backend: B, runtime: impl Runtime) -> Self {
        FaultyBackend {
            backend,
            runtime: Arc::new(runtime),
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `fault` to every operation.
    pub fn set(&self, fault: Fault) {
        self.state().faults = [fault.clone(), fault.clone(), fault.clone(), fault];
    }

    /// Applies `fault` to one operation only.
    pub fn set_for(&self, operation: Operation, fault: Fault) {
        self.state().faults[slot(operation)] = fault;
    }

    /// Every call seen so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.backend
    }

    async fn call(
        &self,
        operation: Operation,
        request: &Request<'_>,
    ) -> Result<Reply, BackendError> {
        let fault = {
            let mut state = self.state();
            state.calls.push(Call {
                operation,
                resources: request.resources().to_vec(),
                script_sha1: request.script().sha1().to_owned(),
                ttl_millis: request.ttl_millis(),
            });
            state.faults[slot(operation)].clone()
        };
        match fault {
            Fault::None => {}
            Fault::Fail(kind) => return Err(BackendError::new(kind, "injected fault")),
            Fault::Delay(d) => self.runtime.sleep(d).await,
            Fault::Hang => futures::future::pending::<()>().await,
            Fault::VoteAgainst => return Ok(Reply::applied(0)),
        }
        match operation {
            Operation::Acquire => self.backend.acquire(request).await,
            Operation::Extend => self.backend.extend(request).await,
            Operation::Release => self.backend.release(request).await,
            Operation::Fence => self.backend.fence(request).await,
        }
    }
}

#[async_trait]
impl<B: LockBackend> LockBackend for FaultyBackend<B> {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.call(Operation::Acquire, request).await
    }
    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.call(Operation::Extend, request).await
    }
    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.call(Operation::Release, request).await
    }
    async fn fence(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.call(Operation::Fence, request).await
    }
    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        // A node failing its acquires cannot subscribe either.
        let fault = self.state().faults[slot(Operation::Acquire)].clone();
        match fault {
            Fault::Fail(kind) => Err(BackendError::new(kind, "injected fault")),
            Fault::Hang => futures::future::pending().await,
            _ => self.backend.watch_releases(channels, waker).await,
        }
    }
    async fn unwatch_releases(&self) -> Result<(), BackendError> {
        self.backend.unwatch_releases().await
    }
    fn pubsub_kind(&self) -> PubSubKind {
        self.backend.pubsub_kind()
    }
    fn node_age(&self, resources: &[String]) -> NodeAge {
        self.backend.node_age(resources)
    }
    async fn refresh_node_age(&self, resources: &[String]) -> Result<(), BackendError> {
        self.backend.refresh_node_age(resources).await
    }
    async fn inspect(&self, inspection: &Inspection) -> Result<Vec<ServerReplies>, BackendError> {
        // A node failing its acquires cannot be inspected either.
        let fault = self.state().faults[slot(Operation::Acquire)].clone();
        match fault {
            Fault::Fail(kind) => Err(BackendError::new(kind, "injected fault")),
            Fault::Hang => futures::future::pending().await,
            _ => self.backend.inspect(inspection).await,
        }
    }
    fn describe(&self) -> Cow<'_, str> {
        Cow::Owned(format!("faulty({})", self.backend.describe()))
    }
}

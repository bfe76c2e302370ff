//! Restart quarantine in the core: settings and TTL checks, and a young or
//! unverified node counted as failed, with the time left, without being asked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use redlock_core::{
    async_trait, BackendError, ConfigError, Error, ErrorKind, InvalidInput, LockBackend,
    MemoryBackend, NodeAge, Quarantine, Redlock, Reply, Request, RetryCount, Settings, MAX_TTL,
};

/// A memory node that reports an age, counts the acquires it is asked, and
/// on refresh learns the age held in `on_refresh`.
#[derive(Clone, Default)]
struct Aged {
    node: MemoryBackend,
    age: Arc<Mutex<Option<NodeAge>>>,
    on_refresh: Arc<Mutex<Option<NodeAge>>>,
    acquires: Arc<AtomicUsize>,
    refreshes: Arc<AtomicUsize>,
}

impl Aged {
    fn new(age: NodeAge) -> Aged {
        let aged = Aged::default();
        *aged.age.lock().unwrap() = Some(age);
        aged
    }
    fn acquires(&self) -> usize {
        self.acquires.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl LockBackend for Aged {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.acquires.fetch_add(1, Ordering::SeqCst);
        self.node.acquire(request).await
    }
    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.node.extend(request).await
    }
    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.node.release(request).await
    }
    fn node_age(&self, _: &[String]) -> NodeAge {
        self.age.lock().unwrap().unwrap_or(NodeAge::Untracked)
    }
    async fn refresh_node_age(&self, _: &[String]) -> Result<(), BackendError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        if let Some(age) = *self.on_refresh.lock().unwrap() {
            *self.age.lock().unwrap() = Some(age);
        }
        Ok(())
    }
}

const WINDOW: Duration = Duration::from_secs(30);

fn old() -> NodeAge {
    NodeAge::UpSince(Instant::now() - Duration::from_secs(3600))
}

fn young() -> NodeAge {
    NodeAge::UpSince(Instant::now())
}

fn with_quarantine(nodes: &[Aged]) -> Redlock {
    Redlock::builder(nodes.to_vec())
        .retry_count(0)
        .restart_quarantine(WINDOW)
        .build()
        .unwrap()
}

#[test]
fn settings_and_ttls_above_the_quarantine_are_typed_errors() {
    let bad = |q| {
        let mut s = Settings::default();
        s.restart_quarantine = Some(q);
        s.validate()
    };
    assert_eq!(bad(Duration::ZERO), Err(ConfigError::ZeroRestartQuarantine));
    assert_eq!(
        bad(MAX_TTL + Duration::from_millis(1)),
        Err(ConfigError::RestartQuarantineTooLong(
            MAX_TTL + Duration::from_millis(1)
        ))
    );
    assert_eq!(
        Settings::default().restart_quarantine,
        None,
        "off by default"
    );
    let built = Redlock::builder(vec![MemoryBackend::new()])
        .restart_quarantine(Duration::ZERO)
        .build();
    assert!(matches!(
        built,
        Err(Error::InvalidConfig(ConfigError::ZeroRestartQuarantine))
    ));

    let nodes = vec![Aged::new(old())];
    let redlock = with_quarantine(&nodes);
    let long = WINDOW + Duration::from_millis(1);
    let expect = |r: Result<_, Error>| match r {
        Err(Error::InvalidInput(InvalidInput::TtlAboveQuarantine { ttl, max_ttl })) => {
            assert_eq!((ttl, max_ttl), (long, WINDOW));
        }
        other => panic!("expected TtlAboveQuarantine, got {other:?}"),
    };
    expect(block_on(redlock.acquire(&["r"], long)).map(|_| ()));
    expect(block_on(
        redlock.using(&["r"], long, |_| async { Ok::<_, Error>(()) }),
    ));
    let lock =
        block_on(redlock.acquire(&["r"], WINDOW)).expect("a TTL equal to the window is fine");
    expect(block_on(lock.extend(long)).map(|_| ()));
    assert_eq!(nodes[0].acquires(), 1, "refused inputs reach no node");
}

#[test]
fn a_young_node_counts_as_failed_with_the_time_left_and_is_not_asked() {
    let nodes = vec![Aged::new(old()), Aged::new(young()), Aged::new(old())];
    let redlock = with_quarantine(&nodes);
    let lock = block_on(redlock.acquire(&["r"], Duration::from_secs(5))).expect("2 of 3 vote");
    assert_eq!(nodes[1].acquires(), 0, "the young node was not asked");
    let attempt = lock.attempts().last().expect("one attempt");
    assert_eq!((attempt.votes_for(), attempt.failures()), (2, 1));
    let quarantined: Vec<_> = attempt.quarantined().collect();
    assert_eq!(quarantined.len(), 1);
    let (node, q) = quarantined[0];
    assert_eq!(node, 1);
    match q {
        Quarantine::Restarted { up_for, left } => {
            assert!(*left > Duration::ZERO && *left <= WINDOW, "{left:?}");
            assert_eq!(*up_for + *left, WINDOW);
        }
        other => panic!("{other:?}"),
    }
    let (_, error) = attempt
        .errors()
        .next()
        .expect("the quarantined node failed");
    assert_eq!(error.kind(), ErrorKind::Quarantined);
    assert!(error.message().contains("votes again in"), "{error}");
    block_on(lock.release()).unwrap();

    // Two young nodes of three: no quorum, a NoQuorum (retryable) error.
    let nodes = vec![Aged::new(young()), Aged::new(young()), Aged::new(old())];
    let redlock = with_quarantine(&nodes);
    match block_on(redlock.acquire(&["r"], Duration::from_secs(5))) {
        Err(e @ Error::NoQuorum(_)) => {
            let last = e.failure().and_then(|f| f.attempts.last()).unwrap();
            assert_eq!(last.quarantined().count(), 2, "{e}");
        }
        other => panic!("expected NoQuorum, got {other:?}"),
    }
    assert_eq!(nodes[0].acquires() + nodes[1].acquires(), 0);
}

#[test]
fn without_quarantine_ages_are_not_even_read() {
    let nodes = vec![Aged::new(young()), Aged::new(young()), Aged::new(young())];
    let redlock = Redlock::builder(nodes.clone()).build().unwrap();
    let lock = block_on(redlock.acquire(&["r"], Duration::from_secs(60))).expect("off by default");
    assert_eq!(lock.attempts().last().unwrap().votes_for(), 3);
    assert!(nodes
        .iter()
        .all(|n| n.refreshes.load(Ordering::SeqCst) == 0));
}

#[test]
fn an_unknown_age_is_read_before_the_vote_and_counts_as_quarantined_until_then() {
    // Read as old: the node votes in the same attempt.
    let nodes = vec![
        Aged::new(NodeAge::Unknown),
        Aged::new(old()),
        Aged::new(old()),
    ];
    *nodes[0].on_refresh.lock().unwrap() = Some(old());
    let redlock = with_quarantine(&nodes);
    let lock = block_on(redlock.acquire(&["r"], Duration::from_secs(5))).unwrap();
    assert_eq!(nodes[0].refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(nodes[0].acquires(), 1);
    block_on(lock.release()).unwrap();

    // Read as young: quarantined, with the time left, never asked.
    let nodes = vec![
        Aged::new(NodeAge::Unknown),
        Aged::new(old()),
        Aged::new(old()),
    ];
    *nodes[0].on_refresh.lock().unwrap() = Some(young());
    let redlock = with_quarantine(&nodes);
    let lock = block_on(redlock.acquire(&["r"], Duration::from_secs(5))).unwrap();
    let last = lock.attempts().last().unwrap();
    let (node, q) = last.quarantined().next().expect("node 0 quarantined");
    assert_eq!(node, 0);
    assert!(matches!(q, Quarantine::Restarted { .. }), "{q:?}");
    assert_eq!(nodes[0].acquires(), 0);
    block_on(lock.release()).unwrap();

    // Never readable: unverified, so not safe, and a quorum of those fails.
    let nodes = vec![
        Aged::new(NodeAge::Unknown),
        Aged::new(NodeAge::Unknown),
        Aged::new(old()),
    ];
    let mut settings = Settings::default();
    settings.retry_count = RetryCount::Limited(0);
    settings.restart_quarantine = Some(WINDOW);
    let redlock = Redlock::builder(nodes.clone())
        .settings(settings)
        .build()
        .unwrap();
    match block_on(redlock.acquire(&["r"], Duration::from_secs(5))) {
        Err(Error::NoQuorum(f)) => {
            let last = f.attempts.last().unwrap();
            let qs: Vec<_> = last.quarantined().map(|(_, q)| *q).collect();
            assert_eq!(qs, [Quarantine::Unverified, Quarantine::Unverified]);
        }
        other => panic!("expected NoQuorum, got {other:?}"),
    }
    assert_eq!(nodes[0].acquires() + nodes[1].acquires(), 0);
}

//! A release that announces itself runs the release script of each node's
//! pub/sub kind: `PUBLISH` on standalone nodes, `SPUBLISH` on a Redis
//! Cluster; and the plain release script when nobody may be told.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redlock_core::wake::{PubSubKind, ReleaseWaker};
use redlock_core::{
    async_trait, BackendError, LockBackend, MemoryBackend, Redlock, Reply, Request, Scripts,
};

/// A `MemoryBackend` that says which pub/sub it speaks and records the text
/// of every release script it is sent.
#[derive(Clone)]
struct Recording {
    node: MemoryBackend,
    kind: PubSubKind,
    releases: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn new(kind: PubSubKind) -> Self {
        Recording {
            node: MemoryBackend::new(),
            kind,
            releases: Arc::default(),
        }
    }

    fn release_scripts(&self) -> Vec<String> {
        self.releases.lock().unwrap().clone()
    }
}

#[async_trait]
impl LockBackend for Recording {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.node.acquire(request).await
    }
    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.node.extend(request).await
    }
    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.releases
            .lock()
            .unwrap()
            .push(request.script().text().to_owned());
        self.node.release(request).await
    }
    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        self.node.watch_releases(channels, waker).await
    }
    fn pubsub_kind(&self) -> PubSubKind {
        self.kind
    }
    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed("recording")
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn each_node_gets_the_release_script_of_its_pubsub_kind() {
    let nodes = [
        Recording::new(PubSubKind::Classic),
        Recording::new(PubSubKind::Sharded),
        Recording::new(PubSubKind::Classic),
    ];
    let redlock = Redlock::new(nodes.clone()).unwrap();
    assert!(redlock.settings().wake_on_release, "on by default");
    block_on(async {
        let lock = redlock
            .acquire(&["r"], Duration::from_secs(5))
            .await
            .unwrap();
        assert!(lock.release().await.unwrap().was_held());
    });
    let scripts = Scripts::default();
    let classic = scripts.release_notify().text();
    let sharded = scripts.release_notify_sharded().text();
    assert_ne!(classic, sharded);
    assert!(classic.contains("\"PUBLISH\"") && !classic.contains("SPUBLISH"));
    assert!(sharded.contains("\"SPUBLISH\"") && sharded.contains("SHARDNUMSUB"));
    assert_eq!(nodes[0].release_scripts(), vec![classic.to_owned()]);
    assert_eq!(nodes[1].release_scripts(), vec![sharded.to_owned()]);
    assert_eq!(nodes[2].release_scripts(), vec![classic.to_owned()]);
}

#[test]
fn without_wake_on_release_every_node_gets_the_plain_release() {
    let nodes = [
        Recording::new(PubSubKind::Sharded),
        Recording::new(PubSubKind::Classic),
        Recording::new(PubSubKind::Sharded),
    ];
    let redlock = Redlock::builder(nodes.clone())
        .wake_on_release(false)
        .build()
        .unwrap();
    block_on(async {
        let lock = redlock
            .acquire(&["r"], Duration::from_secs(5))
            .await
            .unwrap();
        lock.release().await.unwrap();
    });
    let plain = Scripts::default().release().text().to_owned();
    for node in &nodes {
        assert_eq!(node.release_scripts(), vec![plain.clone()]);
    }
}

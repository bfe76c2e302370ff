//! TLS without tokio: the test runs on `smol::block_on`, no tokio runtime is
//! current, so redis-rs runs on smol's async-io reactor with its rustls
//! support (feature `tls-rustls`), as in a smol or async-std application.
#![cfg(all(feature = "tls-rustls", feature = "smol"))]

use std::time::Duration;

use redlock_core::{LockBackend, Redlock};
use redlock_redis_rs::redis::TlsCertificates;
use redlock_redis_rs::RedisBackend;
use redlock_testkit::server::{AclUser, NodeOptions, RedisNode, TestCa};

#[test]
fn a_lock_over_tls_as_the_acl_user_under_smol() {
    let nodes: Vec<RedisNode> = (0..3)
        .map(|_| {
            RedisNode::start_with(NodeOptions::tls_as(AclUser::new("locker", "smol-pass")))
                .expect("a TLS node with an ACL user")
        })
        .collect();
    let ca = TestCa::shared().expect("the test CA");
    smol::block_on(async {
        let mut backends = Vec::new();
        for node in &nodes {
            let certificates = TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.cert_pem().as_bytes().to_vec()),
            };
            let backend = RedisBackend::connect_with_tls(node.url(), certificates)
                .await
                .expect("connect");
            assert!(backend.describe().starts_with("rediss://"));
            backends.push(backend);
        }
        let redlock = Redlock::builder(backends)
            .retry_count(3)
            .build()
            .expect("build");
        let lock = redlock
            .acquire(&["smol:tls"], Duration::from_secs(10))
            .await
            .expect("acquire over TLS under smol");
        let holders = nodes
            .iter()
            .filter(|n| n.probe().get("smol:tls").as_deref() == Some(lock.value()))
            .count();
        assert!(holders >= 2, "a quorum holds the lock: {holders} of 3");
        assert!(lock.release().await.expect("release").was_held());
        for node in &nodes {
            assert_eq!(node.probe().dbsize(), 0);
        }
    });
}

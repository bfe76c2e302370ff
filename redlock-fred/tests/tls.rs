//! TLS and ACL users, against real redis-server processes that the testkit
//! starts with TLS (certificates from its own CA) and an ACL user: what the
//! conformance suite over TLS (tests/conformance_tls.rs) does not look at.
#![cfg(feature = "tls-rustls")]

use std::time::Duration;

use redlock_core::{Error, ErrorKind, LockBackend, Redlock, Request, Scripts, TokioRuntime};
use redlock_fred::fred::rustls::pki_types::CertificateDer;
use redlock_fred::fred::rustls::{ClientConfig, RootCertStore};
use redlock_fred::FredBackend;
use redlock_testkit::server::{AclUser, NodeOptions, RedisNode, TestCa};

const PASSWORD: &str = "acl-pass-1";

fn tls_node() -> RedisNode {
    RedisNode::start_with(NodeOptions::tls_as(AclUser::new("locker", PASSWORD)))
        .expect("a TLS node with an ACL user")
}

fn trusting(ca: &TestCa) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .expect("the test CA is a valid root");
    ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn shared_ca() -> &'static TestCa {
    TestCa::shared().expect("the test CA")
}

fn request<'a>(keys: &'a [String], scripts: &'a Scripts) -> Request<'a> {
    Request::new(keys, "v", Duration::from_secs(10), scripts.acquire())
}

/// A backend call, bounded: a TLS or login failure must be an error, never
/// a hang.
async fn bounded<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[tokio::test]
async fn a_lock_over_tls_as_the_acl_user() {
    let node = tls_node();
    let backend = FredBackend::connect_with_tls(&node.url(), trusting(shared_ca()))
        .await
        .expect("connect");
    let tls_port = node.tls_port().expect("TLS");
    assert_eq!(
        backend.describe(),
        format!("rediss://locker@127.0.0.1:{tls_port}")
    );
    let redlock = Redlock::builder([backend])
        .runtime(TokioRuntime)
        .retry_count(3)
        .build()
        .expect("build");
    let lock = bounded(
        "acquire",
        redlock.acquire(&["tls:k"], Duration::from_secs(10)),
    )
    .await
    .expect("acquire over TLS");
    assert_eq!(node.probe().get("tls:k").as_deref(), Some(lock.value()));
    assert!(bounded("release", lock.release())
        .await
        .expect("release")
        .was_held());
    assert_eq!(node.probe().dbsize(), 0);
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_a_connection_error() {
    let node = tls_node();
    let stranger = TestCa::generate().expect("another CA");
    let scripts = Scripts::default();
    let keys = vec!["tls:untrusted".to_owned()];
    // A CA of our own that did not sign the node's certificate, and the
    // system's roots (`connect`), which know nothing of the test CA.
    for backend in [
        FredBackend::connect_with_tls(&node.url(), trusting(&stranger))
            .await
            .expect("lazy"),
        FredBackend::connect(&node.url()).await.expect("lazy"),
    ] {
        let err = bounded(
            "an untrusted handshake",
            backend.acquire(&request(&keys, &scripts)),
        )
        .await
        .expect_err("the server is not trusted");
        assert!(err.kind() == ErrorKind::Connection, "{err:?}");
        assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
    }
    assert_eq!(node.probe().dbsize(), 0, "nothing was written");
}

#[tokio::test]
async fn a_wrong_password_over_tls_is_an_auth_error_that_names_no_password() {
    let node = tls_node();
    let wrong = node.url_with_password("not-the-password");
    let backend = FredBackend::connect_with_tls(&wrong, trusting(shared_ca()))
        .await
        .expect("lazy");
    let scripts = Scripts::default();
    let keys = vec!["tls:wrong".to_owned()];
    let err = bounded(
        "a refused login",
        backend.acquire(&request(&keys, &scripts)),
    )
    .await
    .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        backend.describe().into_owned(),
    ] {
        assert!(!shown.contains("not-the-password"), "{shown}");
    }
    // Through the lock manager: rejected at once (Auth is permanent).
    let redlock = Redlock::builder([backend])
        .runtime(TokioRuntime)
        .retry_count(5)
        .build()
        .expect("build");
    let err = bounded(
        "acquire",
        redlock.acquire(&["tls:wrong"], Duration::from_secs(10)),
    )
    .await
    .expect_err("rejected");
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    assert!(!format!("{err:?}").contains("not-the-password"));
    assert_eq!(node.probe().dbsize(), 0, "nothing was written");
}

#[tokio::test]
async fn a_plain_url_with_a_tls_configuration_is_refused() {
    let node = tls_node();
    let plain = format!("redis://locker:{PASSWORD}@127.0.0.1:{}", node.port());
    let err = FredBackend::connect_with_tls(&plain, trusting(shared_ca()))
        .await
        .expect_err("redis:// is not TLS");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
}

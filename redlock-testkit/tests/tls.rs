//! TLS nodes and ACL users, against real redis-server processes. That a
//! client really talks TLS to them, trusting the test CA, is checked by the
//! adapters' own tests (tests/tls.rs and tests/conformance_tls.rs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use redlock_testkit::probe::{redis, Probe};
use redlock_testkit::server::{AclUser, LaunchError, NodeOptions, RedisNode};

fn whoami(probe: &Probe) -> redis::RedisResult<String> {
    probe.try_query(redis::cmd("ACL").arg("WHOAMI"))
}

fn tls_node() -> RedisNode {
    RedisNode::start_with(NodeOptions::tls_as(AclUser::new("locker", "locker-pass")))
        .expect("start a TLS node with an ACL user")
}

#[test]
fn a_tls_node_serves_rediss_urls_and_keeps_a_plain_admin_port() {
    let node = tls_node();
    let tls_port = node.tls_port().expect("a TLS port");
    assert_ne!(tls_port, node.port());
    assert_eq!(
        node.url(),
        format!("rediss://locker:locker-pass@127.0.0.1:{tls_port}")
    );
    assert_eq!(
        node.url_with_password("nope"),
        format!("rediss://locker:nope@127.0.0.1:{tls_port}")
    );

    // The testkit's own connection: plain TCP, as `default`.
    let admin = node.probe();
    let config: Vec<String> = admin.query(redis::cmd("CONFIG").arg("GET").arg("tls-port"));
    assert_eq!(config, ["tls-port".to_owned(), tls_port.to_string()]);
    assert!(
        node.admin_url().starts_with("redis://:"),
        "{}",
        node.admin_url()
    );
    assert_eq!(whoami(&admin).expect("admin"), "default");

    // The ACL user works on the plain port too (ACL users are per server).
    let user = Probe::new(&format!(
        "redis://locker:locker-pass@127.0.0.1:{}",
        node.port()
    ));
    assert_eq!(whoami(&user).expect("the user"), "locker");

    // Without credentials, nothing: `default` has a password.
    let anonymous = Probe::new(&format!("redis://127.0.0.1:{}", node.port()));
    let error = whoami(&anonymous).expect_err("no credentials");
    assert!(error.to_string().contains("NOAUTH"), "{error}");
    let wrong = Probe::new(&format!("redis://locker:nope@127.0.0.1:{}", node.port()));
    assert!(whoami(&wrong).is_err());

    // The TLS port does not speak plain RESP: a plain PING gets no PONG.
    let mut stream = TcpStream::connect(("127.0.0.1", tls_port)).expect("the TLS port listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").expect("write");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("PONG"),
        "the TLS port answered a plain PING"
    );

    // Its files: the CA and the server's certificate and key.
    for file in ["ca.crt", "server.crt", "server.key"] {
        assert!(node.dir().join(file).is_file(), "{file}");
    }
}

#[test]
fn a_restarted_tls_node_keeps_its_ports_and_user() {
    let node = tls_node();
    let (port, tls_port) = (node.port(), node.tls_port());
    node.restart().expect("restart");
    assert_eq!((node.port(), node.tls_port()), (port, tls_port));
    let user = Probe::new(&format!(
        "redis://locker:locker-pass@127.0.0.1:{}",
        node.port()
    ));
    assert_eq!(whoami(&user).expect("the user"), "locker");
}

#[test]
fn an_acl_user_without_tls_is_in_the_plain_url() {
    let node = RedisNode::start_with(NodeOptions {
        acl_user: Some(AclUser::new("locker", "pw-1").with_rules(["~*", "+@all"])),
        password: Some("admin-pw".into()),
        ..NodeOptions::default()
    })
    .expect("start");
    assert_eq!(node.tls_port(), None);
    assert_eq!(
        node.url(),
        format!("redis://locker:pw-1@127.0.0.1:{}", node.port())
    );
    assert_eq!(
        node.admin_url(),
        format!("redis://:admin-pw@127.0.0.1:{}", node.port())
    );
    assert_eq!(whoami(&Probe::new(&node.url())).expect("user"), "locker");
    assert_eq!(whoami(&node.probe()).expect("admin"), "default");
}

#[test]
fn credentials_that_need_quoting_are_refused() {
    for user in [
        AclUser::new("locker", "has space"),
        AclUser::new("lo:cker", "pw"),
        AclUser::new("locker", "p@ss"),
    ] {
        let error = RedisNode::start_with(NodeOptions {
            acl_user: Some(user),
            ..NodeOptions::default()
        })
        .expect_err("refused");
        assert!(matches!(error, LaunchError::InvalidArgument(_)), "{error}");
        assert!(!error.to_string().contains("has space"), "{error}");
    }
}

#[test]
fn the_lock_rules_refuse_everything_else() {
    let node = RedisNode::start_with(NodeOptions {
        acl_user: Some(AclUser::new("locker", "pw-2").with_rules(AclUser::LOCK.iter().copied())),
        ..NodeOptions::default()
    })
    .expect("start");
    let user = Probe::new(&node.url());
    let set: String = user.query(redis::cmd("SET").arg("k").arg("v"));
    assert_eq!(set, "OK");
    for refused in [redis::cmd("FLUSHALL"), redis::cmd("KEYS").arg("*").clone()] {
        let error = user
            .try_query::<redis::Value>(&refused)
            .expect_err("not in the lock's rules");
        assert!(
            error.to_string().to_lowercase().contains("noperm"),
            "{error}"
        );
    }
    assert_eq!(node.probe().dbsize(), 1, "FLUSHALL was refused");
}

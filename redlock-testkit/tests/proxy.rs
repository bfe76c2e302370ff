//! The fault proxy in front of a real redis-server: every mode, switched at
//! run time, seen through raw sockets and through the probe.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redlock_testkit::probe::Probe;
use redlock_testkit::proxy::{Direction, FaultProxy, Garbage, Latency, Mode};
use redlock_testkit::server::{NodeOptions, RedisNode};

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

fn node_and_proxy() -> (RedisNode, FaultProxy) {
    let node = RedisNode::start().expect("start a node");
    let proxy = FaultProxy::for_node(&node).expect("start a proxy");
    (node, proxy)
}

fn connect(proxy: &FaultProxy) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(
        &([127, 0, 0, 1], proxy.port()).into(),
        Duration::from_secs(2),
    )?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `request` and reads one chunk of answer within `timeout`.
fn ask(stream: &mut TcpStream, request: &[u8], timeout: Duration) -> std::io::Result<String> {
    stream.write_all(request)?;
    read_some(stream, timeout)
}

fn read_some(stream: &mut TcpStream, timeout: Duration) -> std::io::Result<String> {
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf)?;
    if n == 0 {
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed"));
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

#[test]
fn pass_through_forwards_both_ways() {
    let (node, proxy) = node_and_proxy();
    assert_ne!(proxy.port(), node.port());
    assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}", proxy.port()));
    assert_eq!(proxy.upstream().port(), node.port());
    assert_eq!(proxy.mode(), Mode::PassThrough);
    let through = Probe::new(&proxy.url());
    through.set_px("k", "v", 10_000);
    assert_eq!(node.probe().get("k").as_deref(), Some("v"));
    assert_eq!(through.get("k").as_deref(), Some("v"));
    // A large value crosses in many chunks, intact.
    let big = "x".repeat(300_000);
    through.set_px("big", &big, 10_000);
    assert_eq!(through.get("big").as_deref(), Some(big.as_str()));
    let stats = proxy.stats();
    assert!(stats.accepted >= 1 && stats.open >= 1, "{stats:?}");
    assert!(
        stats.bytes_up > 300_000 && stats.bytes_down > 300_000,
        "{stats:?}"
    );
}

#[test]
fn password_is_carried_by_for_node() {
    let node = RedisNode::start_with(NodeOptions {
        password: Some("pw".into()),
        ..NodeOptions::default()
    })
    .expect("start");
    let proxy = FaultProxy::for_node(&node).expect("proxy");
    assert_eq!(
        proxy.url(),
        format!("redis://:pw@127.0.0.1:{}", proxy.port())
    );
    assert!(Probe::new(&proxy.url()).ping());
    // A proxy made from an address alone has no password in its URL.
    let bare = FaultProxy::start(node.addr()).expect("proxy");
    assert!(
        !Probe::new(&bare.url()).ping(),
        "NOAUTH without the password"
    );
}

#[test]
fn latency_with_jitter_and_per_direction() {
    let (_node, proxy) = node_and_proxy();
    let mut stream = connect(&proxy).expect("connect");
    let rtt = |stream: &mut TcpStream| {
        let started = Instant::now();
        let answer = ask(stream, PING, Duration::from_secs(5)).expect("PONG");
        assert_eq!(answer, "+PONG\r\n");
        started.elapsed()
    };
    assert!(rtt(&mut stream) < Duration::from_millis(100));

    // 60 ms each way, ±20 ms: a round trip is 80..=160 ms.
    proxy.set_mode(Mode::Latency(
        Latency::new(Duration::from_millis(60)).jitter(Duration::from_millis(20)),
    ));
    let samples: Vec<Duration> = (0..8).map(|_| rtt(&mut stream)).collect();
    let min = samples.iter().min().copied().unwrap_or_default();
    let max = samples.iter().max().copied().unwrap_or_default();
    assert!(min >= Duration::from_millis(80), "{samples:?}");
    assert!(max < Duration::from_millis(400), "{samples:?}");

    // Only requests are delayed: 100 ms, not 200.
    proxy.set_mode(Mode::Latency(
        Latency::new(Duration::from_millis(100)).direction(Direction::ToServer),
    ));
    let one_way = rtt(&mut stream);
    assert!(
        one_way >= Duration::from_millis(100) && one_way < Duration::from_millis(190),
        "{one_way:?}"
    );
    proxy.heal();
    assert!(rtt(&mut stream) < Duration::from_millis(100));

    // Separate writes, each delayed by its own jitter, still arrive in order.
    proxy.latency(Duration::from_millis(5), Duration::from_millis(5));
    let through = Probe::new(&proxy.url());
    for i in 0..30 {
        through.set_px(&format!("k{i}"), &format!("{i:02}"), 10_000);
    }
    for i in 0..30 {
        let get = format!("*2\r\n$3\r\nGET\r\n${}\r\nk{i}\r\n", format!("k{i}").len());
        stream.write_all(get.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let expected: String = (0..30).map(|i| format!("$2\r\n{i:02}\r\n")).collect();
    let mut answers = String::new();
    while answers.len() < expected.len() {
        answers.push_str(&read_some(&mut stream, Duration::from_secs(5)).expect("answers"));
    }
    assert_eq!(answers, expected, "order kept");
}

#[test]
fn blackhole_holds_connections_and_heals_late() {
    let (_node, proxy) = node_and_proxy();
    let mut old = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut old, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );

    proxy.blackhole();
    assert_eq!(proxy.mode(), Mode::Blackhole);
    let e = ask(&mut old, PING, Duration::from_millis(300)).unwrap_err();
    assert!(is_timeout(&e), "an open connection answers nothing: {e}");
    // New connections are accepted, and answer nothing either.
    let mut new = connect(&proxy).expect("a blackholed proxy still accepts");
    let e = ask(&mut new, PING, Duration::from_millis(300)).unwrap_err();
    assert!(is_timeout(&e), "a new connection answers nothing: {e}");

    // Healed: what was sent meanwhile arrives, late, and nothing was lost.
    proxy.heal();
    assert_eq!(
        read_some(&mut old, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(
        read_some(&mut new, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(
        ask(&mut old, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
}

#[test]
fn reset_connections_once_keeps_the_mode() {
    let (_node, proxy) = node_and_proxy();
    let mut stream = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut stream, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    let before = proxy.stats().resets;
    proxy.reset_connections();
    let e = ask(&mut stream, PING, Duration::from_secs(2)).unwrap_err();
    assert!(is_reset(&e), "the open connection was reset: {e:?}");
    assert!(proxy.stats().resets > before);
    assert_eq!(proxy.mode(), Mode::PassThrough);
    let mut again = connect(&proxy).expect("reconnect");
    assert_eq!(
        ask(&mut again, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
}

#[test]
fn keep_resetting_resets_new_connections_until_healed() {
    let (_node, proxy) = node_and_proxy();
    let mut open = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut open, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    proxy.keep_resetting();
    let e = ask(&mut open, PING, Duration::from_secs(2)).unwrap_err();
    assert!(is_reset(&e), "{e:?}");
    for _ in 0..3 {
        let result = connect(&proxy).and_then(|mut s| ask(&mut s, PING, Duration::from_secs(2)));
        let e = result.expect_err("every new connection is reset");
        assert!(
            is_reset(&e) || e.kind() == ErrorKind::UnexpectedEof,
            "{e:?}"
        );
    }
    assert!(!Probe::new(&proxy.url()).ping());
    proxy.heal();
    assert!(Probe::new(&proxy.url()).ping());
}

#[test]
fn cut_off_refuses_and_heals_on_the_same_port() {
    let (_node, proxy) = node_and_proxy();
    let mut open = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut open, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    let port = proxy.port();
    proxy.cut_off();
    let refused = connect(&proxy).expect_err("refused");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused:?}");
    let e = ask(&mut open, PING, Duration::from_secs(2)).unwrap_err();
    assert!(is_reset(&e), "the open connection was reset: {e:?}");
    // Nobody else gets the port meanwhile.
    for _ in 0..500 {
        let other = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        assert_ne!(other.local_addr().unwrap().port(), port);
    }
    proxy.heal();
    assert_eq!(proxy.port(), port);
    let mut again = connect(&proxy).expect("listening again");
    assert_eq!(
        ask(&mut again, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
}

#[test]
fn garbage_answers_scripts_with_non_integers_and_reaches_no_node() {
    let (node, proxy) = node_and_proxy();
    let mut open = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut open, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    proxy.garbage();
    let e = ask(&mut open, PING, Duration::from_secs(2)).unwrap_err();
    assert!(
        is_reset(&e),
        "entering garbage mode resets open connections: {e:?}"
    );

    let evalsha = b"*5\r\n$7\r\nEVALSHA\r\n$40\r\n0123456789012345678901234567890123456789\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\nv\r\n";
    let mut stream = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut stream, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    assert_eq!(
        ask(&mut stream, evalsha, Duration::from_secs(2)).unwrap(),
        "+OK\r\n"
    );
    assert_eq!(
        ask(
            &mut stream,
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
            Duration::from_secs(2)
        )
        .unwrap(),
        "+OK\r\n"
    );
    // Two commands in one write get two answers.
    let mut both = evalsha.to_vec();
    both.extend_from_slice(evalsha);
    stream.write_all(&both).unwrap();
    let mut answers = String::new();
    while answers.len() < 10 {
        answers.push_str(&read_some(&mut stream, Duration::from_secs(2)).unwrap());
    }
    assert_eq!(answers, "+OK\r\n+OK\r\n");

    proxy.set_mode(Mode::Garbage(Garbage::Bulk));
    let mut stream = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut stream, evalsha, Duration::from_secs(2)).unwrap(),
        "$7\r\ngarbage\r\n"
    );
    proxy.set_mode(Mode::Garbage(Garbage::Raw(b"?!\r\n".to_vec())));
    let mut stream = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut stream, evalsha, Duration::from_secs(2)).unwrap(),
        "?!\r\n"
    );
    assert!(proxy.stats().garbage_replies >= 5);
    assert_eq!(
        node.probe().command_calls("evalsha"),
        0,
        "nothing reached the node"
    );

    proxy.heal();
    let e = ask(&mut stream, PING, Duration::from_secs(2)).unwrap_err();
    assert!(
        is_reset(&e),
        "leaving garbage mode resets its connections: {e:?}"
    );
    assert!(Probe::new(&proxy.url()).ping());
}

#[test]
fn upstream_down_resets_and_drop_stops_the_proxy() {
    let (node, proxy) = node_and_proxy();
    node.kill();
    let e = connect(&proxy)
        .and_then(|mut s| ask(&mut s, PING, Duration::from_secs(3)))
        .expect_err("no upstream");
    assert!(
        is_reset(&e) || e.kind() == ErrorKind::UnexpectedEof,
        "{e:?}"
    );
    node.restart().expect("restart");
    let mut stream = connect(&proxy).expect("connect");
    assert_eq!(
        ask(&mut stream, PING, Duration::from_secs(2)).unwrap(),
        "+PONG\r\n"
    );
    let port = proxy.port();
    let started = Instant::now();
    drop(proxy);
    assert!(started.elapsed() < Duration::from_secs(3), "drop is prompt");
    let e = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
        .expect_err("a dropped proxy listens no more");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    assert!(
        read_some(&mut stream, Duration::from_secs(2)).is_err(),
        "its connections are closed"
    );
}

#[test]
fn a_switch_during_traffic_is_applied_before_it_returns() {
    let (_node, proxy) = node_and_proxy();
    let handle = proxy.handle();
    let through = Probe::new(&proxy.url());
    let worker = std::thread::spawn(move || {
        let mut ok = 0;
        for _ in 0..200 {
            if through.try_ping().is_ok() {
                ok += 1;
            }
        }
        ok
    });
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        handle.latency(Duration::from_millis(1), Duration::from_millis(1));
        handle.reset_connections();
        handle.heal();
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "three switches took {slowest:?}: a connection did not acknowledge them"
    );
    let ok = worker.join().expect("worker");
    assert!(ok > 0);
    // Quiet again: every connection acknowledged every switch.
    let started = Instant::now();
    proxy.blackhole();
    proxy.heal();
    assert!(started.elapsed() < Duration::from_secs(1));
}

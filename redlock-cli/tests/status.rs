//! End to end: `redlock status` against real redis-server nodes started by
//! redlock-testkit, with locks taken through the library.

mod support;

use redlock_testkit::server::RedisNodes;

use support::{both, code, hold, library, output, redlock, runtime, stdout};

/// The TTL `status` printed on one line (`... held, ttl 599.873s; ...`), in
/// seconds.
fn ttl_on(line: &str) -> f64 {
    let after = line
        .split_once("held, ttl ")
        .unwrap_or_else(|| panic!("no ttl on {line:?}"))
        .1;
    let secs = after
        .split_once('s')
        .unwrap_or_else(|| panic!("no seconds on {line:?}"))
        .0;
    secs.parse()
        .unwrap_or_else(|e| panic!("ttl {secs:?} on {line:?}: {e}"))
}

#[test]
fn status_shows_a_lock_held_by_a_quorum_then_free_after_release() {
    let nodes = RedisNodes::start(3).expect("start 3 redis-server nodes");
    let urls = nodes.urls();
    let rt = runtime();
    let redlock_lib = rt.block_on(library(&urls));
    let lock = rt.block_on(hold(&redlock_lib, "job:status"));
    let token = lock.fencing_token().expect("a fenced lock has a token");

    // The acquisition returns once a quorum took the lock; the last node's
    // SET may land later or not at all. Each node's key is read before and
    // after the status: a key there before must show as held, a key missing
    // after as free.
    let holding = || -> Vec<bool> {
        nodes
            .iter()
            .map(|n| n.probe().exists("job:status"))
            .collect()
    };
    let before = holding();
    let out = output(redlock(&urls).args(["status", "--timeout", "20s", "job:status"]));
    let after = holding();
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let verdict = lines.next().unwrap_or_default();
    assert!(
        verdict.starts_with("HELD: job:status is held by a quorum: "),
        "{text}"
    );
    let per_node: Vec<&str> = lines.collect();
    assert_eq!(per_node.len(), 3, "one line per node:\n{text}");
    let mut held = 0;
    for (i, (line, url)) in per_node.iter().zip(&urls).enumerate() {
        assert!(line.contains(url.as_str()), "names {url}: {line}");
        assert!(line.contains("job:status"), "{line}");
        if line.contains(" held, ttl ") {
            assert!(after[i], "held only where the key is: {line}");
            held += 1;
            let ttl = ttl_on(line);
            assert!(
                ttl > 0.0 && ttl <= 600.0,
                "ttl {ttl} within the lock's 600s: {line}"
            );
        } else {
            assert!(line.contains(" free; "), "held or free: {line}");
            assert!(!before[i], "free only where the key is not: {line}");
        }
        // The token is written back on the quorum that voted for it; a
        // node the acquisition did not wait for may not have it.
        assert!(
            line.ends_with(&format!("; fence counter {token}"))
                || line.ends_with("; no fence counter"),
            "a fence counter, if any, is the lock's token {token}: {line}"
        );
    }
    assert!(held >= 2, "a quorum holds it:\n{text}");
    assert!(
        verdict.contains(&format!(
            ": {held} of 3 nodes hold it under one value (quorum 2)"
        )),
        "the verdict counts the held lines:\n{text}"
    );
    let fenced = |text: &str| {
        text.lines()
            .filter(|l| l.ends_with(&format!("; fence counter {token}")))
            .count()
    };
    assert!(
        fenced(&text) >= 2,
        "a quorum shows the token {token} as its fence counter:\n{text}"
    );
    assert!(
        !text.contains(lock.value()),
        "the lock value is never printed:\n{text}"
    );

    // The same as JSON, for scripts.
    let out = output(redlock(&urls).args(["status", "--json", "--timeout", "20s", "job:status"]));
    let after_json = holding();
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(!text.contains(lock.value()), "no lock value:\n{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
    assert_eq!(json["verdict"], "held", "{json}");
    assert_eq!(json["quorum"], 2, "{json}");
    let per_node = json["nodes"].as_array().expect("nodes");
    assert_eq!(per_node.len(), 3, "{json}");
    let mut held = 0;
    for (i, node) in per_node.iter().enumerate() {
        assert_eq!(node["node"], urls[i].as_str(), "{json}");
        let key = &node["keys"][0];
        assert_eq!(key["resource"], "job:status", "{json}");
        if key["state"] == "held" {
            assert!(after_json[i], "{json}");
            held += 1;
            let ttl = key["ttl_ms"].as_u64().expect("a TTL in ms");
            assert!(ttl > 0 && ttl <= 600_000, "{json}");
        } else {
            assert_eq!(key["state"], "free", "{json}");
        }
        assert!(key["fence"].is_null() || key["fence"] == token, "{json}");
    }
    assert!(held >= 2, "{json}");
    assert_eq!(json["nodes_holding"], held, "{json}");

    rt.block_on(lock.release()).expect("release");
    // A release may return before its last node answered: wait for the
    // keys to be gone everywhere (an event, polled with a long deadline).
    let start = std::time::Instant::now();
    while holding().iter().any(|&h| h) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "the released keys never disappeared: {:?}",
            holding()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = output(redlock(&urls).args(["status", "--timeout", "20s", "job:status"]));
    assert_eq!(code(&out), Some(0), "free is not an error: {}", both(&out));
    let text = stdout(&out);
    assert!(text.starts_with("FREE: job:status is not held"), "{text}");
    let free = text.lines().filter(|l| l.contains(" free; ")).count();
    assert_eq!(free, 3, "every node free:\n{text}");
    assert!(
        fenced(&text) >= 2,
        "the fence counters outlive the lock:\n{text}"
    );
}

#[test]
fn status_needs_a_quorum_of_readable_nodes() {
    let nodes = RedisNodes::start(3).expect("start 3 redis-server nodes");
    let urls = nodes.urls();
    let rt = runtime();
    let redlock_lib = rt.block_on(library(&urls));
    let lock = rt.block_on(hold(&redlock_lib, "job:q"));

    // One node down: the other two still make a quorum, and hold the lock.
    // (The acquisition returned once a quorum took it: the node to stop is
    // one without the key, if there is one.)
    let spare = (0..3)
        .find(|&i| !nodes.nodes()[i].probe().exists("job:q"))
        .unwrap_or(2);
    let second = (spare + 1) % 3;
    nodes.nodes()[spare].kill();
    let out = output(redlock(&urls).args(["status", "--timeout", "20s", "job:q"]));
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("HELD: job:q is held by a quorum: 2 of 3"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(urls[spare].as_str()) && l.contains("not read")),
        "the dead node is named as not read:\n{text}"
    );

    // Two down: one node cannot tell; 69, and the output says why.
    nodes.nodes()[second].kill();
    let out = output(redlock(&urls).args(["status", "--timeout", "20s", "job:q"]));
    assert_eq!(code(&out), Some(69), "{}", both(&out));
    assert!(stdout(&out).starts_with("UNKNOWN: "), "{}", both(&out));
    assert!(
        support::stderr(&out).contains("fewer than a quorum"),
        "{}",
        both(&out)
    );
    drop(lock);
}

#[test]
fn status_bad_usage_is_64_and_a_password_never_shows() {
    let nodes = ["redis://127.0.0.1:1".to_owned()];
    for args in [
        &["status"][..],                        // no resource
        &["status", ""],                        // a name the lock refuses
        &["status", "a", "a"],                  // the same resource twice
        &["status", "--timeout", "ten", "job"], // bad duration
        &["status", "--timeout", "0s", "job"],  // no time to answer
    ] {
        let out = output(redlock(&nodes).args(args));
        assert_eq!(code(&out), Some(64), "{args:?}: {}", both(&out));
    }
    let out = output(redlock(&[]).args(["status", "job"]));
    assert_eq!(code(&out), Some(64), "no nodes: {}", both(&out));

    // A node that wants a password, asked with a wrong one: not read (69),
    // and neither password appears.
    let node =
        redlock_testkit::server::RedisNode::start_with(redlock_testkit::server::NodeOptions {
            password: Some("right-pw-4711".to_owned()),
            ..Default::default()
        })
        .expect("start a node with requirepass");
    let wrong = format!("redis://:wrong-pw-0815@{}", node.addr());
    let out = output(redlock(&[wrong]).args(["status", "--timeout", "20s", "job"]));
    assert_eq!(code(&out), Some(69), "{}", both(&out));
    let all = both(&out);
    assert!(all.contains("not read"), "{all}");
    assert!(
        !all.contains("wrong-pw-0815") && !all.contains("right-pw-4711"),
        "{all}"
    );
}

//! End to end: `redlock doctor` against real redis-server nodes started by
//! redlock-testkit, healthy and deliberately misconfigured.

mod support;

use redlock::redis_rs::redis;
use redlock_testkit::server::{NodeOptions, RedisNode, RedisNodes};

use support::{both, code, output, redlock, stdout};

/// `redlock doctor` with patient limits: a loaded machine must not turn a
/// slow answer into a failed or warned check.
fn doctor(urls: &[String]) -> std::process::Command {
    let mut cmd = redlock(urls);
    cmd.args(["doctor", "--timeout", "20s", "--clock-tolerance", "10s"]);
    cmd
}

/// Nodes as Redlock wants them: AOF with `appendfsync always`, and the
/// default `noeviction`.
fn healthy_nodes(n: usize) -> RedisNodes {
    RedisNodes::start_with(
        n,
        NodeOptions {
            persistence: true,
            ..NodeOptions::default()
        },
    )
    .expect("start redis-server nodes")
}

/// The printed lines that start with `FAIL`.
fn fail_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("FAIL ")).collect()
}

#[test]
fn doctor_passes_a_healthy_set() {
    let nodes = healthy_nodes(3);
    let urls = nodes.urls();
    let out = output(&mut doctor(&urls));
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(fail_lines(&text).is_empty(), "{text}");
    for url in &urls {
        assert!(
            text.contains(&format!("ok   persistence   {url}: ")),
            "{url}'s AOF is checked:\n{text}"
        );
        assert!(
            text.contains(&format!("ok   eviction      {url}: ")),
            "{url}'s policy is checked:\n{text}"
        );
    }
    let summary = text.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("summary: 0 FAIL, 0 WARN, ") && summary.ends_with(": passed"),
        "{text}"
    );

    // With a restart quarantine the uptime check applies: nodes just
    // started are younger than an hour, a warning that does not fail.
    let out = output(doctor(&urls).args(["--restart-quarantine", "1h"]));
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    let text = stdout(&out);
    for url in &urls {
        assert!(
            text.contains(&format!("WARN uptime        {url}: ")),
            "{url} is younger than the quarantine:\n{text}"
        );
    }
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .ends_with("passed, with warnings"),
        "{text}"
    );
}

#[test]
fn doctor_fails_an_evicting_policy_naming_the_node() {
    let nodes = healthy_nodes(3);
    let urls = nodes.urls();
    nodes.nodes()[1].probe().query::<()>(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("allkeys-lru"),
    );
    let out = output(&mut doctor(&urls));
    assert_eq!(code(&out), Some(1), "{}", both(&out));
    let text = stdout(&out);
    let fails = fail_lines(&text);
    assert_eq!(fails.len(), 1, "only the eviction check fails:\n{text}");
    assert!(
        fails[0].starts_with(&format!("FAIL eviction      {}: ", urls[1])),
        "names the evicting node:\n{text}"
    );
    assert!(fails[0].contains("allkeys-lru"), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .starts_with("summary: 1 FAIL, "),
        "{text}"
    );
}

#[test]
fn doctor_fails_a_server_listed_twice_under_two_urls() {
    let nodes = healthy_nodes(2);
    let urls = nodes.urls();
    // The same server as node 0, under another name: nodes.rs refuses the
    // same URL twice (usage), the doctor catches this by its run_id.
    let alias = format!("redis://localhost:{}", nodes.nodes()[0].port());
    let listed = vec![urls[0].clone(), urls[1].clone(), alias.clone()];
    let out = output(&mut doctor(&listed));
    assert_eq!(code(&out), Some(1), "{}", both(&out));
    let text = stdout(&out);
    let fails = fail_lines(&text);
    assert_eq!(fails.len(), 2, "both entries of the server fail:\n{text}");
    for (fail, name) in fails.iter().zip([&urls[0], &alias]) {
        assert!(
            fail.starts_with(&format!("FAIL independence  {name}: ")),
            "{name}:\n{text}"
        );
    }
    assert!(
        fails[1].contains("run_id") && fails[1].contains(urls[0].as_str()),
        "says which node it duplicates, and how it knows:\n{text}"
    );
    assert!(
        text.contains(&format!("ok   independence  {}: ", urls[1])),
        "{text}"
    );
}

#[test]
fn doctor_never_prints_a_password() {
    let node = RedisNode::start_with(NodeOptions {
        password: Some("right-pw-4711".to_owned()),
        persistence: true,
        ..NodeOptions::default()
    })
    .expect("start a node with requirepass");

    // The right password: inspected (one node warns for the set, no failure).
    let out = output(&mut doctor(&[node.url()]));
    assert_eq!(code(&out), Some(0), "{}", both(&out));
    let all = both(&out);
    assert!(all.contains("ok   eviction"), "{all}");
    assert!(!all.contains("right-pw-4711"), "{all}");

    // A wrong one: unreachable is a failure, and neither password shows.
    let wrong = format!("redis://:wrong-pw-0815@{}", node.addr());
    let out = output(&mut doctor(&[wrong]));
    assert_eq!(code(&out), Some(1), "{}", both(&out));
    let all = both(&out);
    assert!(all.contains("FAIL reachable"), "{all}");
    assert!(
        !all.contains("wrong-pw-0815") && !all.contains("right-pw-4711"),
        "{all}"
    );
}

#[test]
fn doctor_bad_usage_is_64_and_help_lists_every_subcommand() {
    let nodes = ["redis://127.0.0.1:1".to_owned()];
    for args in [
        &["doctor", "--timeout", "ten"][..],
        &["doctor", "--timeout", "0s"],
        &["doctor", "--restart-quarantine", "0s"],
        &["doctor", "--clock-tolerance", "soon"],
        &["doctor", "extra"],
    ] {
        let out = output(redlock(&nodes).args(args));
        assert_eq!(code(&out), Some(64), "{args:?}: {}", both(&out));
    }
    let out = output(redlock(&[]).arg("doctor"));
    assert_eq!(code(&out), Some(64), "no nodes: {}", both(&out));

    let help = output(redlock(&[]).arg("--help"));
    assert_eq!(code(&help), Some(0), "{}", both(&help));
    let help = stdout(&help);
    for line in ["  run ", "  status ", "  doctor "] {
        assert!(help.contains(line), "{line:?} listed:\n{help}");
    }
    for args in [["status", "--help"], ["doctor", "--help"]] {
        let out = output(redlock(&[]).args(args));
        assert_eq!(code(&out), Some(0), "{args:?}");
        assert!(stdout(&out).contains("Exit status:"), "{}", both(&out));
    }
}

//! The Lua scripts: the `EVALSHA` fallback and custom scripts.

use std::time::Duration;

use redlock_core::scripts::{ACQUIRE_LUA, EXTEND_LUA, RELEASE_LUA};
use redlock_core::{Script, Scripts};

use super::case::{expect_lock, Case};
use super::support::build;
use crate::fixture::Fixture;

/// After `SCRIPT FLUSH` the adapter's `EVALSHA` gets `NOSCRIPT` and must fall
/// back to `EVAL`: acquire, extend and release keep working.
pub async fn noscript_fallback<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "noscript_fallback", 1) else {
        return;
    };
    let key = case.key("resource");
    let probe = case.redis(0);
    let redlock = case.redlock().await;

    // Warm up so the scripts are cached, then forget them.
    let warm = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "first acquire",
    );
    assert!(warm.release().await.expect("first release").was_held());
    assert!(
        probe.command_calls("evalsha") >= 1,
        "a Redis adapter sends its scripts by EVALSHA (with an EVAL fallback on NOSCRIPT); \
         the node saw no EVALSHA"
    );

    probe.script_flush();
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire after SCRIPT FLUSH (NOSCRIPT must fall back to EVAL)",
    );
    assert_eq!(probe.get(&key).as_deref(), Some(lock.value()));
    probe.script_flush();
    let lock = lock
        .extend(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("extend after SCRIPT FLUSH: {e:?}"));
    probe.script_flush();
    let release = lock
        .release()
        .await
        .unwrap_or_else(|e| panic!("release after SCRIPT FLUSH: {e:?}"));
    assert!(
        release.was_held(),
        "release after SCRIPT FLUSH: {release:?}"
    );
    assert_eq!(probe.get(&key), None);
    case.finish().await;
}

/// Custom acquire, extend and release scripts reach the node: each one here
/// does something observable besides the lock (marker keys), and the markers
/// are checked on the node.
pub async fn custom_scripts<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "custom_scripts", 1) else {
        return;
    };
    let key = case.key("resource");
    let acquired = case.key("custom-ran");
    let extended = case.key("custom-extend-ran");
    let view = case
        .inspect(0)
        .expect("the fixture provides inspection (a need of this case)");

    let scripts = Scripts::default()
        .with_acquire(Script::new(format!(
            "redis.call('SET', '{acquired}', '1', 'PX', 60000)\n{ACQUIRE_LUA}"
        )))
        .with_extend(Script::new(format!(
            "redis.call('SET', '{extended}', '1', 'PX', 60000)\n{EXTEND_LUA}"
        )))
        .with_release(Script::new(format!(
            "redis.call('DEL', '{acquired}', '{extended}')\n{RELEASE_LUA}"
        )));
    let redlock = build(case.builder().await.scripts(scripts));

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire with a custom script",
    );
    assert_eq!(view.value(&key).as_deref(), Some(lock.value()));
    assert_eq!(
        view.value(&acquired).as_deref(),
        Some("1"),
        "the custom acquire script must run on the node (it sets {acquired}); was the built-in one sent?"
    );
    assert!(
        view.ttl_millis(&acquired).is_some_and(|ms| ms > 0),
        "the marker was set with PX"
    );
    assert_eq!(view.value(&extended), None);

    let lock = lock
        .extend(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("extend with a custom script: {e:?}"));
    assert_eq!(
        view.value(&extended).as_deref(),
        Some("1"),
        "the custom extend script must run on the node (it sets {extended})"
    );

    let release = lock.release().await.expect("release with a custom script");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(view.value(&key), None);
    assert_eq!(
        (view.value(&acquired), view.value(&extended)),
        (None, None),
        "the custom release script must run on the node (it deletes both markers)"
    );
    case.finish().await;
}

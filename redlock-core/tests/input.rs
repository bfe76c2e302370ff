//! Every bad input gets a typed error, and nothing reaches any node.

mod common;

use std::time::Duration;

use common::{builder, nodes, Virtual};
use redlock_core::{
    ConfigError, Error, InvalidInput, MemoryBackend, Redlock, RetryCount, Settings,
    MAX_RESOURCE_LEN, MAX_TTL,
};

#[tokio::test(start_paused = true)]
async fn bad_resources_and_ttls_are_typed_and_send_nothing() {
    let nodes = nodes(3);
    let redlock = builder(&nodes).build().unwrap();
    let long = "x".repeat(MAX_RESOURCE_LEN + 1);
    let empty: [&str; 0] = [];
    let second = Duration::from_secs(1);
    type Check = fn(&InvalidInput) -> bool;
    let cases: Vec<(Result<_, Error>, Check)> = vec![
        (redlock.acquire(&empty, second).await, |e| {
            *e == InvalidInput::NoResources
        }),
        (redlock.acquire(&["a", ""], second).await, |e| {
            *e == InvalidInput::EmptyResource { index: 1 }
        }),
        (redlock.acquire(&["a", "b", "a"], second).await, |e| {
            *e == InvalidInput::DuplicateResource("a".into())
        }),
        (redlock.acquire(&[long.as_str()], second).await, |e| {
            matches!(e, InvalidInput::ResourceTooLong { index: 0, .. })
        }),
        (redlock.acquire(&["a"], Duration::ZERO).await, |e| {
            *e == InvalidInput::ZeroTtl
        }),
        (
            redlock.acquire(&["a"], Duration::from_micros(900)).await,
            |e| *e == InvalidInput::ZeroTtl,
        ),
        (
            redlock.acquire(&["a"], Duration::from_millis(2)).await,
            |e| matches!(e, InvalidInput::TtlTooShort { .. }),
        ),
        (
            redlock
                .acquire(&["a"], MAX_TTL + Duration::from_millis(1))
                .await,
            |e| matches!(e, InvalidInput::TtlTooLong { .. }),
        ),
        (redlock.acquire(&["a"], Duration::MAX).await, |e| {
            matches!(e, InvalidInput::TtlTooLong { .. })
        }),
    ];
    for (i, (result, expected)) in cases.into_iter().enumerate() {
        match result {
            Err(Error::InvalidInput(e)) => assert!(expected(&e), "case {i}: {e}"),
            other => panic!("case {i}: {other:?}"),
        }
    }
    // Extending with a bad TTL is refused the same way.
    let lock = redlock.acquire(&["a"], second).await.unwrap();
    let before = nodes[0].calls().len();
    assert!(matches!(
        lock.extend(Duration::ZERO).await,
        Err(Error::InvalidInput(InvalidInput::ZeroTtl))
    ));
    assert_eq!(nodes[0].calls().len(), before);
    lock.release().await.unwrap();
    let sent = nodes[0].calls().len();
    assert_eq!(
        sent, 2,
        "only the valid acquire and its release reached the node"
    );
}

#[test]
fn bad_configuration_is_typed() {
    let none: Vec<MemoryBackend> = Vec::new();
    assert!(matches!(
        Redlock::new(none),
        Err(Error::InvalidConfig(ConfigError::NoBackends))
    ));
    let one = || vec![MemoryBackend::new()];
    for factor in [-0.1, 1.0, f64::NAN, f64::INFINITY] {
        let result = Redlock::builder(one()).drift_factor(factor).build();
        assert!(
            matches!(
                result,
                Err(Error::InvalidConfig(ConfigError::DriftFactor(_)))
            ),
            "{factor}: {result:?}"
        );
    }
    let result = Redlock::builder(one()).node_timeout(Duration::ZERO).build();
    assert!(matches!(
        result,
        Err(Error::InvalidConfig(ConfigError::ZeroNodeTimeout))
    ));
    let result = Redlock::builder(one())
        .retry_delay(Duration::from_secs(7200))
        .build();
    assert!(matches!(
        result,
        Err(Error::InvalidConfig(ConfigError::DurationTooLong {
            name: "retry_delay",
            ..
        }))
    ));
    let result = Redlock::builder(one()).retry_jitter(Duration::MAX).build();
    assert!(matches!(
        result,
        Err(Error::InvalidConfig(ConfigError::DurationTooLong {
            name: "retry_jitter",
            ..
        }))
    ));
    let mut settings = Settings::default();
    settings.attempt_history = 0;
    let result = Redlock::builder(one()).settings(settings).build();
    assert!(matches!(
        result,
        Err(Error::InvalidConfig(ConfigError::ZeroAttemptHistory))
    ));
    assert!(Redlock::builder(one())
        .retry_count(RetryCount::Unlimited)
        .build()
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn per_call_settings_are_validated_before_anything_is_sent() {
    let nodes = nodes(1);
    let redlock = builder(&nodes).build().unwrap();
    let mut settings = redlock.settings().clone();
    settings.drift_factor = 2.0;
    let result = redlock
        .acquire_with(&["a"], Duration::from_secs(1), &settings)
        .await;
    assert!(matches!(
        result,
        Err(Error::InvalidConfig(ConfigError::DriftFactor(_)))
    ));
    assert!(nodes[0].calls().is_empty());
    let _ = Virtual;
}

#[test]
fn errors_say_what_to_do_next() {
    let e = Error::from(InvalidInput::NoResources);
    assert!(e.to_string().contains("pass at least one resource"), "{e}");
    let e = Error::from(ConfigError::NoBackends);
    assert!(
        e.to_string()
            .contains("one backend per independent Redis node"),
        "{e}"
    );
}

//! The algorithm needs no particular executor: the same flows run under the
//! futures executor and under smol, on the runtime-neutral timer.

use std::time::Duration;

use redlock_core::{Error, MemoryBackend, Redlock};

async fn flow() -> Result<(), Error> {
    let nodes = [
        MemoryBackend::new(),
        MemoryBackend::new(),
        MemoryBackend::new(),
    ];
    let redlock = Redlock::builder(nodes.clone())
        .retry_count(2)
        .retry_delay(Duration::from_millis(10))
        .retry_jitter(Duration::from_millis(5))
        // Timers alone: every attempt after the first is one of the retries.
        .wake_on_release(false)
        .build()?;
    let lock = redlock.acquire(&["r"], Duration::from_millis(300)).await?;
    // A contender retries on real timers, then gives up.
    let contender = redlock.acquire(&["r"], Duration::from_millis(300)).await;
    assert!(matches!(contender, Err(Error::Held(_))));
    assert_eq!(
        contender.unwrap_err().failure().unwrap().attempts.total(),
        3
    );
    let lock = lock.extend(Duration::from_millis(300)).await?;
    assert!(lock.release().await?.was_held());
    // using() extends on real timers: 150 ms threshold on a 300 ms TTL, 500 ms of work.
    let mut settings = redlock.settings().clone();
    settings.automatic_extension_threshold = Duration::from_millis(150);
    let probe = nodes[0].clone();
    let held = redlock
        .using_with(
            &["u"],
            Duration::from_millis(300),
            &settings,
            |signal| async move {
                futures_timer::Delay::new(Duration::from_millis(500)).await;
                Ok::<_, Error>(probe.get("u").is_some() && !signal.is_aborted())
            },
        )
        .await?;
    assert!(held, "extended past its first TTL");
    assert!(nodes.iter().all(MemoryBackend::is_empty));
    Ok(())
}

#[test]
fn runs_on_the_futures_executor() {
    futures::executor::block_on(flow()).unwrap();
}

#[test]
fn runs_on_smol() {
    smol::block_on(flow()).unwrap();
}

#[test]
fn runs_on_a_multi_threaded_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(flow()).unwrap();
}

#[cfg(feature = "tokio")]
#[test]
fn the_tokio_runtime_falls_back_outside_tokio() {
    // Feature unification can turn `tokio` on in a smol program: the default
    // runtime is then TokioRuntime, which must not panic outside tokio.
    let nodes = [MemoryBackend::new()];
    let redlock = Redlock::builder(nodes)
        .runtime(redlock_core::TokioRuntime)
        .build()
        .unwrap();
    smol::block_on(async {
        redlock_core::Runtime::sleep(&redlock_core::TokioRuntime, Duration::from_millis(5)).await;
        let lock = redlock
            .acquire(&["r"], Duration::from_millis(300))
            .await
            .unwrap();
        lock.release().await.unwrap();
    });
}

//! The conformance suite on redis-rs under tokio: real single nodes, 3 and 5
//! independent nodes, and a Redis Cluster, through `RedisRsConnector`.
//! The same suite runs under smol in tests/conformance_smol.rs.
#![cfg(feature = "tokio")]

mod common;

/// A current-thread runtime.
mod tokio_current_thread {
    redlock_testkit::conformance_tests!(
        connector = crate::common::RedisRsConnector,
        block_on = redlock_testkit::block_on_tokio,
    );
}

/// A multi-thread runtime: redis-rs's connection tasks run on other workers.
mod tokio_multi_thread {
    redlock_testkit::conformance_tests!(
        connector = crate::common::RedisRsConnector,
        block_on = redlock_testkit::block_on_tokio_multi_thread,
    );
}

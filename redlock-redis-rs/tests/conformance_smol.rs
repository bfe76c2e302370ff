//! The conformance suite on redis-rs without tokio: the test runs on
//! `smol::block_on`, no tokio runtime is current, so redis-rs runs on smol's
//! async-io reactor (feature `smol`) and the core on its runtime-neutral timer.
//! async-std users run exactly this configuration.
#![cfg(feature = "smol")]

mod common;

mod smol_block_on {
    redlock_testkit::conformance_tests!(
        connector = crate::common::RedisRsConnector,
        block_on = smol::block_on,
    );
}

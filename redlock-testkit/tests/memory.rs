//! The node-independent conformance cases on `redlock_core::MemoryBackend`.

redlock_testkit::node_independent_tests!(
    new_node = redlock_core::MemoryBackend::new,
    block_on = redlock_testkit::block_on_futures,
);

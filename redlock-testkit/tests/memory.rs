//! The conformance suite on `redlock_core::MemoryBackend`, in process: every
//! case a fixture without real servers can run (faults emulated), with
//! MemoryBackend's own view of its keys for the checks on the node. Also the
//! skip rules: an undeclared capability skips its cases, a declared one that
//! answers `Unsupported` fails them.

use redlock_core::{async_trait, BackendError, LockBackend, MemoryBackend, Reply, Request};
use redlock_testkit::conformance::{self, skip_reason};
use redlock_testkit::fixture::InProcess;
use redlock_testkit::{block_on_futures, Capabilities};

mod memory_backend {
    use redlock_core::MemoryBackend;
    use redlock_testkit::fixture::InProcess;
    use redlock_testkit::Capabilities;

    redlock_testkit::conformance_tests!(
        fixture = InProcess::new(MemoryBackend::new)
            .inspected()
            .capabilities(Capabilities::FENCING | Capabilities::WAKE_ON_RELEASE),
        block_on = redlock_testkit::block_on_futures,
    );
}

/// A MemoryBackend that implements only the three required operations: no
/// fencing, no wake-on-release.
#[derive(Clone, Default)]
struct Basic(MemoryBackend);

#[async_trait]
impl LockBackend for Basic {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.0.acquire(request).await
    }
    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.0.extend(request).await
    }
    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.0.release(request).await
    }
}

#[test]
fn an_undeclared_capability_skips_its_cases_and_says_why() {
    let fixture = InProcess::new(Basic::default);
    let reason = skip_reason(&fixture, "fencing_tokens").expect("skipped");
    assert!(
        reason.contains("does not declare the capability fencing"),
        "{reason}"
    );
    let reason = skip_reason(&fixture, "wake_on_release").expect("skipped");
    assert!(reason.contains("wake-on-release"), "{reason}");
    assert_eq!(skip_reason(&fixture, "exclusivity"), None);
    // Skipped cases return at once, starting nothing.
    block_on_futures(conformance::fencing_tokens(&fixture));
}

#[test]
fn a_need_the_fixture_lacks_skips_the_case_and_says_why() {
    let fixture = InProcess::new(MemoryBackend::new).capabilities(Capabilities::ALL);
    let reason = skip_reason(&fixture, "password_in_url").expect("skipped");
    assert!(reason.contains("a password-protected node"), "{reason}");
    let reason = skip_reason(&fixture, "cluster_cross_slot_rejected").expect("skipped");
    assert!(reason.contains("a Redis Cluster"), "{reason}");
    // Not inspected: the cases that must look at a node are skipped...
    let reason = skip_reason(&fixture, "fencing_race").expect("skipped");
    assert!(reason.contains("inspecting what a node holds"), "{reason}");
    // ...the others check through the lock instead.
    assert_eq!(skip_reason(&fixture, "acquire_extend_release"), None);
    assert_eq!(skip_reason(&fixture.inspected(), "fencing_race"), None);
}

#[test]
#[should_panic(expected = "the backend declares fencing")]
fn declared_fencing_that_answers_unsupported_fails() {
    let fixture = InProcess::new(Basic::default).capabilities(Capabilities::FENCING);
    block_on_futures(conformance::fencing_tokens(&fixture));
}

#[test]
#[should_panic(expected = "the backend declares wake-on-release")]
fn declared_wake_on_release_that_answers_unsupported_fails() {
    let fixture = InProcess::new(Basic::default).capabilities(Capabilities::WAKE_ON_RELEASE);
    block_on_futures(conformance::wake_on_release(&fixture));
}

/// The in-process cases check through the lock where they cannot look at a
/// node: a MemoryBackend without inspection passes them too.
mod not_inspected {
    use redlock_core::MemoryBackend;
    use redlock_testkit::fixture::InProcess;
    use redlock_testkit::Capabilities;

    redlock_testkit::conformance_tests!(
        fixture = InProcess::new(MemoryBackend::new)
            .capabilities(Capabilities::FENCING | Capabilities::WAKE_ON_RELEASE),
        block_on = redlock_testkit::block_on_futures,
    );
}

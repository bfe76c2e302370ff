//! Invalid input.

use std::time::Duration;

use redlock_core::{Error, InvalidInput};

use super::case::Case;
use crate::fixture::{Fixture, Nodes};

/// Bad input fails with `Error::InvalidInput` before anything is sent: the
/// node holds no key (`DBSIZE` 0), and on Redis it ran no script.
pub async fn bad_input_reaches_no_node<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "bad_input_reaches_no_node", 1) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;
    let ttl = Duration::from_secs(10);

    let none: [&str; 0] = [];
    let result = redlock.acquire(&none, ttl).await;
    assert!(
        matches!(result, Err(Error::InvalidInput(InvalidInput::NoResources))),
        "an empty resource list: expected InvalidInput::NoResources, got {result:?}"
    );
    let result = redlock.acquire(&[""], ttl).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InvalidInput::EmptyResource {
                index: 0
            }))
        ),
        "an empty resource name: {result:?}"
    );
    let result = redlock.acquire(&[&key, &key], ttl).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InvalidInput::DuplicateResource(_)))
        ),
        "a duplicate resource: {result:?}"
    );
    let result = redlock.acquire(&[&key], Duration::ZERO).await;
    assert!(
        matches!(result, Err(Error::InvalidInput(InvalidInput::ZeroTtl))),
        "a zero TTL: {result:?}"
    );
    let result = redlock.acquire(&[&key], Duration::from_millis(1)).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InvalidInput::TtlTooShort { .. }))
        ),
        "a TTL below the drift: {result:?}"
    );
    if let Some(view) = case.inspect(0) {
        assert_eq!(view.key_count(), 0, "bad input must not write anything");
    }
    if let Some(probe) = case.nodes.redis(0) {
        for command in ["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "set"] {
            assert_eq!(
                probe.command_calls(command),
                0,
                "bad input must reach no node, yet it ran {command}"
            );
        }
    }
    case.finish().await;
}

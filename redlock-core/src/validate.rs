//! Input checks, run before anything is sent: a bad argument is an
//! [`InvalidInput`] and reaches no node.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::InvalidInput;
use crate::settings::{Settings, MAX_TTL};

/// The longest resource name accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 4096;

/// Checks the resource list (not empty, no empty or overlong name, no
/// duplicate) and copies it into the one allocation the lock keeps.
pub(crate) fn resources<S: AsRef<str>>(resources: &[S]) -> Result<Arc<[String]>, InvalidInput> {
    if resources.is_empty() {
        return Err(InvalidInput::NoResources);
    }
    // A few names (the usual case) are compared pairwise; a set (and its
    // allocation) only pays off for many.
    let mut seen = (resources.len() > 8).then(|| HashSet::with_capacity(resources.len()));
    for (index, r) in resources.iter().enumerate() {
        let r = r.as_ref();
        if r.is_empty() {
            return Err(InvalidInput::EmptyResource { index });
        }
        if r.len() > MAX_RESOURCE_LEN {
            return Err(InvalidInput::ResourceTooLong {
                index,
                len: r.len(),
                max: MAX_RESOURCE_LEN,
            });
        }
        let duplicate = match seen.as_mut() {
            Some(seen) => !seen.insert(r),
            None => resources[..index]
                .iter()
                .any(|earlier| earlier.as_ref() == r),
        };
        if duplicate {
            return Err(InvalidInput::DuplicateResource(r.to_owned()));
        }
    }
    Ok(resources.iter().map(|r| r.as_ref().to_owned()).collect())
}

/// Checks that a TTL can yield a valid lock: at least 1 ms, at most
/// [`MAX_TTL`] and the restart quarantine, and longer than its drift.
pub(crate) fn ttl(ttl: Duration, settings: &Settings) -> Result<(), InvalidInput> {
    if ttl.as_millis() == 0 {
        return Err(InvalidInput::ZeroTtl);
    }
    if ttl > MAX_TTL {
        return Err(InvalidInput::TtlTooLong { ttl, max: MAX_TTL });
    }
    if let Some(max_ttl) = settings.restart_quarantine {
        if ttl > max_ttl {
            return Err(InvalidInput::TtlAboveQuarantine { ttl, max_ttl });
        }
    }
    let drift = settings.drift(ttl);
    if ttl <= drift {
        return Err(InvalidInput::TtlTooShort { ttl, drift });
    }
    Ok(())
}

/// Checks that `using` can extend a lock of `ttl` before it expires: the
/// extension threshold must be below the validity (TTL less drift).
pub(crate) fn extension_threshold(ttl: Duration, settings: &Settings) -> Result<(), InvalidInput> {
    let threshold = settings.automatic_extension_threshold;
    let drift = settings.drift(ttl);
    if threshold >= ttl.saturating_sub(drift) {
        return Err(InvalidInput::ThresholdNotBelowTtl {
            threshold,
            ttl,
            drift,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists() {
        let none: [&str; 0] = [];
        assert_eq!(resources(&none), Err(InvalidInput::NoResources));
        assert_eq!(
            resources(&["a", ""]),
            Err(InvalidInput::EmptyResource { index: 1 })
        );
        let long = "x".repeat(MAX_RESOURCE_LEN + 1);
        assert_eq!(
            resources(&[long.as_str()]),
            Err(InvalidInput::ResourceTooLong {
                index: 0,
                len: MAX_RESOURCE_LEN + 1,
                max: MAX_RESOURCE_LEN
            })
        );
        // Duplicates are found pairwise for a few names and by a set for many.
        assert_eq!(
            resources(&["a", "b", "a"]),
            Err(InvalidInput::DuplicateResource("a".into()))
        );
        let many: Vec<String> = (0..20).map(|i| format!("r{}", i % 19)).collect();
        assert_eq!(
            resources(&many),
            Err(InvalidInput::DuplicateResource("r0".into()))
        );
        let ok = resources(&["a", "b"]).expect("valid");
        assert_eq!(&*ok, ["a", "b"]);
    }

    #[test]
    fn ttls() {
        let s = Settings::default();
        assert_eq!(ttl(Duration::ZERO, &s), Err(InvalidInput::ZeroTtl));
        assert_eq!(
            ttl(Duration::from_micros(999), &s),
            Err(InvalidInput::ZeroTtl)
        );
        assert!(matches!(
            ttl(Duration::from_millis(2), &s),
            Err(InvalidInput::TtlTooShort { .. })
        ));
        assert!(ttl(Duration::from_millis(3), &s).is_ok());
        assert_eq!(ttl(MAX_TTL, &s), Ok(()));
        assert!(matches!(
            ttl(MAX_TTL + Duration::from_millis(1), &s),
            Err(InvalidInput::TtlTooLong { .. })
        ));
        // The largest Duration is refused, not overflowed.
        assert!(matches!(
            ttl(Duration::MAX, &s),
            Err(InvalidInput::TtlTooLong { .. })
        ));
    }

    #[test]
    fn ttls_above_the_restart_quarantine_are_refused() {
        let mut s = Settings::default();
        let three = Duration::from_secs(3);
        // Off by default: any valid TTL passes.
        assert!(ttl(Duration::from_secs(60), &s).is_ok());
        s.restart_quarantine = Some(three);
        assert_eq!(ttl(three, &s), Ok(()));
        assert_eq!(
            ttl(three + Duration::from_millis(1), &s),
            Err(InvalidInput::TtlAboveQuarantine {
                ttl: three + Duration::from_millis(1),
                max_ttl: three
            })
        );
    }

    #[test]
    fn extension_thresholds() {
        let s = Settings::default(); // threshold 500 ms
        assert!(extension_threshold(Duration::from_secs(1), &s).is_ok());
        // 510 ms - drift 7 ms = 503 ms validity > 500 ms.
        assert!(extension_threshold(Duration::from_millis(510), &s).is_ok());
        assert!(matches!(
            extension_threshold(Duration::from_millis(505), &s),
            Err(InvalidInput::ThresholdNotBelowTtl { .. })
        ));
    }
}

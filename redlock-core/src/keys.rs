//! Names of the keys the library adds beside a resource.
//!
//! Every extra key lands in the same Redis Cluster slot as its resource: if the
//! resource has a hash tag (`{...}` with something inside, the first such pair)
//! the extra key keeps it; otherwise the whole resource becomes the extra key's
//! hash tag, which hashes exactly as the resource does.

/// Whether `key` has a Redis Cluster hash tag: a `{` followed later by a `}`
/// with at least one byte between them (the first such `{` counts).
pub fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

pub(crate) fn beside(resource: &str, what: &str) -> String {
    if has_hash_tag(resource) || resource.contains('}') {
        // Keeps the resource's own tag; or, for a name with a stray `}` and no
        // tag, stays correct on standalone nodes (a cluster would answer
        // CROSSSLOT, which is reported as such).
        format!("{resource}:redlock:{what}")
    } else {
        format!("redlock:{what}:{{{resource}}}")
    }
}

/// The fence counter of a resource: it never expires, and only rises.
pub fn fence_key(resource: &str) -> String {
    beside(resource, "fence")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags() {
        assert!(has_hash_tag("{org42}invoice"));
        assert!(has_hash_tag("a{b}c{d}"));
        assert!(!has_hash_tag("plain"));
        assert!(!has_hash_tag("a{}b"));
        assert!(!has_hash_tag("a}b{c"));
    }

    #[test]
    fn extra_keys_share_the_resources_slot_tag() {
        assert_eq!(fence_key("{org42}invoice"), "{org42}invoice:redlock:fence");
        assert_eq!(fence_key("invoice"), "redlock:fence:{invoice}");
        // A name with a `}` but no tag cannot be wrapped in a tag of its own;
        // it gets a suffix (right on standalone nodes; CROSSSLOT on a cluster).
        assert_eq!(fence_key("a{}b"), "a{}b:redlock:fence");
    }
}

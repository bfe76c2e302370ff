//! Names of the keys the library adds beside a resource, and the Redis
//! Cluster slot arithmetic they rest on.
//!
//! Every extra key lands in the same Redis Cluster slot as its resource.
//!
//! - Fence counters are kept **per slot**, not per resource: the counter of
//!   a resource is [`fence_key`], `redlock:fence-slot:{<tag>}`, where `<tag>`
//!   is the [`slot_tag`] of the resource's [`key_slot`] (the shortest string
//!   hashing to that slot). A node therefore holds at most [`SLOTS`]
//!   (16,384) fence counters, however many resources are ever fenced, and
//!   the tokens of all resources of one slot share one counter (they rise
//!   across those resources, which is more than each resource needs).
//! - Before per-slot counters, each resource had its own counter,
//!   [`legacy_fence_key`]; a fenced acquire still reads it, and the
//!   write-back folds it into the slot counter and deletes it (see
//!   [`crate::scripts::FENCE_LUA`]), so deployments upgrade without a token
//!   going backwards.
//! - Other extra keys (the release channel) sit beside the resource: if the
//!   resource has a hash tag (`{...}` with something inside, the first such
//!   pair) the extra key keeps it; otherwise the whole resource becomes the
//!   extra key's hash tag, which hashes exactly as the resource does.

use std::sync::OnceLock;

/// How many hash slots a Redis Cluster has.
pub const SLOTS: u16 = 16384;

/// The prefix of every per-slot fence counter: the counter of slot `s` is
/// `redlock:fence-slot:{<slot_tag(s)>}`. No legacy per-resource counter
/// (`redlock:fence:{<resource>}` or `<resource>:redlock:fence`) has this form.
pub const FENCE_SLOT_PREFIX: &str = "redlock:fence-slot:";

/// The characters a [`slot_tag`] is made of, in the order they are tried.
const TAG_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `key` has a Redis Cluster hash tag: a `{` followed later by a `}`
/// with at least one byte between them (the first such `{` counts).
pub fn has_hash_tag(key: &str) -> bool {
    hash_tag(key.as_bytes()).is_some()
}

/// The bytes Redis Cluster hashes for `key`: those between the first `{` and
/// the first `}` after it, if there is at least one; else the whole key.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let len = rest.iter().position(|&b| b == b'}')?;
    (len > 0).then(|| &rest[..len])
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection), the
/// checksum Redis Cluster hashes keys with: `crc16(b"123456789") == 0x31C3`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The Redis Cluster hash slot of `key`, as `CLUSTER KEYSLOT` answers: the
/// [`crc16`] of its hash tag if it has one, else of the whole key, modulo
/// [`SLOTS`]. Defined for every key, standalone or not.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    crc16(hash_tag(bytes).unwrap_or(bytes)) % SLOTS
}

/// The tag of `slot` (taken modulo [`SLOTS`]): the shortest string of ASCII
/// letters and digits whose [`crc16`] falls in that slot, the first in the
/// order `0-9`, `A-Z`, `a-z` among strings of that length (1 to 3
/// characters: every slot has one). Part of the stored format of the fence
/// counters: it never changes.
///
/// The table is built on first use, by hashing the candidate strings once
/// (about 240,000 CRCs of 3 bytes or less).
pub fn slot_tag(slot: u16) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut candidate = Vec::with_capacity(3);
        for len in 1..=3 {
            let mut digits = vec![0usize; len];
            'strings: loop {
                candidate.clear();
                candidate.extend(digits.iter().map(|&d| TAG_ALPHABET[d]));
                let tag = &mut tags[usize::from(crc16(&candidate) % SLOTS)];
                if tag.is_empty() {
                    tag.extend(candidate.iter().map(|&b| char::from(b)));
                    missing -= 1;
                    if missing == 0 {
                        break;
                    }
                }
                // The next string of this length: the last position counts
                // fastest.
                for d in digits.iter_mut().rev() {
                    *d += 1;
                    if *d < TAG_ALPHABET.len() {
                        continue 'strings;
                    }
                    *d = 0;
                }
                break;
            }
            if missing == 0 {
                break;
            }
        }
        tags
    });
    tags.get(usize::from(slot % SLOTS))
        .map_or("", String::as_str)
}

pub(crate) fn beside(resource: &str, what: &str) -> String {
    // Pushed piece by piece into one allocation, not `format!`: a release
    // names a channel per resource, and the formatting machinery cost more
    // than the rest of this function.
    let mut name = String::with_capacity(resource.len() + what.len() + ":redlock:{}".len());
    if has_hash_tag(resource) || resource.contains('}') {
        // Keeps the resource's own tag; or, for a name with a stray `}` and no
        // tag, stays correct on standalone nodes (a cluster would answer
        // CROSSSLOT, which is reported as such).
        name.push_str(resource);
        name.push_str(":redlock:");
        name.push_str(what);
    } else {
        name.push_str("redlock:");
        name.push_str(what);
        name.push_str(":{");
        name.push_str(resource);
        name.push('}');
    }
    name
}

/// The fence counter of a resource: the counter of its hash slot,
/// `redlock:fence-slot:{<slot_tag(key_slot(resource))>}`, shared by every
/// resource of that slot. It never expires, and only rises.
pub fn fence_key(resource: &str) -> String {
    format!("{FENCE_SLOT_PREFIX}{{{}}}", slot_tag(key_slot(resource)))
}

/// The per-resource fence counter of releases before per-slot counters:
/// `redlock:fence:{<resource>}`, or `<resource>:redlock:fence` for a
/// resource with a hash tag (or a stray `}`). A fenced acquire reads it and
/// its write-back folds it into [`fence_key`] and deletes it.
pub fn legacy_fence_key(resource: &str) -> String {
    beside(resource, "fence")
}

/// The extra keys of a fenced request on `resources` (n of them): the n slot
/// counters ([`fence_key`]), then the n legacy counters
/// ([`legacy_fence_key`]), in the order of the resources.
pub(crate) fn fence_keys(resources: &[String]) -> Vec<String> {
    resources
        .iter()
        .map(|r| fence_key(r))
        .chain(resources.iter().map(|r| legacy_fence_key(r)))
        .collect()
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
        assert_eq!(hash_tag(b"a{b}c{d}"), Some(&b"b"[..]));
        assert_eq!(hash_tag(b"x{{y}z"), Some(&b"{y"[..]));
        assert_eq!(hash_tag(b"{}{a}"), None);
    }

    #[test]
    fn crc16_is_xmodem() {
        // The check value of CRC-16/XMODEM, quoted by the Redis Cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
        assert_eq!(crc16(b"A"), 0x58E5);
    }

    #[test]
    fn slots_match_redis_cluster() {
        // Values of `CLUSTER KEYSLOT` (the Redis docs and a real cluster).
        assert_eq!(key_slot("123456789"), 12739);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("bar"), 5061);
        assert_eq!(key_slot("hello"), 866);
        assert_eq!(key_slot("somekey"), 11058);
        assert_eq!(key_slot("foo{hash_tag}"), 2515);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), 8363);
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        assert_eq!(key_slot("foo{bar}{zap}"), key_slot("bar"));
    }

    #[test]
    fn every_slot_has_a_short_tag_hashing_to_it() {
        for slot in 0..SLOTS {
            let tag = slot_tag(slot);
            assert!(
                (1..=3).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric()),
                "slot {slot}: {tag:?}"
            );
            assert_eq!(key_slot(tag), slot, "tag {tag:?}");
            assert_eq!(key_slot(&format!("{FENCE_SLOT_PREFIX}{{{tag}}}")), slot);
        }
        assert_eq!(slot_tag(SLOTS), slot_tag(0));
    }

    #[test]
    fn slot_tags_are_a_stored_format() {
        // Counters live under these names: the rule must never change.
        assert_eq!(slot_tag(0), "06S");
        assert_eq!(slot_tag(1), "Qi");
        assert_eq!(slot_tag(16383), "6ZJ");
        assert_eq!(slot_tag(key_slot("0")), "0");
        assert_eq!(fence_key("invoice"), "redlock:fence-slot:{if}");
    }

    #[test]
    fn fence_counters_share_the_resources_slot() {
        for resource in ["invoice", "{org42}invoice", "a{}b", "x{y", "a}b", "{org42}"] {
            let slot = key_slot(resource);
            assert_eq!(key_slot(&fence_key(resource)), slot, "{resource}");
            assert!(fence_key(resource).starts_with(FENCE_SLOT_PREFIX));
        }
        // Tagged resources share the counter of their tag.
        assert_eq!(fence_key("{org42}invoice"), fence_key("{org42}ledger"));
        assert_eq!(fence_key("{org42}invoice"), fence_key("org42"));
        // The legacy counters: in the resource's slot where the resource
        // has a tag or none at all (all but a stray `}`).
        assert_eq!(
            legacy_fence_key("{org42}invoice"),
            "{org42}invoice:redlock:fence"
        );
        assert_eq!(legacy_fence_key("invoice"), "redlock:fence:{invoice}");
        assert_eq!(legacy_fence_key("a{}b"), "a{}b:redlock:fence");
        for resource in ["invoice", "{org42}invoice", "x{y"] {
            assert_eq!(key_slot(&legacy_fence_key(resource)), key_slot(resource));
        }
        let resources = ["a".to_owned(), "{t}b".to_owned()];
        assert_eq!(
            fence_keys(&resources),
            [
                fence_key("a"),
                fence_key("t"),
                "redlock:fence:{a}".to_owned(),
                "{t}b:redlock:fence".to_owned()
            ]
        );
    }
}

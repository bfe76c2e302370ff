//! A Redis Cluster behind one backend.

use std::time::Duration;

use redlock_core::wake::release_channel;
use redlock_core::{ErrorKind, RedlockBuilder};

use super::case::{assert_rejected, assert_ttl_in, expect_lock, glob_escape, runnable};
use super::support::{build, fast_builder, patient_waiter, sleep, unique_prefix, within};
use crate::fixture::Fixture;
use crate::probe::ClusterProbe;
use crate::server::RedisCluster;
use crate::Capabilities;

pub(super) struct ClusterCase<'f, F> {
    fixture: &'f F,
    pub(super) prefix: String,
    pub(super) cluster: RedisCluster,
    pub(super) probe: ClusterProbe,
}

impl<'f, F: Fixture> ClusterCase<'f, F> {
    /// A 3-master cluster, or `None` after printing why the fixture cannot
    /// run case `name`.
    pub(super) fn start(fixture: &'f F, name: &'static str) -> Option<Self> {
        if !runnable(fixture, name, name) {
            return None;
        }
        let cluster = RedisCluster::start(3)
            .unwrap_or_else(|e| panic!("case `{name}`: could not start a Redis Cluster: {e}"));
        let probe = cluster.probe();
        Some(ClusterCase {
            fixture,
            prefix: unique_prefix(name),
            cluster,
            probe,
        })
    }

    /// A builder over one fresh cluster backend. The backend declared the
    /// cluster capability, so it must make one.
    pub(super) async fn builder(&self) -> RedlockBuilder {
        let urls = self.cluster.urls();
        let backend = self
            .fixture
            .cluster_backend(&urls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the backend declares the cluster capability, yet making a backend for the \
                     cluster at {urls:?} failed: {e}"
                )
            });
        fast_builder(vec![backend])
    }

    pub(super) fn finish(self) {
        let left = self.probe.keys(&format!("*{}*", glob_escape(&self.prefix)));
        assert!(left.is_empty(), "keys left behind on the cluster: {left:?}");
        drop(self.cluster);
    }
}

/// A multi-resource lock whose keys share a hash tag (`{tag}:a`, `{tag}:b`)
/// is acquired, extended and released on the master that owns the slot.
/// When the backend declares fencing, fenced acquires on a cluster get
/// rising tokens (the counters land in their resource's slot, for the tagged
/// pair and for an untagged single resource alike).
pub async fn cluster_hash_tagged_multi_resource<F: Fixture>(fixture: &F) {
    let name = "cluster_hash_tagged_multi_resource";
    let Some(case) = ClusterCase::start(fixture, name) else {
        return;
    };
    let redlock = build(case.builder().await);
    let a = format!("{{{}}}:a", case.prefix);
    let b = format!("{{{}}}:b", case.prefix);
    let probe = &case.probe;
    assert_eq!(
        probe.keyslot(&a),
        probe.keyslot(&b),
        "hash-tagged keys share a slot"
    );
    // The core's slot arithmetic (fence counters are per slot) agrees with
    // the cluster's, and each fence counter lies in its resource's slot.
    let single = format!("{}:single", case.prefix);
    for key in [
        a.as_str(),
        single.as_str(),
        "123456789",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "x}y{z",
    ] {
        let slot = probe.keyslot(key);
        assert_eq!(redlock_core::keys::key_slot(key), slot, "the slot of {key}");
        let fence = redlock_core::keys::fence_key(key);
        assert_eq!(probe.keyslot(&fence), slot, "{fence} lies in {key}'s slot");
    }

    let lock = expect_lock(
        redlock.acquire(&[&a, &b], Duration::from_secs(10)).await,
        "acquire hash-tagged keys on a cluster",
    );
    for key in [&a, &b] {
        assert_eq!(
            probe.get(key).as_deref(),
            Some(lock.value()),
            "GET {key} on its master"
        );
        assert_ttl_in(probe.pttl(key), 0, 10_000, "a hash-tagged key");
    }
    let lock = lock
        .extend(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("extend on a cluster: {e:?}"));
    assert_ttl_in(probe.pttl(&a), 10_000, 20_000, "after extend on a cluster");
    let release = lock.release().await.expect("release on a cluster");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        (probe.get(&a), probe.get(&b)),
        (None, None),
        "released on the cluster"
    );

    if !fixture.capabilities().contains(Capabilities::FENCING) {
        eprintln!(
            "skipped: {name} (fencing on a cluster): the backend does not declare the capability fencing"
        );
        case.finish();
        return;
    }
    let fenced = build(case.builder().await.fencing(true));
    let mut tokens = Vec::new();
    for resources in [vec![&a, &b], vec![&single], vec![&a, &b]] {
        let lock = expect_lock(
            fenced.acquire(&resources, Duration::from_secs(10)).await,
            "a fenced acquire on a cluster (the backend declares fencing)",
        );
        tokens.push(lock.fencing_token().expect("a fenced lock carries a token"));
        assert!(lock.release().await.expect("release").was_held());
    }
    assert!(
        tokens[2] > tokens[0],
        "the tagged pair's token rises on a cluster: {tokens:?}"
    );
    for resource in [&a, &b, &single] {
        probe.del(&redlock_core::keys::fence_key(resource));
    }
    case.finish();
}

/// Keys in different slots (no hash tag) fail with `Error::Rejected` whose
/// rejection is `ErrorKind::CrossSlot`, at once (no retries), writing
/// nothing. Checked for two keys on the same master and for two keys on
/// different masters.
pub async fn cluster_cross_slot_rejected<F: Fixture>(fixture: &F) {
    let name = "cluster_cross_slot_rejected";
    let Some(case) = ClusterCase::start(fixture, name) else {
        return;
    };
    let redlock = build(case.builder().await);
    let probe = &case.probe;
    let first = format!("{}:k0", case.prefix);
    let (slot, owner) = (probe.keyslot(&first), probe.owner_of(&first));
    let mut same_master = None;
    let mut other_master = None;
    for i in 1..10_000 {
        let key = format!("{}:k{i}", case.prefix);
        if probe.keyslot(&key) == slot {
            continue;
        }
        if probe.owner_of(&key) == owner {
            same_master.get_or_insert(key);
        } else {
            other_master.get_or_insert(key);
        }
        if same_master.is_some() && other_master.is_some() {
            break;
        }
    }
    let pairs = [
        (
            "same master, different slots",
            same_master.expect("a key in another slot of the same master"),
        ),
        (
            "different masters",
            other_master.expect("a key on another master"),
        ),
    ];
    for (what, second) in pairs {
        let result = within(
            Duration::from_secs(10),
            "a cross-slot acquire",
            redlock.acquire(&[&first, &second], Duration::from_secs(10)),
        )
        .await;
        assert_rejected(
            &result,
            ErrorKind::CrossSlot,
            &format!("an acquire of keys in different slots ({what}) on a cluster"),
        );
        assert_eq!(
            (probe.get(&first), probe.get(&second)),
            (None, None),
            "a rejected cross-slot acquire writes nothing ({what})"
        );
    }
    case.finish();
}

/// Wake-on-release on a cluster stays on the resource's shard: a waiter
/// subscribes (`SSUBSCRIBE`) on the master that owns the resource's slot,
/// chosen on another master than the first seed node; the holder's release
/// is sent there by `SPUBLISH`; no classic `PUBLISH` (which the cluster bus
/// broadcasts to every node) is sent; and once the waiter has released, no
/// master lists a subscriber.
pub async fn cluster_wake_is_sharded<F: Fixture>(fixture: &F) {
    let Some(case) = ClusterCase::start(fixture, "cluster_wake_is_sharded") else {
        return;
    };
    let masters = case.probe.masters();
    let key = (0..1000)
        .map(|i| format!("{}:w{i}", case.prefix))
        .find(|k| case.probe.owner_of(k) != 0)
        .unwrap_or_else(|| panic!("no key of 1000 lives off the first master"));
    let owner = &masters[case.probe.owner_of(&key)];
    let channel = release_channel(&key);
    let listeners = |probe: &crate::probe::Probe, shard| probe.channel_subscribers(&channel, shard);
    let holder = build(case.builder().await);
    let waiter = patient_waiter(case.builder().await);
    let lock = expect_lock(
        holder.acquire(&[&key], Duration::from_secs(10)).await,
        "the holder",
    );
    let hold = async {
        within(
            Duration::from_secs(5),
            "the waiter's shard subscription",
            async {
                while listeners(owner, true) == 0 {
                    sleep(Duration::from_millis(5)).await;
                }
            },
        )
        .await;
        assert!(lock
            .release()
            .await
            .expect("the holder's release")
            .was_held());
    };
    let resources = [&key];
    let wait = waiter.acquire(&resources, Duration::from_secs(10));
    let ((), got) = within(
        Duration::from_secs(20),
        "the wake-on-release race",
        futures::future::join(hold, wait),
    )
    .await;
    let got = expect_lock(got, "the waiter");
    assert!(got
        .release()
        .await
        .expect("the waiter's release")
        .was_held());
    assert!(
        owner.command_calls("spublish") >= 1,
        "the release was not sent by SPUBLISH on the slot's master"
    );
    for master in masters {
        assert_eq!(
            master.command_calls("publish"),
            0,
            "a classic PUBLISH reached {} (broadcast over the cluster bus)",
            master.url()
        );
        assert_eq!(
            listeners(master, false),
            0,
            "a classic subscription on {}",
            master.url()
        );
    }
    within(
        Duration::from_secs(5),
        "the waiter's shard unsubscription",
        async {
            while listeners(owner, true) != 0 {
                sleep(Duration::from_millis(5)).await;
            }
        },
    )
    .await;
    case.finish();
}

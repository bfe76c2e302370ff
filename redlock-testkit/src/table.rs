//! The one table of conformance cases. [`conformance_cases!`] hands it to a
//! callback; the callbacks turn it into the `#[test]` functions
//! ([`conformance_tests!`](crate::conformance_tests)), the case list
//! ([`CASES`](crate::conformance::CASES)) that each case reads its needs and
//! capabilities from, and the table in the [`conformance`](crate::conformance)
//! docs. Adding a case is one row here plus its function.
//!
//! A row: `function => nodes, [needs], [capabilities], "what it checks";`,
//! or, for a case run at several sizes,
//! `function [test_name = n, ...] => ...` (the function takes `n`).

/// Expands the case table into `$crate::$callback! { { args } rows... }`.
/// The row grammar is in this module's source; the callbacks are the
/// `__conformance_*` macros.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_cases {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! { { $($args)* }
            acquire_extend_release => "1", [], [],
                "after acquire `GET` = value and `PTTL` in (0, ttl], extend resets the TTL, release deletes; another owner is refused meanwhile; the value has at least 128 bits";
            multi_resource_all_or_nothing => "1", [], [],
                "one key held by another owner: `Held`, the other keys not written; all free: every key holds the value";
            overlapping_multi_locks => "1", [], [],
                "{a,b} held: {b,c} `Held` and c not written, {c,d} acquired";
            exclusivity => "3", [], [],
                "a second owner gets `Held` after exactly retry_count+1 attempts; a quorum keeps the first value";
            automatic_expiry => "1", [], [],
                "the key vanishes at its TTL, the `Lock` knows it, another owner acquires";
            release_and_extend_only_by_owner => "1", [], [],
                "the key now another owner's: extend `Expired`, release `was_held() == false`, their key untouched";
            release_of_expired_lock => "1", [], [],
                "`Ok`, not held, one round";
            minority_held [minority_held_3 = 3, minority_held_5 = 5] => "3, 5", [], [],
                "acquired; the foreign keys untouched";
            majority_held [majority_held_3 = 3, majority_held_5 = 5] => "3, 5", [], [],
                "`Held`; partial locks undone, the foreign keys untouched";
            minority_killed [minority_killed_3 = 3, minority_killed_5 = 5] => "3, 5", [Kill], [],
                "acquired; the dead nodes fail the release";
            majority_killed [majority_killed_3 = 3, majority_killed_5 = 5] => "3, 5", [Kill], [],
                "`NoQuorum` with `Connection`/`Timeout` errors; no key left on the live nodes";
            unreachable_node_refused => "3", [Kill], [],
                "dead node: acquired, its outcome `Failed(Connection/Timeout)`";
            paused_node_times_out => "3", [Pause], [],
                "paused node: acquire and release return (per-node timeout)";
            node_restart_with_persistence => "1", [Restart], [],
                "the lock survives a crash and restart; the backend reconnects and releases";
            password_in_url => "1", [Password], [],
                "`redis://:pw@...` works";
            wrong_password_rejected => "1", [Password], [],
                "a wrong password is `Rejected(Auth)`, no retries, nothing written";
            noscript_fallback => "1", [ScriptCache], [],
                "`SCRIPT FLUSH` before acquire, extend and release: `EVALSHA` falls back to `EVAL`";
            custom_scripts => "1", [Inspect], [CUSTOM_SCRIPTS],
                "custom acquire, extend and release scripts leave server-side markers";
            using_keeps_lock_while_routine_runs => "1", [], [],
                "a 600 ms TTL held through a 2 s routine; released on return";
            using_returns_routine_error => "1", [], [],
                "the routine's error, unmasked; released";
            cluster_hash_tagged_multi_resource => "cluster", [Cluster], [CLUSTER],
                "tagged keys acquired, extended, released; fencing tokens on a cluster when fencing is declared";
            cluster_cross_slot_rejected => "cluster", [Cluster], [CLUSTER],
                "`Rejected` with `CrossSlot`, no retries, nothing written";
            cluster_wake_is_sharded => "cluster", [Cluster], [CLUSTER, WAKE_ON_RELEASE],
                "a waiter's `SSUBSCRIBE` on the slot's master, the release's `SPUBLISH` there, no classic `PUBLISH`";
            contention => "3", [], [],
                "4 owners, 10 rounds each: no lost update, no overlap, real contention";
            bad_input_reaches_no_node => "1", [], [],
                "`InvalidInput`; nothing written, no script ran";
            fencing_tokens => "3", [Kill], [FENCING],
                "tokens rise across owners and with a node down, an extension keeps its token; counters on a quorum, never expiring";
            fencing_race [fencing_race_3 = 3, fencing_race_5 = 5] => "3, 5", [Inspect, Kill, Restart], [FENCING],
                "racing owners get strictly rising tokens while a far-ahead node is down, then back with a minority lagging";
            fencing_counters_are_bounded => "1", [Inspect], [FENCING],
                "20,000 fenced resources leave one fence counter per slot they fall in (at most 16,384), no per-resource counter";
            fencing_carries_legacy_counters_over => "1", [Inspect], [FENCING],
                "a legacy per-resource counter of 1000 makes the first token 1001, is folded into the slot counter and deleted; a lower one pulls nothing back; a lock on two tagged resources carries both over";
            fencing_slot_shared_across_resources => "3", [], [FENCING],
                "two resources of one slot (untagged, and same tag) get strictly rising tokens across both";
            wake_on_release => "3", [], [WAKE_ON_RELEASE],
                "a 5 s retry delay is cut short by the release";
            wake_follows_interest => "1", [PubSub], [WAKE_ON_RELEASE],
                "defaults: a lock nobody waits for publishes nothing; a waiter's channel is subscribed while it waits, and dropped with its release";
            release_names_the_channel => "1", [PubSub], [WAKE_ON_RELEASE],
                "the release script names the channel as `release_channel` does: one `PUBLISH` reaches a subscriber, for a resource with no `}` and for one with a hash tag";
            restart_quarantine => "3", [Restart], [RESTART_QUARANTINE],
                "TTL above the window `InvalidInput`; a node restarted without persistence fails `Quarantined` with the time left, never holds the key, and votes again after the window";
            cluster_restart_quarantine => "cluster", [Cluster], [CLUSTER, RESTART_QUARANTINE],
                "each master is a node: the master of a held key restarted without persistence (same slots) fails `Quarantined` with the time left, grants no lock on the lost key, while another master votes; it votes again after the window";
            doctor_healthy_set => "3", [], [INSPECT],
                "3 nodes with AOF (`appendfsync always`) and `noeviction`: every finding ok, one printed line per finding";
            doctor_evicting_policy => "3", [Reconfigure], [INSPECT],
                "`maxmemory-policy allkeys-lru` on one node: the report fails on that node's eviction check only, naming the node";
            doctor_node_listed_twice => "2", [], [INSPECT],
                "one server given twice: both entries fail independence (same `run_id`), the other node passes";
            doctor_replica_caught => "3", [Reconfigure], [INSPECT],
                "a node made a replica (`REPLICAOF`): its role fails, then its independence (its master's replication id); the master warns";
            doctor_two_nodes_warn => "2", [], [INSPECT],
                "N = 2: a node-count warning about the set, the report still passes; under a 1 h restart quarantine fresh nodes warn on uptime and no AOF is covered";
            doctor_cluster => "cluster", [Cluster], [CLUSTER, INSPECT],
                "a Redis Cluster as one node: one finding per master and check, all 16384 slots served, nothing fails; the status of a tagged pair read by slot";
            doctor_config_refused => "3", [Reconfigure], [INSPECT],
                "`CONFIG` refused by an ACL: persistence and eviction say so and fall back to `INFO`; nothing fails";
            doctor_dead_node => "3", [Kill], [INSPECT],
                "a killed node fails `reachable`, its other checks not checked; the status reports it unread, the lock still held by a quorum";
            doctor_paused_node => "3", [Pause], [INSPECT],
                "a paused node: the doctor gives up on it by its timeout at the latest (reachable fails), reports the others; the status reports it unread";
            lock_status => "3", [], [INSPECT],
                "a lock shows with its TTL on the nodes that took it, held by a quorum under its value (never printed), fence counter = token with fencing; one foreign node: no quorum; after release: free";
        }
    };
}

/// Callback of [`conformance_cases!`]: one `#[test]` per case and size.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ({ ($fixture:expr) ($block_on:expr) }
        $case:ident => $nodes:literal, [$($need:ident),*], [$($cap:ident),*], $checks:literal;
        $($rest:tt)*
    ) => {
        #[test]
        fn $case() {
            let fixture = $fixture;
            ($block_on)($crate::conformance::with_deadline(
                stringify!($case),
                $crate::conformance::$case(&fixture),
            ));
        }
        $crate::__conformance_tests! { { ($fixture) ($block_on) } $($rest)* }
    };
    ({ ($fixture:expr) ($block_on:expr) }
        $case:ident [$($test:ident = $n:literal),+] => $nodes:literal, [$($need:ident),*], [$($cap:ident),*], $checks:literal;
        $($rest:tt)*
    ) => {
        $(
            #[test]
            fn $test() {
                let fixture = $fixture;
                ($block_on)($crate::conformance::with_deadline(
                    stringify!($test),
                    $crate::conformance::$case(&fixture, $n),
                ));
            }
        )+
        $crate::__conformance_tests! { { ($fixture) ($block_on) } $($rest)* }
    };
    ({ $fixture:tt $block_on:tt }) => {};
}

/// Callback of [`conformance_cases!`]: the [`CaseInfo`](crate::conformance::CaseInfo) list.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case_infos {
    ({} $(
        $case:ident $([$($test:ident = $n:literal),+])? => $nodes:literal, [$($need:ident),*], [$($cap:ident),*], $checks:literal;
    )*) => {
        &[$(
            $crate::conformance::CaseInfo {
                name: stringify!($case),
                sizes: &[$($((stringify!($test), $n)),+)?],
                nodes: $nodes,
                needs: &[$($crate::fixture::Need::$need),*],
                capabilities: $crate::Capabilities::NONE $(.union($crate::Capabilities::$cap))*,
                checks: $checks,
            },
        )*]
    };
}

/// Callback of [`conformance_cases!`]: the Markdown table of the
/// [`conformance`](crate::conformance) docs.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_doc_table {
    ({} $(
        $case:ident $([$($test:ident = $n:literal),+])? => $nodes:literal, [$($need:ident),*], [$($cap:ident),*], $checks:literal;
    )*) => {
        concat!(
            "| case | nodes | needs | capabilities | what it checks |\n",
            "|---|---|---|---|---|\n",
            $(
                "| [`", stringify!($case), "`] | ", $nodes, " | ",
                $("[`", stringify!($need), "`](crate::fixture::Need::", stringify!($need), ") ",)*
                " | ",
                $("[`", stringify!($cap), "`](crate::Capabilities::", stringify!($cap), ") ",)*
                " | ", $checks, " |\n",
            )*
        )
    };
}

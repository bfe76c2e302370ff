//! Restart quarantine on a Redis Cluster backend: each master is a node, and
//! its age is kept per slot by the core's
//! [`ClusterClock`](redlock_core::cluster_age::ClusterClock).
//!
//! redis-rs's cluster client re-makes a connection to a restarted master
//! without failing the call (it retries the command on the new connection),
//! and its RESP3 disconnection pushes reach a push sender without the node's
//! address and only after the reconnection was requested, so neither tells
//! the backend in time. What it cannot skip is the DNS resolver of its
//! connection config: every connection to a node (the first ones and each
//! reconnection) resolves the node's host through it, before the connection
//! exists. [`ForgetOnConnect`] is that resolver: it forgets every master's
//! age, then resolves the host. So a reply that comes over a new connection
//! always comes after the forget, and an acquire admitted before it is not
//! counted ([`ClusterClock::confirm`]).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use redis::io::AsyncDNSResolver;
use redis::{RedisError, RedisFuture, Value};
use redlock_core::age::{ServerInfo, INFO_SERVER};
use redlock_core::cluster_age::ClusterClock;
use redlock_core::{BackendError, ErrorKind, NodeAge};

/// How many times a read of a master's age is repeated when a connection
/// was made while it ran (the first read on a fresh backend opens the
/// connections, which forgets the age it is reading).
const READS: usize = 3;

/// A cluster backend's quarantine state: the ages, and the connection that
/// reads them.
pub(crate) struct ClusterAges {
    clock: Arc<ClusterClock>,
    conn: redis::cluster_async::ClusterConnection,
}

impl ClusterAges {
    pub(crate) fn new(
        clock: Arc<ClusterClock>,
        conn: redis::cluster_async::ClusterConnection,
    ) -> ClusterAges {
        ClusterAges { clock, conn }
    }

    /// The age of the master serving `resources`, without I/O.
    pub(crate) fn age(&self, resources: &[String]) -> NodeAge {
        ClusterClock::slot_of(resources).map_or(NodeAge::Unknown, |slot| self.clock.age(slot))
    }

    /// Admits an acquire on `resources` under a window of `max_ttl`: the
    /// generation to confirm after the reply.
    pub(crate) fn admit(
        &self,
        resources: &[String],
        max_ttl: std::time::Duration,
    ) -> Result<u64, BackendError> {
        let slot = ClusterClock::slot_of(resources).ok_or_else(no_resource)?;
        self.clock.admit(slot, max_ttl)
    }

    pub(crate) fn confirm(&self, generation: u64) -> Result<(), BackendError> {
        self.clock.confirm(generation)
    }

    pub(crate) fn forget(&self) {
        self.clock.forget();
    }

    /// Reads `INFO server` from the master that serves `resources`' slot,
    /// routed by redis-rs's own slot map (so it is the master the acquire
    /// goes to), and records it. Errors are mapped by `map`.
    pub(crate) async fn refresh(
        &self,
        resources: &[String],
        map: impl Fn(RedisError) -> BackendError,
    ) -> Result<(), BackendError> {
        let (Some(first), Some(slot)) = (resources.first(), ClusterClock::slot_of(resources))
        else {
            return Err(no_resource());
        };
        let route = redis::cluster_routing::RoutingInfo::SingleNode(
            redis::cluster_routing::SingleNodeRoutingInfo::SpecificNode(
                redis::cluster_routing::Route::with_key(
                    first.as_bytes(),
                    redis::cluster_routing::SlotAddr::Master,
                ),
            ),
        );
        for _ in 0..READS {
            let generation = self.clock.generation();
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd(INFO_SERVER[0]);
            cmd.arg(INFO_SERVER[1]);
            let value = conn.route_command(cmd, route.clone()).await.map_err(&map)?;
            let received = Instant::now();
            let info = server_info(&value).ok_or_else(|| {
                BackendError::new(
                    ErrorKind::Protocol,
                    "INFO server (from the slot's master) answered without uptime_in_seconds",
                )
            })?;
            if self.clock.learn(slot, generation, &info, received) {
                return Ok(());
            }
        }
        // Connections kept changing: the age stays unknown and the core
        // counts the master as unverified.
        Ok(())
    }
}

/// The `INFO server` text of one node.
fn server_info(value: &Value) -> Option<ServerInfo> {
    match value {
        Value::BulkString(bytes) => ServerInfo::parse(&String::from_utf8_lossy(bytes)),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => ServerInfo::parse(text),
        _ => None,
    }
}

fn no_resource() -> BackendError {
    BackendError::new(
        ErrorKind::Other,
        "restart quarantine on a cluster needs a resource to find its master",
    )
}

/// The DNS resolver of a cluster backend's lock connection: see the
/// [module docs](self).
pub(crate) struct ForgetOnConnect {
    clock: Arc<ClusterClock>,
}

impl ForgetOnConnect {
    pub(crate) fn new(clock: Arc<ClusterClock>) -> ForgetOnConnect {
        ForgetOnConnect { clock }
    }
}

impl AsyncDNSResolver for ForgetOnConnect {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        // Before the connection exists, so before any reply on it.
        self.clock.forget();
        Box::pin(async move {
            let addrs = lookup(host, port).await?;
            Ok(Box::new(addrs.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

/// The addresses of `host`: an address literal (what a cluster announces
/// unless it is configured with host names) as is; a name through the
/// system resolver, on a thread of its own since that call blocks.
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, RedisError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = futures::channel::oneshot::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("redlock-dns".into())
        .spawn(move || {
            let found = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            let _ = tx.send(found);
        })?;
    let addrs = rx
        .await
        .map_err(|_| io::Error::other("the DNS lookup thread ended without an answer"))??;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no address found for {host}"),
        )
        .into());
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolving_forgets_the_ages_then_resolves() {
        let clock = Arc::new(ClusterClock::new());
        let g = clock.generation();
        let resolver = ForgetOnConnect::new(clock.clone());
        let addrs: Vec<SocketAddr> =
            futures::executor::block_on(resolver.resolve("127.0.0.1", 7001))
                .expect("a literal resolves")
                .collect();
        assert_eq!(addrs, vec!["127.0.0.1:7001".parse().expect("address")]);
        assert_ne!(clock.generation(), g, "a connection forgets the ages");
        let addrs: Vec<SocketAddr> = futures::executor::block_on(resolver.resolve("::1", 7002))
            .expect("an IPv6 literal resolves")
            .collect();
        assert_eq!(addrs, vec!["[::1]:7002".parse().expect("address")]);
        let named = futures::executor::block_on(resolver.resolve("localhost", 7003))
            .expect("localhost resolves");
        assert!(named.into_iter().all(|a| a.port() == 7003));
    }

    #[test]
    fn info_text_of_one_node() {
        let text = "# Server\r\nrun_id:abc\r\nuptime_in_seconds:12\r\n";
        let info = server_info(&Value::BulkString(text.as_bytes().to_vec())).expect("parsed");
        assert_eq!(info.run_id, "abc");
        assert_eq!(info.uptime.as_secs(), 12);
        assert!(server_info(&Value::Int(1)).is_none());
    }
}

//! Real `redis-server` processes for tests: one node, N independent nodes, or
//! a Redis Cluster, with fault injection (kill, pause, resume, restart).
//!
//! Every node listens on a free loopback port (never 6379), in its own
//! temporary directory (removed when the node is dropped), with persistence off
//! unless asked for. `start` returns once the node answers `PING`. Dropping a
//! node kills its process and waits for it, also when a test panics.
//!
//! ```no_run
//! use redlock_testkit::server::{NodeOptions, RedisNode, RedisNodes};
//!
//! let node = RedisNode::start()?;
//! println!("a node at {}", node.url());
//!
//! let five = RedisNodes::start(5)?;
//! five[0].pause()?; // SIGSTOP: connections hang
//! five[0].resume()?;
//! five[1].kill(); // connections are refused
//!
//! let durable = RedisNode::start_with(NodeOptions {
//!     persistence: true, // appendonly yes, appendfsync always
//!     ..NodeOptions::default()
//! })?;
//! durable.restart()?; // same port, same directory: the keys survive
//! # Ok::<(), redlock_testkit::server::LaunchError>(())
//! ```
//!
//! A node started with [`NodeOptions::tls`] serves its clients over TLS
//! (`rediss://`, on [`RedisNode::tls_port`]) with a certificate signed by a CA
//! the testkit makes for the test run ([`TestCa::shared`]), and one with
//! [`NodeOptions::acl_user`] lets them in as that [`AclUser`]; its
//! [`url`](RedisNode::url) carries both, and the testkit's own connections use
//! the plain [`admin_url`](RedisNode::admin_url).
//!
//! The binaries are found on `PATH`, or at `REDLOCK_REDIS_SERVER` /
//! `REDLOCK_REDIS_CLI`, or where [`NodeOptions::redis_server`] /
//! [`ClusterOptions::redis_cli`] say. When they are missing, starting fails with
//! [`LaunchError::MissingBinary`], which says how to install them.
//!
//! A node started with [`NodeOptions::fake_clock`] runs under libfaketime
//! (Debian package `faketime`), and its wall clock can be moved forward while
//! it runs ([`RedisNode::set_clock_offset`], [`RedisNode::jump_clock`]): its
//! keys then expire early, as on a machine whose clock was stepped. When
//! libfaketime is missing, starting fails with
//! [`LaunchError::MissingLibfaketime`], which says how to install it.

mod binary;
mod clock;
mod cluster;
mod error;
mod node;
mod nodes;
pub(crate) mod ports;
mod tempdir;
mod tls;

pub use binary::{find_binary, INSTALL_HINT, REDIS_CLI_ENV, REDIS_SERVER_ENV};
pub use clock::{find_libfaketime, FAKETIME_INSTALL_HINT, LIBFAKETIME_ENV};
pub use cluster::{ClusterOptions, RedisCluster};
pub use error::LaunchError;
pub use node::{NodeOptions, RedisNode};
pub use nodes::RedisNodes;
pub use tls::{AclUser, TestCa};

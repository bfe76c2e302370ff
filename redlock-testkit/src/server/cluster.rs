//! A Redis Cluster of masters, created with `redis-cli --cluster create`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::binary::{locate, REDIS_CLI_ENV};
use super::node::{query_once, start_many, NodeOptions, RedisNode};
use super::LaunchError;

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Options for every node (`cluster-enabled yes` is added).
    pub node: NodeOptions,
    /// The `redis-cli` binary: a path, or a name looked up on `PATH`.
    /// Default: `$REDLOCK_REDIS_CLI`, else `redis-cli` on `PATH`.
    pub redis_cli: Option<PathBuf>,
    /// How long to wait for `cluster_state:ok` on every node. Default 30 s.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node: NodeOptions::default(),
            redis_cli: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A Redis Cluster of masters without replicas, created with
/// `redis-cli --cluster create` and waited for until every node reports
/// `cluster_state:ok` with all 16384 slots covered.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisNode>,
}

impl RedisCluster {
    /// Starts a cluster of `masters` masters (at least 3) and no replicas.
    pub fn start(masters: usize) -> Result<RedisCluster, LaunchError> {
        Self::start_with(masters, ClusterOptions::default())
    }

    /// Starts a cluster of `masters` masters with `options`.
    pub fn start_with(
        masters: usize,
        options: ClusterOptions,
    ) -> Result<RedisCluster, LaunchError> {
        if masters < 3 {
            return Err(LaunchError::InvalidArgument(format!(
                "a Redis Cluster needs at least 3 masters, {masters} asked"
            )));
        }
        let cli = locate(options.redis_cli.as_deref(), "redis-cli", REDIS_CLI_ENV)?;
        let nodes = start_many(masters, &options.node, true)?;
        let cluster = RedisCluster { nodes };
        cluster.create(&cli)?;
        cluster.wait_healthy(options.ready_timeout)?;
        Ok(cluster)
    }

    fn create(&self, cli: &Path) -> Result<(), LaunchError> {
        let mut command = Command::new(cli);
        if let Some(password) = &self.nodes[0].options().password {
            command.args(["--no-auth-warning", "-a", password]);
        }
        command.args(["--cluster", "create"]);
        command.args(self.nodes.iter().map(RedisNode::addr));
        command.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LaunchError::io(format!("run {}", cli.display()), e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() || text.contains("[ERR]") {
            return Err(LaunchError::ClusterCreate {
                status: output.status.to_string(),
                output: text,
            });
        }
        Ok(())
    }

    fn wait_healthy(&self, timeout: Duration) -> Result<(), LaunchError> {
        let started = Instant::now();
        let n = self.nodes.len();
        loop {
            let mut problems = Vec::new();
            for node in &self.nodes {
                match cluster_info(&node.url()) {
                    Ok(info) => {
                        let field = |name: &str| {
                            info.lines()
                                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                                .map(str::trim)
                                .unwrap_or("?")
                                .to_owned()
                        };
                        let state = field("cluster_state");
                        let ok_slots = field("cluster_slots_ok");
                        let known = field("cluster_known_nodes");
                        if state != "ok" || ok_slots != "16384" || known != n.to_string() {
                            problems.push(format!(
                                "{}: cluster_state:{state} cluster_slots_ok:{ok_slots} cluster_known_nodes:{known}",
                                node.addr()
                            ));
                        }
                    }
                    Err(e) => problems.push(format!("{}: {e}", node.addr())),
                }
            }
            if problems.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(LaunchError::ClusterNotReady {
                    waited: started.elapsed(),
                    detail: problems.join("; "),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The seed URLs (every master), for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// Master `i`.
    pub fn node(&self, i: usize) -> &RedisNode {
        &self.nodes[i]
    }

    /// Every master.
    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    /// How many masters.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A probe that looks at every master.
    pub fn probe(&self) -> crate::probe::ClusterProbe {
        crate::probe::ClusterProbe::new(&self.urls())
    }
}

fn cluster_info(url: &str) -> Result<String, String> {
    query_once(
        url,
        Duration::from_millis(500),
        redis::cmd("CLUSTER").arg("INFO"),
    )
}

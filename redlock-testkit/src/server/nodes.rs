//! N independent nodes: a Redlock deployment.

use std::ops::Index;

use super::node::{start_many, NodeOptions, RedisNode};
use super::LaunchError;

/// N independent nodes (no replication, no cluster): a Redlock deployment.
/// Index it (`nodes[2].kill()`) or iterate it.
#[derive(Debug)]
pub struct RedisNodes {
    nodes: Vec<RedisNode>,
}

impl RedisNodes {
    /// Starts `n` nodes with the default options.
    pub fn start(n: usize) -> Result<RedisNodes, LaunchError> {
        Self::start_with(n, NodeOptions::default())
    }

    /// Starts `n` nodes, each with `options`.
    pub fn start_with(n: usize, options: NodeOptions) -> Result<RedisNodes, LaunchError> {
        if n == 0 {
            return Err(LaunchError::InvalidArgument(
                "RedisNodes::start needs at least one node".into(),
            ));
        }
        Ok(RedisNodes {
            nodes: start_many(n, &options, false)?,
        })
    }

    /// Every node's URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes.
    pub fn iter(&self) -> std::slice::Iter<'_, RedisNode> {
        self.nodes.iter()
    }

    /// The nodes as a slice.
    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    /// A probe per node, in order.
    pub fn probes(&self) -> Vec<crate::probe::Probe> {
        self.nodes.iter().map(RedisNode::probe).collect()
    }
}

impl Index<usize> for RedisNodes {
    type Output = RedisNode;
    fn index(&self, i: usize) -> &RedisNode {
        &self.nodes[i]
    }
}

impl<'a> IntoIterator for &'a RedisNodes {
    type Item = &'a RedisNode;
    type IntoIter = std::slice::Iter<'a, RedisNode>;
    fn into_iter(self) -> Self::IntoIter {
        self.nodes.iter()
    }
}

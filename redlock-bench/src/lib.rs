//! The benchmark (`--bin bench`) and the chaos runner (`--bin chaos`): they
//! start their own redis-server nodes and measure ours through both adapters
//! beside rslock and the raw-Redis floor.
#![deny(missing_docs)]

pub mod bench;
pub mod chaos;

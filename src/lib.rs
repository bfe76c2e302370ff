//! placeholder
pub use redlock_core::*;

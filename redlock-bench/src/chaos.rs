//! The chaos runner (being written).

//! A TCP fault proxy (being written).

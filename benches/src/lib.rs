//! Benchmarks for ekp.

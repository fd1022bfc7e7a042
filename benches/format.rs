//! Criterion benchmarks of the `.params` reader and writer.
fn main() {}

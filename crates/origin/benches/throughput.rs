//! PUT/GET throughput over loopback (placeholder until the benchmark lands).
fn main() {}

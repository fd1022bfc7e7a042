//! Helpers shared by the Rust integration tests.

use mxparams::{Context, DType, NDArray};

/// A float32 array on cpu(0) holding `v`.
pub fn f32s(v: &[f32], shape: &[usize]) -> NDArray {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    NDArray::from_bytes(&b, shape, DType::Float32, Context::cpu(0)).expect("array")
}

/// An array's values as float32 (cast if needed).
pub fn values(a: &NDArray) -> Vec<f32> {
    let c = mxparams::convert::cast(a, DType::Float32).expect("cast");
    let g = c.buffer().try_read().expect("host-readable");
    g.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

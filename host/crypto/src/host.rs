//! What the crypto world's imports do on the host side: entropy from the operating
//! system (crypto is the only world granted randomness), and the `accel` primitives the
//! host computes natively.

use crate::bindings as wit;
use joule_wasm::{Limited, StoreLimiter};

/// Per-instance host state: the store limiter. The imports need no state of their own.
pub struct HostState {
    pub(crate) limiter: StoreLimiter,
}

/// Largest single entropy request; more is a plugin bug or an attack, and traps.
const MAX_ENTROPY_REQUEST: u32 = 1 << 16;

impl wit::joule::crypto::entropy::Host for HostState {
    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_ENTROPY_REQUEST {
            wasmtime::bail!("entropy request of {len} bytes exceeds {MAX_ENTROPY_REQUEST}");
        }
        let mut buf = vec![0u8; len as usize];
        getrandom::fill(&mut buf).map_err(|e| wasmtime::format_err!("host entropy unavailable: {e}"))?;
        Ok(buf)
    }
}

impl wit::joule::crypto::types::Host for HostState {}

/// An 8-word hash state and whole 64-byte blocks, or a trap naming what is wrong.
fn state_and_blocks<'a>(op: &str, state: Vec<u32>, blocks: &'a [u8]) -> wasmtime::Result<([u32; 8], &'a [[u8; 64]])> {
    let st: [u32; 8] = state.try_into().map_err(|s: Vec<u32>| wasmtime::format_err!("{op}: state has {} words, not 8", s.len()))?;
    let (whole, rest) = blocks.as_chunks::<64>();
    if !rest.is_empty() {
        wasmtime::bail!("{op}: {} bytes is not a whole number of 64-byte blocks", blocks.len());
    }
    Ok((st, whole))
}

impl wit::joule::crypto::accel::Host for HostState {
    fn sha256_compress(&mut self, state: Vec<u32>, blocks: Vec<u8>) -> wasmtime::Result<Vec<u32>> {
        let (mut st, whole) = state_and_blocks("sha256-compress", state, &blocks)?;
        sha2::block_api::compress256(&mut st, whole);
        Ok(st.to_vec())
    }

    fn sm3_compress(&mut self, state: Vec<u32>, blocks: Vec<u8>) -> wasmtime::Result<Vec<u32>> {
        use sm3::digest::block_api::UpdateCore;
        use sm3::digest::common::array::Array;
        use sm3::digest::common::hazmat::SerializableState;
        let (st, whole) = state_and_blocks("sm3-compress", state, &blocks)?;
        // The sm3 crate keeps its compression function private; its core's serialisable
        // state (8 little-endian words, then a block count) lets us start from any state.
        let mut serialized = Array::<u8, _>::default();
        for (chunk, w) in serialized.chunks_exact_mut(4).zip(st) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let mut core = sm3::Sm3Core::deserialize(&serialized).map_err(|_| wasmtime::format_err!("sm3-compress: bad state"))?;
        let (blocks, _) = Array::slice_as_chunks(whole.as_flattened());
        core.update_blocks(blocks);
        Ok(core.serialize()[..32].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

impl Limited for HostState {
    fn limiter(&mut self) -> &mut StoreLimiter {
        &mut self.limiter
    }
}

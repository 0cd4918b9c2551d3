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

    fn aes_gctr(&mut self, key: Vec<u8>, counter: Vec<u8>, mut data: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        use ctr::cipher::{KeyIvInit, StreamCipher};
        let counter: [u8; 16] = counter.try_into().map_err(|c: Vec<u8>| wasmtime::format_err!("aes-gctr: counter has {} bytes, not 16", c.len()))?;
        match key.len() {
            16 => ctr::Ctr32BE::<aes::Aes128>::new_from_slices(&key, &counter).map(|mut c| c.apply_keystream(&mut data)),
            32 => ctr::Ctr32BE::<aes::Aes256>::new_from_slices(&key, &counter).map(|mut c| c.apply_keystream(&mut data)),
            n => wasmtime::bail!("aes-gctr: key has {n} bytes, not 16 or 32"),
        }
        .map_err(|_| wasmtime::format_err!("aes-gctr: key or counter of the wrong length"))?;
        Ok(data)
    }

    fn ghash(&mut self, h: Vec<u8>, state: Vec<u8>, blocks: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        use ghash::universal_hash::{KeyInit, UniversalHash};
        let h: [u8; 16] = h.try_into().map_err(|h: Vec<u8>| wasmtime::format_err!("ghash: h has {} bytes, not 16", h.len()))?;
        let state: [u8; 16] = state.try_into().map_err(|s: Vec<u8>| wasmtime::format_err!("ghash: state has {} bytes, not 16", s.len()))?;
        let (whole, rest) = blocks.as_chunks::<16>();
        if !rest.is_empty() {
            wasmtime::bail!("ghash: {} bytes is not a whole number of 16-byte blocks", blocks.len());
        }
        let Some((first, others)) = whole.split_first() else {
            return Ok(state.to_vec());
        };
        // GHASH is Horner's rule in GF(2^128): continuing from a state is hashing from zero
        // with the state XORed into the first block.
        let mut g = ghash::GHash::new_from_slice(&h).map_err(|_| wasmtime::format_err!("ghash: bad h"))?;
        let mut head = *first;
        for (b, s) in head.iter_mut().zip(state) {
            *b ^= s;
        }
        g.update(&[head.into()]);
        let (others, _) = ghash::universal_hash::array::Array::slice_as_chunks(others.as_flattened());
        g.update(others);
        Ok(g.finalize().to_vec())
    }
}

impl Limited for HostState {
    fn limiter(&mut self) -> &mut StoreLimiter {
        &mut self.limiter
    }
}

//! Any bytes: decoding a block never panics, and whatever decodes re-encodes to the same
//! bytes; so does its header alone.
#![no_main]

use joule_primitives::{Block, BlockHeader, Encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode(data) {
        assert_eq!(block.encode(), data, "a block decoded from bytes it does not encode to");
        let header = block.header.encode();
        assert_eq!(BlockHeader::decode(&header).map(|h| h == block.header), Ok(true));
    }
    if let Ok(header) = BlockHeader::decode(data) {
        assert_eq!(header.encode(), data);
    }
});

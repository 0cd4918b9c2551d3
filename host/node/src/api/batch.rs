//! Splitting a `POST /v1/txs` body into transactions with work and memory bounded by the
//! batch limit, whatever the body holds: binary frames are counted as they arrive, and
//! reading stops at the first frame over the limit; a JSON array is walked element by
//! element, each one borrowed from the body and measured before it is decoded, so no
//! element becomes a `serde_json::Value` (a body of `[0,0,…]` would take gigabytes).

use axum::body::Bytes;
use bytes::{Buf, BytesMut};
use joule_ledger::pool::Rejection;
use joule_primitives::{Encode, Transaction};
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::cell::Cell;

/// Why a body is not a batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// 413: more transactions than one batch may hold.
    #[error("more than {0} transactions in one batch")]
    TooMany(usize),
    /// 400: bad framing.
    #[error("batch frame {0}: truncated length prefix")]
    TruncatedPrefix(usize),
    /// 400: bad framing.
    #[error("batch frame {index}: length {len} runs past the body")]
    PastEnd { index: usize, len: usize },
    /// 400: not a JSON array.
    #[error("malformed batch JSON (expected an array of transactions): {0}")]
    Json(String),
}

/// One frame of a binary batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A transaction's bytes, not yet decoded.
    Tx(Bytes),
    /// A frame of this many bytes, over the transaction limit: skipped, never stored.
    TooLarge(usize),
}

enum State {
    /// Reading a length prefix: its bytes so far.
    Prefix([u8; 4], usize),
    /// Reading a frame of `len` bytes that did not arrive in one piece.
    Body { len: usize, data: BytesMut },
    /// Skipping an oversized frame.
    Skip { len: usize, left: usize },
}

/// Splits `u32 LE length ‖ bytes` frames out of a body as its chunks arrive.
pub struct FrameReader {
    max_frames: usize,
    max_frame: usize,
    frames: Vec<Frame>,
    state: State,
}

impl FrameReader {
    pub fn new(max_frames: usize, max_frame: usize) -> FrameReader {
        FrameReader { max_frames, max_frame, frames: vec![], state: State::Prefix([0; 4], 0) }
    }

    /// The next chunk of the body. Frames inside one chunk share its memory.
    pub fn push(&mut self, mut chunk: Bytes) -> Result<(), BatchError> {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Prefix(prefix, have) => {
                    let take = (4 - *have).min(chunk.len());
                    prefix[*have..*have + take].copy_from_slice(&chunk[..take]);
                    *have += take;
                    chunk.advance(take);
                    if *have < 4 {
                        continue;
                    }
                    // The frame count is checked when a frame starts: reading stops at the
                    // first one over the limit.
                    if self.frames.len() >= self.max_frames {
                        return Err(BatchError::TooMany(self.max_frames));
                    }
                    let len = u32::from_le_bytes(*prefix) as usize;
                    self.state = if len > self.max_frame {
                        State::Skip { len, left: len }
                    } else if len <= chunk.len() {
                        self.frames.push(Frame::Tx(chunk.split_to(len)));
                        State::Prefix([0; 4], 0)
                    } else {
                        State::Body { len, data: BytesMut::with_capacity(len) }
                    };
                }
                State::Body { len, data } => {
                    let take = (*len - data.len()).min(chunk.len());
                    data.extend_from_slice(&chunk.split_to(take));
                    if data.len() == *len {
                        self.frames.push(Frame::Tx(data.split().freeze()));
                        self.state = State::Prefix([0; 4], 0);
                    }
                }
                State::Skip { len, left } => {
                    let take = (*left).min(chunk.len());
                    chunk.advance(take);
                    *left -= take;
                    if *left == 0 {
                        self.frames.push(Frame::TooLarge(*len));
                        self.state = State::Prefix([0; 4], 0);
                    }
                }
            }
        }
        Ok(())
    }

    /// The body ended: its frames, unless it ended inside one.
    pub fn finish(self) -> Result<Vec<Frame>, BatchError> {
        let index = self.frames.len();
        match self.state {
            State::Prefix(_, 0) => Ok(self.frames),
            State::Prefix(..) => Err(BatchError::TruncatedPrefix(index)),
            State::Body { len, .. } | State::Skip { len, .. } => Err(BatchError::PastEnd { index, len }),
        }
    }
}

/// Decode frames (blocking work: call it off the async workers).
pub fn decode_frames(frames: Vec<Frame>, max_tx: usize) -> Vec<Result<Transaction, Rejection>> {
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Tx(bytes) => Transaction::decode(&bytes).map_err(|e| Rejection::Malformed(e.to_string())),
            Frame::TooLarge(size) => Err(Rejection::TooLarge { size, limit: max_tx }),
        })
        .collect()
}

/// Decode a JSON array of transactions (blocking work): at most `max_items` elements, each
/// at most `max_item` bytes of JSON text. An element that is not a transaction is that
/// transaction's `malformed` answer; a body that is not an array fails as a whole.
pub fn decode_json(body: &[u8], max_items: usize, max_item: usize) -> Result<Vec<Result<Transaction, Rejection>>, BatchError> {
    let too_many = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let items = (&mut de)
        .deserialize_seq(Items { max_items, max_item, too_many: &too_many })
        .and_then(|items| de.end().map(|()| items))
        .map_err(|e| if too_many.get() { BatchError::TooMany(max_items) } else { BatchError::Json(e.to_string()) })?;
    Ok(items)
}

struct Items<'a> {
    max_items: usize,
    max_item: usize,
    too_many: &'a Cell<bool>,
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = Vec<Result<Transaction, Rejection>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of at most {} transactions", self.max_items)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![];
        // Borrowed from the body: measuring an element costs nothing.
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if out.len() >= self.max_items {
                self.too_many.set(true);
                return Err(serde::de::Error::custom(format!("more than {} transactions", self.max_items)));
            }
            let text = raw.get();
            out.push(if text.len() > self.max_item {
                Err(Rejection::TooLarge { size: text.len(), limit: self.max_item })
            } else {
                serde_json::from_str::<Transaction>(text).map_err(|e| Rejection::Malformed(format!("transaction JSON: {e}")))
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joule_client::wire::frame_batch;

    fn read(body: &[u8], chunk: usize, max_frames: usize, max_frame: usize) -> Result<Vec<Frame>, BatchError> {
        let mut r = FrameReader::new(max_frames, max_frame);
        for c in body.chunks(chunk.max(1)) {
            r.push(Bytes::copy_from_slice(c))?;
        }
        r.finish()
    }

    #[test]
    fn frames_are_the_same_however_the_body_is_cut() {
        let body = frame_batch([&b"ab"[..], &b""[..], &b"xyz"[..], &[7u8; 40][..]]);
        for chunk in [1, 2, 3, 5, 7, body.len()] {
            let frames = read(&body, chunk, 10, 32).unwrap();
            assert_eq!(
                frames,
                vec![Frame::Tx(Bytes::from_static(b"ab")), Frame::Tx(Bytes::new()), Frame::Tx(Bytes::from_static(b"xyz")), Frame::TooLarge(40)],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn reading_stops_at_the_first_frame_over_the_count() {
        let empty: Vec<&[u8]> = vec![&[]; 5];
        let body = frame_batch(empty);
        assert_eq!(read(&body, 3, 5, 8).unwrap().len(), 5);
        let mut r = FrameReader::new(4, 8);
        // The fifth prefix fails at once, before anything after it is read.
        assert_eq!(r.push(Bytes::from(body)), Err(BatchError::TooMany(4)));
    }

    #[test]
    fn a_body_ending_inside_a_frame_is_refused() {
        assert_eq!(read(&[1, 0], 1, 10, 8), Err(BatchError::TruncatedPrefix(0)));
        let mut body = frame_batch([&b"ok"[..]]);
        body.extend([5, 0, 0, 0, b'a']);
        assert_eq!(read(&body, 2, 10, 8), Err(BatchError::PastEnd { index: 1, len: 5 }));
        body.truncate(4 + 2);
        body.extend([50, 0, 0, 0, 1]);
        assert_eq!(read(&body, 2, 10, 8), Err(BatchError::PastEnd { index: 1, len: 50 }));
    }

    #[test]
    fn json_elements_are_counted_and_measured_one_by_one() {
        let items = decode_json(b" [0, {\"x\": 1}, \"long string\"] ", 3, 8).unwrap();
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Err(Rejection::Malformed(m)) if m.contains("transaction JSON")));
        assert!(matches!(items[2], Err(Rejection::TooLarge { size: 13, limit: 8 })));
        assert_eq!(decode_json(b"[0,0,0,0]", 3, 8).unwrap_err(), BatchError::TooMany(3));
        // The count is checked before the rest is parsed: what follows does not matter.
        assert_eq!(decode_json(b"[0,0,0,0,garbage", 3, 8).unwrap_err(), BatchError::TooMany(3));
        assert!(matches!(decode_json(b"{\"a\": 1}", 3, 8), Err(BatchError::Json(_))));
        assert!(matches!(decode_json(b"[0] trailing", 3, 8), Err(BatchError::Json(_))));
        assert_eq!(decode_json(b"[]", 3, 8).unwrap().len(), 0);
    }
}

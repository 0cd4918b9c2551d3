//! The secured connection: a Noise XX handshake over TCP, then encrypted, framed, chunked
//! messages (byte layout in `docs/formats.md`, "Peer transport").
//!
//! Every frame on the wire is `u16 big-endian length ++ Noise message` (at most 65 535
//! bytes, Noise's limit). After the handshake a frame's plaintext is `flag ++ chunk`: flag
//! 1 ends a message, 0 says more chunks follow; a message is reassembled up to a bound, so a
//! peer cannot make this node buffer more than that.

use crate::suite::{NodeKey, PeerKey, WireSuite};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use snow::StatelessTransportState;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Noise's largest message.
pub const MAX_NOISE_MESSAGE: usize = 65_535;
const TAG_LEN: usize = 16;
/// Plaintext bytes of a message per frame (the frame's flag byte and AEAD tag aside).
pub const CHUNK_BYTES: usize = MAX_NOISE_MESSAGE - TAG_LEN - 1;

/// Bound to every handshake: the transport's version and what the channel passes in (its
/// name and genesis hash), so a node of another chain or version cannot complete one.
pub const PROLOGUE_PREFIX: &[u8] = b"joule-net/1\0";

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_length(2).max_frame_length(MAX_NOISE_MESSAGE).new_codec()
}

/// Why a handshake did not give an authorised peer.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// Decryption or a DH failed: another suite, another chain (prologue), or a forgery.
    #[error("noise handshake failed: {0}")]
    Noise(String),
    #[error("the peer's key {0} is not in the channel's node set")]
    NotAuthorised(PeerKey),
    #[error("the peer's key {0} is banned for misbehaving")]
    Banned(PeerKey),
    #[error("the handshake took longer than {0:?}")]
    Timeout(std::time::Duration),
}

/// Why reading a message failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection: {0}")]
    Io(std::io::Error),
    /// Bytes that are not a valid frame of this session (bad length, failed decryption,
    /// bad chunk flag): the peer is broken or hostile.
    #[error("garbage from the peer: {0}")]
    Garbage(String),
    #[error("a message over {limit} bytes")]
    Oversized { limit: usize },
}

/// A connection whose handshake succeeded with an authorised peer.
pub struct Secured {
    pub remote: PeerKey,
    pub reader: SecureReader,
    pub writer: SecureWriter,
}

/// Run the XX handshake on `stream` as initiator or responder. `check` judges the remote
/// static key as soon as it is known (before the initiator reveals its own).
pub async fn handshake(
    stream: TcpStream,
    initiator: bool,
    suite: WireSuite,
    key: &NodeKey,
    prologue: &[u8],
    check: impl Fn(&PeerKey) -> Result<(), HandshakeError>,
) -> Result<Secured, HandshakeError> {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, codec());
    let mut writer = FramedWrite::new(w, codec());
    let noise_error = |e: snow::Error| HandshakeError::Noise(e.to_string());
    if key.suite() != suite {
        return Err(HandshakeError::Noise(format!("the node key is a {} key, the channel's wire is {suite}", key.suite())));
    }
    let builder = snow::Builder::with_resolver(suite.params(), crate::suite::resolver(key.primitives().clone()))
        .local_private_key(key.private().as_slice())
        .map_err(noise_error)?
        .prologue(prologue)
        .map_err(noise_error)?;
    let mut hs = if initiator { builder.build_initiator() } else { builder.build_responder() }.map_err(noise_error)?;
    let mut buf = vec![0u8; MAX_NOISE_MESSAGE];
    let mut payload = vec![0u8; MAX_NOISE_MESSAGE];
    let remote =
        |hs: &snow::HandshakeState| hs.get_remote_static().and_then(PeerKey::from_slice).ok_or_else(|| HandshakeError::Noise("no remote static key".into()));
    if initiator {
        // -> e
        let n = hs.write_message(&[], &mut buf).map_err(noise_error)?;
        writer.send(Bytes::copy_from_slice(&buf[..n])).await?;
        // <- e, ee, s, es
        let frame = reader.next().await.ok_or(HandshakeError::Closed)??;
        hs.read_message(&frame, &mut payload).map_err(noise_error)?;
        let peer = remote(&hs)?;
        check(&peer)?;
        // -> s, se
        let n = hs.write_message(&[], &mut buf).map_err(noise_error)?;
        writer.send(Bytes::copy_from_slice(&buf[..n])).await?;
    } else {
        let frame = reader.next().await.ok_or(HandshakeError::Closed)??;
        hs.read_message(&frame, &mut payload).map_err(noise_error)?;
        let n = hs.write_message(&[], &mut buf).map_err(noise_error)?;
        writer.send(Bytes::copy_from_slice(&buf[..n])).await?;
        let frame = reader.next().await.ok_or(HandshakeError::Closed)??;
        hs.read_message(&frame, &mut payload).map_err(noise_error)?;
        check(&remote(&hs)?)?;
    }
    let peer = remote(&hs)?;
    let state = Arc::new(hs.into_stateless_transport_mode().map_err(noise_error)?);
    Ok(Secured {
        remote: peer,
        reader: SecureReader { frames: reader, state: state.clone(), nonce: 0, buf: vec![0; MAX_NOISE_MESSAGE] },
        writer: SecureWriter { frames: writer, state, nonce: 0, buf: vec![0; MAX_NOISE_MESSAGE] },
    })
}

/// The receiving half: decrypts frames and reassembles messages.
pub struct SecureReader {
    frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    buf: Vec<u8>,
}

impl SecureReader {
    /// The next whole message (at most `limit` bytes), or `None` when the peer closed.
    pub async fn recv(&mut self, limit: usize) -> Result<Option<Vec<u8>>, ReadError> {
        let mut message = Vec::new();
        loop {
            let frame = match self.frames.next().await {
                None if message.is_empty() => return Ok(None),
                None => return Err(ReadError::Garbage("the connection closed inside a message".into())),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => return Err(ReadError::Garbage(format!("bad frame: {e}"))),
                Some(Err(e)) => return Err(ReadError::Io(e)),
                Some(Ok(f)) => f,
            };
            let n = self.state.read_message(self.nonce, &frame, &mut self.buf).map_err(|e| ReadError::Garbage(format!("frame {}: {e}", self.nonce)))?;
            self.nonce = self.nonce.checked_add(1).ok_or_else(|| ReadError::Garbage("nonce exhausted".into()))?;
            let Some((&flag, chunk)) = self.buf.get(..n).and_then(<[u8]>::split_first) else {
                return Err(ReadError::Garbage("an empty frame".into()));
            };
            if message.len() + chunk.len() > limit {
                return Err(ReadError::Oversized { limit });
            }
            message.extend_from_slice(chunk);
            match flag {
                1 => return Ok(Some(message)),
                0 => continue,
                other => return Err(ReadError::Garbage(format!("chunk flag {other}"))),
            }
        }
    }
}

/// The sending half: chunks, encrypts and frames messages.
pub struct SecureWriter {
    frames: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    buf: Vec<u8>,
}

impl SecureWriter {
    pub async fn send(&mut self, message: &[u8]) -> std::io::Result<()> {
        let mut chunks = message.chunks(CHUNK_BYTES).peekable();
        let mut plain = Vec::with_capacity(CHUNK_BYTES.min(message.len()) + 1);
        if chunks.peek().is_none() {
            return self.send_chunk(&[1]).await;
        }
        while let Some(chunk) = chunks.next() {
            plain.clear();
            plain.push(u8::from(chunks.peek().is_none()));
            plain.extend_from_slice(chunk);
            self.send_chunk(&plain).await?;
        }
        Ok(())
    }

    async fn send_chunk(&mut self, plain: &[u8]) -> std::io::Result<()> {
        let n = self.state.write_message(self.nonce, plain, &mut self.buf).map_err(|e| std::io::Error::other(format!("noise: {e}")))?;
        self.nonce = self.nonce.checked_add(1).ok_or_else(|| std::io::Error::other("nonce exhausted"))?;
        self.frames.send(Bytes::copy_from_slice(&self.buf[..n])).await
    }

    /// Raw bytes straight onto the socket, bypassing the encryption: for tests that play a
    /// broken or hostile peer.
    #[doc(hidden)]
    pub async fn send_raw_frame(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.frames.send(Bytes::copy_from_slice(bytes)).await
    }
}

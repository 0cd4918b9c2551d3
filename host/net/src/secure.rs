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

/// The first frame an initiator sends (wire version 2): this, then the name of the Noise
/// protocol it speaks, so that a responder holding keys of several suites (around a
/// crypto-suite switch) answers in that one. A responder also takes a connection that
/// starts with the Noise handshake itself (version 1), in its first suite.
pub const HELLO: &[u8] = b"joule-net/hello\0";
/// Longest hello accepted.
const MAX_HELLO: usize = 128;

/// A connection whose handshake succeeded with an authorised peer.
pub struct Secured {
    pub remote: PeerKey,
    /// The suite the connection runs in.
    pub suite: WireSuite,
    pub reader: SecureReader,
    pub writer: SecureWriter,
}

/// What a responder answers a connection with: its key of the suite, and the prologue.
pub struct Answer {
    pub key: Arc<NodeKey>,
    pub prologue: Vec<u8>,
}

pub(crate) type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
pub(crate) type Writer = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

/// Run the XX handshake on `stream` as initiator or responder in `suite`. `check` judges
/// the remote static key as soon as it is known (before the initiator reveals its own).
pub async fn handshake(
    stream: TcpStream,
    initiator: bool,
    suite: WireSuite,
    key: &NodeKey,
    prologue: &[u8],
    check: impl Fn(&PeerKey) -> Result<(), HandshakeError>,
) -> Result<Secured, HandshakeError> {
    if initiator {
        return initiate(stream, suite, key, prologue, check).await;
    }
    let (mut reader, writer) = split(stream);
    let (asked, first) = hello(&mut reader).await?;
    if asked.is_some_and(|a| a != suite) {
        return Err(HandshakeError::Noise(format!("the peer speaks another protocol than {}", suite.protocol_name())));
    }
    noise(reader, writer, false, suite, key, prologue, first, check).await
}

/// Dial side: the hello naming `suite`'s protocol, then the handshake.
pub async fn initiate(
    stream: TcpStream,
    suite: WireSuite,
    key: &NodeKey,
    prologue: &[u8],
    check: impl Fn(&PeerKey) -> Result<(), HandshakeError>,
) -> Result<Secured, HandshakeError> {
    let (reader, mut writer) = split(stream);
    let mut hello = HELLO.to_vec();
    hello.extend_from_slice(suite.protocol_name().as_bytes());
    writer.send(Bytes::from(hello)).await?;
    noise(reader, writer, true, suite, key, prologue, None, check).await
}

/// Listening side: read the hello (or a version-1 first message), let `pick` choose the
/// suite and key to answer in (`None` asked: a version-1 peer), then the handshake.
pub async fn respond(
    stream: TcpStream,
    pick: impl Fn(Option<WireSuite>) -> Option<(WireSuite, Answer)>,
    check: impl Fn(WireSuite, &PeerKey) -> Result<(), HandshakeError>,
) -> Result<Secured, HandshakeError> {
    let (mut reader, writer) = split(stream);
    let (asked, first) = hello(&mut reader).await?;
    let Some((suite, answer)) = pick(asked) else {
        let named = asked.map_or("version 1 of the wire".to_string(), |s| s.protocol_name().to_string());
        return Err(HandshakeError::Noise(format!("this node has no key for {named}")));
    };
    noise(reader, writer, false, suite, &answer.key, &answer.prologue, first, |k| check(suite, k)).await
}

pub(crate) fn split(stream: TcpStream) -> (Reader, Writer) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    (FramedRead::new(r, codec()), FramedWrite::new(w, codec()))
}

/// The suite a connection's first frame asks for: a hello names one (an unknown name is
/// an error); any other frame is a version-1 peer's first Noise message, given back.
async fn hello(reader: &mut Reader) -> Result<(Option<WireSuite>, Option<bytes::BytesMut>), HandshakeError> {
    let frame = reader.next().await.ok_or(HandshakeError::Closed)??;
    let Some(name) = frame.strip_prefix(HELLO) else { return Ok((None, Some(frame))) };
    if frame.len() > MAX_HELLO {
        return Err(HandshakeError::Noise(format!("a hello of {} bytes", frame.len())));
    }
    let suite = WireSuite::ALL.iter().copied().find(|s| s.protocol_name().as_bytes() == name);
    match suite {
        Some(s) => Ok((Some(s), None)),
        None => Err(HandshakeError::Noise(format!("the peer asks for an unknown protocol {:?}", String::from_utf8_lossy(name)))),
    }
}

/// The XX handshake itself, on a connection split into frames (`first`: the first message,
/// already read).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn noise(
    mut reader: Reader,
    mut writer: Writer,
    initiator: bool,
    suite: WireSuite,
    key: &NodeKey,
    prologue: &[u8],
    first: Option<bytes::BytesMut>,
    check: impl Fn(&PeerKey) -> Result<(), HandshakeError>,
) -> Result<Secured, HandshakeError> {
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
        let frame = match first {
            Some(f) => f,
            None => reader.next().await.ok_or(HandshakeError::Closed)??,
        };
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
        suite,
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

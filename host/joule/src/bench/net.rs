//! `joule bench net`: the peer transport per suite, side by side in one run, on the crypto
//! plugins (what a node runs) and on the same algorithms natively (RustCrypto in this
//! process, `joule_net::NativePrimitives`): the Noise XX handshake (both sides on this
//! machine, over loopback TCP), the encrypted throughput of 1 MiB messages through a
//! connection against the same bytes through a plain loopback socket, and the wire's AEAD
//! alone on 64 KiB frames (the size the transport encrypts).

use super::GlobalOpts;
use anyhow::{Context, Result};
use joule_net::secure::{self, Secured};
use joule_net::{NativePrimitives, NodeKey, WirePrimitives, WireSuite};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// Handshakes per suite.
    #[arg(long, default_value_t = 200)]
    pub handshakes: usize,
    /// MiB sent through each connection.
    #[arg(long, default_value_t = 256)]
    pub mib: usize,
    /// MiB sealed and opened by the AEAD alone, per route.
    #[arg(long, default_value_t = 256)]
    pub aead_mib: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    suite: String,
    /// `plugins` or `native`.
    route: &'static str,
    protocol: String,
    handshake_p50_us: f64,
    handshake_p99_us: f64,
    encrypted_mib_s: f64,
    plain_mib_s: f64,
    aead_seal_mib_s: f64,
    aead_open_mib_s: f64,
}

/// The frame size the transport encrypts (`joule_net::secure`'s chunks).
const FRAME: usize = 64 << 10;

/// Seal then open `mib` MiB in 64 KiB frames; MiB/s of each. Every frame opened is checked
/// against the plaintext, so a failed operation cannot count.
fn aead(p: &dyn WirePrimitives, mib: usize) -> Result<(f64, f64)> {
    let key = [0x42u8; 32];
    let plain = vec![0x5au8; FRAME];
    let frames = (mib.max(1) << 20) / FRAME;
    // Warm-up, untimed.
    for n in 0..16u64 {
        let nonce = nonce(n);
        let sealed = p.seal(&key, &nonce, b"", &plain).context("seal failed")?;
        anyhow::ensure!(p.open(&key, &nonce, b"", &sealed).as_deref() == Some(&plain[..]), "open failed");
    }
    // The first 64 sealed frames are kept to be opened below.
    let t = Instant::now();
    let mut sealed = Vec::with_capacity(64);
    for n in 0..frames as u64 {
        let frame = p.seal(&key, &nonce(n), b"", &plain).context("seal failed")?;
        if sealed.len() < 64 {
            sealed.push(frame);
        } else {
            std::hint::black_box(frame);
        }
    }
    let seal_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for n in 0..frames {
        let frame = sealed.get(n % sealed.len()).context("no frames")?;
        let opened = p.open(&key, &nonce((n % sealed.len()) as u64), b"", frame).context("open failed")?;
        anyhow::ensure!(opened == plain, "a frame opened to other bytes");
    }
    let open_s = t.elapsed().as_secs_f64();
    let total = (frames * FRAME) as f64 / f64::from(1 << 20);
    Ok((total / seal_s, total / open_s))
}

fn nonce(n: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    b
}

async fn pair(suite: WireSuite, a: &NodeKey, b: &NodeKey) -> Result<(Secured, Secured)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let prologue = b"joule-bench";
    let (accepted, dialled) = tokio::join!(
        async {
            let (s, _) = listener.accept().await?;
            secure::handshake(s, false, suite, b, prologue, |_| Ok(())).await.map_err(anyhow::Error::from)
        },
        async {
            let s = TcpStream::connect(addr).await?;
            secure::handshake(s, true, suite, a, prologue, |_| Ok(())).await.map_err(anyhow::Error::from)
        }
    );
    Ok((dialled?, accepted?))
}

async fn suite_row(route: &'static str, primitives: Arc<dyn WirePrimitives>, a: &NetArgs) -> Result<Row> {
    let suite = primitives.suite();
    let (aead_seal_mib_s, aead_open_mib_s) = aead(primitives.as_ref(), a.aead_mib)?;
    let (ka, kb) = (NodeKey::generate(primitives.clone())?, NodeKey::generate(primitives)?);
    // Warm-up, untimed.
    for _ in 0..5 {
        pair(suite, &ka, &kb).await?;
    }
    let mut times = Vec::with_capacity(a.handshakes);
    for _ in 0..a.handshakes.max(1) {
        let t = Instant::now();
        pair(suite, &ka, &kb).await?;
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |p: f64| times.get(((times.len() - 1) as f64 * p) as usize).copied().unwrap_or_default().as_secs_f64() * 1e6;
    let (mut tx, mut rx) = pair(suite, &ka, &kb).await?;
    let message = vec![0x5au8; 1 << 20];
    let total = a.mib.max(1);
    let t = Instant::now();
    let sender = async {
        for _ in 0..total {
            tx.writer.send(&message).await?;
        }
        anyhow::Ok(())
    };
    let receiver = async {
        for _ in 0..total {
            let m = rx.reader.recv(2 << 20).await?.context("closed early")?;
            anyhow::ensure!(m.len() == message.len(), "a message arrived cut");
        }
        anyhow::Ok(())
    };
    let (s, r) = tokio::join!(sender, receiver);
    s?;
    r?;
    let encrypted = total as f64 / t.elapsed().as_secs_f64();
    Ok(Row {
        suite: suite.to_string(),
        route,
        aead_seal_mib_s,
        aead_open_mib_s,
        protocol: suite.protocol_name().into(),
        handshake_p50_us: pct(0.5),
        handshake_p99_us: pct(0.99),
        encrypted_mib_s: encrypted,
        plain_mib_s: plain(total).await?,
    })
}

/// The same MiBs through a plain loopback socket.
async fn plain(total: usize) -> Result<f64> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let message = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let (r, w) = tokio::join!(
        async {
            let (mut s, _) = listener.accept().await?;
            let mut buf = vec![0u8; 1 << 20];
            for _ in 0..total {
                s.read_exact(&mut buf).await?;
            }
            anyhow::Ok(())
        },
        async {
            let mut s = TcpStream::connect(addr).await?;
            for _ in 0..total {
                s.write_all(&message).await?;
            }
            anyhow::Ok(())
        }
    );
    r?;
    w?;
    Ok(total as f64 / t.elapsed().as_secs_f64().max(Duration::from_micros(1).as_secs_f64()))
}

pub fn run(g: &GlobalOpts, a: NetArgs) -> Result<()> {
    let crypto = g.crypto().context("the crypto plugins (cargo xtask plugins)")?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = rt.block_on(async {
        let mut rows = Vec::new();
        for suite in [WireSuite::Intl, WireSuite::Gm] {
            for route in ["plugins", "native"] {
                eprintln!("bench net: {suite} on {route}…");
                let primitives = match route {
                    "plugins" => joule_node::wire::PluginWire::shared(crypto.clone(), suite)?,
                    _ => NativePrimitives::shared(suite),
                };
                rows.push(suite_row(route, primitives, &a).await?);
            }
        }
        anyhow::Ok(rows)
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "| suite | route | handshake p50 / p99 | 1 MiB messages, encrypted | same bytes, plain TCP | encrypted / plain | AEAD seal / open, 64 KiB frames |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| `{}` | {} | {:.0} µs / {:.0} µs | {:.0} MiB/s | {:.0} MiB/s | {:.2} | {:.0} / {:.0} MiB/s |",
            r.suite,
            r.route,
            r.handshake_p50_us,
            r.handshake_p99_us,
            r.encrypted_mib_s,
            r.plain_mib_s,
            r.encrypted_mib_s / r.plain_mib_s,
            r.aead_seal_mib_s,
            r.aead_open_mib_s
        );
    }
    println!();
    println!("| suite | AEAD | plugins / native, seal | plugins / native, open | handshake p50, native / plugins |");
    println!("|---|---|---:|---:|---:|");
    for pair in rows.chunks_exact(2) {
        let (p, n) = (&pair[0], &pair[1]);
        let aead = if p.suite == "gm" { "SM4-GCM" } else { "AES-256-GCM" };
        println!(
            "| `{}` | {aead} | {:.2} | {:.2} | {:.2} |",
            p.suite,
            p.aead_seal_mib_s / n.aead_seal_mib_s,
            p.aead_open_mib_s / n.aead_open_mib_s,
            n.handshake_p50_us / p.handshake_p50_us
        );
    }
    Ok(())
}

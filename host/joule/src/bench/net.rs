//! `joule bench net`: the peer transport per suite, side by side in one run: the Noise XX
//! handshake (both sides on this machine, over loopback TCP) and the encrypted throughput
//! of 1 MiB messages through a connection, against the same bytes sent through a plain
//! loopback socket (the ratio is what the encryption and framing cost).

use anyhow::{Context, Result};
use joule_net::secure::{self, Secured};
use joule_net::{NodeKey, WireSuite};
use serde::Serialize;
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
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    suite: String,
    protocol: String,
    handshake_p50_us: f64,
    handshake_p99_us: f64,
    encrypted_mib_s: f64,
    plain_mib_s: f64,
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

async fn suite_row(suite: WireSuite, a: &NetArgs) -> Result<Row> {
    let (ka, kb) = (NodeKey::generate(suite)?, NodeKey::generate(suite)?);
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

pub fn run(a: NetArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = rt.block_on(async {
        let mut rows = Vec::new();
        for suite in [WireSuite::Intl, WireSuite::Gm] {
            eprintln!("bench net: {suite}…");
            rows.push(suite_row(suite, &a).await?);
        }
        anyhow::Ok(rows)
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("| suite | protocol | handshake p50 / p99 | 1 MiB messages, encrypted | same bytes, plain TCP | encrypted / plain |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| `{}` | `{}` | {:.0} µs / {:.0} µs | {:.0} MiB/s | {:.0} MiB/s | {:.2} |",
            r.suite,
            r.protocol,
            r.handshake_p50_us,
            r.handshake_p99_us,
            r.encrypted_mib_s,
            r.plain_mib_s,
            r.encrypted_mib_s / r.plain_mib_s
        );
    }
    Ok(())
}

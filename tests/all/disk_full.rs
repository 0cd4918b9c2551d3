//! A node whose disk fills up says so and recovers on its own: on an 8 MiB tmpfs, a filler
//! file takes the last byte while transactions arrive. The failed commit makes `/readyz`
//! and `/v1/health` answer 503 naming storage and `POST /v1/tx` answer 503
//! (`storage_failed`); a configuration or plugin change answers 507 and changes nothing,
//! leaving no temporary file. Deleting the filler lets the chain reopen its store and
//! produce again without a restart; a restart finds the chain intact; a start on a full
//! disk fails before it announces an address.
//!
//! Needs root (to mount the tmpfs), as CI runs; elsewhere it says why it is skipped.

use crate::support::{NodeProcess, init_node, joule, suite, tempdir};
use joule_crypto::{KeyPair, SuiteCrypto};
use joule_primitives::{ChainCrypto, ChannelId, Payload, Transaction, UnsignedTransaction};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted on drop (lazily if something still holds it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        let uid = Command::new("id").arg("-u").output().map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not root: mounting a tmpfs needs root (CI runs as root)".into());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Append to `path` until the file system is full; the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open filler");
    let chunk = vec![0xa5u8; 64 << 10];
    let mut total = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => return total,
            Err(e) => panic!("filler: {e}"),
        }
    }
}

/// A data record of `len` bytes that do not repeat, so that every block needs new pages.
fn blob_tx(s: &SuiteCrypto, kp: &KeyPair, nonce: u64, len: usize) -> Transaction {
    let mut value = Vec::with_capacity(len);
    let mut x = nonce.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while value.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        value.extend(x.to_le_bytes());
    }
    value.truncate(len);
    let body = UnsignedTransaction {
        channel: ChannelId::new("grid").expect("channel"),
        sender: kp.public_key.clone(),
        nonce,
        gas_limit: 1_000_000,
        sig_alg: s.suite().signature.clone(),
        payload: Payload::Data { key: format!("blob/{nonce}"), value },
    };
    let sig = s.sign(&kp.private_key, &body.signing_bytes()).expect("sign");
    body.sign_with(sig)
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory with an 8 MiB tmpfs mounted at `mnt/` in it (unmounted when the
/// guard drops, before the directory goes); `None`, with a line saying why, where mounting is
/// not allowed (CI runs as root and mounts).
fn small_disk() -> Option<(tempfile::TempDir, Tmpfs)> {
    let d = tempdir();
    match Tmpfs::mount(&d.path().join("mnt"), "8m") {
        Ok(t) => Some((d, t)),
        Err(reason) => {
            eprintln!("disk_full: skipped: {reason}");
            None
        }
    }
}

fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.contains(".tmp")).collect()
}

#[test]
fn a_full_disk_stops_the_chain_visibly_and_it_resumes_when_space_returns() {
    let Some((d, _tmpfs)) = small_disk() else { return };
    let mnt = d.path().join("mnt");
    let dir = mnt.join("node");
    init_node(&dir, &["--block-interval-ms", "100"]);
    let node = NodeProcess::start(&dir, &[]);
    let (s, ready) = node.get("/readyz");
    assert_eq!(s, 200, "{ready}");
    let s_gm = suite("gm");
    let kp = s_gm.crypto().generate_key("sm2").unwrap();
    let (s, first) = node.submit(&blob_tx(&s_gm, &kp, 0, 1024));
    assert_eq!(s, 202, "{first}");
    node.wait_tx(first["hash"].as_str().unwrap());

    // The disk fills up while transactions keep coming.
    let filler = mnt.join("filler");
    assert!(fill(&filler) > 0);
    let mut nonce = 1;
    let mut last_admitted = String::new();
    let refused = {
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < Duration::from_secs(40), "no commit failed on a full disk (height {})", node.height());
            let (s, body) = node.submit(&blob_tx(&s_gm, &kp, nonce, 32 << 10));
            match s {
                202 => {
                    last_admitted = body["hash"].as_str().unwrap().to_string();
                    nonce += 1;
                }
                503 => break body,
                // Too far ahead of the committed nonce: let blocks catch up.
                400 if body["code"] == "nonce_too_far_ahead" => std::thread::sleep(Duration::from_millis(20)),
                _ => panic!("POST /v1/tx: {s} {body}"),
            }
        }
    };
    assert_eq!(refused["code"], "storage_failed", "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("No space left"), "the reason is given: {refused}");
    let (s, body) =
        node.post_raw("/v1/txs", "application/json", format!("[{}]", serde_json::to_string(&blob_tx(&s_gm, &kp, nonce, 64)).unwrap()).as_bytes(), false);
    assert_eq!((s, body["code"].as_str()), (503, Some("storage_failed")), "{body}");
    let (s, ready) = node.get("/readyz");
    assert_eq!((s, ready["code"].as_str()), (503, Some("not_ready")), "{ready}");
    assert!(ready["error"].as_str().unwrap().starts_with("storage: "), "{ready}");
    let (s, health) = node.get("/v1/health");
    assert_eq!((s, health["code"].as_str()), (503, Some("unhealthy")), "{health}");
    assert!(health["error"].as_str().unwrap().contains("storage: "), "{health}");
    let (s, _) = node.get("/livez");
    assert_eq!(s, 200, "alive all the same");
    let stuck = node.height();

    // Writes that fail change nothing and leave nothing behind.
    fill(&filler);
    let network = std::fs::read_to_string(dir.join("network.toml")).unwrap();
    let (s, body) = node.put("/v1/config/network", &network.replace("interval-ms = 100", "interval-ms = 150"));
    assert_eq!((s, body["code"].as_str()), (507, Some("storage_full")), "{body}");
    assert_eq!(std::fs::read_to_string(dir.join("network.toml")).unwrap(), network);
    assert_eq!(temporaries(&dir), Vec::<String>::new());
    let (s, body) = node.call("POST", "/v1/plugins/crypto-extra/deactivate", None);
    assert_eq!((s, body["code"].as_str()), (507, Some("storage_full")), "{body}");
    let (_, plugins) = node.call("GET", "/v1/plugins", None);
    assert!(plugins.as_array().unwrap().iter().any(|p| p["name"] == "crypto-extra" && p["active"] == true), "not applied: {plugins}");
    assert_eq!(temporaries(&dir.join("plugins")), Vec::<String>::new());

    // Space returns: the chain reopens its store and carries on by itself.
    std::fs::remove_file(&filler).unwrap();
    wait_for("readiness after space returned", Duration::from_secs(30), || node.get("/readyz").0 == 200);
    let committed = node.wait_tx(&last_admitted);
    assert!(committed["block_height"].as_u64().unwrap() > stuck, "{committed}");
    let (s, body) = node.submit(&blob_tx(&s_gm, &kp, nonce, 64));
    assert_eq!(s, 202, "admission resumed: {body}");
    let after = node.wait_tx(body["hash"].as_str().unwrap());
    let height = after["block_height"].as_u64().unwrap();
    let (_, block) = node.get(&format!("/v1/blocks/{height}"));
    let (s, health) = node.get("/v1/health");
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")), "{health}");
    node.kill();

    // A restart finds the chain as it was.
    let node = NodeProcess::start(&dir, &[]);
    assert!(node.height() >= height);
    assert_eq!(node.get(&format!("/v1/blocks/{height}")).1["hash"], block["hash"]);
    assert_eq!(node.get(&format!("/v1/tx/{last_admitted}")).1["status"], "committed");
    node.kill();

    // On a full disk, the node refuses to start, before it announces an address.
    fill(&mnt.join("filler"));
    let mut child = joule().args(["node", "--dir"]).arg(&dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start joule node");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node kept running on a full disk");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success(), "{out}{err}");
    assert!(!out.contains("listening"), "announced an address: {out}");
    assert!(err.contains("does not take writes") && err.contains("No space left"), "{err}");
}

/// The first answer of `/readyz` names storage as soon as the data directory takes no
/// writes, before any commit failed (a node without transactions to commit).
#[test]
fn readiness_sees_a_full_disk_before_a_commit_fails() {
    let Some((d, _tmpfs)) = small_disk() else { return };
    let mnt = d.path().join("mnt");
    let dir = mnt.join("node");
    init_node(&dir, &["--block-interval-ms", "100"]);
    let node = NodeProcess::start(&dir, &[]);
    assert_eq!(node.get("/readyz").0, 200);
    fill(&mnt.join("filler"));
    // The probe's answer is reused for a second.
    let mut last = Value::Null;
    wait_for("readiness to see the full disk", Duration::from_secs(5), || {
        let (s, v) = node.get("/readyz");
        last = v;
        s == 503
    });
    assert!(last["error"].as_str().unwrap().contains("does not take writes"), "{last}");
    std::fs::remove_file(mnt.join("filler")).unwrap();
    wait_for("readiness after space returned", Duration::from_secs(5), || node.get("/readyz").0 == 200);
    node.kill();
}

//! Key recovery by threshold escrow (guide §6.2.2, issue 11) through `joule escrow` on a
//! node, sealing with SM2 encryption through the plugins: 2 of 3 officers recover a key, 1
//! does not, an altered share is named and does not count; every step is on chain.

use crate::support::{NodeProcess, crypto, init_node, joule, run, suite, tempdir};
use joule_crypto::pem;
use joule_primitives::Hasher;
use std::path::Path;

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn two_of_three_officers_recover_an_escrowed_key_one_cannot_and_an_altered_share_is_named() {
    let d = tempdir();
    let node_dir = d.path().join("node");
    init_node(&node_dir, &["--block-interval-ms", "100"]);
    let node = NodeProcess::start(&node_dir, &["--listen", "127.0.0.1:0"]);
    let (gm, crypto) = (suite("gm"), crypto());
    let key_file = |name: &str| {
        let kp = crypto.generate_key("sm2").expect("key");
        let path = d.path().join(format!("{name}.pem"));
        std::fs::write(&path, pem::encode(pem::PRIVATE_KEY, &kp.private_key)).expect("write");
        (path, kp)
    };
    let (user_file, user) = key_file("user");
    let officers: Vec<_> = (0..3).map(|i| key_file(&format!("officer{i}"))).collect();
    let (new_file, new) = key_file("new");
    let account = |pk: &[u8]| gm.hash(pk).expect("account").to_hex();
    let ok = |args: Vec<String>| {
        let (code, out, err) = run(joule().args(&args).arg("--dir").arg(&node_dir));
        assert_eq!(code, 0, "joule {args:?}:\n{out}{err}");
        out
    };
    let s = |v: &str| v.to_string();

    // The holder escrows its key: 2 of the 3 officers will be needed.
    let mut deposit = vec![s("escrow"), s("deposit"), s("--key"), s(p(&user_file)), s("--threshold"), s("2")];
    for (_, kp) in &officers {
        deposit.extend([s("--officer"), hex::encode(&kp.public_key)]);
    }
    let out = ok(deposit);
    assert!(out.contains("among 3 officers, 2 needed"), "{out}");
    let (escrow, requester) = (account(&user.public_key), account(&new.public_key));
    ok(vec![s("escrow"), s("request"), s("--key"), s(p(&new_file)), s("--escrow"), escrow.clone()]);

    // One approval is not enough: nothing is written.
    let approve =
        |i: usize| ok(vec![s("escrow"), s("approve"), s("--key"), s(p(&officers[i].0)), s("--escrow"), escrow.clone(), s("--requester"), requester.clone()]);
    approve(0);
    let out_file = d.path().join("recovered.pem");
    let recover = || run(joule().args(["escrow", "recover", "--key", p(&new_file), "--escrow", &escrow, "--out", p(&out_file), "--dir"]).arg(&node_dir));
    let (code, out, err) = recover();
    assert!(code != 0 && err.contains("1 of the 2 shares needed"), "{out}{err}");
    assert!(!out_file.exists());

    // An officer's approval altered on its way (here: recorded altered): named, not counted.
    let officer1 = account(&officers[1].1.public_key);
    let honest = {
        approve(1);
        let (_, v) = node.get(&format!("/v1/state/{officer1}/recovery-share/{escrow}/{requester}"));
        hex::decode(v["value"].as_str().expect("value")).expect("hex")
    };
    let mut altered: serde_json::Value = serde_json::from_slice(&honest).expect("json");
    let mut sealed = hex::decode(altered["sealed"].as_str().expect("sealed")).expect("hex");
    let at = sealed.len() - 3;
    sealed[at] ^= 1;
    altered["sealed"] = serde_json::Value::String(hex::encode(sealed));
    let (code, out, err) = run(joule()
        .args([
            "tx",
            "send",
            "--key",
            p(&officers[1].0),
            "--data-key",
            &format!("recovery-share/{escrow}/{requester}"),
            "--value",
            &altered.to_string(),
            "--wait",
            "--dir",
        ])
        .arg(&node_dir));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = recover();
    assert!(code != 0 && err.contains("1 of the 2 shares needed") && err.contains("officers [1] were altered"), "{out}{err}");

    // A third officer approves: the key comes back, the altered share named.
    approve(2);
    let (code, out, err) = recover();
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("officers [1] were altered"), "{err}");
    let recovered = pem::decode(pem::PRIVATE_KEY, &std::fs::read(&out_file).expect("recovered key")).expect("PEM");
    assert_eq!(recovered.as_slice(), user.private_key.as_slice(), "the escrowed key itself");
    // Every step is on chain: the escrow, the request, the approvals.
    for (who, key) in [
        (escrow.clone(), s("escrow")),
        (requester.clone(), format!("recovery-request/{escrow}")),
        (account(&officers[2].1.public_key), format!("recovery-share/{escrow}/{requester}")),
    ] {
        let (status, v) = node.get(&format!("/v1/state/{who}/{key}?proof=true"));
        assert!(status == 200 && v["value"].is_string() && v["proof"].is_object(), "{key}: {v}");
    }
}

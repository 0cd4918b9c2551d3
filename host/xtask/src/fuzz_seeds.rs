//! Seed corpus for the decoder fuzz targets.

use joule_primitives::*;

fn tx(nonce: u64, payload: Payload) -> Transaction {
    UnsignedTransaction { channel: ChannelId::new("grid").expect("channel"), sender: vec![0x30; 91], nonce, gas_limit: 100_000, sig_alg: "sm2".into(), payload }
        .sign_with(vec![0x30; 71])
}

/// Valid encodings in the corpus directories, so fuzzing starts from well-formed
/// transactions and blocks rather than from nothing.
pub fn write(corpus: &std::path::Path) -> anyhow::Result<()> {
    let (tx_dir, block_dir, json_dir) = (corpus.join("decode_tx"), corpus.join("decode_block"), corpus.join("decode_json"));
    let txs = vec![
        tx(0, Payload::Data { key: "meter/7".into(), value: b"42.5 kWh".to_vec() }),
        tx(1, Payload::Deploy { code: b"\0asm\x01\0\0\0".to_vec(), init_args: vec![1, 2], upgradable: true }),
        tx(2, Payload::Call { contract: Hash32([7; 32]), method: "transfer".into(), args: vec![9] }),
        tx(
            3,
            Payload::Governance(Governance::Propose {
                changes: vec![
                    Change::AddValidator { public_key: vec![4; 65], weight: 1 },
                    Change::AddNode { name: "node4".into(), network_key: [vec![2], vec![5; 32]].concat() },
                ],
                expires_at: 1000,
                components: vec![],
            }),
        ),
        tx(4, Payload::Governance(Governance::Vote { proposal: Hash32([8; 32]), expires_at: 1000 })),
        tx(5, Payload::Governance(Governance::Withdraw { proposal: Hash32([8; 32]) })),
    ];
    let header = BlockHeader {
        channel: ChannelId::new("grid").expect("channel"),
        height: 1,
        parent_hash: Hash32([1; 32]),
        timestamp_ms: 1_700_000_000_000,
        tx_root: Hash32([2; 32]),
        state_root: Hash32([3; 32]),
        receipts_root: Hash32([4; 32]),
        proposer: vec![0x30; 91],
        crypto_suite: "gm".into(),
        seal: vec![0x30; 71],
    };
    let write = |dir: &std::path::Path, name: String, bytes: &[u8]| -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    };
    for (i, t) in txs.iter().enumerate() {
        write(&tx_dir, format!("seed-{i}"), &t.encode())?;
        write(&json_dir, format!("seed-{i}"), serde_json::to_string(t)?.as_bytes())?;
    }
    write(&block_dir, "seed-empty".into(), &Block { header: header.clone(), transactions: vec![] }.encode())?;
    write(&block_dir, "seed-full".into(), &Block { header, transactions: txs }.encode())?;
    Ok(())
}

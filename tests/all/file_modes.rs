//! What a node keeps on disk is its owner's only: the data directory and its directories
//! 0700; the keystore, the chain store, the audit log and the configuration files 0600,
//! including files an older version left with the default mode and files rewritten over
//! the admin API.

use crate::support::{NodeProcess, init_node, tempdir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

fn assert_modes(dir: &Path) {
    for d in ["", "plugins", "channels", "channels/grid"] {
        assert_eq!(mode(&dir.join(d)), 0o700, "{d:?} is {:o}", mode(&dir.join(d)));
    }
    for f in ["keystore.redb", "channels/grid/chain.redb", "plugins/audit.log", "network.toml", "node.toml", "admin.token"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f} is {:o}", mode(&dir.join(f)));
    }
}

#[test]
fn the_data_directory_and_its_secrets_are_owner_only() {
    let d = tempdir();
    // A directory `joule init` creates itself (the test's own temporary directory is 0700).
    let dir = d.path().join("node");
    init_node(&dir, &["--block-interval-ms", "100"]);
    let node = NodeProcess::start(&dir, &[]);
    assert_modes(&dir);
    // Rewritten over the admin API: still owner-only.
    let network = std::fs::read_to_string(dir.join("network.toml")).unwrap();
    let (s, body) = node.put("/v1/config/network", &network.replace("interval-ms = 100", "interval-ms = 150"));
    assert_eq!(s, 200, "{body}");
    assert_eq!(mode(&dir.join("network.toml")), 0o600);
    node.kill();

    // Files an older version wrote with the default mode are tightened at the next start.
    for f in ["", "keystore.redb", "channels/grid/chain.redb", "plugins/audit.log", "network.toml", "node.toml"] {
        let mode = if f.is_empty() { 0o755 } else { 0o644 };
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let node = NodeProcess::start(&dir, &[]);
    assert_modes(&dir);
    node.kill();
}

//! The `joule` command line: exit codes, plugin directory semantics, listings, vendor
//! packing and signing.

use crate::support::{joule, run, tempdir, test_plugin_dir};

#[test]
fn with_an_empty_plugin_dir_sm2_is_an_unknown_algorithm() {
    let d = tempdir();
    let empty = d.path().join("plugins");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(d.path().join("f"), b"abc").unwrap();
    let (code, _, err) = run(joule().arg("--plugin-dir").arg(&empty).args(["crypto", "keygen", "--alg", "sm2", "--out"]).arg(d.path().join("k.pem")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown signature algorithm \"sm2\"") || err.contains("unknown public-key-encryption algorithm \"sm2\""), "{err}");
    let (code, _, err) = run(joule().env("JOULE_PLUGIN_DIR", &empty).args(["crypto", "hash", "--alg", "sm3", "--in"]).arg(d.path().join("f")));
    assert_eq!(code, 2);
    assert!(err.contains("unknown hash algorithm \"sm3\""), "{err}");
    assert!(!d.path().join("k.pem").exists());
}

#[test]
fn plugin_list_json() {
    let (code, out, err) = run(joule().args(["plugin", "list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let gm = v.as_array().unwrap().iter().find(|p| p["name"] == "crypto-gm").expect("crypto-gm listed");
    assert_eq!(gm["kind"], "crypto");
    assert_eq!(gm["active"], true);
    assert_eq!(gm["hash"].as_str().unwrap().len(), 64);
    assert!(gm["version"].as_str().unwrap().split('.').count() == 3);
    let algs: Vec<&str> = gm["algorithms"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for a in ["hash:sm3", "signature:sm2", "public-key-encryption:sm2", "symmetric-cipher:sm4-cbc", "symmetric-cipher:sm4-gcm"] {
        assert!(algs.contains(&a), "{a} in {algs:?}");
    }
}

#[test]
fn verify_exit_codes() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    std::fs::write(p("m"), b"hello").unwrap();
    let ok = |args: &[&std::ffi::OsStr]| {
        let (code, _, err) = run(joule().args(args));
        assert_eq!(code, 0, "{err}");
    };
    ok(&[
        "crypto".as_ref(),
        "keygen".as_ref(),
        "--alg".as_ref(),
        "sm2".as_ref(),
        "--out".as_ref(),
        p("k.pem").as_os_str(),
        "--pub-out".as_ref(),
        p("pub.pem").as_os_str(),
    ]);
    ok(&[
        "crypto".as_ref(),
        "sign".as_ref(),
        "--alg".as_ref(),
        "sm2".as_ref(),
        "--key".as_ref(),
        p("k.pem").as_os_str(),
        "--in".as_ref(),
        p("m").as_os_str(),
        "--out".as_ref(),
        p("s").as_os_str(),
    ]);
    let verify =
        |sig: &str, key: &str| run(joule().args(["crypto", "verify", "--alg", "sm2", "--pub"]).arg(p(key)).arg("--in").arg(p("m")).arg("--sig").arg(p(sig))).0;
    assert_eq!(verify("s", "pub.pem"), 0);
    let mut bad = std::fs::read(p("s")).unwrap();
    let n = bad.len();
    bad[n - 1] ^= 1;
    std::fs::write(p("bad"), bad).unwrap();
    assert_eq!(verify("bad", "pub.pem"), 1, "invalid signature");
    std::fs::write(p("garbage.pem"), b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").unwrap();
    assert_eq!(verify("s", "garbage.pem"), 2, "unusable key is an error");
    assert_eq!(verify("missing", "pub.pem"), 2, "missing file is an error");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(p("k.pem")).unwrap().permissions().mode() & 0o077, 0, "private keys are owner-only");
    }
}

#[test]
fn vendor_pack_and_sign() {
    let d = tempdir();
    let p = |n: &str| d.path().join(n);
    let (code, _, err) = run(joule().args(["crypto", "keygen", "--alg", "ed25519", "--out"]).arg(p("vendor.pem")).arg("--pub-out").arg(p("vendor.pub")));
    assert_eq!(code, 0, "{err}");
    // Pack the vendor's component with its plugin.toml, signing as we go.
    let src = test_plugin_dir();
    let manifest = crate::support::root().join("plugins/crypto-vendor-example/plugin.toml");
    let (code, out, err) = run(joule()
        .args(["plugin", "pack", "--version", "1.0.0", "--wasm"])
        .arg(src.join("acme-crypto.wasm"))
        .arg("--manifest")
        .arg(&manifest)
        .arg("--out")
        .arg(p("dist"))
        .arg("--sign-key")
        .arg(p("vendor.pem")));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("packed acme-crypto 1.0.0"), "{out}");
    let packed = std::fs::read_to_string(p("dist/acme-crypto.toml")).unwrap();
    let m = joule_plugin_manifest::Manifest::parse(&packed).unwrap();
    let sig = m.signature.as_ref().expect("signed");
    assert_eq!(sig.algorithm, "ed25519");
    joule_kernel::trust::verify_vendor_signature(sig, &m.signing_bytes()).expect("valid signature");
    let mut tampered = m.clone();
    tampered.version = "1.0.1".into();
    assert!(joule_kernel::trust::verify_vendor_signature(sig, &tampered.signing_bytes()).is_err(), "the signature covers the manifest");
}

#[test]
fn plugin_pack_takes_the_version_from_cargo_toml_unless_given_and_names_both_ways_when_neither_has_one() {
    let d = tempdir();
    let project = d.path().join("vendor");
    std::fs::create_dir(&project).unwrap();
    let wasm = test_plugin_dir().join("acme-crypto.wasm");
    // The example's manifest has no version of its own.
    let template = std::fs::read_to_string(crate::support::root().join("plugins/crypto-vendor-example/plugin.toml")).unwrap();
    assert!(!template.lines().any(|l| l.starts_with("version")), "the example's plugin.toml gives no version");
    std::fs::write(project.join("plugin.toml"), &template).unwrap();
    let pack = |extra: &[&str]| {
        let (code, out, err) =
            run(joule().current_dir(&project).args(["plugin", "pack", "--wasm"]).arg(&wasm).args(["--manifest", "plugin.toml", "--out", "dist/"]).args(extra));
        let version = std::fs::read_to_string(project.join("dist/acme-crypto.toml"))
            .ok()
            .map(|t| joule_plugin_manifest::Manifest::parse(&t).unwrap().version)
            .filter(|_| code == 0);
        let _ = std::fs::remove_dir_all(project.join("dist"));
        (code, version, format!("{out}{err}"))
    };

    // Neither the manifest nor a Cargo.toml has a version: an error naming both remedies.
    let (code, version, text) = pack(&[]);
    assert_eq!((code, version), (2, None), "{text}");
    for hint in ["plugin.toml has no version", "Cargo.toml", "--version"] {
        assert!(text.contains(hint), "the error mentions {hint:?}: {text}");
    }

    // The crate's Cargo.toml gives it, directly or from its workspace.
    std::fs::write(project.join("Cargo.toml"), "[package]\nname = \"acme-crypto\"\nversion = \"2.3.4\"\n").unwrap();
    assert_eq!(pack(&[]).1.as_deref(), Some("2.3.4"));
    std::fs::write(project.join("Cargo.toml"), "[package]\nname = \"acme-crypto\"\nversion.workspace = true\n").unwrap();
    std::fs::write(d.path().join("Cargo.toml"), "[workspace]\nmembers = [\"vendor\"]\n[workspace.package]\nversion = \"3.0.1\"\n").unwrap();
    assert_eq!(pack(&[]).1.as_deref(), Some("3.0.1"));
    // --version overrides it; a manifest's own version is kept.
    assert_eq!(pack(&["--version", "9.9.9"]).1.as_deref(), Some("9.9.9"));
    std::fs::write(project.join("plugin.toml"), format!("version = \"1.1.1\"\n{template}")).unwrap();
    assert_eq!(pack(&[]).1.as_deref(), Some("1.1.1"));
    // Run from elsewhere, the Cargo.toml beside the manifest counts, not the working directory's.
    std::fs::write(project.join("plugin.toml"), &template).unwrap();
    let (code, out, err) =
        run(joule().current_dir(d.path()).args(["plugin", "pack", "--wasm"]).arg(&wasm).args(["--manifest", "vendor/plugin.toml", "--out", "dist/"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("packed acme-crypto 3.0.1"), "{out}");
}

//! The vendor example's README, followed step by step as a vendor would: the example copied
//! out of this repository with its own copy of the WIT, built, packed, uploaded to a running
//! node, used and swapped out, with every command taken from the README's `sh` blocks, so
//! the README cannot drift from what works.

use crate::support::{NodeProcess, joule, root, run, tempdir, tool};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// A command of an `sh` block, split into words as the shell does, and its comment.
#[derive(Debug)]
struct ShellLine {
    words: Vec<String>,
    comment: Option<String>,
}

/// The commands of a block of shell: continuation lines joined; quotes, escapes, comments
/// and `$NAME` expansion (from `vars`) as in `sh`. Only what READMEs use: no pipes or
/// redirections (a word that needs them fails the test instead of being misread).
fn shell_lines(block: &str, vars: &BTreeMap<&str, String>) -> Vec<ShellLine> {
    let joined = block.replace("\\\n", " ");
    let mut lines = vec![];
    for line in joined.lines() {
        let (mut words, mut word, mut in_word, mut comment) = (vec![], String::new(), false, None);
        let mut chars = line.chars().peekable();
        let expand = |chars: &mut std::iter::Peekable<std::str::Chars>, word: &mut String| {
            let mut name = String::new();
            while let Some(c) = chars.peek().filter(|c| c.is_ascii_alphanumeric() || **c == '_') {
                name.push(*c);
                chars.next();
            }
            word.push_str(vars.get(name.as_str()).unwrap_or_else(|| panic!("the README uses ${name}, which this test does not define: {line}")));
        };
        while let Some(c) = chars.next() {
            match c {
                ' ' | '\t' => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                '#' if !in_word => {
                    comment = Some(chars.by_ref().collect::<String>().trim().to_string());
                }
                '\'' => {
                    in_word = true;
                    word.extend(chars.by_ref().take_while(|c| *c != '\''));
                }
                '"' => {
                    in_word = true;
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' if matches!(chars.peek(), Some('"' | '\\' | '$')) => word.push(chars.next().unwrap()),
                            '$' => expand(&mut chars, &mut word),
                            c => word.push(c),
                        }
                    }
                }
                '\\' => {
                    in_word = true;
                    word.extend(chars.next());
                }
                '$' => {
                    in_word = true;
                    expand(&mut chars, &mut word);
                }
                '|' | '>' | '<' | ';' | '&' | '`' => panic!("the README's shell uses {c:?}, which this test does not follow: {line}"),
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        if in_word {
            words.push(word);
        }
        if !words.is_empty() || comment.is_some() {
            lines.push(ShellLine { words, comment });
        }
    }
    lines
}

/// The contents of the README's ```sh blocks, in order.
fn sh_blocks(readme: &str) -> Vec<String> {
    let mut blocks = vec![];
    let mut rest = readme;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("an unterminated sh block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(&name), skip);
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// `cargo` as a vendor runs it: none of this test build's flags or target directory.
fn vendor_cargo(project: &Path, args: &[String]) {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project).args(args);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER", "RUSTC_WRAPPER"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cargo {args:?}: {e}"));
    assert!(
        out.status.success(),
        "`cargo {}` in the vendor's project failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What one `curl` command line asks for.
struct Curl {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    data: Option<String>,
    /// `-F name=@file` parts.
    form: Vec<(String, PathBuf)>,
}

impl Curl {
    fn parse(words: &[String], dir: &Path) -> Curl {
        let mut c = Curl { method: String::new(), url: String::new(), headers: vec![], data: None, form: vec![] };
        let mut it = words[1..].iter();
        while let Some(w) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("curl {w} without a value: {words:?}")).clone();
            match w.as_str() {
                "-X" => c.method = value(),
                "-H" => {
                    let h = value();
                    let (k, v) = h.split_once(':').unwrap_or_else(|| panic!("not a header: {h}"));
                    c.headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                "-d" => c.data = Some(value()),
                "-F" => {
                    let f = value();
                    let (name, file) = f.split_once("=@").unwrap_or_else(|| panic!("this test follows only -F name=@file parts: {f}"));
                    c.form.push((name.to_string(), dir.join(file)));
                }
                url if url.starts_with("http") => c.url = url.to_string(),
                other => panic!("curl option {other:?} is not one this test follows: {words:?}"),
            }
        }
        if c.method.is_empty() {
            c.method = if c.data.is_some() || !c.form.is_empty() { "POST" } else { "GET" }.into();
        }
        c
    }

    /// Send it to `node` (the README's `127.0.0.1:PORT`); the status and body.
    fn send(&self, node: &NodeProcess) -> (u16, serde_json::Value) {
        let path = self.url.strip_prefix("http://127.0.0.1:PORT").unwrap_or_else(|| panic!("the README's URL is not on 127.0.0.1:PORT: {}", self.url));
        let url = format!("{}{path}", node.base);
        let a = NodeProcess::agent();
        let resp = match self.method.as_str() {
            "GET" => {
                let mut r = a.get(&url);
                for (k, v) in &self.headers {
                    r = r.header(k, v);
                }
                r.call()
            }
            "POST" => {
                let mut r = a.post(&url);
                for (k, v) in &self.headers {
                    r = r.header(k, v);
                }
                if !self.form.is_empty() {
                    let boundary = "------------------------vendor-readme";
                    let mut body = Vec::new();
                    for (name, file) in &self.form {
                        let filename = file.file_name().unwrap().to_string_lossy();
                        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
                        body.extend(std::fs::read(file).unwrap_or_else(|e| panic!("curl -F {name}=@{}: {e}", file.display())));
                        body.extend(b"\r\n");
                    }
                    body.extend(format!("--{boundary}--\r\n").as_bytes());
                    r.header("Content-Type", &format!("multipart/form-data; boundary={boundary}")).send(&body[..])
                } else if let Some(d) = &self.data {
                    if !self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                        r = r.header("Content-Type", "application/x-www-form-urlencoded");
                    }
                    r.send(d.as_bytes())
                } else {
                    r.send_empty()
                }
            }
            m => panic!("curl -X {m} is not one this test follows"),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{} {url}: {e}", self.method));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }
}

/// A 64-hex-digit word in a comment: the README's expected digest.
fn digest_in(comment: &str) -> Option<String> {
    comment.split(|c: char| !c.is_ascii_hexdigit()).find(|w| w.len() == 64).map(str::to_lowercase)
}

#[test]
fn the_vendor_readme_builds_packs_uploads_uses_and_swaps_out_its_plugin() {
    let started = SystemTime::now();
    let example = root().join("plugins/crypto-vendor-example");
    let readme = std::fs::read_to_string(example.join("README.md")).unwrap();

    // The files the README describes are the example's.
    for file in ["src/lib.rs", "plugin.toml", "Cargo.toml", ".cargo/config.toml"] {
        assert!(readme.contains(&format!("`{file}`")), "the README describes {file}");
        assert!(example.join(file).is_file(), "the README describes {file}, which the example lacks");
    }

    // A vendor's copy, outside this repository, with its own copy of the WIT and the
    // `path` in `wit_bindgen::generate!` pointed at it: the one change the README asks for.
    let d = tempdir();
    let project = d.path().join("acme-crypto");
    copy_dir(&example, &project, &["target", "dist"]);
    let (readme_wit, rest) =
        readme.split_once("`src/lib.rs` reads it from `").and_then(|(_, r)| r.split_once('`')).expect("the README says where lib.rs reads the WIT");
    assert!(rest.contains("point the `path` in `wit_bindgen::generate!` at it"), "the README tells the vendor to repoint the WIT path");
    let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    let original = format!("path: \"{readme_wit}\"");
    assert_eq!(lib.matches(&original).count(), 1, "src/lib.rs reads the WIT from {readme_wit}, as the README says");
    let wit_dir = readme_wit.trim_start_matches("../").to_string();
    copy_dir(&root().join(&wit_dir), &project.join(&wit_dir), &[]);
    std::fs::write(project.join("src/lib.rs"), lib.replace(&original, &format!("path: \"{wit_dir}\""))).unwrap();
    // Build outputs go to a cache shared between runs (the project's `target` is a link to
    // it), so the README's paths hold and CI does not rebuild the dependencies every time.
    let cache = root().join("target/vendor-readme");
    std::fs::create_dir_all(&cache).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&cache, project.join("target")).unwrap();
    #[cfg(not(unix))]
    std::fs::create_dir(project.join("target")).unwrap();

    let node = NodeProcess::start(&d.path().join("node"), &[]);
    let vars = BTreeMap::from([("TOKEN", node.token.clone())]);
    let blocks = sh_blocks(&readme);
    assert_eq!(blocks.len(), 5, "the README's five steps: build, pack, upload and activate, use, swap out");

    let mut followed: Vec<String> = vec![];
    let mut expected_digest = None;
    let mut hashed: Option<(Vec<u8>, String)> = None;
    for block in &blocks {
        let lines = shell_lines(block, &vars);
        expected_digest = expected_digest.or_else(|| lines.iter().filter_map(|l| l.comment.as_deref()).find_map(digest_in));
        for line in lines.iter().filter(|l| !l.words.is_empty()) {
            let w = &line.words;
            let step = match w[0].as_str() {
                "cargo" => {
                    vendor_cargo(&project, &w[1..]);
                    format!("cargo {}", w[1])
                }
                "ls" => {
                    for f in &w[1..] {
                        let path = project.join(f);
                        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("ls {f}: {e}"));
                        assert!(modified >= started, "{f} is left from an earlier build, not made by this one");
                    }
                    "ls".into()
                }
                "joule" => {
                    // The optional signed pack needs the vendor's key: make one as a vendor would.
                    if let Some(key) = w.iter().position(|a| a == "--sign-key").map(|i| project.join(&w[i + 1]))
                        && !key.exists()
                    {
                        let (code, _, err) = run(joule().current_dir(&project).args(["crypto", "keygen", "--alg", "ed25519", "--out"]).arg(&key));
                        assert_eq!(code, 0, "{err}");
                    }
                    let (code, out, err) = run(joule().current_dir(&project).args(&w[1..]));
                    assert_eq!(code, 0, "`{}` failed: {out}{err}", w.join(" "));
                    format!("joule {} {}{}", w[1], w[2], if w.iter().any(|a| a == "--sign-key") { " signed" } else { "" })
                }
                "curl" => {
                    let c = Curl::parse(w, &project);
                    let (s, body) = c.send(&node);
                    assert!((200..300).contains(&s), "`{}`: {s} {body}", w.join(" "));
                    let path = c.url.trim_start_matches("http://127.0.0.1:PORT").to_string();
                    if path == "/v1/crypto/hash" {
                        let input: serde_json::Value = serde_json::from_str(c.data.as_deref().expect("the hash request's body")).unwrap();
                        hashed = Some((hex::decode(input["data_hex"].as_str().unwrap()).unwrap(), body["digest_hex"].as_str().unwrap().to_string()));
                    }
                    format!("{} {path}", c.method)
                }
                other => panic!("the README runs `{other}`, which this test does not know how to follow: {w:?}"),
            };
            followed.push(step);
        }
    }
    // Every step a vendor takes was in the README and was followed.
    assert_eq!(
        followed,
        [
            "cargo test",
            "cargo build",
            "ls",
            "joule plugin pack",
            "joule plugin pack signed",
            "POST /v1/plugins",
            "POST /v1/plugins/acme-crypto/activate",
            "POST /v1/crypto/hash",
            "POST /v1/plugins/acme-crypto/deactivate",
        ]
    );

    // The package: where the README says, versioned from Cargo.toml as it says, signed.
    let cargo: toml::Table = toml::from_str(&std::fs::read_to_string(project.join("Cargo.toml")).unwrap()).unwrap();
    let cargo_version = cargo["package"]["version"].as_str().unwrap();
    assert!(project.join("dist/acme-crypto.wasm").is_file());
    let packed = joule_plugin_manifest::Manifest::parse(&std::fs::read_to_string(project.join("dist/acme-crypto.toml")).unwrap()).unwrap();
    assert_eq!(packed.version, cargo_version, "the version is taken from Cargo.toml");
    assert!(packed.signature.is_some(), "the optional step signed it");
    let (_, list) = node.call("GET", "/v1/plugins", None);
    let installed = list.as_array().unwrap().iter().find(|p| p["name"] == "acme-crypto").expect("acme-crypto installed");
    assert_eq!((installed["version"].as_str(), installed["active"].as_bool()), (Some(cargo_version), Some(false)), "installed, and swapped out");

    // The digest the README promises, from the node, and from OpenSSL.
    let expected = expected_digest.expect("the README gives the expected digest in a comment");
    let (input, got) = hashed.expect("the README's hash request was sent");
    assert_eq!(got, expected, "the node's digest of {:?} is the README's", String::from_utf8_lossy(&input));
    std::fs::write(d.path().join("input"), &input).unwrap();
    let out = String::from_utf8(tool("openssl", &["dgst", "-blake2s256", d.path().join("input").to_str().unwrap()])).unwrap();
    assert_eq!(out.trim().rsplit_once("= ").map(|(_, h)| h), Some(expected.as_str()), "OpenSSL's BLAKE2s-256: {out}");

    // Swapped out: the algorithm is gone from the node.
    let (s, body) = node.call("POST", "/v1/crypto/hash", Some(serde_json::json!({"alg": "acme-blake2s-256", "data_hex": hex::encode(&input)})));
    assert_eq!((s, body["code"].as_str()), (400, Some("unknown_algorithm")), "{body}");
}

#[test]
fn the_readme_shell_reader_splits_words_as_sh_does() {
    let vars = BTreeMap::from([("TOKEN", "t0k".to_string())]);
    let lines = shell_lines("curl -H \"Authorization: Bearer $TOKEN\" \\\n     -d '{\"a\": \"#1\"}' http://x/y  # a comment: 0a\n# alone\nls a\\ b\n", &vars);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].words, ["curl", "-H", "Authorization: Bearer t0k", "-d", "{\"a\": \"#1\"}", "http://x/y"]);
    assert_eq!(lines[0].comment.as_deref(), Some("a comment: 0a"));
    assert!(lines[1].words.is_empty());
    assert_eq!(lines[2].words, ["ls", "a b"]);
    assert_eq!(digest_in("the digest of \"abc\": 508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982").map(|d| d.len()), Some(64));
}

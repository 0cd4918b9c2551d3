//! Durable file replacement, owner-only files and directories, and a writability probe.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Who may read a file written here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The process's umask decides (configuration, public data).
    Default,
    /// Owner read/write only (0600): keys, tokens.
    Private,
}

/// The temporary file `write_atomic` uses for `path`: beside it, so the rename stays on
/// one filesystem, and named by process so two processes never share one.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Write `bytes` to `path` through a temporary file, fsync it, rename it over `path`, and
/// fsync the directory so the rename is durable. A crash leaves the old file or the new
/// one; a failure (a full disk, say) removes the temporary file and leaves `path` as it was.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = write_and_rename(&tmp, path, bytes, mode);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_and_rename(tmp: &Path, path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if mode == Mode::Private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(tmp, path)?;
    sync_parent(path)
}

/// Create `dir` and any missing parents owner-only (0700), and make `dir` itself 0700 if it
/// existed: a node's directory holds its keystore, chain and configuration, which no other
/// local user should read.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    set_mode(dir, 0o700)
}

/// Make `path` owner read/write only (0600), creating it empty if it does not exist: for
/// files a library creates with the default mode (redb databases), made private before
/// the library writes anything into them.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    drop(opts.open(path)?);
    set_mode(path, 0o600)
}

/// Owner-only permissions on an existing file or directory (files written by older
/// versions with the default mode are tightened when the node next opens them).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(path)?.permissions().mode() & 0o777 != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// How many bytes [`probe_writable`] writes: a directory that cannot take this much is
/// full for any practical purpose (a block commit needs more).
pub const PROBE_BYTES: usize = 64 << 10;

/// Whether `dir` takes writes now: write [`PROBE_BYTES`] to a scratch file, flush it to
/// the device, remove it. A full disk (or a read-only one) fails here, so a node can refuse
/// to start, or report itself unready, before a commit fails on it.
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(format!(".write-probe{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path)?;
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_data()
    })();
    let removed = std::fs::remove_file(&path);
    result?;
    removed
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

/// Make a rename or creation in `path`'s directory durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        write_atomic(&p, b"one", Mode::Default).unwrap();
        write_atomic(&p, b"two", Mode::Default).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.toml")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        write_atomic(&p, b"old", Mode::Default).unwrap();
        // Renaming a file over a non-empty directory fails after the temporary is written.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new", Mode::Default).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, vec!["a.toml", "blocked"]);
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_and_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("a/node");
        create_private_dir(&node).unwrap();
        assert_eq!(std::fs::metadata(&node).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&node).unwrap();
        assert_eq!(std::fs::metadata(&node).unwrap().permissions().mode() & 0o777, 0o700, "an existing directory is tightened");
        let db = node.join("x.redb");
        std::fs::write(&db, b"kept").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&db).unwrap();
        assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&db).unwrap(), b"kept", "not truncated");
        private_file(&node.join("new.redb")).unwrap();
        assert_eq!(std::fs::metadata(node.join("new.redb")).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn the_write_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        probe_writable(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(probe_writable(&dir.path().join("missing")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"secret", Mode::Private).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

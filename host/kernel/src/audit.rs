//! The registry's audit trail on disk: one JSON object per line in `audit.log` (mode 0600),
//! rotated by size so that it cannot fill the disk. When the file would grow past
//! `max_bytes`, it becomes `audit.log.1`, the older ones shift up (`.1` → `.2`, …) and the
//! oldest beyond `keep` is deleted.

use joule_support::sync::lock;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Size at which `audit.log` is rotated, by default.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;
/// Rotated files kept (`audit.log.1` … `audit.log.5`), by default.
pub const DEFAULT_KEEP: usize = 5;

pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// Appends and rotations from concurrent registry changes, one at a time.
    writing: Mutex<()>,
}

impl AuditLog {
    /// The log at `path`, with the default limits.
    pub fn new(path: PathBuf) -> AuditLog {
        AuditLog::with_limits(path, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
    }

    /// A log that rotates past `max_bytes` and keeps `keep` older files (0: none, the log
    /// is truncated instead).
    pub fn with_limits(path: PathBuf, max_bytes: u64, keep: usize) -> AuditLog {
        // Logs written by older versions with the default mode become private too.
        if path.exists() {
            let _ = joule_support::fs::set_mode(&path, 0o600);
        }
        AuditLog { path, max_bytes, keep, writing: Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line (a newline is added), rotating first if it would not fit.
    pub fn append(&self, line: &str) -> std::io::Result<()> {
        let _one = lock(&self.writing);
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + line.len() as u64 + 1 > self.max_bytes {
            self.rotate()?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&self.path)?;
        f.write_all(format!("{line}\n").as_bytes())
    }

    /// `audit.log.N`.
    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(format!(".{n}"));
        self.path.with_file_name(name)
    }

    fn rotate(&self) -> std::io::Result<()> {
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        match std::fs::remove_file(self.rotated(self.keep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::with_limits(dir.path().join("audit.log"), 100, 3);
        // 20 lines of 25 bytes (24 + newline): 4 per file.
        for i in 0..20 {
            let line = format!("{{\"n\":{i:>18}}}");
            assert_eq!(line.len(), 24);
            log.append(&line).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]);
        for name in &names {
            let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(size <= 100, "{name} is {size} bytes");
        }
        // Newest in audit.log, then .1, .2, .3; everything older is gone.
        let number = |l: &String| l.trim_matches(|c: char| !c.is_ascii_digit()).parse::<u32>().unwrap();
        assert_eq!(lines(&dir.path().join("audit.log")).iter().map(number).collect::<Vec<_>>(), [16, 17, 18, 19]);
        assert_eq!(lines(&dir.path().join("audit.log.1")).iter().map(number).collect::<Vec<_>>(), [12, 13, 14, 15]);
        assert_eq!(lines(&dir.path().join("audit.log.3")).iter().map(number).collect::<Vec<_>>(), [4, 5, 6, 7]);
    }

    #[cfg(unix)]
    #[test]
    fn the_log_and_its_rotations_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "{}\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = AuditLog::with_limits(path.clone(), 10, 2);
        log.append("{\"a\": 1}").unwrap();
        log.append("{\"a\": 2}").unwrap();
        for p in [path.clone(), dir.path().join("audit.log.1")] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
    }
}

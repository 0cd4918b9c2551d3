//! Small operating-system helpers every Joule crate shares, so each exists once.
//!
//! * [`now_ms`] — the wall clock in Unix milliseconds;
//! * [`fs::write_atomic`] — replace a file so that a crash leaves the old or the new
//!   content, never a mix, and the rename itself survives a power cut;
//! * [`sync`] — locks that keep working after a panic in another holder.

pub mod fs;
pub mod sync;

/// Unix milliseconds now (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

//! Small I/O helpers every layer uses: atomic writes, capped reads, the
//! clock, the host name and a content hash.
//!
//! Every file ekp writes goes through [`write_atomic`] (or [`write_replace`]):
//! a temporary file in the same folder, then a rename over the target, so a
//! reader — or a run that was killed — never sees half a file.

use std::io::{Read as _, Write as _};
use std::path::Path;

use anyhow::Context;

use crate::error::InputError;

/// The largest file ekp reads whole: a calibration file, a state, a model's
/// `output.toml` (a bigger one is refused, not read into memory).
pub const MAX_READ_BYTES: u64 = 1 << 30;

/// Write `contents` to `path` durably and atomically: a temporary file in
/// the same folder, flushed to disk (`fsync`), then renamed over `path`.
/// For the files whose loss costs work: the state, the records, results.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_via_temp(path, contents, true)
}

/// Write `contents` to `path` atomically (temporary file, then rename) but
/// without waiting for the disk: a killed process never leaves half a file,
/// only a machine crash can lose it. For the many per-member files, which
/// can be made again.
pub fn write_replace(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_via_temp(path, contents, false)
}

fn write_via_temp(path: &Path, contents: &[u8], sync: bool) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))
}

/// Read a text file of at most `limit` bytes: a larger one is bad input
/// naming the file and the limit (it is never read into memory).
pub fn read_text_capped(path: &Path, limit: u64) -> Result<String, InputError> {
    let read_err = |source| InputError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    f.take(limit.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(text)
}

/// Read a whole text file (at most [`MAX_READ_BYTES`]).
pub fn read_text(path: &Path) -> Result<String, InputError> {
    read_text_capped(path, MAX_READ_BYTES)
}

/// `\nend of FILE:\n  ...` with the last `lines` lines of a log, or nothing.
pub fn tail_of(path: &Path, lines: usize) -> String {
    let text = read_text_capped(path, 1 << 20).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return String::new();
    }
    let tail = &all[all.len().saturating_sub(lines)..];
    format!(
        "\nend of {}:\n  {}",
        path.display(),
        tail.iter()
            .map(|l| l.escape_debug().to_string())
            .collect::<Vec<_>>()
            .join("\n  ")
    )
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// This machine's name, for records and lock files.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// FNV-1a (64 bit) of `bytes`, as `fnv1a64:<hex>`: detects edits of a file
/// (it is not a cryptographic hash).
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        write_atomic(&p, b"one").unwrap();
        write_replace(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read_text_capped(&p, 3).unwrap(), "two");
        let err = read_text_capped(&p, 2).unwrap_err().to_string();
        assert!(err.contains("a.toml") && err.contains("2 bytes"), "{err}");
        assert!(write_atomic(&dir.path().join("no/such/dir/x"), b"x").is_err());
    }

    #[test]
    fn hashes_differ_for_different_contents() {
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        assert_eq!(content_hash(b"a"), content_hash(b"a"));
    }
}

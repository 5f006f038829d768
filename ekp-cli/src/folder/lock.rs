//! A lock file that keeps a second `update` out of a calibration folder.
//!
//! The lock is a file holding the pid and host of its owner, written
//! complete under a temporary name and then hard-linked to the lock's name
//! (`link` fails if the name exists, atomically, also on network file
//! systems where `flock` may not work), so nobody ever sees an empty or
//! half-written lock; it is removed when the owner finishes. An owner killed with SIGKILL leaves it
//! behind: a later `update` on the same host sees that the pid is gone and
//! takes the lock over. A lock left by a process on another host cannot be
//! checked, so it is reported and has to be removed by hand.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::io::{hostname, unix_now};

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
struct Owner {
    pid: u32,
    host: String,
    since: u64,
}

impl Owner {
    fn me() -> Self {
        Self {
            pid: std::process::id(),
            host: hostname(),
            since: unix_now(),
        }
    }

    fn text(&self) -> String {
        format!(
            "pid = {}\nhost = {}\nsince = {}\n",
            self.pid,
            toml::Value::String(self.host.clone()),
            self.since
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let t: toml::Table = toml::from_str(text).ok()?;
        Some(Self {
            pid: u32::try_from(t.get("pid")?.as_integer()?).ok()?,
            host: t.get("host")?.as_str()?.to_string(),
            since: u64::try_from(t.get("since")?.as_integer()?).ok()?,
        })
    }

    /// Whether the owner is known to be gone: same host, and no such process.
    fn is_gone(&self) -> bool {
        self.host == hostname()
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// Create the lock at `path` with its owner inside from the first byte: the
/// owner is written to a temporary file, which is then hard-linked to
/// `path` (failing with `AlreadyExists` if the lock is held). The temporary
/// file is named like every other of ekp's (`.NAME.tmp.PID`), so one left
/// by a killed process is recognised as the folder's own.
fn create(path: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "lock".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(Owner::me().text().as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

impl LockGuard {
    /// Take the lock at `path` for `what` (a description for messages), or
    /// fail naming its holder.
    pub fn acquire(path: &Path, what: &str) -> anyhow::Result<Self> {
        for _ in 0..2 {
            match create(path) {
                Ok(()) => {
                    return Ok(Self {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => bail!("{}: cannot create the lock file: {e}", path.display()),
            }
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let owner = Owner::parse(&text);
            match owner {
                Some(o) if o.is_gone() => {
                    // Move the stale lock aside atomically; if someone else
                    // replaced it in between, put theirs back and give up.
                    let aside = path.with_extension(format!("stale.{}", std::process::id()));
                    if std::fs::rename(path, &aside).is_ok() {
                        let moved = std::fs::read_to_string(&aside).unwrap_or_default();
                        if moved != text {
                            let _ = std::fs::hard_link(&aside, path);
                            let _ = std::fs::remove_file(&aside);
                            bail!(
                                "{}: another {what} took the lock just now; nothing was changed",
                                path.display()
                            );
                        }
                        let _ = std::fs::remove_file(&aside);
                        tracing::warn!(
                            "note: {}: took over a stale lock left by pid {} on {} (no longer running)",
                            path.display(),
                            o.pid,
                            o.host
                        );
                    }
                }
                Some(o) => bail!(
                    "{}: another {what} is running (pid {} on host {}, since {} s ago); nothing was \
                     changed. If none is running (it was killed on another host), remove the lock file.",
                    path.display(),
                    o.pid,
                    o.host,
                    unix_now().saturating_sub(o.since)
                ),
                None => bail!(
                    "{}: the lock is held (its contents are unreadable); nothing was changed. If no \
                     {what} is running, remove the lock file.",
                    path.display()
                ),
            }
        }
        bail!(
            "{}: cannot take the lock; nothing was changed",
            path.display()
        )
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_second_holder_is_locked_out_and_a_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update.lock");
        let first = LockGuard::acquire(&path, "update").unwrap();
        let err = LockGuard::acquire(&path, "update").unwrap_err().to_string();
        assert!(err.contains("another update is running"), "{err}");
        drop(first);
        assert!(!path.exists());
        // A lock of a process that is gone (pid beyond the kernel's maximum).
        let stale = Owner {
            pid: 4_194_304 + 17,
            host: hostname(),
            since: 1,
        };
        std::fs::write(&path, stale.text()).unwrap();
        let again = LockGuard::acquire(&path, "update").unwrap();
        assert!(path.exists());
        drop(again);
        // A lock from another host is not taken over.
        let remote = Owner {
            pid: 1,
            host: "elsewhere".into(),
            since: 1,
        };
        std::fs::write(&path, remote.text()).unwrap();
        assert!(LockGuard::acquire(&path, "update").is_err());
    }
}

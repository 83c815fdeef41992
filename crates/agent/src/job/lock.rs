//! The package manager's locks: probed, never taken for longer than the probe.
//!
//! dpkg and apt lock `lock-frontend` and `lock` in dpkg's admin folder, `archives/lock` and
//! `lists/lock` with fcntl record locks; rpm locks `.rpm.lock` in its database folder the same
//! way. Whether the file exists says nothing (it stays after every run), and `flock` locks do
//! not conflict with fcntl ones, so a probe asks the kernel for the same kind of lock,
//! non-blocking, and gives it back at once. Who holds a busy lock is read from `/proc/locks`
//! (by the file's device and inode) and `/proc/PID/comm`.
//!
//! fcntl locks belong to a process: closing any descriptor of the file drops every lock this
//! process holds on it. The agent holds none of these locks at any other time, so that is safe.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, fcntl_lock};

/// A process holding a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    /// `/proc/PID/comm`, when it could be read.
    pub name: Option<String>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "process {} ({name})", self.pid),
            None => write!(f, "process {}", self.pid),
        }
    }
}

/// A lock found held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyLock {
    pub path: PathBuf,
    /// `None` when `/proc/locks` did not name it (another PID namespace).
    pub holder: Option<LockHolder>,
}

impl fmt::Display for BusyLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.holder {
            Some(holder) => write!(f, "{} is held by {holder}", self.path.display()),
            None => write!(f, "{} is held by a process this agent cannot see", self.path.display()),
        }
    }
}

/// Probes each lock in turn; the first one held is returned.
pub fn first_busy(paths: &[PathBuf]) -> io::Result<Option<BusyLock>> {
    for path in paths {
        if is_held(path)? {
            return Ok(Some(BusyLock { path: path.clone(), holder: holder(path) }));
        }
    }
    Ok(None)
}

/// Tries a non-blocking fcntl write lock on the whole file and releases it at once.
pub fn is_held(path: &Path) -> io::Result<bool> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        // No file, no lock: dpkg and apt create it when they lock.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    match fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            fcntl_lock(&file, FlockOperation::NonBlockingUnlock)?;
            Ok(false)
        }
        Err(errno) if errno == rustix::io::Errno::AGAIN || errno == rustix::io::Errno::ACCESS => {
            Ok(true)
        }
        Err(errno) => Err(errno.into()),
    }
}

/// The process holding an fcntl lock on `path`, from `/proc/locks`.
pub fn holder(path: &Path) -> Option<LockHolder> {
    let metadata = fs::metadata(path).ok()?;
    let locks = fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_in(&locks, metadata.dev(), metadata.ino())?;
    let name = fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|n| n.trim().to_owned());
    Some(LockHolder { pid, name })
}

/// The pid of the POSIX lock on the file with this device and inode; a lock on the same inode
/// of another device is taken only when no device matches (overlay file systems report the
/// device differently in the two places).
fn holder_in(locks: &str, dev: u64, inode: u64) -> Option<u32> {
    let (major, minor) = (device_major(dev), device_minor(dev));
    let mut same_inode = None;
    for line in locks.lines() {
        // `1: POSIX  ADVISORY  WRITE 22230 fe:00:10018956 0 EOF`; blocked waiters have `->`.
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) == Some(&"->") {
            continue;
        }
        let [_, kind, _, _, pid, file, ..] = words[..] else { continue };
        if !matches!(kind, "POSIX" | "OFDLCK") {
            continue;
        }
        let mut parts = file.split(':');
        let (Some(file_major), Some(file_minor), Some(file_inode)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if file_inode.parse::<u64>().ok() != Some(inode) {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let device_matches = u64::from_str_radix(file_major, 16).ok() == Some(major)
            && u64::from_str_radix(file_minor, 16).ok() == Some(minor);
        if device_matches {
            return Some(pid);
        }
        same_inode.get_or_insert(pid);
    }
    same_inode
}

/// glibc's `gnu_dev_major`.
fn device_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// glibc's `gnu_dev_minor`.
fn device_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_found_by_device_and_inode() {
        let locks = "1: POSIX  ADVISORY  WRITE 22230 fe:00:10018956 0 EOF\n\
                     1: -> POSIX  ADVISORY  WRITE 22231 fe:00:10018956 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 3790 fe:00:770190 0 EOF\n\
                     3: POSIX  ADVISORY  WRITE 3791 08:01:770190 0 EOF\n\
                     4: POSIX  ADVISORY  WRITE 3792 fe:00:770190 0 EOF\n";
        assert_eq!(holder_in(locks, 0xfe00, 10018956), Some(22230));
        // FLOCK locks do not block dpkg; of two POSIX locks on the inode the device decides.
        assert_eq!(holder_in(locks, 0xfe00, 770190), Some(3792));
        assert_eq!(holder_in(locks, 0x0801, 770190), Some(3791));
        assert_eq!(holder_in(locks, 0x0900, 770190), Some(3791));
        assert_eq!(holder_in(locks, 0xfe00, 1), None);
    }

    #[test]
    fn a_free_or_missing_lock_file_is_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("lock");
        assert!(!is_held(&lock).unwrap());
        assert!(!lock.exists(), "probing must not create the lock file");
        fs::write(&lock, "").unwrap();
        assert!(!is_held(&lock).unwrap());
        assert_eq!(first_busy(&[lock]).unwrap(), None);
    }
}

//! Disk state under `cache-dir`: bounded reads, atomic writes, private permissions.
//!
//! Nothing here trusts the disk: a symbolic link or an oversized file is not read, and
//! every write goes to a temporary file in the same directory that is fsynced and then
//! renamed over the target, so a crash leaves the old file or the new one.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::platform;

/// Largest state file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The cached token.
pub const TOKEN_FILE: &str = "license-cache.jwt";
/// The persisted instance id.
pub const INSTANCE_ID_FILE: &str = "instance-id";

/// Temporary files older than this were left by a crash and are removed.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// Why a state file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path is a symbolic link.
    #[error("{0} is a symbolic link; not read")]
    Symlink(PathBuf),
    /// The file is over [`MAX_FILE_BYTES`].
    #[error("{path} is {size} bytes, over the 64 KiB limit; not read")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Not a regular file.
    #[error("{0} is not a regular file; not read")]
    NotAFile(PathBuf),
    /// Not UTF-8 text.
    #[error("{0} is not UTF-8 text; not read")]
    NotText(PathBuf),
    /// Read, but its contents are not what they should be.
    #[error("{path} is malformed ({reason}); ignored")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Any other I/O error.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Why a state file was not written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    /// The file.
    pub path: PathBuf,
    /// The error.
    pub source: io::Error,
}

/// The engine's state directory.
#[derive(Debug, Clone)]
pub struct CacheDir {
    dir: PathBuf,
}

impl CacheDir {
    /// A state directory at `dir` (not created until needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CacheDir { dir: dir.into() }
    }

    /// The path of `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the directory (mode 0700) if it does not exist.
    pub fn ensure(&self) -> Result<(), WriteError> {
        platform::private_dir(DirBuilder::new().recursive(true))
            .create(&self.dir)
            .map_err(|source| WriteError {
                path: self.dir.clone(),
                source,
            })
    }

    /// The directory's permission bits when it exists and group or others may write to
    /// it (they could plant or swap files in it). The engine only warns: it does not
    /// change an operator's directory.
    pub fn writable_by_others(&self) -> Option<u32> {
        let meta = fs::metadata(&self.dir).ok()?;
        meta.is_dir()
            .then(|| platform::writable_by_others(&meta))
            .flatten()
    }

    /// Reads `name` as text; `Ok(None)` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<String>, ReadError> {
        read_bounded(&self.path(name), false)
    }

    /// Writes `name` atomically with mode 0600.
    pub fn write(&self, name: &str, contents: &str) -> Result<(), WriteError> {
        self.ensure()?;
        let path = self.path(name);
        write_atomic(&self.dir, &path, name, contents.as_bytes())
            .map_err(|source| WriteError { path, source })
    }

    /// Removes `name`; a missing file is not an error.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Removes temporary files that a crashed writer left behind. Recent ones may belong to
    /// another process writing right now, so only old ones go.
    pub fn sweep_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with('.') && name.contains(".tmp.")) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_TEMP_AGE);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Reads a text file of at most 64 KiB. Symbolic links are refused unless
/// `follow_links` (operator-provided files such as `key-file`, which orchestrators
/// mount as links).
pub fn read_bounded(path: &Path, follow_links: bool) -> Result<Option<String>, ReadError> {
    let io_err = |source: io::Error| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_err(source)),
    };
    let meta = if meta.file_type().is_symlink() {
        if !follow_links {
            return Err(ReadError::Symlink(path.to_path_buf()));
        }
        match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_err(source)),
        }
    } else {
        meta
    };
    // A FIFO would block the open (and a device may act on it), so anything that is not
    // a regular file is refused before it is opened.
    if !meta.is_file() {
        return Err(ReadError::NotAFile(path.to_path_buf()));
    }
    let mut opts = OpenOptions::new();
    opts.read(true);
    // Never blocking: if the path is swapped for a FIFO between the check and the open,
    // the open returns at once and the fstat below refuses it.
    if follow_links {
        platform::open_no_block(&mut opts);
    } else {
        // Closes the window between the check above and the open.
        platform::open_no_follow(&mut opts);
    }
    let file = opts.open(path).map_err(|source| {
        if platform::is_link_refused(&source) {
            ReadError::Symlink(path.to_path_buf())
        } else {
            io_err(source)
        }
    })?;
    let meta = file.metadata().map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: buf.len() as u64,
        });
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ReadError::NotText(path.to_path_buf()))
}

fn write_atomic(dir: &Path, path: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = platform::open_no_follow(platform::private_file(
            OpenOptions::new().write(true).create_new(true),
        ))
        .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Makes the rename itself durable; a failure here leaves a correct file that may be
    // lost on power failure, which is not worth failing the write for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

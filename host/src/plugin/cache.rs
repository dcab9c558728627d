//! The compiled-code cache, kept private and checked: compiled artifacts are native code the
//! host runs without further checks, so they live in a directory only the host's user may
//! enter (created 0700), and each carries an HMAC-SHA256 under a key only the host knows
//! (`key`, 0600, in that directory). An artifact whose tag does not verify (tampered,
//! truncated, or written by someone without the key) is never deserialized: it is deleted
//! and the component compiled again.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the tag appended to each artifact.
const TAG_LEN: usize = 32;

/// A cache directory and its key.
#[derive(Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Why an artifact was not usable.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No artifact for this key.
    #[error("not cached")]
    Missing,
    /// The artifact's tag does not verify.
    #[error("cached artifact {0} failed its integrity check")]
    Tampered(PathBuf),
    /// It could not be read.
    #[error("cannot read cached artifact {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl ArtifactCache {
    /// Open (creating if needed) the cache in `dir`: the directory is made private to this
    /// user and a key is created on first use.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        let key_path = dir.join("key");
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => bytes,
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a 32-byte key",
                    key_path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_key(&key_path)?,
            Err(e) => return Err(e),
        };
        let mut k = [0u8; 32];
        k.copy_from_slice(&key);
        Ok(Self {
            dir: dir.to_path_buf(),
            key: k,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the artifact named `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn tag(&self, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(artifact);
        mac
    }

    /// The artifact stored under `name`, once its tag verifies. One that does not is
    /// deleted.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, CacheError> {
        let path = self.path(name);
        let mut bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CacheError::Missing),
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        let verified = bytes.len() >= TAG_LEN && {
            let split = bytes.len() - TAG_LEN;
            self.tag(&bytes[..split])
                .verify_slice(&bytes[split..])
                .is_ok()
        };
        if !verified {
            let _ = std::fs::remove_file(&path);
            return Err(CacheError::Tampered(path));
        }
        bytes.truncate(bytes.len() - TAG_LEN);
        Ok(bytes)
    }

    /// Store `artifact` under `name` with its tag (written then renamed, so a crash never
    /// leaves half an artifact under the final name).
    pub fn write(&self, name: &str, artifact: &[u8]) -> std::io::Result<()> {
        let path = self.path(name);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let tag = self.tag(artifact).finalize().into_bytes();
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(artifact)?;
            f.write_all(&tag)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn new_key(path: &Path) -> std::io::Result<Vec<u8>> {
    use rand::RngCore;
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(&key)?;
            f.sync_all()?;
            Ok(key)
        }
        // Another host process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

/// Where compiled plugins are cached when the configuration names no directory: the
/// user's cache directory (`$XDG_CACHE_HOME/rte/compiled`, else `~/.cache/rte/compiled`).
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("rte").join("compiled"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_artifact_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(&dir.path().join("c")).unwrap();
        cache.write("a.cwasm", b"native code").unwrap();
        assert_eq!(cache.read("a.cwasm").unwrap(), b"native code");
        // Same key on reopening: the artifact still verifies.
        let again = ArtifactCache::open(&dir.path().join("c")).unwrap();
        assert_eq!(again.read("a.cwasm").unwrap(), b"native code");
        let path = cache.path("a.cwasm");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            cache.read("a.cwasm"),
            Err(CacheError::Tampered(_))
        ));
        assert!(!path.exists(), "a tampered artifact is deleted");
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            cache.read("a.cwasm"),
            Err(CacheError::Tampered(_))
        ));
        assert!(matches!(cache.read("b.cwasm"), Err(CacheError::Missing)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(cache.dir()), 0o700);
            assert_eq!(mode(&cache.dir().join("key")), 0o600);
        }
    }
}

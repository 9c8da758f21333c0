//! A content-addressed blob store under the data directory.
//!
//! A blob's name is the hex SHA-256 of its content, stored at `blobs/ab/cdef...`. Writes go
//! to a temporary file that is renamed into place, so a crash never leaves a partial blob
//! under a valid name, and storing the same content twice stores it once.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The blob store.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Uses `root` as the store's directory, creating it when missing.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    /// Stores `content` and returns its hex SHA-256.
    pub async fn put(&self, content: bytes::Bytes) -> std::io::Result<String> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || put_blocking(&root, &content)).await.map_err(std::io::Error::other)?
    }

    /// Returns the path of a stored blob, or `None` when there is no such blob.
    pub fn path(&self, digest: &str) -> Option<PathBuf> {
        let valid = digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if !valid {
            return None;
        }
        let path = blob_path(&self.root, digest);
        path.is_file().then_some(path)
    }
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join(&digest[..2]).join(&digest[2..])
}

fn put_blocking(root: &Path, content: &[u8]) -> std::io::Result<String> {
    let digest = hex::encode(Sha256::digest(content));
    let path = blob_path(root, &digest);
    if path.is_file() {
        return Ok(digest);
    }
    std::fs::create_dir_all(path.parent().expect("a blob path has a parent"))?;
    let mut file = tempfile_in(&root.join("tmp"))?;
    file.1.write_all(content)?;
    file.1.sync_all()?;
    std::fs::rename(&file.0, &path)?;
    Ok(digest)
}

/// Creates a uniquely named file in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!("{}.tmp", uuid::Uuid::now_v7());
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    Ok((path, file))
}

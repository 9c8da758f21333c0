//! Fresh SQLite stores, each in a file in its own temporary directory.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use herald_store::Store;
use herald_store_sqlite::{SqliteOptions, SqliteStore};

use crate::Reopen;

/// A temporary directory holding one SQLite database, deleted on drop.
pub struct TestFile {
    directory: tempfile::TempDir,
}

impl TestFile {
    /// Creates an empty directory for the database.
    pub fn create() -> Self {
        let directory = tempfile::tempdir().expect("failed to create a temporary directory for the SQLite database");
        Self { directory }
    }

    /// Returns the database file's path. The file exists once a store has opened it.
    pub fn path(&self) -> PathBuf {
        self.directory.path().join("herald.db")
    }

    /// Opens a store on the file, creating and migrating it on first use.
    pub fn open(&self) -> Arc<dyn Store> {
        open(&self.path())
    }
}

fn open(path: &Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(SqliteOptions::new(path))
        .unwrap_or_else(|error| panic!("failed to open the SQLite store at {}: {error}", path.display()));
    Arc::new(store)
}

/// Runs a scenario against a fresh SQLite store.
pub async fn run<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let file = TestFile::create();
    scenario(file.open()).await;
}

/// Runs a scenario against a fresh SQLite store, with a way to open the file again.
pub async fn run_with_reopen<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>, Reopen) -> Fut,
    Fut: Future<Output = ()>,
{
    let file = TestFile::create();
    let path = file.path();
    let reopen: Reopen = Arc::new(move || {
        let path = path.clone();
        async move { open(&path) }.boxed()
    });
    scenario(file.open(), reopen).await;
}

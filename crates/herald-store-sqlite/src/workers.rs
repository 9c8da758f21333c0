//! The threads that own the SQLite connections.
//!
//! SQLite allows one writer at a time, and a commit costs a WAL append plus, with
//! `synchronous=FULL`, an fsync. One writer thread therefore takes every write job: it
//! drains whatever jobs are queued (up to [`MAX_JOBS_PER_COMMIT`]), runs each inside its own
//! savepoint, and commits them together. A failing job rolls back only its savepoint. Each
//! caller gets its result only after the shared commit, so an acknowledged write is durable.
//!
//! Reads go to a small pool of reader threads with their own connections; in WAL mode they
//! never wait for the writer.
//!
//! rusqlite is used here rather than sqlx's SQLite driver because the writer needs a
//! dedicated thread with a cache of prepared statements and control over transaction
//! boundaries, which group commit depends on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::thread;

use herald_store::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::oneshot;

/// The maximum number of write jobs that share one commit.
pub const MAX_JOBS_PER_COMMIT: usize = 256;

/// Called after the shared commit with its error, if any.
type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// A write job gets the connection, or the error that keeps it from running, and returns
/// whether it succeeded together with the completion that hands its result over.
type WriteJob = Box<dyn FnOnce(Result<&mut Connection, &StoreError>) -> (bool, Completion) + Send>;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Handles to the writer and reader threads. The threads stop when the last handle drops.
#[derive(Clone)]
pub struct Workers {
    writer: flume::Sender<WriteJob>,
    readers: flume::Sender<ReadJob>,
}

impl Workers {
    /// Starts one writer thread and `reader_count` reader threads, each with a connection
    /// to `path` set up by `configure`.
    pub fn start(
        path: &Path,
        reader_count: usize,
        configure: impl Fn(&Connection) -> rusqlite::Result<()>,
    ) -> StoreResult<Self> {
        let (writer, write_jobs) = flume::unbounded::<WriteJob>();
        let connection = open(path, &configure)?;
        thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || run_writer(connection, write_jobs))
            .map_err(|error| StoreError::Backend(format!("failed to start the SQLite writer thread: {error}")))?;

        let (readers, read_jobs) = flume::unbounded::<ReadJob>();
        for index in 0..reader_count.max(1) {
            let connection = open(path, &configure)?;
            connection.pragma_update(None, "query_only", true).map_err(|error| {
                StoreError::Backend(format!("failed to make a reader connection read-only: {error}"))
            })?;
            let jobs = read_jobs.clone();
            thread::Builder::new()
                .name(format!("herald-sqlite-reader-{index}"))
                .spawn(move || run_reader(connection, jobs))
                .map_err(|error| StoreError::Backend(format!("failed to start a SQLite reader thread: {error}")))?;
        }

        Ok(Self { writer, readers })
    }

    /// Runs `job` on the writer thread inside a savepoint, and returns its result once the
    /// commit that includes it has finished. The job gets the connection mutably so that it
    /// may hand it to code that must be `Send`, such as the evaluator.
    pub async fn write<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let write_job: WriteJob = Box::new(move |connection| {
            let outcome = match connection {
                Ok(connection) => catch_unwind(AssertUnwindSafe(|| job(connection)))
                    .unwrap_or_else(|_| Err(StoreError::Backend("a write job panicked; it was rolled back".into()))),
                Err(error) => Err(error.duplicate()),
            };
            let succeeded = outcome.is_ok();
            let completion: Completion = Box::new(move |commit_error| {
                let result = match commit_error {
                    Some(error) => Err(error.duplicate()),
                    None => outcome,
                };
                let _ = reply.send(result);
            });
            (succeeded, completion)
        });

        self.writer.send(write_job).map_err(|_| StoreError::Backend("the SQLite writer thread has stopped".into()))?;
        result.await.map_err(|_| StoreError::Backend("the SQLite writer thread dropped a job".into()))?
    }

    /// Runs `job` on a reader thread.
    pub async fn read<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let read_job: ReadJob = Box::new(move |connection| {
            let outcome = catch_unwind(AssertUnwindSafe(|| job(connection)))
                .unwrap_or_else(|_| Err(StoreError::Backend("a read job panicked".into())));
            let _ = reply.send(outcome);
        });

        self.readers
            .send(read_job)
            .map_err(|_| StoreError::Backend("the SQLite reader threads have stopped".into()))?;
        result.await.map_err(|_| StoreError::Backend("a SQLite reader thread dropped a job".into()))?
    }
}

fn open(path: &Path, configure: &impl Fn(&Connection) -> rusqlite::Result<()>) -> StoreResult<Connection> {
    let connection = Connection::open(path)
        .map_err(|error| StoreError::Backend(format!("failed to open SQLite database {}: {error}", path.display())))?;
    connection.set_prepared_statement_cache_capacity(128);
    configure(&connection).map_err(|error| {
        StoreError::Backend(format!("failed to configure SQLite database {}: {error}", path.display()))
    })?;
    Ok(connection)
}

fn run_writer(mut connection: Connection, jobs: flume::Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut connection, batch);
    }
    tracing::debug!("SQLite writer thread stopped");
}

/// Runs a batch of write jobs in one transaction and completes each of them.
fn commit_batch(connection: &mut Connection, batch: Vec<WriteJob>) {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        let error = StoreError::Backend(format!("failed to begin a SQLite transaction: {error}"));
        tracing::error!(%error, jobs = batch.len(), "write batch failed");
        for job in batch {
            let (_, completion) = job(Err(&error));
            completion(None);
        }
        return;
    }

    let mut completions = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(error) = connection.execute_batch("SAVEPOINT job") {
            let error = StoreError::Backend(format!("failed to open a savepoint: {error}"));
            let (_, completion) = job(Err(&error));
            completions.push(completion);
            continue;
        }
        let (succeeded, completion) = job(Ok(&mut *connection));
        let end = if succeeded { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(error) = connection.execute_batch(end) {
            tracing::error!(%error, "failed to close a savepoint");
        }
        completions.push(completion);
    }

    match connection.execute_batch("COMMIT") {
        Ok(()) => completions.into_iter().for_each(|completion| completion(None)),
        Err(error) => {
            let error = StoreError::Backend(format!("failed to commit a SQLite transaction: {error}"));
            tracing::error!(%error, jobs = completions.len(), "write batch failed");
            if let Err(rollback_error) = connection.execute_batch("ROLLBACK") {
                tracing::error!(error = %rollback_error, "failed to roll back a failed commit");
            }
            completions.into_iter().for_each(|completion| completion(Some(&error)));
        }
    }
}

fn run_reader(connection: Connection, jobs: flume::Receiver<ReadJob>) {
    while let Ok(job) = jobs.recv() {
        job(&connection);
    }
}

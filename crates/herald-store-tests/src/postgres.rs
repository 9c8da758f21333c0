//! Fresh PostgreSQL databases, one per test, dropped afterwards.
//!
//! The server comes from `HERALD_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`. Each test creates a database named
//! `herald_test_<random>` through that URL, so the role needs the `CREATEDB` privilege.
//! A [`TestDatabase`] drops its database when it goes out of scope, also when the test
//! panics, with `DROP DATABASE ... WITH (FORCE)`, which ends connections still open.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use herald_store::Store;
use herald_store_postgres::{PostgresStore, redact_url};
use sqlx::{Connection, Executor, PgConnection};

use crate::Reopen;

/// The environment variable that names the PostgreSQL server for tests.
pub const DATABASE_URL_VARIABLE: &str = "HERALD_TEST_DATABASE_URL";

/// The server used when [`DATABASE_URL_VARIABLE`] is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connections per store handle. Scenarios that run concurrent operations need more than
/// one, and more would only exhaust the server when many tests run at once.
const POOL_CONNECTIONS: u32 = 4;

/// Returns the URL of the server that tests create their databases on.
pub fn server_url() -> String {
    std::env::var(DATABASE_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A database created for one test and dropped when this value is dropped.
pub struct TestDatabase {
    server_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates an empty database on the test server.
    ///
    /// # Panics
    ///
    /// Panics with instructions when the server is not reachable or refuses to create the
    /// database, because a PostgreSQL test that silently passes without PostgreSQL proves
    /// nothing.
    pub async fn create() -> Self {
        let server_url = server_url();
        let name = format!("herald_test_{}", uuid::Uuid::now_v7().simple());
        let url = database_url(&server_url, &name);

        let mut connection = connect_to_server(&server_url).await;
        let statement = format!("CREATE DATABASE \"{name}\"");
        if let Err(error) = connection.execute(sqlx::AssertSqlSafe(statement)).await {
            panic!(
                "failed to create the test database {name} on {}: {error}; the role in {DATABASE_URL_VARIABLE} needs \
                 the CREATEDB privilege",
                redact_url(&server_url)
            );
        }
        let _ = connection.close().await;

        Self { server_url, name, url, dropped: false }
    }

    /// Returns the URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the name of the test database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a store on the test database, migrating it on first use.
    pub async fn open(&self) -> Arc<dyn Store> {
        open(&self.url).await
    }

    /// Drops the database now, ending connections that are still open.
    pub async fn drop_database(mut self) {
        drop_database(&self.server_url, &self.name).await;
        self.dropped = true;
    }
}

impl Drop for TestDatabase {
    /// Drops the database unless [`TestDatabase::drop_database`] already did. `Drop` cannot
    /// wait for a future, so the drop runs on a thread with its own runtime, which also
    /// works while a test's runtime is unwinding from a panic.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => runtime.block_on(drop_database(&server_url, &name)),
                Err(error) => eprintln!("failed to start a runtime to drop the test database {name}: {error}"),
            }
        });
        if dropper.join().is_err() {
            eprintln!("failed to drop the test database {}; drop it by hand", self.name);
        }
    }
}

/// Runs a scenario against a store on a fresh database, then drops the database.
pub async fn run<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let database = TestDatabase::create().await;
    scenario(database.open().await).await;
    database.drop_database().await;
}

/// Runs a scenario against a store on a fresh database, with a way to open more handles on it,
/// then drops the database.
pub async fn run_with_reopen<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>, Reopen) -> Fut,
    Fut: Future<Output = ()>,
{
    let database = TestDatabase::create().await;
    let url = database.url().to_owned();
    let reopen: Reopen = Arc::new(move || {
        let url = url.clone();
        async move { open(&url).await }.boxed()
    });
    scenario(database.open().await, reopen).await;
    database.drop_database().await;
}

async fn open(url: &str) -> Arc<dyn Store> {
    match PostgresStore::connect(url, POOL_CONNECTIONS).await {
        Ok(store) => Arc::new(store),
        Err(error) => panic!("failed to open the PostgreSQL store: {error}"),
    }
}

/// Returns `server_url` with its database name replaced by `name`.
fn database_url(server_url: &str, name: &str) -> String {
    match url::Url::parse(server_url) {
        Ok(mut url) => {
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        Err(error) => {
            panic!("{DATABASE_URL_VARIABLE} is not a valid URL ({error}); write it as {DEFAULT_DATABASE_URL}")
        }
    }
}

/// Connects to the test server.
///
/// # Panics
///
/// Panics with instructions to start PostgreSQL when the server cannot be reached.
pub async fn connect_to_server(server_url: &str) -> PgConnection {
    let attempt = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(server_url)).await;
    let error = match attempt {
        Ok(Ok(connection)) => return connection,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 10 seconds".to_owned(),
    };
    panic!(
        "PostgreSQL is required for these tests, but {} is not reachable: {error}. Start a server with trust \
         authentication for the postgres user on 127.0.0.1:5432 (for example `pg_ctlcluster 15 main start`, or \
         `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15`), or point \
         {DATABASE_URL_VARIABLE} at another server whose role may create databases.",
        redact_url(server_url)
    );
}

async fn drop_database(server_url: &str, name: &str) {
    let mut connection = match PgConnection::connect(server_url).await {
        Ok(connection) => connection,
        Err(error) => {
            eprintln!("failed to connect to drop the test database {name}: {error}");
            return;
        }
    };
    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    if let Err(error) = connection.execute(sqlx::AssertSqlSafe(statement)).await {
        eprintln!("failed to drop the test database {name}: {error}");
    }
    let _ = connection.close().await;
}

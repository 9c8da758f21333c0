//! A Herald server started in the test process: SQLite store in a temporary directory, the
//! bootstrapped admin's API key, the evaluator service, and the router on 127.0.0.1 with an
//! ephemeral port.

#![allow(dead_code)]

use std::sync::Arc;

use herald_dispatch::network::NetworkPolicy;
use herald_dispatch::sealing::SecretKey;
use herald_evaluator::service::ServiceSettings;
use herald_evaluator::{EvaluatorSettings, EventEvaluator};
use herald_server::auth::{api_key_hash, generate_api_key};
use herald_server::{AppState, ServerSettings};
use herald_store::{Bootstrap, Store};
use herald_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A running server. Dropping it stops the server and its services.
pub struct TestServer {
    /// The base URL, such as `http://127.0.0.1:43121`.
    pub url: String,
    /// The admin's API key.
    pub admin_key: String,
    /// The server's state.
    pub state: AppState,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Notified when executions wait for delivery.
    pub deliveries: Arc<Notify>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` changes its settings.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerSettings)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path().join("herald.db"))).expect("SQLite store"));

        let admin_key = generate_api_key();
        store
            .bootstrap(Bootstrap {
                organization: "herald".into(),
                admin_name: "admin".into(),
                admin_api_key_hash: api_key_hash(&admin_key),
            })
            .await
            .expect("bootstrap");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let mut settings = ServerSettings {
            public_url: url.clone(),
            data_dir: dir.path().to_path_buf(),
            network: NetworkPolicy::new(NetworkPolicy::parse_networks("127.0.0.0/8").expect("networks")),
            secret_key: SecretKey::generate(),
            max_request_bytes: 64 << 20,
        };
        adjust(&mut settings);

        let wake = Arc::new(Notify::new());
        let deliveries = Arc::new(Notify::new());
        let state = AppState::new(store.clone(), settings, wake.clone()).await.expect("state");
        let shutdown = CancellationToken::new();

        let evaluator = Arc::new(EventEvaluator::new(EvaluatorSettings { public_url: url.clone() }));
        tokio::spawn(herald_evaluator::service::run(
            store.clone(),
            evaluator,
            ServiceSettings::default(),
            wake,
            deliveries.clone(),
            shutdown.clone(),
        ));

        let router = herald_server::router(state.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            herald_server::serve(listener, router, async move { stop.cancelled().await }).await.expect("serve");
        });

        Self { url, admin_key, state, store, deliveries, shutdown, _dir: dir }
    }

    /// Creates a user and returns its API key.
    pub async fn create_user(&self, name: &str) -> String {
        let key = generate_api_key();
        self.store
            .create_user(herald_store::NewUser {
                name: name.into(),
                is_org_admin: false,
                api_key_hash: api_key_hash(&key),
            })
            .await
            .expect("create user");
        key
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

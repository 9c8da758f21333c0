//! The state that every request handler shares.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use herald_dispatch::network::NetworkPolicy;
use herald_dispatch::sealing::SecretKey;
use herald_store::Store;
use rand::Rng;
use tokio::sync::Notify;

use crate::blobs::BlobStore;

/// The store setting that contains the key which signs upload URLs. It lives in the store so
/// that every Herald process sharing a PostgreSQL database accepts the others' URLs.
const UPLOAD_KEY_SETTING: &str = "upload_url_key";

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// The URL people and the wandb SDK use to reach Herald, without a trailing slash.
    /// Upload URLs and `${run_url}` start with it.
    pub public_url: String,
    /// The data directory; blobs live under `blobs/`.
    pub data_dir: PathBuf,
    /// The network policy of deliveries. Integration URLs are checked against it when saved.
    pub network: NetworkPolicy,
    /// The key that seals secret values.
    pub secret_key: SecretKey,
    /// The largest request body accepted, in bytes.
    pub max_request_bytes: usize,
}

/// Shared state of the HTTP server. Cloning is cheap.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

/// The fields of [`AppState`].
pub struct AppInner {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The server's settings.
    pub settings: ServerSettings,
    /// Notified after a write that recorded events, to start evaluation at once.
    pub evaluator_wake: Arc<Notify>,
    /// File contents, by SHA-256.
    pub blobs: BlobStore,
    /// The HMAC key of signed upload URLs.
    pub upload_key: Vec<u8>,
}

impl Deref for AppState {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    /// Builds the state: opens the blob store and loads, or creates, the upload URL key.
    pub async fn new(
        store: Arc<dyn Store>,
        settings: ServerSettings,
        evaluator_wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        let blobs = BlobStore::open(settings.data_dir.join("blobs"))?;
        let candidate = hex::encode(rand::thread_rng().r#gen::<[u8; 32]>());
        let stored = store.insert_setting_if_absent(UPLOAD_KEY_SETTING, &candidate).await?;
        let upload_key = hex::decode(stored.trim())?;
        Ok(Self(Arc::new(AppInner { store, settings, evaluator_wake, blobs, upload_key })))
    }

    /// Wakes the evaluator after a write that recorded events.
    pub fn wake_evaluator(&self) {
        self.evaluator_wake.notify_one();
    }
}

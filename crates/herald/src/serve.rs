//! `herald serve`: opens the store, sets up the organization on the first start, and runs the
//! HTTP server, the evaluator and the dispatcher until SIGTERM or Ctrl-C.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use herald_dispatch::network::NetworkPolicy;
use herald_dispatch::sealing::SecretKey;
use herald_evaluator::{EvaluatorSettings, EventEvaluator};
use herald_server::auth::{api_key_hash, generate_api_key};
use herald_server::{AppState, ServerSettings};
use herald_store::{Bootstrap, BootstrapOutcome, Store};
use herald_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, LogFormat};

/// The store setting that records the organization once the store is set up.
const ORGANIZATION_SETTING: &str = "organization";

/// The store setting that identifies the secret key the store's secrets are sealed with.
const SECRET_KEY_CHECK_SETTING: &str = "secret_key_check";

/// How long shutdown waits for deliveries and evaluation in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Options of `herald serve`. Each overrides its configuration key.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML); `herald config default` prints one with every key.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Directory of the embedded SQLite store, uploads and generated keys [default: ./herald-data].
    #[arg(long)]
    data_dir: Option<String>,
    /// PostgreSQL URL (postgres://...); selects PostgreSQL instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    init_logging(&config)?;
    let signals = SignalListener::install();
    tracing::debug!(?config, "configuration loaded");
    for variable in config::unknown_variables(std::env::vars().map(|(name, _)| name)) {
        tracing::warn!(variable, "ignoring an environment variable that names no configuration key; is it misspelt?");
    }

    create_private_dir(&config.data_dir)?;
    let store = open_store(&config).await?;
    let secret_key = load_secret_key(&config, store.as_ref()).await?;
    bootstrap(&config, store.as_ref()).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}; is another server using it? Set --listen", config.listen))?;
    let local = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    if config.public_url.is_none() && local.ip().is_unspecified() {
        tracing::warn!(
            public_url = %public_url,
            "listening on every interface without public_url: upload URLs and ${{run_url}} use an address \
             that other machines cannot reach; set public_url (HERALD_PUBLIC_URL) to the URL clients use"
        );
    }
    let network = NetworkPolicy::new(config.delivery_allowed_networks.clone());

    let shutdown = CancellationToken::new();
    let evaluator_wake = Arc::new(Notify::new());
    let dispatcher_wake = Arc::new(Notify::new());
    let settings = ServerSettings {
        public_url: public_url.clone(),
        data_dir: config.data_dir.clone(),
        network: network.clone(),
        secret_key: secret_key.clone(),
        max_request_bytes: config.max_request_mib << 20,
    };
    let state = AppState::new(store.clone(), settings, evaluator_wake.clone()).await?;

    let evaluator = tokio::spawn(herald_evaluator::service::run(
        store.clone(),
        Arc::new(EventEvaluator::new(EvaluatorSettings { public_url: public_url.clone() })),
        herald_evaluator::service::ServiceSettings { batch_size: config.evaluation_batch_size, ..Default::default() },
        evaluator_wake,
        dispatcher_wake.clone(),
        shutdown.clone(),
    ));
    let dispatcher = tokio::spawn(herald_dispatch::service::run(
        store.clone(),
        dispatch_settings(&config),
        secret_key,
        network.clone(),
        dispatcher_wake,
        shutdown.clone(),
    ));

    tracing::info!(address = %local, public_url = %public_url, deliveries = %network, "Herald is listening");
    let stop = shutdown.clone();
    let server = herald_server::serve(listener, herald_server::router(state), async move { stop.cancelled().await });
    let signals = tokio::spawn(signals.wait(shutdown.clone()));

    let served = server.await;
    shutdown.cancel();
    signals.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = evaluator.await;
        let _ = dispatcher.await;
    })
    .await
    .is_err()
    {
        tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "services did not stop in time");
    }
    served.context("the HTTP server failed")?;
    tracing::info!("Herald stopped");
    Ok(())
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut flags = Vec::new();
    if let Some(listen) = &args.listen {
        flags.push(("listen", listen.clone()));
    }
    if let Some(data_dir) = &args.data_dir {
        flags.push(("data_dir", data_dir.clone()));
    }
    if let Some(database_url) = &args.database_url {
        flags.push(("database_url", database_url.clone()));
    }
    let env = std::env::vars().filter(|(name, _)| name.starts_with("HERALD_")).collect();
    config::load(config::Sources { file: args.config.as_deref(), env, flags })
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&directives)
            .map_err(|error| anyhow::anyhow!("invalid RUST_LOG {directives:?}: {error}"))?,
        _ => tracing_subscriber::EnvFilter::try_new(&config.log_level)?,
    };
    // Colours only on a terminal, so that log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|error| anyhow::anyhow!("failed to set up logging: {error}"))
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match &config.database_url {
        Some(url) => {
            let redacted = config::redact_url_password(url);
            let store = herald_store_postgres::PostgresStore::connect(url, config.database_max_connections)
                .await
                .context("failed to open the PostgreSQL store; check the URL, and create the database first if it does not exist (createdb NAME)")?;
            tracing::info!(database = %redacted, "using the PostgreSQL store");
            Ok(Arc::new(store))
        }
        None => {
            let path = config.data_dir.join("herald.db");
            let options = SqliteOptions { synchronous: config.sqlite_synchronous, ..SqliteOptions::new(&path) };
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(options)).await??;
            Ok(Arc::new(store))
        }
    }
}

/// Loads the key that seals secrets, and checks that it is the key the store's secrets were
/// sealed with. A new store gets the key from the configuration or from
/// `data_dir/secret-key`, which is generated on the first start. A store that already has
/// secrets never gets a new key silently: a missing or different key stops the start.
async fn load_secret_key(config: &Config, store: &dyn Store) -> anyhow::Result<SecretKey> {
    let key_file = config.data_dir.join("secret-key");
    let stored_check = store.setting(SECRET_KEY_CHECK_SETTING).await?;

    let key = match (&config.secret_key, stored_check.is_some()) {
        (Some(text), _) => SecretKey::from_base64(text)?,
        (None, _) if key_file.exists() => {
            let text =
                std::fs::read_to_string(&key_file).with_context(|| format!("failed to read {}", key_file.display()))?;
            SecretKey::from_base64(&text).with_context(|| format!("invalid secret key in {}", key_file.display()))?
        }
        (None, true) => bail!(
            "the store was set up with a secret key, but none is configured and {} does not exist; \
             set HERALD_SECRET_KEY (or secret_key) to the original key, or restore that file",
            key_file.display()
        ),
        (None, false) => return generate_secret_key(store, &key_file).await,
    };

    let check = store.insert_setting_if_absent(SECRET_KEY_CHECK_SETTING, &key.check_value()).await?;
    if check != key.check_value() {
        bail!(
            "the configured secret key is not the key this store's secrets were sealed with; set \
             HERALD_SECRET_KEY (or secret_key, or {}) to the original key",
            key_file.display()
        );
    }
    Ok(key)
}

/// Generates the secret key of a new store. The key is written to a temporary file first,
/// then recorded in the store, and then the file is renamed into place. So a failed write
/// cannot leave a store whose key is in no file, and a second process starting at the same
/// moment cannot leave a key file that the store rejects.
async fn generate_secret_key(store: &dyn Store, key_file: &Path) -> anyhow::Result<SecretKey> {
    let key = SecretKey::generate();
    let pending = key_file.with_extension("new");
    write_private_file(&pending, &format!("{}\n", key.to_base64()))?;

    let check = match store.insert_setting_if_absent(SECRET_KEY_CHECK_SETTING, &key.check_value()).await {
        Ok(check) => check,
        Err(error) => {
            remove_unused_key(&pending);
            return Err(error.into());
        }
    };
    if check != key.check_value() {
        remove_unused_key(&pending);
        bail!(
            "another Herald process set up this store at the same moment with its own secret key; copy \
             that process's secret-key file to {} or set HERALD_SECRET_KEY to its key, then start again",
            key_file.display()
        );
    }

    std::fs::rename(&pending, key_file)
        .with_context(|| format!("failed to move the secret key to {}", key_file.display()))?;
    tracing::info!(path = %key_file.display(), "generated the secret key; back it up with the data directory");
    Ok(key)
}

/// Creates the organization and its admin on the first start. A generated admin key is
/// written to `data_dir/admin-api-key`, readable only by its owner, before the store commits
/// the admin, so that a failed write cannot leave an admin whose key was never shown. Then it
/// is printed once.
async fn bootstrap(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    if store.setting(ORGANIZATION_SETTING).await?.is_some() {
        if config.admin_api_key.is_some() {
            tracing::info!("the store is already initialized, so admin_user and admin_api_key are ignored");
        }
        return Ok(());
    }

    let key_file = config.data_dir.join("admin-api-key");
    let (key, generated) = match &config.admin_api_key {
        Some(key) => (key.clone(), false),
        None => (generate_api_key(), true),
    };
    if generated {
        write_private_file(&key_file, &format!("{key}\n"))?;
    }
    let outcome = store
        .bootstrap(Bootstrap {
            organization: config.organization.clone(),
            admin_name: config.admin_user.clone(),
            admin_api_key_hash: api_key_hash(&key),
        })
        .await;

    match outcome {
        Ok(BootstrapOutcome::Created(admin)) => {
            tracing::info!(organization = %config.organization, admin = %admin.name, "created the organization and its admin");
            if generated {
                println!("Created admin user {:?}. Its API key, shown only once, is:\n\n    {key}\n", admin.name);
                println!("The key is also in {} (readable only by you).", key_file.display());
                std::io::stdout().flush()?;
            }
            Ok(())
        }
        // Another process sharing the database set it up first; its key is the valid one.
        Ok(BootstrapOutcome::AlreadyInitialized) => {
            if generated {
                remove_unused_key(&key_file);
            }
            Ok(())
        }
        Err(error) => {
            if generated {
                remove_unused_key(&key_file);
            }
            Err(error).context("failed to create the organization and its admin")
        }
    }
}

fn remove_unused_key(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        tracing::warn!(%error, path = %path.display(), "failed to remove a generated key that was not used");
    }
}

/// Creates the data directory, readable only by its owner, because it contains the database and
/// the keys. An existing directory keeps its permissions.
fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).with_context(|| format!("failed to create the data directory {}", path.display()))
}

/// Writes a file that only its owner can read.
fn write_private_file(path: &Path, content: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(content.as_bytes()).with_context(|| format!("failed to write {}", path.display()))?;
    file.sync_all()?;
    Ok(())
}

/// Fills the dispatcher's settings. A claim's lease outlasts the attempt timeout by 30 s, so
/// that a claim lapses when its dispatcher has stopped rather than during a slow attempt.
/// Shutdown waits for attempts in flight 5 s longer than one attempt may take.
fn dispatch_settings(config: &Config) -> herald_dispatch::service::DispatchSettings {
    herald_dispatch::service::DispatchSettings {
        timeout: config.delivery_timeout,
        connect_timeout: config.delivery_connect_timeout,
        retry_schedule: config.delivery_retry_schedule.clone(),
        concurrency: config.delivery_concurrency,
        per_integration_concurrency: config.delivery_integration_concurrency,
        lease: config.delivery_timeout + Duration::from_secs(30),
        shutdown_grace: config.delivery_timeout + Duration::from_secs(5),
        ..Default::default()
    }
}

/// Listens for SIGTERM and Ctrl-C from the moment it is created, and cancels `shutdown` when
/// either arrives. It is created before the server announces its address, so that a signal
/// sent right after the announcement stops the server gracefully instead of killing it.
struct SignalListener {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl SignalListener {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(stream) => Some(stream),
                Err(error) => {
                    tracing::error!(%error, signal = name, "cannot listen for the signal");
                    None
                }
            };
            Self {
                terminate: install(SignalKind::terminate(), "SIGTERM"),
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for a signal, then cancels `shutdown`.
    async fn wait(mut self, shutdown: CancellationToken) {
        #[cfg(unix)]
        {
            let terminate = async {
                match self.terminate.as_mut() {
                    Some(stream) => stream.recv().await,
                    None => std::future::pending().await,
                }
            };
            let interrupt = async {
                match self.interrupt.as_mut() {
                    Some(stream) => stream.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interrupt => tracing::info!("received Ctrl-C, shutting down"),
                _ = terminate => tracing::info!("received SIGTERM, shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C, shutting down");
        }
        shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(dir: &Path) -> SqliteStore {
        SqliteStore::open(SqliteOptions::new(dir.join("herald.db"))).unwrap()
    }

    #[tokio::test]
    async fn losing_the_key_race_leaves_no_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(dir.path());
        // Another process recorded its key between our read of the setting and our insert.
        let other = SecretKey::generate();
        store.insert_setting_if_absent(SECRET_KEY_CHECK_SETTING, &other.check_value()).await.unwrap();

        let key_file = dir.path().join("secret-key");
        let error = generate_secret_key(&store, &key_file).await.unwrap_err();

        assert!(error.to_string().contains("another Herald process"), "{error}");
        assert!(!key_file.exists());
        assert!(!key_file.with_extension("new").exists());
    }

    #[tokio::test]
    async fn generated_key_is_saved_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(dir.path());
        let key_file = dir.path().join("secret-key");

        let key = generate_secret_key(&store, &key_file).await.unwrap();

        let saved = SecretKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
        assert_eq!(saved.check_value(), key.check_value());
        assert_eq!(store.setting(SECRET_KEY_CHECK_SETTING).await.unwrap(), Some(key.check_value()));
    }
}

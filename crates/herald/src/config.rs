//! Configuration of `herald serve`: defaults, a TOML file, `HERALD_*` environment variables
//! and command-line flags, in rising precedence.
//!
//! One table, [`KEYS`], describes every key: its default, its help text and how to read it.
//! `herald config default` prints the table as a commented file, the environment variable of
//! key `foo_bar` is `HERALD_FOO_BAR`, and errors name the key and where its value came from.
//! The layering is written here instead of with a configuration crate because environment
//! values must be read verbatim: an API key made of digits must stay a string, and a list of
//! networks comes as one comma-separated variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use herald_dispatch::network::NetworkPolicy;
use herald_store_sqlite::Synchronous;
use ipnet::IpNet;

/// `herald config` subcommands.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the default configuration file, with every key and its environment variable.
    Default,
}

/// Runs a `herald config` subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Default => {
            print!("{}", default_file());
            Ok(())
        }
    }
}

/// Format of the server's log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved configuration of `herald serve`.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The URL people and SDKs use to reach the server; `None` derives it from `listen`.
    pub public_url: Option<String>,
    /// Directory for the SQLite database, blobs and generated keys.
    pub data_dir: PathBuf,
    /// A `postgres://` URL selects PostgreSQL; `None` selects SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Pool size for PostgreSQL.
    pub database_max_connections: u32,
    /// Durability of SQLite commits.
    pub sqlite_synchronous: Synchronous,
    /// Name of the organization created on first start.
    pub organization: String,
    /// Name of the admin user created on first start.
    pub admin_user: String,
    /// API key of the admin user created on first start; `None` generates one.
    pub admin_api_key: Option<String>,
    /// Base64 key that seals secrets; `None` uses or creates `data_dir/secret-key`.
    pub secret_key: Option<String>,
    /// Largest request body, in MiB.
    pub max_request_mib: usize,
    /// Networks that deliveries may reach besides public addresses.
    pub delivery_allowed_networks: Vec<IpNet>,
    /// Total time of one delivery attempt.
    pub delivery_timeout: Duration,
    /// Time to establish a delivery connection.
    pub delivery_connect_timeout: Duration,
    /// Delays before the second, third, ... attempt.
    pub delivery_retry_schedule: Vec<Duration>,
    /// Deliveries in flight at once.
    pub delivery_concurrency: usize,
    /// Deliveries in flight at once to one integration.
    pub delivery_integration_concurrency: usize,
    /// Events evaluated per transaction.
    pub evaluation_batch_size: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("./herald-data"),
            database_url: None,
            database_max_connections: 16,
            sqlite_synchronous: Synchronous::Normal,
            organization: "herald".into(),
            admin_user: "admin".into(),
            admin_api_key: None,
            secret_key: None,
            max_request_mib: 64,
            delivery_allowed_networks: Vec::new(),
            delivery_timeout: Duration::from_secs(15),
            delivery_connect_timeout: Duration::from_secs(5),
            delivery_retry_schedule: ["5s", "30s", "2m", "10m", "1h"]
                .iter()
                .map(|text| humantime::parse_duration(text).expect("valid default duration"))
                .collect(),
            delivery_concurrency: 64,
            delivery_integration_concurrency: 8,
            evaluation_batch_size: 512,
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

/// Masks the values that are secrets: the admin key, the secret key and a password in the
/// database URL.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |value: &Option<String>| value.as_ref().map(|_| "<set>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url_password))
            .field("database_max_connections", &self.database_max_connections)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("organization", &self.organization)
            .field("admin_user", &self.admin_user)
            .field("admin_api_key", &masked(&self.admin_api_key))
            .field("secret_key", &masked(&self.secret_key))
            .field("max_request_mib", &self.max_request_mib)
            .field("delivery_allowed_networks", &self.delivery_allowed_networks)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("delivery_connect_timeout", &self.delivery_connect_timeout)
            .field("delivery_retry_schedule", &self.delivery_retry_schedule)
            .field("delivery_concurrency", &self.delivery_concurrency)
            .field("delivery_integration_concurrency", &self.delivery_integration_concurrency)
            .field("evaluation_batch_size", &self.evaluation_batch_size)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .finish()
    }
}

/// Replaces the password of a URL with `***`.
pub fn redact_url_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<unparseable URL>".into(),
    }
}

/// A value for a key, from a file or the environment.
enum RawValue {
    /// A scalar, as text.
    Text(String),
    /// A TOML array, each item as text.
    List(Vec<String>),
}

impl RawValue {
    fn text(self) -> Result<String, String> {
        match self {
            RawValue::Text(text) => Ok(text),
            RawValue::List(_) => Err("expected a single value, not a list".into()),
        }
    }

    /// Reads a list: a TOML array, or one comma-separated string.
    fn items(self) -> Vec<String> {
        match self {
            RawValue::List(items) => items,
            RawValue::Text(text) => {
                text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
            }
        }
    }
}

type Setter = fn(&mut Config, RawValue) -> Result<(), String>;

/// One configuration key.
struct Key {
    name: &'static str,
    /// The default, as written in the default file (a TOML value, or a commented example).
    default: &'static str,
    help: &'static str,
    set: Setter,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("invalid duration {text:?}; use a value such as \"15s\", \"2m\" or \"500ms\""))
}

/// Reads `host:port`. A host name such as `localhost` is resolved now, to its first address.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let invalid = || format!("invalid address {text:?}; use host:port such as 127.0.0.1:8080 or localhost:8080");
    if !text.contains(':') {
        return Err(invalid());
    }
    std::net::ToSocketAddrs::to_socket_addrs(text).ok().and_then(|mut addresses| addresses.next()).ok_or_else(invalid)
}

fn parse_in_range(text: &str, max: usize) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(number) if (1..=max).contains(&number) => Ok(number),
        _ => Err(format!("invalid value {text:?}; use a whole number from 1 to {max}")),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() || duration > Duration::from_secs(3600) {
        return Err(format!("invalid timeout {text:?}; use a duration above zero and at most 1h"));
    }
    Ok(duration)
}

fn optional(text: String) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Every key, in the order `herald config default` prints them.
const KEYS: &[Key] = &[
    Key {
        name: "listen",
        default: "\"127.0.0.1:8080\"",
        help: "Address and port the server listens on.",
        set: |config, value| {
            let text = value.text()?;
            config.listen = parse_listen(text.trim())?;
            Ok(())
        },
    },
    Key {
        name: "public_url",
        default: "\"\"",
        help: "URL that people and the wandb SDK use to reach Herald; upload URLs and ${run_url} start\n\
               with it. Empty means http://<listen>.",
        set: |config, value| {
            let text = value.text()?;
            config.public_url = match optional(text) {
                None => None,
                Some(url) => {
                    let parsed = url::Url::parse(&url).map_err(|error| format!("invalid URL {url:?}: {error}"))?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(format!("invalid URL {url:?}; use an http:// or https:// URL"));
                    }
                    Some(url.trim_end_matches('/').to_owned())
                }
            };
            Ok(())
        },
    },
    Key {
        name: "data_dir",
        default: "\"./herald-data\"",
        help: "Directory for the SQLite database, file uploads, the generated secret key and the\n\
               generated admin API key.",
        set: |config, value| {
            let text = value.text()?;
            if text.trim().is_empty() {
                return Err("the data directory must not be empty".into());
            }
            config.data_dir = PathBuf::from(text.trim());
            Ok(())
        },
    },
    Key {
        name: "database_url",
        default: "\"\"",
        help: "PostgreSQL URL, such as postgres://herald:password@127.0.0.1:5432/herald. Empty selects\n\
               the embedded SQLite store in data_dir.",
        set: |config, value| {
            config.database_url = match optional(value.text()?) {
                None => None,
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Some(url),
                Some(url) => {
                    return Err(format!(
                        "unsupported database URL {}; use a postgres:// URL, or leave it empty for SQLite",
                        redact_url_password(&url)
                    ));
                }
            };
            Ok(())
        },
    },
    Key {
        name: "database_max_connections",
        default: "16",
        help: "Most connections to PostgreSQL that this process opens.",
        set: |config, value| {
            config.database_max_connections = parse_in_range(&value.text()?, 10_000)? as u32;
            Ok(())
        },
    },
    Key {
        name: "sqlite_synchronous",
        default: "\"normal\"",
        help: "Durability of SQLite commits: \"normal\" survives a crash of Herald but may lose the last\n\
               commits on power loss; \"full\" flushes every commit to disk first, and is slower.",
        set: |config, value| {
            let text = value.text()?;
            config.sqlite_synchronous = match text.trim() {
                "normal" => Synchronous::Normal,
                "full" => Synchronous::Full,
                _ => return Err(format!("invalid value {text:?}; use \"normal\" or \"full\"")),
            };
            Ok(())
        },
    },
    Key {
        name: "organization",
        default: "\"herald\"",
        help: "Name of the organization created on the first start.",
        set: |config, value| {
            let text = value.text()?;
            herald_core::names::validate_entity_name("organization", text.trim()).map_err(|error| error.detail)?;
            config.organization = text.trim().to_owned();
            Ok(())
        },
    },
    Key {
        name: "admin_user",
        default: "\"admin\"",
        help: "Name of the admin user created on the first start.",
        set: |config, value| {
            let text = value.text()?;
            herald_core::names::validate_entity_name("admin_user", text.trim()).map_err(|error| error.detail)?;
            config.admin_user = text.trim().to_owned();
            Ok(())
        },
    },
    Key {
        name: "admin_api_key",
        default: "\"\"",
        help: "API key of the admin user created on the first start, at least 40 letters, digits, '_'\n\
               or '-'. Empty generates one, prints it once and writes it to data_dir/admin-api-key.\n\
               Later starts ignore this key.",
        set: |config, value| {
            config.admin_api_key = match optional(value.text()?) {
                None => None,
                Some(key) => {
                    herald_server::auth::validate_api_key(&key)?;
                    Some(key)
                }
            };
            Ok(())
        },
    },
    Key {
        name: "secret_key",
        default: "\"\"",
        help: "Base64 of 32 random bytes (openssl rand -base64 32) that encrypts stored secrets. Empty\n\
               uses data_dir/secret-key, which is created on the first start. Every process sharing a\n\
               PostgreSQL database needs the same key.",
        set: |config, value| {
            config.secret_key = match optional(value.text()?) {
                None => None,
                Some(key) => {
                    herald_dispatch::sealing::SecretKey::from_base64(&key).map_err(|error| error.to_string())?;
                    Some(key)
                }
            };
            Ok(())
        },
    },
    Key {
        name: "max_request_mib",
        default: "64",
        help: "Largest request body accepted, in MiB.",
        set: |config, value| {
            config.max_request_mib = parse_in_range(&value.text()?, 4_096)?;
            Ok(())
        },
    },
    Key {
        name: "delivery_allowed_networks",
        default: "[]",
        help: "Networks that deliveries may reach besides public addresses, in CIDR notation, such as\n\
               [\"127.0.0.0/8\"] for receivers on this machine. Loopback, private, link-local and other\n\
               special addresses are refused unless listed. In the environment, separate them by commas.",
        set: |config, value| {
            let joined = value.items().join(",");
            config.delivery_allowed_networks = NetworkPolicy::parse_networks(&joined)?;
            Ok(())
        },
    },
    Key {
        name: "delivery_timeout",
        default: "\"15s\"",
        help: "Total time of one delivery attempt, from connecting to the end of the response.",
        set: |config, value| {
            config.delivery_timeout = parse_timeout(&value.text()?)?;
            Ok(())
        },
    },
    Key {
        name: "delivery_connect_timeout",
        default: "\"5s\"",
        help: "Time to establish the connection of a delivery attempt.",
        set: |config, value| {
            config.delivery_connect_timeout = parse_timeout(&value.text()?)?;
            Ok(())
        },
    },
    Key {
        name: "delivery_retry_schedule",
        default: "[\"5s\", \"30s\", \"2m\", \"10m\", \"1h\"]",
        help: "Delays before the second, third, ... attempt of a failed delivery; each gets +/-20%\n\
               jitter, and a Retry-After answer can stretch it up to twice. After the last one the\n\
               execution fails. An empty list means a single attempt.",
        set: |config, value| {
            config.delivery_retry_schedule =
                value.items().iter().map(|item| parse_duration(item)).collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Key {
        name: "delivery_concurrency",
        default: "64",
        help: "Maximum number of deliveries in flight at once.",
        set: |config, value| {
            config.delivery_concurrency = parse_in_range(&value.text()?, 100_000)?;
            Ok(())
        },
    },
    Key {
        name: "delivery_integration_concurrency",
        default: "8",
        help: "Maximum number of deliveries in flight at once to one integration. The executions of an\n\
               integration at this limit wait, so a receiver that is slow or does not respond occupies\n\
               at most this many of the delivery_concurrency slots.",
        set: |config, value| {
            config.delivery_integration_concurrency = parse_in_range(&value.text()?, 10_000)?;
            Ok(())
        },
    },
    Key {
        name: "evaluation_batch_size",
        default: "512",
        help: "Most events evaluated in one transaction.",
        set: |config, value| {
            config.evaluation_batch_size = parse_in_range(&value.text()?, 100_000)?;
            Ok(())
        },
    },
    Key {
        name: "log_format",
        default: "\"text\"",
        help: "Log format on standard error: \"text\" or \"json\".",
        set: |config, value| {
            let text = value.text()?;
            config.log_format = match text.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("invalid value {text:?}; use \"text\" or \"json\"")),
            };
            Ok(())
        },
    },
    Key {
        name: "log_level",
        default: "\"info\"",
        help: "Log filter: a level (error, warn, info, debug, trace) or per-module directives such as\n\
               \"info,herald_dispatch=debug\". RUST_LOG overrides it.",
        set: |config, value| {
            let text = value.text()?;
            tracing_subscriber::EnvFilter::try_new(text.trim())
                .map_err(|error| format!("invalid log filter {text:?}: {error}"))?;
            config.log_level = text.trim().to_owned();
            Ok(())
        },
    },
];

/// Returns the environment variable of a key.
pub fn env_name(key: &str) -> String {
    format!("HERALD_{}", key.to_ascii_uppercase())
}

/// Environment variables that start with `HERALD_` but are not configuration keys of the
/// server. The client's variables and `HERALD_CONFIG` are known too.
pub fn unknown_variables(names: impl Iterator<Item = String>) -> Vec<String> {
    const OTHER_KNOWN: [&str; 3] = ["HERALD_CONFIG", "HERALD_URL", "HERALD_API_KEY"];
    let mut unknown: Vec<String> = names
        .filter(|name| name.starts_with("HERALD_"))
        .filter(|name| !OTHER_KNOWN.contains(&name.as_str()) && !KEYS.iter().any(|key| env_name(key.name) == *name))
        .collect();
    unknown.sort();
    unknown
}

/// Renders the default configuration file.
pub fn default_file() -> String {
    let mut text = String::from(
        "# Herald server configuration (`herald serve --config FILE`, or HERALD_CONFIG=FILE).\n\
         #\n\
         # Every key can also be set with an environment variable, HERALD_ followed by the key in\n\
         # upper case, such as HERALD_LISTEN. Precedence, highest first: command-line flags\n\
         # (--listen, --data-dir, --database-url), environment variables, this file, the defaults\n\
         # shown here. Durations are written like \"15s\", \"2m\" or \"1h\".\n",
    );
    for key in KEYS {
        text.push('\n');
        for line in key.help.lines() {
            text.push_str("# ");
            text.push_str(line.trim_start());
            text.push('\n');
        }
        text.push_str(&format!("# Environment: {}\n", env_name(key.name)));
        text.push_str(&format!("{} = {}\n", key.name, key.default));
    }
    text
}

/// The sources of configuration values besides the defaults.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// The configuration file, if any.
    pub file: Option<&'a Path>,
    /// Environment variables, as `(name, value)` pairs.
    pub env: Vec<(String, String)>,
    /// Command-line overrides, as `(key, value)` pairs.
    pub flags: Vec<(&'static str, String)>,
}

/// Builds the configuration from defaults, the file, the environment and flags.
pub fn load(sources: Sources<'_>) -> anyhow::Result<Config> {
    let mut config = Config::default();

    if let Some(path) = sources.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read configuration file {}", path.display()))?;
        apply_file(&mut config, &text).with_context(|| format!("invalid configuration file {}", path.display()))?;
    }

    for key in KEYS {
        let variable = env_name(key.name);
        if let Some((_, value)) = sources.env.iter().find(|(name, _)| *name == variable) {
            (key.set)(&mut config, RawValue::Text(value.clone()))
                .map_err(|message| anyhow::anyhow!("invalid environment variable {variable}: {message}"))?;
        }
    }

    for (name, value) in sources.flags {
        let key = KEYS.iter().find(|key| key.name == name).expect("flags name known keys");
        let flag = format!("--{}", name.replace('_', "-"));
        (key.set)(&mut config, RawValue::Text(value))
            .map_err(|message| anyhow::anyhow!("invalid {flag}: {message}"))?;
    }
    Ok(config)
}

fn apply_file(config: &mut Config, text: &str) -> anyhow::Result<()> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    for (name, value) in table {
        let Some(key) = KEYS.iter().find(|key| key.name == name) else {
            let known: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
            bail!("unknown key {name:?}; known keys: {}", known.join(", "));
        };
        let raw = match value {
            toml::Value::String(text) => RawValue::Text(text),
            toml::Value::Array(items) => RawValue::List(
                items
                    .into_iter()
                    .map(|item| match item {
                        toml::Value::String(text) => text,
                        other => other.to_string(),
                    })
                    .collect(),
            ),
            toml::Value::Table(_) => bail!("key {name:?} takes a value, not a table"),
            other => RawValue::Text(other.to_string()),
        };
        (key.set)(config, raw).map_err(|message| anyhow::anyhow!("key {name:?}: {message}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn default_file_parses_to_defaults() {
        let mut config = Config::default();
        apply_file(&mut config, &default_file()).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn default_file_names_every_key_and_variable() {
        let text = default_file();
        for key in KEYS {
            assert!(text.contains(&format!("\n{} = ", key.name)), "{}", key.name);
            assert!(text.contains(&env_name(key.name)), "{}", key.name);
        }
    }

    #[test]
    fn precedence_is_flags_then_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1000\"\ndata_dir = \"/from/file\"\nlog_level = \"debug\"\n")
            .unwrap();
        let config = load(Sources {
            file: Some(&file),
            env: env(&[("HERALD_LISTEN", "127.0.0.1:2000"), ("HERALD_DATA_DIR", "/from/env")]),
            flags: vec![("listen", "127.0.0.1:3000".into())],
        })
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/from/env"));
        assert_eq!(config.log_level, "debug");
    }

    #[test]
    fn env_values_are_read_verbatim() {
        let key = "1234567890123456789012345678901234567890";
        let config = load(Sources { env: env(&[("HERALD_ADMIN_API_KEY", key)]), ..Sources::default() }).unwrap();
        assert_eq!(config.admin_api_key.as_deref(), Some(key));
    }

    #[test]
    fn networks_come_comma_separated_from_env() {
        let config = load(Sources {
            env: env(&[("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.0/8, 10.0.0.0/8")]),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(config.delivery_allowed_networks.len(), 2);
    }

    #[test]
    fn errors_name_the_source() {
        let error =
            load(Sources { env: env(&[("HERALD_DELIVERY_TIMEOUT", "soon")]), ..Sources::default() }).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("HERALD_DELIVERY_TIMEOUT"), "{message}");
        assert!(message.contains("\"soon\""), "{message}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let message = format!("{:#}", load(Sources { file: Some(&file), ..Sources::default() }).unwrap_err());
        assert!(message.contains("unknown key \"lisen\""), "{message}");
    }

    #[test]
    fn listen_accepts_host_names() {
        let config = load(Sources { env: env(&[("HERALD_LISTEN", "localhost:18205")]), ..Sources::default() }).unwrap();
        assert_eq!(config.listen.port(), 18205);
        assert!(config.listen.ip().is_loopback());
        assert!(load(Sources { env: env(&[("HERALD_LISTEN", "localhost")]), ..Sources::default() }).is_err());
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for (name, value) in [
            ("HERALD_MAX_REQUEST_MIB", "17592186044416"),
            ("HERALD_DATABASE_MAX_CONNECTIONS", "4294967296"),
            ("HERALD_DELIVERY_TIMEOUT", "0s"),
            ("HERALD_DELIVERY_CONNECT_TIMEOUT", "2h"),
            ("HERALD_DELIVERY_CONCURRENCY", "0"),
            ("HERALD_DELIVERY_INTEGRATION_CONCURRENCY", "0"),
            ("HERALD_DELIVERY_INTEGRATION_CONCURRENCY", "10001"),
        ] {
            let error = load(Sources { env: env(&[(name, value)]), ..Sources::default() }).unwrap_err();
            assert!(format!("{error:#}").contains(name), "{name}: {error:#}");
        }
    }

    #[test]
    fn integration_concurrency_comes_from_env() {
        let variables = env(&[("HERALD_DELIVERY_INTEGRATION_CONCURRENCY", "3")]);
        let config = load(Sources { env: variables, ..Sources::default() }).unwrap();
        assert_eq!(config.delivery_integration_concurrency, 3);
        assert_eq!(Config::default().delivery_integration_concurrency, 8);
    }

    #[test]
    fn unknown_variables_are_listed() {
        let names = ["HERALD_LISTN", "HERALD_LISTEN", "HERALD_URL", "PATH", "HERALD_CONFIG"].map(String::from);
        assert_eq!(unknown_variables(names.into_iter()), vec!["HERALD_LISTN".to_owned()]);
    }

    #[test]
    fn short_admin_key_is_rejected() {
        let error = load(Sources { env: env(&[("HERALD_ADMIN_API_KEY", "short")]), ..Sources::default() }).unwrap_err();
        assert!(format!("{error:#}").contains("at least 40"));
    }

    #[test]
    fn debug_masks_secrets() {
        let config = Config {
            admin_api_key: Some("a".repeat(40)),
            secret_key: Some("c2VjcmV0".into()),
            database_url: Some("postgres://herald:hunter2@127.0.0.1/herald".into()),
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains(&"a".repeat(40)), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }
}

//! `herald serve` on its own: first start, restart, keys and shutdown.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use support::Herald;

/// Returns the status of `GET /api/v1/viewer` with `key`.
fn viewer_status(herald: &Herald, key: &str) -> u16 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/viewer", herald.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("viewer request");
        response.status().as_u16()
    })
}

#[test]
fn first_start_prints_and_saves_generated_key() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let herald = Herald::start(&data_dir, &[], &[("HERALD_ADMIN_API_KEY", "")]);

    let key_file = data_dir.join("admin-api-key");
    let saved = std::fs::read_to_string(&key_file).expect("admin-api-key written");
    let key = saved.trim().to_owned();
    assert_eq!(key.len(), 40);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin-api-key must be readable only by its owner");

    std::thread::sleep(Duration::from_millis(200));
    assert!(herald.stdout.lock().unwrap().contains(&key), "the key was not printed");
    assert!(!herald.log().contains(&key), "the key reached the log");
    assert_eq!(viewer_status(&herald, &key), 200);
    drop(herald);

    // A second start keeps the admin and prints no key.
    let again = Herald::start(&data_dir, &[], &[("HERALD_ADMIN_API_KEY", "")]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!again.stdout.lock().unwrap().contains("API key"), "a second key was printed");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), saved);
    assert_eq!(viewer_status(&again, &key), 200);
}

#[test]
fn sigterm_and_ctrl_c_stop_the_server_cleanly() {
    for signal in ["TERM", "INT"] {
        let work = tempfile::tempdir().unwrap();
        let mut herald = Herald::start(&work.path().join("data"), &[], &[]);
        let status = herald.signal(signal, Duration::from_secs(30)).expect("herald serve did not stop");
        assert!(status.success(), "SIG{signal}: exit status {status}; log:\n{}", herald.log());
        assert!(herald.log().contains("Herald stopped"), "SIG{signal}");
    }
}

#[test]
fn changed_secret_key_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    drop(Herald::start(&data_dir, &[], &[]));
    assert!(data_dir.join("secret-key").exists());

    let other_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("HERALD_SECRET_KEY", other_key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("secret key"), "{stderr}");
    assert!(!stderr.contains(other_key), "the key reached the error message");
}

#[test]
fn config_default_lists_every_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_herald")).args(["config", "default"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let table: toml::Table = text.parse().expect("the default configuration is TOML");
    for key in ["listen", "data_dir", "database_url", "admin_user", "admin_api_key", "delivery_allowed_networks"] {
        assert!(table.contains_key(key), "missing key {key}");
    }
    assert!(text.contains("HERALD_DELIVERY_ALLOWED_NETWORKS"));
}

#[test]
fn invalid_environment_value_names_the_variable() {
    let work = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--data-dir"])
        .arg(work.path())
        .env("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.0/8,local")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HERALD_DELIVERY_ALLOWED_NETWORKS") && stderr.contains("\"local\""), "{stderr}");
}

#[test]
fn unwritable_key_file_leaves_store_uninitialized() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    std::fs::create_dir_all(data_dir.join("admin-api-key")).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env_remove("HERALD_ADMIN_API_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success(), "serve started although it could not save the admin key");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("API key"), "a key was printed");

    // Once the key can be written, the next start creates the admin and shows its key.
    std::fs::remove_dir(data_dir.join("admin-api-key")).unwrap();
    let herald = Herald::start(&data_dir, &[], &[("HERALD_ADMIN_API_KEY", "")]);
    let key = std::fs::read_to_string(data_dir.join("admin-api-key")).unwrap().trim().to_owned();
    assert_eq!(viewer_status(&herald, &key), 200);
}

//! End-to-end test support: the real `herald` binary as a child process, a webhook receiver
//! on 127.0.0.1, the CLI, and the real wandb SDK from the project's virtual environment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

/// The API key the tests give the admin user.
pub const ADMIN_KEY: &str = "e2e0admin0key000000000000000000000000000000";

/// Returns the workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Returns the Python that has the pinned wandb SDK, which `scripts/setup-test-env` installs.
pub fn python() -> PathBuf {
    let path = match std::env::var_os("HERALD_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join(".venv/bin/python"),
    };
    assert!(
        path.exists(),
        "no Python with the wandb SDK at {}; run scripts/setup-test-env (or scripts/test) first",
        path.display()
    );
    path
}

/// A `herald serve` child process. Dropping it kills the process.
pub struct Herald {
    /// The server's base URL.
    pub url: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Everything the server printed on standard output.
    pub stdout: Arc<Mutex<String>>,
    /// Everything the server logged on standard error.
    pub stderr: Arc<Mutex<String>>,
    child: Child,
}

impl Herald {
    /// Starts `herald serve` on an ephemeral port with `data_dir`, the admin key
    /// [`ADMIN_KEY`] unless `env` sets another, deliveries allowed to 127.0.0.0/8, and
    /// millisecond retry delays.
    pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Herald {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HERALD_LOG_FORMAT", "json")
            .env("HERALD_LOG_LEVEL", "info,herald_dispatch=debug")
            .env("HERALD_ADMIN_API_KEY", ADMIN_KEY)
            .env("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.0/8")
            .env("HERALD_DELIVERY_RETRY_SCHEDULE", "100ms,200ms")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start herald serve");

        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        collect_lines(child.stdout.take().expect("stdout"), stdout.clone(), None);
        collect_lines(child.stderr.take().expect("stderr"), stderr.clone(), Some(address_tx));

        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("herald serve did not start; its log:\n{}", stderr.lock().unwrap());
            }
        };
        Herald { url: format!("http://{address}"), data_dir: data_dir.to_path_buf(), stdout, stderr, child }
    }

    /// Runs a CLI subcommand against this server as the admin.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_input(args, None)
    }

    /// Runs a CLI subcommand with `input` on standard input.
    pub fn cli_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .env("HERALD_URL", &self.url)
            .env("HERALD_API_KEY", ADMIN_KEY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run herald CLI");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            if let Some(input) = input {
                stdin.write_all(input.as_bytes()).expect("write stdin");
            }
        }
        child.wait_with_output().expect("CLI output")
    }

    /// Runs a CLI subcommand and fails the test unless it succeeds; returns its stdout.
    #[track_caller]
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "herald {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM", timeout)
    }

    /// Sends a signal, such as `INT` for Ctrl-C, and waits up to `timeout` for the process to
    /// exit.
    pub fn signal(&mut self, signal: &str, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Returns the server's log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a child's output lines into `sink`; when `address` is given, sends the address of
/// the "Herald is listening" log line to it.
fn collect_lines(
    stream: impl std::io::Read + Send + 'static,
    sink: Arc<Mutex<String>>,
    address: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(sender) = &address
                && let Ok(record) = serde_json::from_str::<serde_json::Value>(&line)
                && record["fields"]["message"] == "Herald is listening"
                && let Some(found) = record["fields"]["address"].as_str()
            {
                let _ = sender.send(found.to_owned());
            }
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
}

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
}

/// A webhook receiver on 127.0.0.1 that records every POST and answers 200.
pub struct Receiver {
    /// The URL to deliver to.
    pub url: String,
    /// The requests received so far.
    pub requests: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// Starts the receiver on its own runtime thread.
    pub fn start() -> Receiver {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));

        let app = axum::Router::new().route("/hook", post(record)).with_state(requests.clone());
        runtime.spawn(async move {
            axum::serve(listener, app).await.expect("receiver");
        });
        Receiver { url, requests, _runtime: runtime }
    }

    /// Waits until at least `count` requests arrived, or `timeout` passes; returns them.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.requests.lock().unwrap().clone();
            if received.len() >= count || Instant::now() >= deadline {
                return received;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn record(State(requests): State<Arc<Mutex<Vec<Received>>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    requests.lock().unwrap().push(Received { headers, body });
    StatusCode::OK
}

/// Runs a wandb SDK scenario from `tests/e2e/scenarios` against `url` with `api_key`.
pub fn run_scenario(url: &str, api_key: &str, script: &str, args: &[&str], wandb_dir: &Path) -> Output {
    Command::new(python())
        .arg(workspace_root().join("tests/e2e/scenarios").join(script))
        .args(args)
        .env("WANDB_BASE_URL", url)
        .env("WANDB_API_KEY", api_key)
        .env("WANDB_DIR", wandb_dir)
        .env("WANDB_CONFIG_DIR", wandb_dir)
        .env("WANDB_CACHE_DIR", wandb_dir)
        .env("WANDB_DATA_DIR", wandb_dir)
        .env("WANDB_CONSOLE", "off")
        .env("WANDB_DISABLE_GIT", "true")
        .env_remove("WANDB_ENTITY")
        .env_remove("WANDB_PROJECT")
        .env_remove("WANDB_MODE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the wandb scenario")
}

/// Fails the test with the scenario's output unless it succeeded; returns its last stdout line
/// parsed as JSON.
#[track_caller]
pub fn scenario_result(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "wandb scenario failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().rev().find(|line| line.starts_with('{')).expect("a JSON result line");
    serde_json::from_str(last).expect("JSON result")
}

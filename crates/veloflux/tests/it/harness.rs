//! Starts `veloflux serve` as a child process and reads its JSON log to learn the bound
//! addresses. Every wait is bounded; a server that does not come up fails the test with its
//! log.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_veloflux")
}

/// A command for the binary with a clean environment (no inherited `VELOFLUX_*`).
pub fn command(cwd: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(cwd);
    command
}

/// A running `veloflux serve`.
pub struct Server {
    child: Child,
    pub listeners: BTreeMap<String, SocketAddr>,
    logs: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
}

impl Server {
    /// Starts a server on `data_dir` with every listener on port 0 and JSON logs.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut command = command(data_dir.parent().unwrap_or(data_dir));
        command
            .arg("serve")
            .env("VELOFLUX_DATA_DIR", data_dir)
            .env("VELOFLUX_API_ADDR", "127.0.0.1:0")
            .env("VELOFLUX_ADMIN_ADDR", "127.0.0.1:0")
            .env("VELOFLUX_METRICS_ADDR", "127.0.0.1:0")
            .env("VELOFLUX_EDGE_HTTP_ADDR", "127.0.0.1:0")
            .env("VELOFLUX_EDGE_HTTPS_ADDR", "127.0.0.1:0")
            // Edge tests send bursts; the per-tenant limits have their own test.
            .env("VELOFLUX_EDGE__FREE_RPS", "1000000")
            .env("VELOFLUX_EDGE__FREE_CONCURRENCY", "100000")
            .env("VELOFLUX_LOG_FORMAT", "json")
            .env("VELOFLUX_LOG", "info")
            .env("VELOFLUX_ADMIN_EMAIL", "root@exemplo.com")
            .env("VELOFLUX_ADMIN_PASSWORD", "root-password-1");
        for (key, value) in env {
            command.env(key, value);
        }
        Server::spawn(command)
    }

    /// Spawns a prepared `serve` command and waits until it logs `ready`.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning veloflux");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (sender, lines) = channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = sender.send(line);
            }
        });
        let mut server = Server {
            child,
            listeners: BTreeMap::new(),
            logs,
            lines,
        };
        server.wait_for_ready();
        server
    }

    fn wait_for_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    match event["message"].as_str() {
                        Some("listening") => {
                            let name = event["name"].as_str().unwrap().to_owned();
                            let addr = event["addr"].as_str().unwrap().parse().unwrap();
                            self.listeners.insert(name, addr);
                        }
                        Some("ready") => return,
                        _ => {}
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("server not ready in {START_TIMEOUT:?}; log:\n{}", self.log_text())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!("server exited ({status:?}) before ready; log:\n{}", self.log_text());
                }
            }
        }
    }

    /// `http://addr` of a listener (`api`, `admin`, `metrics`).
    pub fn url(&self, listener: &str, path: &str) -> String {
        format!("http://{}{path}", self.listeners[listener])
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits (bounded) until the log holds a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(line) = self.logs.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line contains {needle:?}; log:\n{}", self.log_text());
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success());
        self.wait_for_exit()
    }

    /// Waits (bounded) until the process exits by itself; returns its status and log.
    pub fn wait_for_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain what the process wrote last.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that never reuses a server's idle connection across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub tenant_id: String,
}

impl Server {
    /// Registers an account (owning a new tenant) and signs it in.
    pub async fn sign_up(&self, email: &str) -> Session {
        let body =
            serde_json::json!({"email": email, "password": "senha_segura", "first_name": "Test", "last_name": "User"});
        let response = client()
            .post(self.url("api", "/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        self.sign_in(email, "senha_segura", None).await
    }

    /// Signs in and returns the session; panics on failure.
    pub async fn sign_in(&self, email: &str, password: &str, tenant: Option<&str>) -> Session {
        let body = serde_json::json!({"email": email, "password": password, "tenant_id": tenant});
        let response = client()
            .post(self.url("api", "/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let data: serde_json::Value = response.json().await.unwrap();
        Session {
            token: data["token"].as_str().unwrap().to_owned(),
            refresh_token: data["refresh_token"].as_str().unwrap().to_owned(),
            user_id: data["user"]["user_id"].as_str().unwrap().to_owned(),
            tenant_id: data["user"]["tenant_id"].as_str().unwrap().to_owned(),
        }
    }
}

/// Calls the API listener with `token`; returns the status and the JSON answer (`null` when
/// there is none). Writes without a body send `{}`.
pub async fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = client()
        .request(method.parse().unwrap(), server.url("api", path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    } else if matches!(method, "POST" | "PUT" | "PATCH") {
        request = request.json(&serde_json::json!({}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

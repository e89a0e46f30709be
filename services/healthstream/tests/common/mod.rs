//! Shared by the end-to-end tests: start the real binary, talk HTTP to it, stop it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Process {
    child: Child,
    pub addr: String,
    /// The process's log (stderr), shown when it does not stop cleanly.
    log: std::path::PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn start(data_dir: &Path) -> Process {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = data_dir.join(format!("healthstream-{port}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_healthstream"))
        .args(["run", "--listen", &addr, "--data-dir"])
        .arg(data_dir)
        .env_remove("HEALTHSTREAM_BROKERS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start healthstream");
    let p = Process { child, addr, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = reqwest::blocking_get(&format!("http://{}/readyz", p.addr)) {
            if resp == 200 {
                return p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "healthstream did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Process {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Ctrl-C or SIGTERM: the stages finish their record and the bus is synced.
    pub fn stop(self) {
        self.signal("-INT")
    }

    pub fn terminate(self) {
        self.signal("-TERM")
    }

    fn signal(mut self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                assert!(
                    status.success(),
                    "clean exit, got {status}; the log ends with:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "healthstream did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A crash: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking HTTP helper on top of reqwest's async client.
pub mod reqwest {
    pub use ::reqwest::*;
    use std::sync::OnceLock;

    fn rt() -> &'static tokio::runtime::Runtime {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        })
    }

    pub fn blocking_get(url: &str) -> Result<u16> {
        rt().block_on(async { Ok(get(url).await?.status().as_u16()) })
    }

    /// The body, or `None` when nothing answers.
    pub fn try_get_text(url: &str) -> Option<String> {
        rt().block_on(async { get(url).await.ok()?.text().await.ok() })
    }

    pub fn get_text(url: &str) -> String {
        rt().block_on(async { get(url).await.expect("get").text().await.expect("text") })
    }

    /// Any method, any body: status and body text.
    pub fn send(method: Method, url: &str, body: Option<(&str, String)>) -> (u16, String) {
        rt().block_on(async {
            let mut req = Client::new().request(method, url);
            if let Some((content_type, body)) = body {
                req = req.header("content-type", content_type).body(body);
            }
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("text"))
        })
    }

    /// A request with headers: status and body text.
    pub fn send_with(method: Method, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
        rt().block_on(async {
            let mut req = Client::new().request(method, url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("text"))
        })
    }

    pub fn post_json(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        rt().block_on(async {
            let resp = Client::new()
                .post(url)
                .json(body)
                .send()
                .await
                .expect("post");
            let status = resp.status().as_u16();
            (status, resp.json().await.expect("json"))
        })
    }
}

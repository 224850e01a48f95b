//! Helpers shared by the end-to-end tests in `tests/tests/`.
//!
//! The tests drive real tools (cfn-lint, checkov, cfn-guard, SAM CLI,
//! cargo-lambda, moto) that `scripts/setup-tools.sh` installs under `.tools/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the workspace that holds this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the repository")
        .to_path_buf()
}

/// Path to a tool installed by `scripts/setup-tools.sh`, looked up in
/// `.tools/venv/bin`, `.tools/checkov-venv/bin` and `.tools/cargo/bin`.
///
/// Panics with the command to run when the tool is missing, so a test never
/// passes by skipping the check it exists for.
pub fn tool(name: &str) -> PathBuf {
    let tools = repo_root().join(".tools");
    for dir in ["venv/bin", "checkov-venv/bin", "cargo/bin"] {
        let candidate = tools.join(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} is not installed under .tools/: run scripts/setup-tools.sh first");
}

/// A `Command` for a tool from `.tools/`, with the tool venv's `bin/` first on
/// `PATH` (cargo-lambda finds zig through the venv's python, SAM finds
/// cargo-lambda on `PATH`).
pub fn tool_command(name: &str) -> Command {
    let mut cmd = Command::new(tool(name));
    cmd.env("PATH", tools_path());
    cmd
}

/// `PATH` with the tool directories in front of the inherited one.
pub fn tools_path() -> String {
    let tools = repo_root().join(".tools");
    let mut parts: Vec<String> = ["venv/bin", "cargo/bin"]
        .iter()
        .map(|d| tools.join(d).display().to_string())
        .collect();
    if let Ok(path) = std::env::var("PATH") {
        parts.push(path);
    }
    parts.join(":")
}

/// Runs a command to completion and returns (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// A moto server (AWS emulator from PyPI) on a free loopback port, with its
/// own working directory and request recording, stopped when dropped.
pub struct MotoServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// moto's working directory and request recording: one per server (the
    /// recorder's default file is shared by every server in the same cwd).
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts `moto_server` and waits (up to 60 s) until it answers.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = MotoServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        while !http
            .get(format!("{}/moto-api/", moto.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                started.elapsed().as_secs() < 60,
                "moto_server did not come up on port {port}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        moto
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// IAM wildcard match: `*` any run of characters (none included), `?`
/// exactly one. IAM compares action names case-insensitively and resource
/// ARNs case-sensitively; fold `value` and `pattern` first for the former.
pub fn iam_matches(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

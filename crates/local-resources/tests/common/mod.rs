//! Shared by the integration tests: the pinned tools under `.tools/`.
#![allow(dead_code)]

use std::path::PathBuf;

use local_resources::MotoServer;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the crate sits in the repository")
}

/// A tool of `.tools/venv/bin`; panics with the command to run when it is
/// missing, so no test passes by skipping its check.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = repo_root().join(".tools/venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-tools.sh",
        path.display()
    );
    path
}

/// A moto server of its own for one test.
pub async fn moto() -> MotoServer {
    MotoServer::start(&venv_tool("moto_server"))
        .await
        .expect("moto_server starts")
}

/// Runs the venv's python on a script; its stdout.
pub fn python(script: &str) -> String {
    let out = std::process::Command::new(venv_tool("python"))
        .args(["-c", script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

//! The gate as it ships. `panic = "unwind"` in the workspace's release
//! profile is what lets a panicking gate still report its failure to
//! CodePipeline; cargo-lambda builds with `panic=abort` when the profile does
//! not say otherwise, and then a panic kills the process before any report.
//!
//! This test builds `run-tests` exactly as `scripts/build.sh` does (`cargo
//! lambda build --release` for this machine's architecture, from the
//! package's directory, `--locked`, in the shared target dir, so the release
//! artifacts are the ones build.sh and the rehearsal reuse; a warm build
//! takes seconds), runs the bootstrap under a Lambda Runtime API with the
//! panic test hook (`CODEPIPELINE_JOB_TEST_PANIC=run-tests`, see
//! `codepipeline_job::PANIC_HOOK_ENV`), and expects a failure report.
//!
//! Needs the tools of `scripts/setup-tools.sh` (cargo-lambda, zig). A cold
//! release build takes minutes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use codepipeline_job::testing::{FakeAws, invoke_binary};
use serde_json::json;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("functions/run-tests sits two levels below the repository root")
        .to_path_buf()
}

/// The bootstrap cargo-lambda builds for this machine, as build.sh builds it.
fn build_release_bootstrap() -> PathBuf {
    let root = repo_root();
    let tools = root.join(".tools/venv/bin");
    assert!(
        tools.join("cargo-lambda").is_file(),
        "cargo-lambda is not installed under .tools/: run scripts/setup-tools.sh first"
    );
    let (arch, flag) = match std::env::consts::ARCH {
        "x86_64" => ("x86_64", "--x86-64"),
        "aarch64" => ("arm64", "--arm64"),
        other => panic!("no Lambda architecture for {other}"),
    };
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // build.sh's own lambda dir is lambda-release-<arch>; the test copies the
    // bootstrap into a directory of its own so that a rehearsal building
    // another commit at the same time cannot swap the file under it.
    let lambda_dir = target.join(format!("lambda-release-{arch}-test"));
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let output = Command::new("cargo")
        .args(["lambda", "build", "--release", flag, "--lambda-dir"])
        .arg(&lambda_dir)
        .args(["--locked", "--bin", "run-tests"])
        .current_dir(root.join("functions/run-tests"))
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo lambda starts");
    assert!(
        output.status.success(),
        "cargo lambda build --release failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!(
        "cargo lambda build --release {flag} --bin run-tests: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let bootstrap = lambda_dir.join("run-tests/bootstrap");
    assert!(bootstrap.is_file(), "{} was not built", bootstrap.display());
    bootstrap
}

#[tokio::test]
async fn the_released_gate_reports_a_panic_as_a_job_failure() {
    let bootstrap = tokio::task::spawn_blocking(build_release_bootstrap)
        .await
        .unwrap();
    let aws = FakeAws::start().await;

    let run = invoke_binary(
        &bootstrap,
        json!({"jobId": "44444444-abcd-4444-abcd-444444abcdef", "apiUrl": "http://127.0.0.1:9/", "stage": "beta"}),
        &aws,
        &[(codepipeline_job::PANIC_HOOK_ENV, "run-tests")],
        Duration::from_secs(60),
    )
    .await;

    let reports = aws.calls_of("PutJobFailureResult");
    assert_eq!(
        reports.len(),
        1,
        "no failure report from the release bootstrap (exit: {:?}; a panic=abort build dies \
         without reporting):\n{}",
        run.exit,
        run.output()
    );
    assert!(
        reports[0].body.contains("run-tests crashed (panic:"),
        "{}",
        reports[0].body
    );
    assert!(
        matches!(&run.result, Some(Ok(r)) if r["result"] == "failed"),
        "{:?}",
        run.result
    );
}

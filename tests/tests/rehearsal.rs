//! `cargo rehearse` on this repository: the whole pipeline of pipeline.yaml
//! run locally with the real function binaries, and scratch copies of the
//! repository with one deliberate fault each.
//!
//! The rehearsals run one at a time (they share the checkout under
//! `.rehearsal/`, which keeps cargo's release build warm) and need the tools
//! of `scripts/setup-tools.sh`. The first run on a machine builds every
//! function in release mode and takes minutes; later runs take seconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rehearse::{Options, Rehearsal, RunReport, Status};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const JOB_TIMEOUT: Duration = Duration::from_secs(60);

fn options(repo: &Path) -> Options {
    let main = e2e::repo_root();
    e2e::tool("cargo-lambda");
    let mut options = Options::for_repo(repo);
    options.approve = true;
    options.job_timeout = JOB_TIMEOUT;
    options.target_dir = main.join("target");
    options.work_dir = main.join(".rehearsal");
    options.tools_dir = Some(main.join(".tools"));
    options
}

async fn rehearse(options: Options) -> (Rehearsal, RunReport) {
    let rehearsal = Rehearsal::start(options).await.expect("rehearsal starts");
    let commit = rehearsal.source_commit().expect("a commit to rehearse");
    let report = rehearsal
        .run(&commit)
        .await
        .expect("the pipeline can be read");
    (rehearsal, report)
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?} failed: {out:?}");
}

/// A clone of this repository's committed state with `file` edited by
/// replacing `from` with `to`, committed on `main`.
fn scratch_copy(file: &str, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let out = Command::new("git")
        .args(["clone", "-q", "--branch", "main"])
        .arg(e2e::repo_root())
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(from),
        "{file} no longer contains {from:?}: update this test"
    );
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    git(
        &repo,
        &[
            "-c",
            "user.email=test@example.com",
            "-c",
            "user.name=test",
            "commit",
            "-qam",
            "deliberate fault",
        ],
    );
    (dir, repo)
}

fn failed(report: &RunReport) -> (&str, &str, &str) {
    let f = report
        .failed_action
        .as_ref()
        .unwrap_or_else(|| panic!("the run did not fail: {report:#?}"));
    (&f.stage, &f.action, &f.reason)
}

fn action_duration(report: &RunReport, stage: &str, action: &str) -> Duration {
    let stage = report.stage(stage).unwrap();
    let action = stage.actions.iter().find(|a| a.name == action).unwrap();
    Duration::from_millis(action.duration_ms)
}

#[tokio::test]
async fn a_full_rehearsal_passes_every_stage_and_prod_answers_london() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (rehearsal, report) = rehearse(options(&e2e::repo_root())).await;
    assert!(report.succeeded(), "{report:#?}");
    let stages: Vec<(&str, Status)> = report
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        stages,
        [
            ("Source", Status::Succeeded),
            ("Build", Status::Succeeded),
            ("DeployTests", Status::Succeeded),
            ("Beta", Status::Succeeded),
            ("Gamma", Status::Succeeded),
            ("Prod", Status::Succeeded),
        ]
    );
    let prod = report
        .urls
        .get("TimeService-prod")
        .expect("the prod stack serves an API");
    let response = reqwest::get(format!("{prod}time/Europe/London"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-service-stage"], "prod");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["timeZone"], "Europe/London");
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_commit_that_breaks_the_api_fails_at_betas_gate_and_goes_no_further() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The API then reports the wrong stage in x-service-stage.
    let (_dir, repo) = scratch_copy(
        "app-sam.yaml",
        "STAGE: !Ref Stage",
        "STAGE: !Sub \"${Stage}-broken\"",
    );
    let (rehearsal, report) = rehearse(options(&repo)).await;
    let (stage, action, reason) = failed(&report);
    assert_eq!((stage, action), ("Beta", "IntegrationTests"), "{reason}");
    assert!(reason.starts_with("JobFailed"), "{reason}");
    assert!(
        reason.contains("x-service-stage"),
        "the failure names the check: {reason}"
    );
    assert_eq!(report.stage("Gamma").unwrap().status, Status::NotRun);
    assert_eq!(report.stage("Prod").unwrap().status, Status::NotRun);
    assert!(rehearsal.world().stack("TimeService-gamma").is_none());
    assert!(rehearsal.world().stack("TimeService-prod").is_none());
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn bad_user_parameters_fail_the_gate_with_a_configuration_error_not_a_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy(
        "pipeline.yaml",
        r#""appStack": "${ServiceName}-beta", "stage": "beta"}"#,
        r#""appStack": "${ServiceName}-beta", "stage": "beta", "retries": 3}"#,
    );
    let (rehearsal, report) = rehearse(options(&repo)).await;
    let (stage, action, reason) = failed(&report);
    assert_eq!((stage, action), ("Beta", "IntegrationTests"), "{reason}");
    assert!(reason.starts_with("ConfigurationError"), "{reason}");
    assert!(
        reason.contains("retries"),
        "the failure names the field: {reason}"
    );
    assert!(action_duration(&report, "Beta", "IntegrationTests") < Duration::from_secs(10));
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_gate_function_that_crashes_fails_its_action_within_the_deadline_saying_so() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Beta's gate invokes the TimeService function itself, which cannot read
    // a CodePipeline job event: the invocation fails and nothing reports.
    let (_dir, repo) = scratch_copy(
        "pipeline.yaml",
        "FunctionName: !Ref StartTestsFunction",
        "FunctionName: !Sub \"${ServiceName}-beta-time\"",
    );
    let started = Instant::now();
    let (rehearsal, report) = rehearse(options(&repo)).await;
    let (stage, action, reason) = failed(&report);
    assert_eq!((stage, action), ("Beta", "IntegrationTests"), "{reason}");
    assert!(
        reason.contains("TimeService-beta-time failed without reporting job"),
        "{reason}"
    );
    assert!(action_duration(&report, "Beta", "IntegrationTests") < JOB_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(600));
    rehearsal.shutdown().await;
}

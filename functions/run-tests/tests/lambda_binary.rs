//! The real `run-tests` binary, run the way Lambda runs it: under a Lambda
//! Runtime API served by the test, its reports going to a fake CodePipeline
//! endpoint (`AWS_ENDPOINT_URL`).
//!
//! Only here does `lambda_runtime`'s own logging run (the handler tests call
//! the handler directly), and it logs every raw event at TRACE.

mod common;

use std::time::{Duration, SystemTime};

use codepipeline_job::testing::{FakeAws, Invocation, invoke_binary};
use common::*;
use serde_json::{Value, json};

const JOB: &str = "33333333-abcd-3333-abcd-333333abcdef";
const TRACE: [(&str, &str); 2] = [("RUST_LOG", "trace"), ("AWS_LAMBDA_LOG_LEVEL", "TRACE")];

async fn run_binary(event: Value, aws: &FakeAws, env: &[(&str, &str)]) -> Invocation {
    invoke_binary(
        env!("CARGO_BIN_EXE_run-tests"),
        event,
        aws,
        env,
        Duration::from_secs(60),
    )
    .await
}

/// A CodePipeline job event (as if CodePipeline invoked run-tests directly)
/// whose artifact credentials are unique markers; returns it and the markers.
fn job_event_with_planted_credentials() -> (Value, [String; 3]) {
    let id = format!(
        "{}x{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let markers = [
        format!("AKIAPLANTEDACCESS{id}"),
        format!("planted-secret-access-key-{id}"),
        format!("planted-session-token-{id}"),
    ];
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../crates/codepipeline-job/tests/fixtures/documented-job-event.json"
    ))
    .unwrap();
    event["CodePipeline.job"]["data"]["artifactCredentials"] = json!({
        "accessKeyId": markers[0],
        "secretAccessKey": markers[1],
        "sessionToken": markers[2],
    });
    (event, markers)
}

#[tokio::test]
async fn no_artifact_credential_reaches_the_output_at_trace_for_a_job_event() {
    let aws = FakeAws::start().await;
    let (event, markers) = job_event_with_planted_credentials();

    let run = run_binary(event, &aws, &TRACE).await;

    // Not a hand-off payload: no jobId to report to, so an error response.
    assert!(
        matches!(&run.result, Some(Err(_))),
        "{:?}\n{}",
        run.result,
        run.output()
    );
    let output = run.output();
    assert!(
        output.contains(r#""level":"TRACE""#),
        "no TRACE line: the test did not log at TRACE\n{output}"
    );
    assert!(output.contains("`jobId` is missing"), "{output}");
    for marker in &markers {
        assert!(!run.stdout.contains(marker), "stdout leaks {marker}");
        assert!(!run.stderr.contains(marker), "stderr leaks {marker}");
    }
}

#[tokio::test]
async fn a_suite_run_by_the_binary_is_reported_to_codepipeline() {
    let aws = FakeAws::start().await;
    let url = serve(time_service("beta")).await;

    let run = run_binary(
        json!({"jobId": JOB, "apiUrl": url, "stage": "beta"}),
        &aws,
        &[],
    )
    .await;

    let reports = aws.calls_of("PutJobSuccessResult");
    assert_eq!(reports.len(), 1, "{:?}\n{}", aws.calls(), run.output());
    assert!(
        reports[0].body.contains("all 11 checks passed"),
        "{}",
        reports[0].body
    );
}

#[tokio::test]
async fn a_panic_in_the_binary_is_reported_as_a_job_failure() {
    let aws = FakeAws::start().await;

    let run = run_binary(
        json!({"jobId": JOB, "apiUrl": "http://127.0.0.1:9/", "stage": "beta"}),
        &aws,
        &[(codepipeline_job::PANIC_HOOK_ENV, "run-tests")],
    )
    .await;

    let reports = aws.calls_of("PutJobFailureResult");
    assert_eq!(reports.len(), 1, "{:?}\n{}", aws.calls(), run.output());
    assert!(
        reports[0].body.contains("run-tests crashed (panic:"),
        "{}",
        reports[0].body
    );
}

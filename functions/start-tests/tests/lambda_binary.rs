//! The real `start-tests` binary, run the way Lambda runs it: under a Lambda
//! Runtime API served by the test, its AWS calls answered by a fake endpoint
//! (`AWS_ENDPOINT_URL`), fed CodePipeline job events.
//!
//! This is the only place where `lambda_runtime`'s own logging runs (the
//! handler tests call the handler directly), and `lambda_runtime` logs every
//! raw event at TRACE: a CodePipeline job event carries temporary artifact
//! credentials.

use std::time::{Duration, SystemTime};

use codepipeline_job::testing::{FakeAws, Invocation, invoke_binary};
use serde_json::{Value, json};

const PARAMS: &str =
    r#"{"testStack": "time-service-tests", "appStack": "time-service-beta", "stage": "beta"}"#;
const JOB: &str = "11111111-abcd-1111-abcd-111111abcdef";

/// Unique strings planted as the event's artifact credentials.
struct Markers {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

impl Markers {
    fn new() -> Self {
        let unique = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let id = format!("{}x{unique}", std::process::id());
        Self {
            access_key_id: format!("AKIAPLANTEDACCESS{id}"),
            secret_access_key: format!("planted-secret-access-key-{id}"),
            session_token: format!("planted-session-token-{id}"),
        }
    }

    fn all(&self) -> [&str; 3] {
        [
            &self.access_key_id,
            &self.secret_access_key,
            &self.session_token,
        ]
    }

    fn assert_absent_from(&self, run: &Invocation) {
        for marker in self.all() {
            assert!(
                !run.stdout.contains(marker),
                "stdout leaks the planted credential {marker}"
            );
            assert!(
                !run.stderr.contains(marker),
                "stderr leaks the planted credential {marker}"
            );
        }
    }
}

/// The documented job event with `markers` as its artifact credentials.
fn job_event(markers: &Markers, user_parameters: &str) -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../crates/codepipeline-job/tests/fixtures/documented-job-event.json"
    ))
    .unwrap();
    let data = &mut event["CodePipeline.job"]["data"];
    data["actionConfiguration"]["configuration"]["UserParameters"] = json!(user_parameters);
    data["artifactCredentials"] = json!({
        "accessKeyId": markers.access_key_id,
        "secretAccessKey": markers.secret_access_key,
        "sessionToken": markers.session_token,
    });
    event
}

const TRACE: [(&str, &str); 2] = [("RUST_LOG", "trace"), ("AWS_LAMBDA_LOG_LEVEL", "TRACE")];

async fn run_binary(event: Value, aws: &FakeAws, env: &[(&str, &str)]) -> Invocation {
    invoke_binary(
        env!("CARGO_BIN_EXE_start-tests"),
        event,
        aws,
        env,
        Duration::from_secs(60),
    )
    .await
}

/// The logs were really written at TRACE (so the test could have seen a leak).
fn assert_traced(run: &Invocation) {
    let output = run.output();
    assert!(
        output.contains(r#""level":"TRACE""#),
        "no TRACE line: the test did not log at TRACE\n{output}"
    );
    assert!(output.contains(JOB), "the job was not logged\n{output}");
}

#[tokio::test]
async fn no_artifact_credential_reaches_the_output_at_trace_when_the_tests_start() {
    let aws = FakeAws::start().await;
    let markers = Markers::new();

    let run = run_binary(job_event(&markers, PARAMS), &aws, &TRACE).await;

    let response = run
        .result
        .clone()
        .unwrap_or_else(|| panic!("no response:\n{}", run.output()))
        .unwrap_or_else(|e| panic!("error response {e}:\n{}", run.output()));
    assert_eq!(response["result"], "handed-off", "{response}");
    assert_eq!(aws.calls_of("DescribeStacks").len(), 2);
    assert_eq!(aws.calls_of("Invoke").len(), 1);
    assert_traced(&run);
    markers.assert_absent_from(&run);
}

#[tokio::test]
async fn no_artifact_credential_reaches_the_output_at_trace_when_the_job_fails() {
    let aws = FakeAws::start().await;
    let markers = Markers::new();

    let run = run_binary(job_event(&markers, "not json"), &aws, &TRACE).await;

    assert!(
        matches!(&run.result, Some(Ok(r)) if r["result"] == "failed"),
        "{:?}\n{}",
        run.result,
        run.output()
    );
    assert_eq!(aws.calls_of("PutJobFailureResult").len(), 1);
    assert_traced(&run);
    markers.assert_absent_from(&run);
}

#[tokio::test]
async fn no_artifact_credential_reaches_the_output_at_trace_for_a_malformed_event() {
    let aws = FakeAws::start().await;
    let markers = Markers::new();
    let mut event = job_event(&markers, PARAMS);
    event["CodePipeline.job"]["data"]["actionConfiguration"] = json!("not an object");

    let run = run_binary(event, &aws, &TRACE).await;

    assert_eq!(
        aws.calls_of("PutJobFailureResult").len(),
        1,
        "{}",
        run.output()
    );
    assert_traced(&run);
    markers.assert_absent_from(&run);
}

#[tokio::test]
async fn a_panic_in_the_binary_is_reported_as_a_job_failure() {
    let aws = FakeAws::start().await;
    let markers = Markers::new();

    let run = run_binary(
        job_event(&markers, PARAMS),
        &aws,
        &[(codepipeline_job::PANIC_HOOK_ENV, "start-tests")],
    )
    .await;

    let reports = aws.calls_of("PutJobFailureResult");
    assert_eq!(reports.len(), 1, "{}", run.output());
    assert!(
        reports[0].body.contains("start-tests crashed (panic:"),
        "{}",
        reports[0].body
    );
    assert_eq!(aws.calls_of("Invoke").len(), 0);
}

#[tokio::test]
async fn the_panic_hook_ignores_values_other_than_the_component_name() {
    let aws = FakeAws::start().await;
    let markers = Markers::new();

    let run = run_binary(
        job_event(&markers, PARAMS),
        &aws,
        &[(codepipeline_job::PANIC_HOOK_ENV, "1")],
    )
    .await;

    assert!(
        matches!(&run.result, Some(Ok(r)) if r["result"] == "handed-off"),
        "{:?}\n{}",
        run.result,
        run.output()
    );
    assert_eq!(aws.calls_of("PutJobFailureResult").len(), 0);
}

#[tokio::test]
async fn a_megabyte_api_url_is_handed_over_whole_and_logged_briefly() {
    let huge = format!("https://{}.example/", "h".repeat(1_000_000));
    let aws = FakeAws::with_api_url(&huge).await;
    let markers = Markers::new();

    let run = run_binary(job_event(&markers, PARAMS), &aws, &[]).await;

    assert!(
        matches!(&run.result, Some(Ok(r)) if r["result"] == "handed-off"),
        "{:?}",
        run.result
    );
    let invokes = aws.calls_of("Invoke");
    assert_eq!(invokes.len(), 1);
    assert!(
        invokes[0].body.contains(&huge),
        "run-tests gets the URL whole"
    );
    let output = run.output();
    assert!(output.contains("tests started"), "{output}");
    for line in output.lines() {
        assert!(
            line.len() <= 2048,
            "a {}-byte log line: {}…",
            line.len(),
            &line[..300]
        );
    }
}

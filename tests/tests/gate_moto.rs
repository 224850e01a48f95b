//! start-tests against moto, an independent AWS emulator: real CloudFormation
//! stacks with outputs, a real Lambda function, the AWS SDK's real wire
//! protocols, and the standard endpoint override. moto does not implement
//! the CodePipeline job APIs, so a tiny local fake answers those and records
//! every report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::config::{Credentials, Region};
use axum::Router;
use axum::http::HeaderMap;
use codepipeline_job::{Reporter, SettlementKind, sdk_config_loader};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use start_tests::Clients;

const REGION: &str = "us-east-1";
const JOB: &str = "11111111-abcd-1111-abcd-111111abcdef";
const TEST_STACK: &str = "gate-tests";
const APP_STACK: &str = "gate-beta";
const FUNCTION: &str = "gate-tests-run-tests";
const API_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/";

// ---- moto -----------------------------------------------------------------

/// A moto server on a free loopback port, set up for Lambda without Docker.
struct Moto {
    server: e2e::MotoServer,
}

impl Moto {
    async fn start() -> Self {
        let server = e2e::MotoServer::start().await;
        let moto = Moto { server };
        let http = reqwest::Client::new();
        // Lambda without Docker: Invoke is accepted and echoed, not run.
        // Must be set before any function is created.
        let response = http
            .post(format!("{}/moto-api/config", moto.server.url))
            .json(&json!({"lambda": {"use_docker": false}}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        moto
    }

    async fn start_recording(&self) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/moto-api/recorder/start-recording",
                self.server.url
            ))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// The requests moto received since recording started.
    async fn recording(&self) -> Vec<Recorded> {
        let text = reqwest::get(format!(
            "{}/moto-api/recorder/download-recording",
            self.server.url
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(Recorded::parse)
            .collect()
    }

    /// An IAM role for create_function (moto checks that it exists). The
    /// workspace has no IAM SDK crate, so this is the raw query API.
    async fn create_role(&self, name: &str) -> String {
        let body = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D"
        );
        let response = reqwest::Client::new()
            .post(format!("{}/", self.server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=testing/20261126/{REGION}/iam/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "CreateRole: {}",
            response.text().await.unwrap()
        );
        format!("arn:aws:iam::123456789012:role/{name}")
    }
}

/// One request from moto's recorder.
struct Recorded {
    method: String,
    url: String,
    headers: Value,
    body: String,
}

impl Recorded {
    fn parse(line: &str) -> Self {
        let entry: Value = serde_json::from_str(line).unwrap();
        let raw = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"].as_bool() == Some(true) {
            String::from_utf8(aws_smithy_types::base64::decode(raw).unwrap()).unwrap()
        } else {
            raw.to_string()
        };
        Recorded {
            method: entry["method"].as_str().unwrap_or_default().to_string(),
            url: entry["url"].as_str().unwrap_or_default().to_string(),
            headers: entry["headers"].clone(),
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    }
}

// ---- the fake CodePipeline ------------------------------------------------

/// Answers every CodePipeline call with `{}` and records (operation, body).
#[derive(Clone, Default)]
struct FakeCodePipeline {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
}

impl FakeCodePipeline {
    async fn start(&self) -> String {
        let calls = self.calls.clone();
        let router = Router::new().fallback(move |headers: HeaderMap, body: String| {
            let calls = calls.clone();
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                calls
                    .lock()
                    .unwrap()
                    .push((target, serde_json::from_str(&body).unwrap_or(Value::Null)));
                ([("content-type", "application/x-amz-json-1.1")], "{}")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        url
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

// ---- the world ------------------------------------------------------------

struct Gate {
    moto: Moto,
    codepipeline: FakeCodePipeline,
    clients: Clients,
}

impl Gate {
    async fn start() -> Self {
        let moto = Moto::start().await;
        let codepipeline = FakeCodePipeline::default();
        let codepipeline_url = codepipeline.start().await;
        let credentials = Credentials::new("testing", "testing", None, None, "gate-moto");
        // The project's loader (timeouts, standard retries) with the
        // standard endpoint override, as AWS_ENDPOINT_URL would set it.
        let aws = sdk_config_loader()
            .endpoint_url(&moto.server.url)
            .region(Region::new(REGION))
            .credentials_provider(credentials.clone())
            .load()
            .await;
        let pipeline = sdk_config_loader()
            .endpoint_url(&codepipeline_url)
            .region(Region::new(REGION))
            .credentials_provider(credentials)
            .load()
            .await;
        let clients = Clients {
            cloudformation: aws_sdk_cloudformation::Client::new(&aws),
            lambda: aws_sdk_lambda::Client::new(&aws),
            reporter: Reporter::from_conf(&pipeline),
        };
        Gate {
            moto,
            codepipeline,
            clients,
        }
    }

    /// A plain CloudFormation stack (moto has no SAM transform) carrying `outputs`.
    async fn create_stack(&self, name: &str, outputs: &[(&str, &str)]) {
        let outputs: serde_json::Map<String, Value> = outputs
            .iter()
            .map(|(k, v)| (k.to_string(), json!({"Value": v})))
            .collect();
        let template = json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
            "Outputs": outputs,
        });
        self.clients
            .cloudformation
            .create_stack()
            .stack_name(name)
            .template_body(template.to_string())
            .send()
            .await
            .unwrap();
    }

    async fn create_test_function(&self) {
        let role = self.moto.create_role("gate-run-tests-role").await;
        self.clients
            .lambda
            .create_function()
            .function_name(FUNCTION)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    // moto without Docker never runs the code.
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(
                        b"not run by moto".to_vec(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// The whole healthy setup: both stacks and the function.
    async fn healthy() -> Self {
        let gate = Gate::start().await;
        gate.create_test_function().await;
        gate.create_stack(TEST_STACK, &[("TestFunction", FUNCTION)])
            .await;
        gate.create_stack(
            APP_STACK,
            &[("ApiUrl", API_URL), ("FunctionName", "gate-beta-time")],
        )
        .await;
        gate
    }

    async fn run_start_tests(&self) -> Result<codepipeline_job::Settlement, lambda_runtime::Error> {
        start_tests::handle(
            &self.clients,
            LambdaEvent::new(job_event(), Context::default()),
        )
        .await
    }

    /// The one failure report the fake received: (type, message).
    fn single_failure_report(&self) -> (String, String) {
        let calls = self.codepipeline.calls();
        assert_eq!(
            calls.len(),
            1,
            "expected exactly one CodePipeline call: {calls:?}"
        );
        let (operation, body) = &calls[0];
        assert_eq!(operation, "PutJobFailureResult");
        assert_eq!(body["jobId"], JOB);
        (
            body["failureDetails"]["type"].as_str().unwrap().to_string(),
            body["failureDetails"]["message"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }
}

/// The documented CodePipeline job event with this test's UserParameters.
fn job_event() -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../crates/codepipeline-job/tests/fixtures/documented-job-event.json"
    ))
    .unwrap();
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
        json!(json!({"testStack": TEST_STACK, "appStack": APP_STACK, "stage": "beta"}).to_string());
    event
}

// ---- tests ----------------------------------------------------------------

#[tokio::test]
async fn start_tests_invokes_the_test_function_asynchronously_with_the_stage_api_url() {
    let gate = Gate::healthy().await;
    gate.moto.start_recording().await;

    let settled = gate.run_start_tests().await.unwrap();

    assert_eq!(settled.result, SettlementKind::HandedOff);
    let recording = gate.moto.recording().await;
    let invokes: Vec<&Recorded> = recording
        .iter()
        .filter(|r| r.url.contains("/invocations"))
        .collect();
    assert_eq!(invokes.len(), 1, "one Invoke");
    let invoke = invokes[0];
    assert_eq!(invoke.method, "POST");
    assert!(
        invoke
            .url
            .ends_with(&format!("/2015-03-31/functions/{FUNCTION}/invocations")),
        "{}",
        invoke.url
    );
    assert_eq!(invoke.header("X-Amz-Invocation-Type"), Some("Event"));
    let payload: Value = serde_json::from_str(&invoke.body).unwrap();
    assert_eq!(
        payload,
        json!({"jobId": JOB, "apiUrl": API_URL, "stage": "beta"})
    );
}

#[tokio::test]
async fn start_tests_describes_both_stacks_and_leaves_the_report_to_run_tests() {
    let gate = Gate::healthy().await;
    gate.moto.start_recording().await;

    gate.run_start_tests().await.unwrap();

    let recording = gate.moto.recording().await;
    let described: Vec<&str> = recording
        .iter()
        .filter(|r| r.body.contains("Action=DescribeStacks"))
        .map(|r| r.body.as_str())
        .collect();
    assert_eq!(described.len(), 2, "{described:?}");
    assert!(
        described
            .iter()
            .any(|b| b.contains(&format!("StackName={TEST_STACK}"))),
        "{described:?}"
    );
    assert!(
        described
            .iter()
            .any(|b| b.contains(&format!("StackName={APP_STACK}"))),
        "{described:?}"
    );
    assert!(
        gate.codepipeline.calls().is_empty(),
        "start-tests reported: {:?}",
        gate.codepipeline.calls()
    );
}

#[tokio::test]
async fn a_missing_app_stack_is_a_configuration_failure_naming_it() {
    let gate = Gate::start().await;
    gate.create_test_function().await;
    gate.create_stack(TEST_STACK, &[("TestFunction", FUNCTION)])
        .await;
    gate.moto.start_recording().await;

    let settled = gate.run_start_tests().await.unwrap();

    assert_eq!(settled.result, SettlementKind::Failed);
    let (kind, message) = gate.single_failure_report();
    assert_eq!(kind, "ConfigurationError");
    assert!(
        message.contains(&format!(
            "stack `{APP_STACK}` (UserParameters `appStack`) does not exist"
        )),
        "{message}"
    );
    assert!(message.contains("ValidationError"), "{message}");
    let recording = gate.moto.recording().await;
    assert!(
        !recording.iter().any(|r| r.url.contains("/invocations")),
        "the tests must not start"
    );
}

#[tokio::test]
async fn a_test_stack_without_the_test_function_output_is_a_configuration_failure() {
    let gate = Gate::start().await;
    gate.create_stack(TEST_STACK, &[("SomethingElse", "x")])
        .await;
    gate.create_stack(APP_STACK, &[("ApiUrl", API_URL)]).await;

    gate.run_start_tests().await.unwrap();

    let (kind, message) = gate.single_failure_report();
    assert_eq!(kind, "ConfigurationError");
    assert!(
        message.contains(&format!("stack `{TEST_STACK}`")),
        "{message}"
    );
    assert!(
        message.contains("no output `TestFunction` (its outputs: SomethingElse)"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_aws_endpoint_is_reported_as_system_unavailable_in_time() {
    // moto stopped: every CloudFormation call is refused. The SDK retries
    // (standard mode) and gives up; the job is still reported.
    let Gate {
        moto,
        codepipeline,
        clients,
    } = Gate::healthy().await;
    drop(moto);

    let started = Instant::now();
    start_tests::handle(&clients, LambdaEvent::new(job_event(), Context::default()))
        .await
        .unwrap();

    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let calls = codepipeline.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "PutJobFailureResult");
    assert_eq!(calls[0].1["failureDetails"]["type"], "SystemUnavailable");
    let message = calls[0].1["failureDetails"]["message"].as_str().unwrap();
    assert!(message.contains("DescribeStacks for stack"), "{message}");
}

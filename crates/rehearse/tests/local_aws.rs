//! The Runtime API, the API gateway and the local AWS endpoint, driven by a
//! real `lambda_runtime` function and by the official AWS SDK.
//!
//! The test function is this test binary itself: started with
//! `REHEARSE_FAKE_FUNCTION=<behaviour>`, its ignored `fake_function_main`
//! entry point runs a `lambda_runtime` handler with that behaviour, so the
//! servers are exercised by the same client library the real functions use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use bytes::Bytes;
use rehearse::endpoint::Endpoint;
use rehearse::gateway::{ApiKind, Gateway, Route};
use rehearse::runtime::FunctionHost;
use rehearse::world::{JobResult, StackRecord, World};
use serde_json::{Value, json};

mod common;

use common::fake;

/// Entry point of the fake function processes (see `common`).
#[test]
#[ignore = "entry point of the fake function process, started by the other tests"]
fn fake_function_main() {
    common::fake_function_main();
}

fn host(name: &str, behaviour: &str) -> Arc<FunctionHost> {
    Arc::new(FunctionHost::new(fake(
        name,
        behaviour,
        Duration::from_secs(10),
        &[],
    )))
}

fn json_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A world with an endpoint, and functions that talk to it.
async fn local_aws() -> (Arc<World>, Endpoint) {
    let world = World::new();
    let endpoint = Endpoint::start(world.clone()).await.unwrap();
    (world, endpoint)
}

fn with_endpoint(name: &str, behaviour: &str, endpoint: &Endpoint) -> Arc<FunctionHost> {
    let url = endpoint.url();
    Arc::new(FunctionHost::new(fake(
        name,
        behaviour,
        Duration::from_secs(10),
        &[("AWS_ENDPOINT_URL", url.as_str())],
    )))
}

async fn sdk_from_test(endpoint: &Endpoint) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIATEST", "secret", None, None, "test",
        ))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

// ------------------------------------------------------------------ Runtime API

#[tokio::test]
async fn an_invocation_reaches_the_handler_with_lambda_context_and_environment() {
    let config = fake(
        "echo-fn",
        "echo",
        Duration::from_secs(10),
        &[("STAGE", "beta")],
    );
    let function = FunctionHost::new(config);
    let answer = json_of(
        &function
            .invoke(Bytes::from(r#"{"hello":"world"}"#))
            .await
            .unwrap(),
    );
    assert_eq!(answer["event"], json!({"hello": "world"}));
    assert_eq!(
        answer["functionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:echo-fn"
    );
    assert_eq!(answer["env"]["AWS_LAMBDA_FUNCTION_NAME"], "echo-fn");
    assert_eq!(answer["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(answer["env"]["STAGE"], "beta");
    assert_eq!(
        answer["env"]["HOME"],
        Value::Null,
        "the host environment must not leak in"
    );
    assert_eq!(answer["requestId"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn a_warm_process_serves_the_next_invocation_with_a_new_request_id() {
    let function = host("warm-fn", "echo");
    let first = json_of(&function.invoke(Bytes::from("1")).await.unwrap());
    let second = json_of(&function.invoke(Bytes::from("2")).await.unwrap());
    assert!(first["pid"].is_u64(), "the function reports its process id");
    assert_eq!(
        first["pid"], second["pid"],
        "the same process served both invocations"
    );
    assert_ne!(first["requestId"], second["requestId"]);
}

#[tokio::test]
async fn a_stopped_function_starts_a_new_process_for_the_next_invocation() {
    let function = host("cold-fn", "echo");
    let first = json_of(&function.invoke(Bytes::from("1")).await.unwrap());
    function.stop().await;
    let second = json_of(&function.invoke(Bytes::from("2")).await.unwrap());
    assert_ne!(first["pid"], second["pid"], "a cold start is a new process");
}

#[tokio::test]
async fn a_handler_error_comes_back_as_a_function_error() {
    let error = host("error-fn", "error")
        .invoke(Bytes::from("{}"))
        .await
        .unwrap_err();
    assert!(
        error
            .error_message
            .contains("the handler refused the event"),
        "{error}"
    );
}

#[tokio::test]
async fn a_crash_fails_the_invocation_and_the_next_one_gets_a_fresh_process() {
    let function = host("crash-fn", "crash");
    let error = function.invoke(Bytes::from("{}")).await.unwrap_err();
    assert_eq!(error.error_type, "Runtime.ExitError");
    assert!(error.error_message.contains("exit status: 3"), "{error}");
    let again = function.invoke(Bytes::from("{}")).await.unwrap_err();
    assert_eq!(
        again.error_type, "Runtime.ExitError",
        "a new process ran the second invocation"
    );
}

#[tokio::test]
async fn an_invocation_over_the_timeout_is_killed_and_reported_as_timed_out() {
    let function = FunctionHost::new(fake("hang-fn", "hang", Duration::from_secs(1), &[]));
    let started = Instant::now();
    let error = function.invoke(Bytes::from("{}")).await.unwrap_err();
    assert_eq!(error.error_type, "Sandbox.Timedout");
    assert!(
        error
            .error_message
            .contains("Task timed out after 1.00 seconds"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_init_error_is_what_the_invocation_reports() {
    let error = host("init-fn", "init_error")
        .invoke(Bytes::from("{}"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type, "Runtime.ConfigError");
    assert_eq!(error.error_message, "missing STAGE");
}

#[tokio::test]
async fn a_rest_api_response_without_a_status_code_is_a_502() {
    let kind = ApiKind::Rest {
        stage: "Prod".into(),
    };
    let gateway = gateway_with(kind, None, "/time", host("gw-rest-bad", "echo")).await;
    let response = reqwest::get(format!("{}/Prod/time", gateway.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn a_missing_bootstrap_is_an_invalid_entrypoint_error() {
    let mut config = fake("missing-fn", "echo", Duration::from_secs(1), &[]);
    config.command = "/nonexistent/bootstrap".into();
    let error = FunctionHost::new(config)
        .invoke(Bytes::from("{}"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type, "Runtime.InvalidEntrypoint");
    assert!(
        error.error_message.contains("/nonexistent/bootstrap"),
        "{error}"
    );
}

// ------------------------------------------------------------------ API gateway

async fn gateway_with(
    kind: ApiKind,
    method: Option<http::Method>,
    path: &str,
    function: Arc<FunctionHost>,
) -> Gateway {
    let gateway = Gateway::start().await.unwrap();
    gateway.set_routes(vec![Route {
        api_id: "abc123".into(),
        kind,
        method,
        path: path.into(),
        target: function.into(),
    }]);
    gateway
}

#[tokio::test]
async fn an_http_api_request_becomes_a_version_2_event() {
    let gateway = gateway_with(
        ApiKind::Http,
        Some(http::Method::GET),
        "/time/{zone+}",
        host("gw-echo", "echo"),
    )
    .await;
    let url = format!("{}/time/Europe/London?x=1", gateway.base_url());
    let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let event = &body["event"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "GET /time/{zone+}");
    assert_eq!(event["rawPath"], "/time/Europe/London");
    assert_eq!(event["rawQueryString"], "x=1");
    assert_eq!(event["pathParameters"]["zone"], "Europe/London");
    assert_eq!(event["requestContext"]["http"]["method"], "GET");
    assert_eq!(event["requestContext"]["stage"], "$default");
}

#[tokio::test]
async fn a_rest_api_request_becomes_a_version_1_event_under_its_stage() {
    let kind = ApiKind::Rest {
        stage: "Prod".into(),
    };
    // The "http" fake answers with a proxy response whose body is the event.
    let gateway = gateway_with(kind, None, "/time", host("gw-rest", "http")).await;
    let url = format!("{}/Prod/time", gateway.base_url());
    let event: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(event["httpMethod"], "GET");
    assert_eq!(event["path"], "/time");
    assert_eq!(event["resource"], "/time");
    assert_eq!(event["requestContext"]["stage"], "Prod");
    assert_eq!(event["requestContext"]["path"], "/Prod/time");
}

#[tokio::test]
async fn the_function_response_becomes_the_http_response() {
    let gateway = gateway_with(ApiKind::Http, None, "/{proxy+}", host("gw-http", "http")).await;
    let response = reqwest::get(format!("{}/anything", gateway.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-function"], "fake");
    assert_eq!(response.headers()["set-cookie"], "a=1");
}

#[tokio::test]
async fn a_path_without_a_route_is_api_gateways_404() {
    let gateway = gateway_with(
        ApiKind::Http,
        Some(http::Method::GET),
        "/time",
        host("gw-404", "echo"),
    )
    .await;
    let response = reqwest::get(format!("{}/nothing", gateway.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "Not Found"})
    );
}

#[tokio::test]
async fn a_failing_function_behind_the_api_is_a_500() {
    let gateway = gateway_with(ApiKind::Http, None, "/{proxy+}", host("gw-err", "error")).await;
    let response = reqwest::get(format!("{}/x", gateway.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
}

// ------------------------------------------------------------------ local AWS endpoint

#[tokio::test]
async fn describe_stacks_answers_outputs_to_the_sdk() {
    let (world, endpoint) = local_aws().await;
    let mut record = StackRecord::new("svc-beta");
    record
        .outputs
        .insert("ApiUrl".into(), "http://127.0.0.1:1/".into());
    world.put_stack(record);
    let function = with_endpoint("describe-fn", "describe", &endpoint);
    let answer = json_of(
        &function
            .invoke(Bytes::from(r#"{"stack":"svc-beta"}"#))
            .await
            .unwrap(),
    );
    assert_eq!(answer["outputs"]["ApiUrl"], "http://127.0.0.1:1/");
}

#[tokio::test]
async fn describe_stacks_of_a_missing_stack_is_awss_validation_error() {
    let (_world, endpoint) = local_aws().await;
    let client = aws_sdk_cloudformation::Client::new(&sdk_from_test(&endpoint).await);
    let error = client
        .describe_stacks()
        .stack_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(error.meta().code(), Some("ValidationError"));
    assert_eq!(
        error.meta().message(),
        Some("Stack with id nope does not exist")
    );
}

#[tokio::test]
async fn lambda_invoke_request_response_returns_the_payload() {
    let (world, endpoint) = local_aws().await;
    world.put_function(host("target-fn", "echo"));
    let client = aws_sdk_lambda::Client::new(&sdk_from_test(&endpoint).await);
    let out = client
        .invoke()
        .function_name("target-fn")
        .payload(aws_sdk_lambda::primitives::Blob::new(r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), None);
    let payload: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(payload["event"], json!({"n": 1}));
}

#[tokio::test]
async fn lambda_invoke_of_a_failing_function_reports_the_function_error() {
    let (world, endpoint) = local_aws().await;
    world.put_function(host("bad-fn", "error"));
    let client = aws_sdk_lambda::Client::new(&sdk_from_test(&endpoint).await);
    let out = client
        .invoke()
        .function_name("bad-fn")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), Some("Unhandled"));
}

#[tokio::test]
async fn lambda_invoke_event_returns_202_at_once_and_runs_in_the_background() {
    let (world, endpoint) = local_aws().await;
    world.put_function(with_endpoint("reporter-fn", "report", &endpoint));
    world.put_function(with_endpoint("invoker-fn", "invoke", &endpoint));
    let mut job = world.start_job("job-async");
    let caller = world.function("invoker-fn").unwrap();
    let started = Instant::now();
    let request = json!({
        "function": "reporter-fn",
        "async": true,
        "payload": {"CodePipeline.job": {"id": "job-async"}}
    });
    let answer = json_of(
        &caller
            .invoke(Bytes::from(request.to_string()))
            .await
            .unwrap(),
    );
    assert_eq!(answer["status"], 202);
    let result = tokio::time::timeout(Duration::from_secs(20), &mut job)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        result,
        JobResult::Succeeded {
            summary: Some("3 checks passed".into()),
            variables: Default::default(),
        }
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn lambda_invoke_of_an_unknown_function_is_resource_not_found() {
    let (_world, endpoint) = local_aws().await;
    let client = aws_sdk_lambda::Client::new(&sdk_from_test(&endpoint).await);
    let error = client
        .invoke()
        .function_name("ghost")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_resource_not_found_exception(), "{error:?}");
    assert!(
        error
            .meta()
            .message()
            .unwrap_or_default()
            .contains("function:ghost")
    );
}

#[tokio::test]
async fn a_job_reported_twice_is_refused_with_invalid_job_state() {
    let (world, endpoint) = local_aws().await;
    let function = with_endpoint("report-fn", "report", &endpoint);
    let mut job = world.start_job("job-1");
    let answer = json_of(
        &function
            .invoke(Bytes::from(
                json!({"CodePipeline.job": {"id": "job-1"}}).to_string(),
            ))
            .await
            .unwrap(),
    );
    assert_eq!(answer["second"], "InvalidJobStateException");
    assert_eq!(
        job.try_recv().unwrap(),
        JobResult::Succeeded {
            summary: Some("3 checks passed".into()),
            variables: Default::default(),
        }
    );
}

#[tokio::test]
async fn a_failure_report_carries_type_and_message() {
    let (world, endpoint) = local_aws().await;
    let mut job = world.start_job("job-f");
    let client = aws_sdk_codepipeline::Client::new(&sdk_from_test(&endpoint).await);
    client
        .put_job_failure_result()
        .job_id("job-f")
        .failure_details(
            aws_sdk_codepipeline::types::FailureDetails::builder()
                .r#type(aws_sdk_codepipeline::types::FailureType::ConfigurationError)
                .message("appStack missing")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        job.try_recv().unwrap(),
        JobResult::Failed {
            kind: "ConfigurationError".into(),
            message: "appStack missing".into()
        }
    );
}

#[tokio::test]
async fn a_report_for_an_unknown_job_is_job_not_found() {
    let (_world, endpoint) = local_aws().await;
    let client = aws_sdk_codepipeline::Client::new(&sdk_from_test(&endpoint).await);
    let error = client
        .put_job_success_result()
        .job_id("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_job_not_found_exception(), "{error:?}");
}

#[tokio::test]
async fn an_over_long_failure_message_is_a_validation_exception() {
    let (world, endpoint) = local_aws().await;
    let _job = world.start_job("job-long");
    let client = aws_sdk_codepipeline::Client::new(&sdk_from_test(&endpoint).await);
    let error = client
        .put_job_failure_result()
        .job_id("job-long")
        .failure_details(
            aws_sdk_codepipeline::types::FailureDetails::builder()
                .r#type(aws_sdk_codepipeline::types::FailureType::JobFailed)
                .message("x".repeat(5001))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_validation_exception(), "{error:?}");
}

#[tokio::test]
async fn a_failed_event_invocation_is_retried_as_event_invoke_config_says() {
    let (world, endpoint) = local_aws().await;
    let mut config = fake("retried-fn", "error", Duration::from_secs(10), &[]);
    config.async_retries = 2;
    world.put_function(Arc::new(FunctionHost::new(config)));
    let client = aws_sdk_lambda::Client::new(&sdk_from_test(&endpoint).await);
    let out = client
        .invoke()
        .function_name("retried-fn")
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let started = Instant::now();
    while world.async_failures_since(0).len() < 3 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failures = world.async_failures_since(0);
    assert_eq!(
        failures.len(),
        3,
        "one attempt and two retries: {failures:?}"
    );
    assert!(failures.iter().all(|f| f.function == "retried-fn"));
}

fn change_set_record(
    changes: Vec<rehearse::changeset::ResourceChange>,
) -> rehearse::world::ChangeSetRecord {
    let empty = changes.is_empty();
    rehearse::world::ChangeSetRecord {
        stack_name: "svc-prod".into(),
        change_set_name: "svc-prod-review".into(),
        change_set_id: "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/svc-prod-review/1"
            .into(),
        stack_id: "arn:aws:cloudformation:eu-west-1:123456789012:stack/svc-prod/1".into(),
        created: chrono::Utc::now(),
        status: if empty { "FAILED" } else { "CREATE_COMPLETE" }.into(),
        status_reason: empty.then(|| rehearse::changeset::NO_CHANGES.to_string()),
        execution_status: if empty { "UNAVAILABLE" } else { "AVAILABLE" }.into(),
        change_set_type: "UPDATE".into(),
        capabilities: vec!["CAPABILITY_IAM".into()],
        parameters: [("Stage".to_string(), "prod".to_string())].into(),
        changes,
        template: "packaged-app.yaml".into(),
        overrides: Default::default(),
    }
}

#[tokio::test]
async fn describe_change_set_answers_in_the_wire_format_the_sdk_reads() {
    use aws_sdk_cloudformation::types::{
        ChangeAction, ChangeSetStatus, ExecutionStatus, Replacement,
    };
    use rehearse::changeset::{self, PropertyChange, ResourceChange};
    let (world, endpoint) = local_aws().await;
    world.put_change_set(change_set_record(vec![
        ResourceChange {
            action: changeset::ChangeAction::Add,
            logical_id: "Fn2Role".into(),
            resource_type: "AWS::IAM::Role".into(),
            properties: Vec::new(),
            type_changed: false,
            permission: true,
        },
        ResourceChange {
            action: changeset::ChangeAction::Modify,
            logical_id: "Fn".into(),
            resource_type: "AWS::Serverless::Function".into(),
            properties: vec![PropertyChange {
                name: "FunctionName".into(),
                replaces: true,
                parameter: Some("Stage".into()),
            }],
            type_changed: false,
            permission: false,
        },
    ]));
    let client = aws_sdk_cloudformation::Client::new(&sdk_from_test(&endpoint).await);
    let out = client
        .describe_change_set()
        .stack_name("svc-prod")
        .change_set_name("svc-prod-review")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), Some(&ChangeSetStatus::CreateComplete));
    assert_eq!(out.execution_status(), Some(&ExecutionStatus::Available));
    assert_eq!(out.stack_name(), Some("svc-prod"));
    assert!(
        out.change_set_id()
            .unwrap()
            .contains(":changeSet/svc-prod-review/")
    );
    assert_eq!(out.parameters().len(), 1);
    let changes = out.changes();
    assert_eq!(changes.len(), 2);
    let added = changes[0].resource_change().unwrap();
    assert_eq!(added.action(), Some(&ChangeAction::Add));
    assert_eq!(added.resource_type(), Some("AWS::IAM::Role"));
    let modified = changes[1].resource_change().unwrap();
    assert_eq!(modified.replacement(), Some(&Replacement::True));
    let target = modified.details()[0].target().unwrap();
    assert_eq!(target.name(), Some("FunctionName"));
    assert_eq!(modified.details()[0].causing_entity(), Some("Stage"));
    // By ARN, without the stack.
    let by_arn = client
        .describe_change_set()
        .change_set_name(out.change_set_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.changes().len(), 2);
}

#[tokio::test]
async fn a_change_set_without_changes_is_failed_and_a_missing_one_is_not_found() {
    use aws_sdk_cloudformation::types::{ChangeSetStatus, ExecutionStatus};
    let (world, endpoint) = local_aws().await;
    world.put_change_set(change_set_record(Vec::new()));
    let client = aws_sdk_cloudformation::Client::new(&sdk_from_test(&endpoint).await);
    let out = client
        .describe_change_set()
        .stack_name("svc-prod")
        .change_set_name("svc-prod-review")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), Some(&ChangeSetStatus::Failed));
    assert_eq!(out.execution_status(), Some(&ExecutionStatus::Unavailable));
    assert!(
        out.status_reason()
            .unwrap()
            .starts_with("The submitted information didn't contain changes")
    );
    let error = client
        .describe_change_set()
        .stack_name("svc-prod")
        .change_set_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(error.is_change_set_not_found_exception(), "{error:?}");
}

//! start-tests against mocked CloudFormation, Lambda and CodePipeline clients.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::types::{Output, StackStatus};
use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
use aws_sdk_lambda::operation::invoke::{InvokeError, InvokeOutput};
use aws_sdk_lambda::types::error::{ResourceNotFoundException, TooManyRequestsException};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use super::*;

const JOB: &str = "11111111-abcd-1111-abcd-111111abcdef";
const TEST_STACK: &str = "time-service-tests";
const APP_STACK: &str = "time-service-beta";
const FUNCTION: &str = "time-service-tests-RunTests-AbC123";
const API_URL: &str = "https://abc123.execute-api.eu-west-1.amazonaws.com/";
const PARAMS: &str =
    r#"{"testStack": "time-service-tests", "appStack": "time-service-beta", "stage": "beta"}"#;

// ---- builders -------------------------------------------------------------

fn event_with_params(params: Option<&str>) -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../crates/codepipeline-job/tests/fixtures/documented-job-event.json"
    ))
    .unwrap();
    let configuration =
        &mut event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"];
    match params {
        Some(params) => configuration["UserParameters"] = json!(params),
        None => {
            configuration
                .as_object_mut()
                .unwrap()
                .remove("UserParameters");
        }
    }
    event
}

fn stack_rule(name: &'static str, outputs: &[(&str, &str)]) -> Rule {
    let outputs: Vec<Output> = outputs
        .iter()
        .map(|(k, v)| Output::builder().output_key(*k).output_value(*v).build())
        .collect();
    mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(move |req| req.stack_name() == Some(name))
        .then_output(move || {
            DescribeStacksOutput::builder()
                .stacks(
                    aws_sdk_cloudformation::types::Stack::builder()
                        .stack_name(name)
                        .stack_status(StackStatus::UpdateComplete)
                        .set_outputs(Some(outputs.clone()))
                        .build(),
                )
                .build()
        })
}

fn missing_stack_rule(name: &'static str) -> Rule {
    mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(move |req| req.stack_name() == Some(name))
        .then_error(move || {
            DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message(format!("Stack with id {name} does not exist"))
                    .build(),
            )
        })
}

fn good_stacks() -> (Rule, Rule) {
    (
        stack_rule(TEST_STACK, &[(TEST_FUNCTION_OUTPUT, FUNCTION)]),
        stack_rule(APP_STACK, &[(API_URL_OUTPUT, API_URL), ("ApiId", "abc123")]),
    )
}

fn accepted_invoke() -> Rule {
    mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(|req| {
            let payload: Value = serde_json::from_slice(req.payload().unwrap().as_ref()).unwrap();
            req.function_name() == Some(FUNCTION)
                && req.invocation_type() == Some(&InvocationType::Event)
                && payload == json!({"jobId": JOB, "apiUrl": API_URL, "stage": "beta"})
        })
        .then_output(|| InvokeOutput::builder().status_code(202).build())
}

fn any_failure_report() -> Rule {
    mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .then_output(|| PutJobFailureResultOutput::builder().build())
}

fn any_success_report() -> Rule {
    mock!(aws_sdk_codepipeline::Client::put_job_success_result)
        .then_output(|| PutJobSuccessResultOutput::builder().build())
}

/// A failure report of `kind` whose message contains every one of `parts`.
fn failure_report(kind: FailureType, parts: &'static [&'static str]) -> Rule {
    mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .match_requests(move |req| {
            req.job_id() == Some(JOB)
                && req.failure_details().is_some_and(|d| {
                    d.r#type() == &kind
                        && d.message().chars().count() <= 5000
                        && parts.iter().all(|p| d.message().contains(p))
                })
        })
        .then_output(|| PutJobFailureResultOutput::builder().build())
}

struct World {
    clients: Clients,
}

fn world(cfn: &[&Rule], lambda: &[&Rule], codepipeline: &[&Rule]) -> World {
    let cloudformation = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, cfn, |c| c
        .retry_config(
            aws_sdk_cloudformation::config::retry::RetryConfig::standard().with_max_attempts(3)
        ));
    let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, lambda, |c| c
        .retry_config(
            aws_sdk_lambda::config::retry::RetryConfig::standard().with_max_attempts(3)
        ));
    let codepipeline = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, codepipeline);
    World {
        clients: Clients {
            cloudformation,
            lambda,
            reporter: Reporter::new(codepipeline),
        },
    }
}

async fn run_handler(world: &World, event: Value) -> Result<Settlement, lambda_runtime::Error> {
    handle(&world.clients, LambdaEvent::new(event, Context::default())).await
}

// ---- the happy path -------------------------------------------------------

#[tokio::test]
async fn invokes_the_test_function_asynchronously_with_job_id_api_url_and_stage() {
    let (test, app) = good_stacks();
    let invoke = accepted_invoke();
    let (fail, succeed) = (any_failure_report(), any_success_report());
    let world = world(&[&test, &app], &[&invoke], &[&fail, &succeed]);

    let settled = run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(settled.result, codepipeline_job::SettlementKind::HandedOff);
    assert_eq!(invoke.num_calls(), 1);
    assert_eq!((test.num_calls(), app.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_started_test_run_is_not_reported_by_start_tests() {
    let (test, app) = good_stacks();
    let invoke = accepted_invoke();
    let (fail, succeed) = (any_failure_report(), any_success_report());
    let world = world(&[&test, &app], &[&invoke], &[&fail, &succeed]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(
        fail.num_calls() + succeed.num_calls(),
        0,
        "run-tests reports, not start-tests"
    );
}

#[tokio::test]
async fn both_stacks_are_described_concurrently() {
    // CloudFormation answers each DescribeStacks after 1 s; two sequential
    // calls would take 2 s.
    let delay = std::time::Duration::from_secs(1);
    let invoke = accepted_invoke();
    let world = world(&[], &[&invoke], &[]);
    let clients = Clients {
        cloudformation: slow_cloudformation(delay),
        ..world.clients.clone()
    };
    let job = JobEvent::from_value(event_with_params(Some(PARAMS))).unwrap();

    let started_at = std::time::Instant::now();
    let started = start(&clients, &job, CallTime::within(Duration::from_secs(30)))
        .await
        .unwrap();
    let elapsed = started_at.elapsed();

    assert_eq!(started.function, FUNCTION);
    assert!(elapsed >= delay, "{elapsed:?}");
    assert!(
        elapsed < delay * 9 / 5,
        "the stacks were described one after the other: {elapsed:?}"
    );
}

/// A CloudFormation endpoint that answers DescribeStacks (query protocol,
/// XML) for the two stacks after an asynchronous delay.
#[derive(Debug, Clone)]
struct SlowCloudFormation(std::time::Duration);

impl aws_smithy_runtime_api::client::http::HttpConnector for SlowCloudFormation {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let body = String::from_utf8_lossy(request.body().bytes().unwrap_or_default()).into_owned();
        let (name, key, value) = if body.contains(TEST_STACK) {
            (TEST_STACK, TEST_FUNCTION_OUTPUT, FUNCTION)
        } else {
            (APP_STACK, API_URL_OUTPUT, API_URL)
        };
        let xml = format!(
            r#"<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>{name}</StackName><StackStatus>UPDATE_COMPLETE</StackStatus><CreationTime>2026-11-26T10:00:00Z</CreationTime><Outputs><member><OutputKey>{key}</OutputKey><OutputValue>{value}</OutputValue></member></Outputs></member></Stacks></DescribeStacksResult></DescribeStacksResponse>"#
        );
        let delay = self.0;
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            tokio::time::sleep(delay).await;
            Ok(
                aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(200u16).unwrap(),
                    aws_smithy_types::body::SdkBody::from(xml),
                ),
            )
        })
    }
}

impl aws_smithy_runtime_api::client::http::HttpClient for SlowCloudFormation {
    fn http_connector(
        &self,
        _settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
    }
}

/// A Lambda endpoint that accepts every Invoke (202) after an asynchronous delay.
#[derive(Debug, Clone)]
struct SlowLambda(std::time::Duration);

impl aws_smithy_runtime_api::client::http::HttpConnector for SlowLambda {
    fn call(
        &self,
        _request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let delay = self.0;
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            tokio::time::sleep(delay).await;
            Ok(
                aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(202u16).unwrap(),
                    aws_smithy_types::body::SdkBody::empty(),
                ),
            )
        })
    }
}

impl aws_smithy_runtime_api::client::http::HttpClient for SlowLambda {
    fn http_connector(
        &self,
        _settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(self.clone())
    }
}

fn slow_cloudformation(delay: std::time::Duration) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_cloudformation::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::for_tests())
            .http_client(SlowCloudFormation(delay))
            .build(),
    )
}

#[tokio::test]
async fn a_hanging_describe_stacks_is_reported_by_name_before_the_budget_ends() {
    let report = failure_report(
        FailureType::JobFailed,
        &[
            "DescribeStacks for stack `time-service-tests`",
            "ran out of its own time before CloudFormation's DescribeStacks answered",
        ],
    );
    let world = world(&[], &[], &[&report]);
    let clients = Clients {
        cloudformation: slow_cloudformation(std::time::Duration::from_secs(60)),
        ..world.clients.clone()
    };
    let budget = std::time::Duration::from_millis(1500);

    let started_at = std::time::Instant::now();
    handle_with_budget(&clients, event_with_params(Some(PARAMS)), budget)
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
    assert!(
        started_at.elapsed() < budget,
        "reported after {:?}",
        started_at.elapsed()
    );
}

#[tokio::test]
async fn a_hanging_invoke_is_reported_by_name_before_the_budget_ends() {
    let (test, app) = good_stacks();
    let report = failure_report(
        FailureType::JobFailed,
        &[
            "Invoke of test function `time-service-tests-RunTests-AbC123`",
            "ran out of its own time before Lambda's Invoke answered",
        ],
    );
    let world = world(&[&test, &app], &[], &[&report]);
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_lambda::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::for_tests())
            .http_client(SlowLambda(std::time::Duration::from_secs(60)))
            .build(),
    );
    let clients = Clients {
        lambda,
        ..world.clients.clone()
    };
    let budget = std::time::Duration::from_millis(1500);

    let started_at = std::time::Instant::now();
    handle_with_budget(&clients, event_with_params(Some(PARAMS)), budget)
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
    assert!(
        started_at.elapsed() < budget,
        "reported after {:?}",
        started_at.elapsed()
    );
}

// ---- little time left -----------------------------------------------------

/// A Lambda context whose deadline is `left` from now.
fn context_with(left: Duration) -> Context {
    let mut context = Context::default();
    context.deadline = (SystemTime::now() + left)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context
}

#[tokio::test]
async fn with_18_seconds_left_the_stacks_are_still_described_and_the_tests_started() {
    let (test, app) = good_stacks();
    let invoke = accepted_invoke();
    let (fail, succeed) = (any_failure_report(), any_success_report());
    let world = world(&[&test, &app], &[&invoke], &[&fail, &succeed]);
    let event = LambdaEvent::new(
        event_with_params(Some(PARAMS)),
        context_with(Duration::from_secs(18)),
    );

    let settled = handle(&world.clients, event).await.unwrap();

    assert_eq!(settled.result, codepipeline_job::SettlementKind::HandedOff);
    assert_eq!((test.num_calls(), app.num_calls()), (1, 1));
    assert_eq!(invoke.num_calls(), 1);
    assert_eq!(fail.num_calls(), 0);
}

#[tokio::test]
async fn with_two_seconds_left_quick_answers_still_start_the_tests() {
    let (test, app) = good_stacks();
    let invoke = accepted_invoke();
    let fail = any_failure_report();
    let world = world(&[&test, &app], &[&invoke], &[&fail]);
    let event = LambdaEvent::new(
        event_with_params(Some(PARAMS)),
        context_with(Duration::from_secs(2)),
    );

    let settled = handle(&world.clients, event).await.unwrap();

    assert_eq!(settled.result, codepipeline_job::SettlementKind::HandedOff);
    assert_eq!(invoke.num_calls(), 1);
    assert_eq!(fail.num_calls(), 0);
}

#[tokio::test]
async fn running_out_of_its_own_time_is_blamed_on_start_tests_not_on_cloudformation() {
    let report = failure_report(
        FailureType::JobFailed,
        &[
            "start-tests ran out of its own time",
            "the AWS SDK alone would have waited up to 15 s",
            "give the function a longer Timeout",
        ],
    );
    let world = world(&[], &[], &[&report]);
    let clients = Clients {
        cloudformation: slow_cloudformation(Duration::from_secs(60)),
        ..world.clients.clone()
    };
    let left = Duration::from_secs(3);
    let event = LambdaEvent::new(event_with_params(Some(PARAMS)), context_with(left));

    let started_at = std::time::Instant::now();
    handle(&clients, event).await.unwrap();

    assert_eq!(
        report.num_calls(),
        1,
        "one JobFailed report naming start-tests' own time"
    );
    assert!(
        started_at.elapsed() < left,
        "reported after {:?}, past the Lambda deadline",
        started_at.elapsed()
    );
}

#[tokio::test]
async fn running_out_of_time_never_claims_that_aws_did_not_answer() {
    let seen = Arc::new(Mutex::new(String::new()));
    let recorded = seen.clone();
    let report = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .match_requests(move |req| {
            *recorded.lock().unwrap() = req
                .failure_details()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            true
        })
        .then_output(|| PutJobFailureResultOutput::builder().build());
    let world = world(&[], &[], &[&report]);
    let clients = Clients {
        cloudformation: slow_cloudformation(Duration::from_secs(60)),
        ..world.clients.clone()
    };

    handle_with_budget(
        &clients,
        event_with_params(Some(PARAMS)),
        Duration::from_secs(1),
    )
    .await
    .unwrap();

    let message = seen.lock().unwrap().clone();
    assert!(message.contains("ran out of its own time"), "{message}");
    for blame in ["did not answer in time", "SDK's timeouts", "unavailable"] {
        assert!(!message.contains(blame), "blames AWS ({blame}): {message}");
    }
}

// ---- stacks and outputs ---------------------------------------------------

#[tokio::test]
async fn a_missing_test_stack_is_a_configuration_error_naming_it() {
    let test = missing_stack_rule(TEST_STACK);
    let (_, app) = good_stacks();
    let report = failure_report(
        FailureType::ConfigurationError,
        &["stack `time-service-tests`", "testStack", "does not exist"],
    );
    let invoke = accepted_invoke();
    let world = world(&[&test, &app], &[&invoke], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
    assert_eq!(invoke.num_calls(), 0);
}

#[tokio::test]
async fn a_missing_app_stack_is_a_configuration_error_naming_it() {
    let (test, _) = good_stacks();
    let app = missing_stack_rule(APP_STACK);
    let report = failure_report(
        FailureType::ConfigurationError,
        &["stack `time-service-beta`", "appStack"],
    );
    let world = world(&[&test, &app], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn two_missing_stacks_are_both_named() {
    let (test, app) = (
        missing_stack_rule(TEST_STACK),
        missing_stack_rule(APP_STACK),
    );
    let report = failure_report(
        FailureType::ConfigurationError,
        &["`time-service-tests`", "`time-service-beta`"],
    );
    let world = world(&[&test, &app], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_test_function_output_names_the_stack_and_its_outputs() {
    let test = stack_rule(TEST_STACK, &[("SomethingElse", "x")]);
    let (_, app) = good_stacks();
    let report = failure_report(
        FailureType::ConfigurationError,
        &[
            "stack `time-service-tests`",
            "no output `TestFunction`",
            "its outputs: SomethingElse",
            "UPDATE_COMPLETE",
        ],
    );
    let world = world(&[&test, &app], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_api_url_output_names_the_app_stack() {
    let (test, _) = good_stacks();
    let app = stack_rule(APP_STACK, &[]);
    let report = failure_report(
        FailureType::ConfigurationError,
        &[
            "stack `time-service-beta`",
            "no output `ApiUrl`",
            "its outputs: none",
        ],
    );
    let world = world(&[&test, &app], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn an_api_url_that_is_not_a_url_is_a_configuration_error() {
    let (test, _) = good_stacks();
    let app = stack_rule(APP_STACK, &[(API_URL_OUTPUT, "abc123.execute-api")]);
    let report = failure_report(
        FailureType::ConfigurationError,
        &["output `ApiUrl`", "not an http(s) URL"],
    );
    let world = world(&[&test, &app], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn describe_stacks_access_denied_is_a_permission_error() {
    let denied = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_error(|| {
        DescribeStacksError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform DescribeStacks")
                .build(),
        )
    });
    let report = failure_report(
        FailureType::PermissionError,
        &["DescribeStacks for stack", "AccessDenied"],
    );
    let world = world(&[&denied], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn describe_stacks_server_errors_are_retried_then_reported_as_system_unavailable() {
    let flaky = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let report = failure_report(
        FailureType::SystemUnavailable,
        &["DescribeStacks for stack"],
    );
    let world = world(&[&flaky], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(
        flaky.num_calls(),
        6,
        "3 attempts for each of the two stacks"
    );
    assert_eq!(report.num_calls(), 1);
}

// ---- invoke ---------------------------------------------------------------

#[tokio::test]
async fn a_test_function_that_does_not_exist_is_a_configuration_error() {
    let (test, app) = good_stacks();
    let invoke = mock!(aws_sdk_lambda::Client::invoke).then_error(|| {
        InvokeError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Function not found: arn:aws:lambda:x")
                .build(),
        )
    });
    let report = failure_report(
        FailureType::ConfigurationError,
        &[
            "test function `time-service-tests-RunTests-AbC123`",
            "does not exist",
            "Function not found",
        ],
    );
    let world = world(&[&test, &app], &[&invoke], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn a_throttled_invoke_is_retried_then_reported_as_system_unavailable() {
    let (test, app) = good_stacks();
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .sequence()
        .error(|| {
            // As the SDK parses it from Lambda's answer: the code is what
            // its retry classifier reads.
            InvokeError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Rate exceeded")
                    .meta(
                        ErrorMetadata::builder()
                            .code("TooManyRequestsException")
                            .message("Rate exceeded")
                            .build(),
                    )
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let report = failure_report(
        FailureType::SystemUnavailable,
        &["Invoke of test function", "Rate exceeded"],
    );
    let world = world(&[&test, &app], &[&invoke], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(
        invoke.num_calls(),
        3,
        "standard retries: the first Invoke and two retries, then the report"
    );
    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn an_invoke_denied_is_a_permission_error() {
    let (test, app) = good_stacks();
    let invoke = mock!(aws_sdk_lambda::Client::invoke).then_error(|| {
        InvokeError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform lambda:InvokeFunction")
                .build(),
        )
    });
    let report = failure_report(
        FailureType::PermissionError,
        &["Invoke of test function", "lambda:InvokeFunction"],
    );
    let world = world(&[&test, &app], &[&invoke], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

#[tokio::test]
async fn an_invoke_not_accepted_for_async_run_fails_the_job() {
    let (test, app) = good_stacks();
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .then_output(|| InvokeOutput::builder().status_code(200).build());
    let report = failure_report(
        FailureType::JobFailed,
        &["answered HTTP 200 instead of 202"],
    );
    let world = world(&[&test, &app], &[&invoke], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(report.num_calls(), 1);
}

// ---- parameters -----------------------------------------------------------

/// Bad UserParameters: each is a configuration failure naming the problem,
/// and no AWS call but the report is made.
async fn assert_bad_parameters(params: Option<&str>, parts: &'static [&'static str]) {
    let (test, app) = good_stacks();
    let invoke = accepted_invoke();
    let report = failure_report(FailureType::ConfigurationError, parts);
    let world = world(&[&test, &app], &[&invoke], &[&report]);

    run_handler(&world, event_with_params(params))
        .await
        .unwrap();

    assert_eq!(
        report.num_calls(),
        1,
        "expected one ConfigurationError report containing {parts:?}"
    );
    assert_eq!(test.num_calls() + app.num_calls() + invoke.num_calls(), 0);
}

#[tokio::test]
async fn absent_user_parameters_are_a_configuration_error() {
    assert_bad_parameters(
        None,
        &["no UserParameters", r#""testStack": "time-service-tests""#],
    )
    .await;
}

#[tokio::test]
async fn non_json_user_parameters_are_a_configuration_error() {
    assert_bad_parameters(
        Some("some-input-such-as-a-URL"),
        &["UserParameters is not valid JSON"],
    )
    .await;
}

#[tokio::test]
async fn a_missing_parameter_is_named() {
    assert_bad_parameters(
        Some(r#"{"testStack": "a", "stage": "beta"}"#),
        &["missing field `appStack`"],
    )
    .await;
}

#[tokio::test]
async fn a_wrong_typed_parameter_is_named() {
    assert_bad_parameters(
        Some(r#"{"testStack": "a", "appStack": ["b"], "stage": "beta"}"#),
        &["field `appStack`"],
    )
    .await;
}

#[tokio::test]
async fn an_unknown_parameter_is_rejected() {
    assert_bad_parameters(
        Some(r#"{"testStack": "a", "appStack": "b", "stage": "beta", "region": "x"}"#),
        &["unknown field `region`"],
    )
    .await;
}

#[tokio::test]
async fn a_stack_name_that_cloudformation_would_reject_is_named() {
    assert_bad_parameters(
        Some(r#"{"testStack": "a b", "appStack": "b", "stage": "beta"}"#),
        &["field `testStack`"],
    )
    .await;
}

#[tokio::test]
async fn a_stage_that_cannot_be_a_header_value_is_named() {
    assert_bad_parameters(
        Some(r#"{"testStack": "a", "appStack": "b", "stage": "be\nta"}"#),
        &["field `stage`"],
    )
    .await;
}

#[tokio::test]
async fn huge_user_parameters_are_reported_within_the_message_limit() {
    let huge: &'static str =
        Box::leak(format!(r#"{{"testStack": {}}}"#, "9".repeat(1_000_000)).into_boxed_str());
    assert_bad_parameters(Some(huge), &["UserParameters"]).await;
}

#[tokio::test]
async fn a_huge_stack_name_is_rejected_without_calling_aws() {
    let huge: &'static str = Box::leak(
        format!(
            r#"{{"testStack": "{}", "appStack": "b", "stage": "beta"}}"#,
            "a".repeat(500_000)
        )
        .into_boxed_str(),
    );
    assert_bad_parameters(Some(huge), &["field `testStack`"]).await;
}

// ---- malformed events -----------------------------------------------------

#[tokio::test]
async fn malformed_events_never_panic_and_report_when_they_can() {
    let huge = "h".repeat(2_000_000);
    let with_job = |mutate: &dyn Fn(&mut Value)| {
        let mut event = event_with_params(Some(PARAMS));
        mutate(&mut event);
        event
    };
    // (event, expect a failure report?)
    let corpus: Vec<(&str, Value, bool)> = vec![
        ("empty object", json!({}), false),
        ("null", Value::Null, false),
        ("array", json!([1, 2]), false),
        ("string", json!("CodePipeline.job"), false),
        ("job is a string", json!({"CodePipeline.job": "x"}), false),
        (
            "no job id",
            with_job(&|e| {
                e["CodePipeline.job"].as_object_mut().unwrap().remove("id");
            }),
            false,
        ),
        (
            "null job id",
            with_job(&|e| e["CodePipeline.job"]["id"] = Value::Null),
            false,
        ),
        (
            "numeric job id",
            with_job(&|e| e["CodePipeline.job"]["id"] = json!(12)),
            false,
        ),
        (
            "huge job id",
            with_job(&|e| e["CodePipeline.job"]["id"] = json!(huge)),
            false,
        ),
        (
            "no data",
            with_job(&|e| {
                e["CodePipeline.job"]
                    .as_object_mut()
                    .unwrap()
                    .remove("data");
            }),
            true,
        ),
        (
            "data is a list",
            with_job(&|e| e["CodePipeline.job"]["data"] = json!([])),
            true,
        ),
        (
            "no configuration",
            with_job(&|e| e["CodePipeline.job"]["data"]["actionConfiguration"] = json!({})),
            true,
        ),
        (
            "UserParameters is a number",
            with_job(&|e| {
                e["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
                    json!(5)
            }),
            true,
        ),
        (
            "UserParameters is an object",
            with_job(&|e| {
                e["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
                    json!({"testStack": "a"})
            }),
            true,
        ),
        (
            "huge UserParameters",
            with_job(&|e| {
                e["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] =
                    json!(huge)
            }),
            true,
        ),
        (
            "huge account id",
            with_job(&|e| e["CodePipeline.job"]["accountId"] = json!(huge)),
            false,
        ),
    ];
    for (name, event, reports) in corpus {
        let (test, app) = good_stacks();
        let invoke = accepted_invoke();
        let report = failure_report(FailureType::ConfigurationError, &[]);
        let world = world(&[&test, &app], &[&invoke], &[&report]);
        let result = tokio::spawn(async move { run_handler(&world, event).await })
            .await
            .unwrap_or_else(|panic| panic!("{name}: the handler panicked: {panic}"));
        if reports {
            assert!(result.is_ok(), "{name}: {result:?}");
            assert_eq!(
                report.num_calls(),
                1,
                "{name}: expected a ConfigurationError report"
            );
        } else if name == "huge account id" {
            // Valid job id and parameters: the account id is not used.
            assert_eq!(invoke.num_calls(), 1, "{name}");
        } else {
            let error = result.expect_err(name).to_string();
            assert!(
                error.contains("CodePipeline job"),
                "{name}: unclear error: {error}"
            );
            assert!(
                error.len() < 1000,
                "{name}: error echoes the event ({} chars)",
                error.len()
            );
            assert_eq!(report.num_calls(), 0, "{name}: nothing to report to");
        }
        assert_eq!(invoke.num_calls() > 0, name == "huge account id", "{name}");
    }
}

// ---- secrets --------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn artifact_credentials_never_reach_the_logs_even_at_trace_level() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, fmt};
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry().with(
        fmt::layer()
            .json()
            .with_writer(move || writer.clone())
            .with_filter(codepipeline_job::log_filter(Some("trace"))),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    // Callsites other tests' threads registered while no subscriber was
    // installed may have cached a "never" interest: recompute them.
    tracing::callsite::rebuild_interest_cache();

    // A run that fails (missing stack) and one that succeeds: both log plenty.
    for test in [missing_stack_rule(TEST_STACK), good_stacks().0] {
        let (_, app) = good_stacks();
        let invoke = accepted_invoke();
        let report = any_failure_report();
        let world = world(&[&test, &app], &[&invoke], &[&report]);
        let _ = run_handler(&world, event_with_params(Some(PARAMS))).await;
    }
    drop(_guard);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains(JOB), "the capture works: {logs}");
    for secret in [
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAIOSFODNN7EXAMPLE",
        "MIICiTCCAfICCQD6m7oRw0uXOjANBgkqhkiG9w0BAQUF",
    ] {
        assert!(!logs.contains(secret), "logs leak {secret}");
    }
}

// ---- huge values ------------------------------------------------------------

#[tokio::test]
async fn a_huge_api_url_that_is_not_a_url_is_echoed_briefly() {
    let huge = "h".repeat(1_000_000);
    let (test, _) = good_stacks();
    let app = stack_rule(APP_STACK, &[(API_URL_OUTPUT, huge.as_str())]);
    let seen = Arc::new(Mutex::new(String::new()));
    let recorded = seen.clone();
    let report = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .match_requests(move |req| {
            *recorded.lock().unwrap() = req
                .failure_details()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            true
        })
        .then_output(|| PutJobFailureResultOutput::builder().build());
    let world = world(&[&test, &app], &[], &[&report]);

    run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    let message = seen.lock().unwrap().clone();
    assert!(message.contains("not an http(s) URL"), "{message}");
    assert!(message.chars().count() < 1000, "{} chars", message.len());
}

#[tokio::test]
async fn a_huge_api_url_is_handed_over_whole_but_settled_briefly() {
    let huge = format!("https://{}.example/", "h".repeat(1_000_000));
    let (test, _) = good_stacks();
    let app = stack_rule(APP_STACK, &[(API_URL_OUTPUT, huge.as_str())]);
    let expected_url = huge.clone();
    let invoke = mock!(aws_sdk_lambda::Client::invoke)
        .match_requests(move |req| {
            let payload: Value = serde_json::from_slice(req.payload().unwrap().as_ref()).unwrap();
            payload["apiUrl"] == expected_url.as_str()
        })
        .then_output(|| InvokeOutput::builder().status_code(202).build());
    let world = world(&[&test, &app], &[&invoke], &[]);

    let settled = run_handler(&world, event_with_params(Some(PARAMS)))
        .await
        .unwrap();

    assert_eq!(invoke.num_calls(), 1, "run-tests gets the URL as it is");
    assert!(
        settled.detail.len() < 1000,
        "{} bytes",
        settled.detail.len()
    );
}

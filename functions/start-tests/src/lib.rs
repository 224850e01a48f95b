//! `start-tests`: the CodePipeline Lambda action that starts a stage's tests.
//!
//! CodePipeline invokes it after a stage deploys, with `UserParameters`
//! `{"testStack": ..., "appStack": ..., "stage": ...}` (`docs/contracts.md`).
//! It reads both stacks with `DescribeStacks` (concurrently), takes
//! `TestFunction` from the test stack and `ApiUrl` from the app stack, and
//! invokes the test function asynchronously (`InvocationType::Event`) with
//! `{"jobId", "apiUrl", "stage"}`.
//!
//! **Who reports.** When the Invoke is accepted, start-tests reports nothing:
//! the job now belongs to `run-tests`, which reports success or failure when
//! its suite finishes (its own guard and deadline make sure it always does).
//! Reporting success here would let the pipeline proceed before any test ran;
//! reporting anything else would race run-tests' report. Every other path
//! (bad parameters, missing stack or output, a refused or timed-out call, a
//! panic, running out of time) ends in a failure report from start-tests.

use std::time::Duration;

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::Stack;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use codepipeline_job::{
    ActionParameters, Failure, FailureType, JobEvent, MAX_ECHO_CHARS, Outcome, ParamsError,
    Reporter, Settlement, TestRunRequest, echo, handle_job_event, parse_user_parameters,
    truncate_chars, work_budget,
};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;

/// Name used in logs and failure messages.
pub const COMPONENT: &str = "start-tests";
/// The test stack's output naming the run-tests function (test-sam.yaml).
pub const TEST_FUNCTION_OUTPUT: &str = "TestFunction";
/// The app stack's output holding the API's base URL (app-sam.yaml).
pub const API_URL_OUTPUT: &str = "ApiUrl";
/// Kept back from the Lambda deadline for the report itself (one report call
/// can take the SDK's whole operation timeout). With less than twice this
/// left, the work and the report get half each (`work_budget`): the work is
/// still tried, and a report normally takes milliseconds.
pub const REPORT_RESERVE: Duration = Duration::from_secs(17);
/// The most the work may take even with a generous function timeout.
pub const MAX_WORK: Duration = Duration::from_secs(45);
/// Each AWS call gives up this long before the guard would stop the work,
/// so a call that hangs is reported by name, not as a generic time-out
/// (a quarter of the budget when the budget is under four seconds).
pub const STEP_MARGIN: Duration = Duration::from_secs(1);

/// How long start-tests' AWS calls may run: until `deadline`, which is
/// `allowed` after the work started. Past it, the failure is that the
/// function's own time ran out, not that AWS was slow.
#[derive(Debug, Clone, Copy)]
pub struct CallTime {
    pub deadline: tokio::time::Instant,
    pub allowed: Duration,
}

impl CallTime {
    /// The calls' share of the work's `budget`: all of it but the step margin.
    pub fn within(budget: Duration) -> Self {
        let allowed = budget.saturating_sub(STEP_MARGIN.min(budget / 4));
        Self {
            deadline: tokio::time::Instant::now() + allowed,
            allowed,
        }
    }

    /// Why a call still running at the deadline was stopped.
    fn ran_out(&self, call: &str) -> String {
        format!(
            "{COMPONENT} ran out of its own time before {call} answered: its AWS calls had \
             only {:.1} s, what was left of its Lambda time after keeping enough to report this \
             failure (the AWS SDK alone would have waited up to {} s). If this repeats, give \
             the function a longer Timeout",
            self.allowed.as_secs_f64(),
            codepipeline_job::OPERATION_TIMEOUT.as_secs()
        )
    }
}

/// The action's `UserParameters`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTestsParameters {
    /// The stack deployed from test-sam.yaml (output `TestFunction`).
    pub test_stack: String,
    /// The stage's stack deployed from app-sam.yaml (output `ApiUrl`).
    pub app_stack: String,
    /// The stage name the API must report in `x-service-stage`.
    pub stage: String,
}

impl ActionParameters for StartTestsParameters {
    const EXAMPLE: &'static str =
        r#"{"testStack": "time-service-tests", "appStack": "time-service-beta", "stage": "beta"}"#;
}

impl StartTestsParameters {
    /// Parses and validates the raw `UserParameters`.
    pub fn parse(raw: Option<&str>) -> Result<Self, StartError> {
        let params: Self = parse_user_parameters(raw)?;
        for (field, stack) in [
            ("testStack", &params.test_stack),
            ("appStack", &params.app_stack),
        ] {
            if !is_stack_name(stack) {
                return Err(StartError::InvalidParameter {
                    field,
                    problem: "is not a CloudFormation stack name (a letter, then letters, digits and \
                              hyphens, at most 128 characters)",
                });
            }
        }
        let stage_ok = !params.stage.is_empty()
            && params.stage.len() <= 64
            && params
                .stage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !stage_ok {
            return Err(StartError::InvalidParameter {
                field: "stage",
                problem: "must be 1 to 64 letters, digits, hyphens or underscores",
            });
        }
        Ok(params)
    }
}

fn is_stack_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The AWS clients start-tests uses.
#[derive(Clone, Debug)]
pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub reporter: Reporter,
}

impl Clients {
    /// All three clients from one configuration (see
    /// [`codepipeline_job::sdk_config_loader`]: timeouts, standard retries,
    /// `AWS_ENDPOINT_URL`).
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Self {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            reporter: Reporter::from_conf(config),
        }
    }
}

/// Everything that can stop start-tests, each naming the stack, output or
/// call at fault. [`StartError::failure`] picks the CodePipeline failure type.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Parameters(#[from] ParamsError),
    #[error(
        "UserParameters field `{field}` {problem}; set UserParameters to a JSON string like {}",
        StartTestsParameters::EXAMPLE
    )]
    InvalidParameter {
        field: &'static str,
        problem: &'static str,
    },
    #[error(
        "stack `{stack}` (UserParameters `{field}`) does not exist: DescribeStacks answered ValidationError: \
         {message}. Deploy the stack first, or fix `{field}` in the action's UserParameters"
    )]
    StackNotFound {
        stack: String,
        field: &'static str,
        message: String,
    },
    #[error(
        "DescribeStacks rejected stack `{stack}` (UserParameters `{field}`): ValidationError: {message}. \
         Fix `{field}` in the action's UserParameters"
    )]
    StackRejected {
        stack: String,
        field: &'static str,
        message: String,
    },
    #[error(
        "stack `{stack}` (status {status}) has no output `{output}` (its outputs: {available}); \
         deploy it from the template that declares `{output}`, or fix `{field}` in UserParameters"
    )]
    OutputMissing {
        stack: String,
        field: &'static str,
        output: &'static str,
        status: String,
        available: String,
    },
    #[error(
        "output `ApiUrl` of stack `{stack}` is `{value}`, which is not an http(s) URL; \
         check the ApiUrl output of the app template"
    )]
    BadApiUrl { stack: String, value: String },
    #[error("DescribeStacks for stack `{stack}`: {detail}")]
    OutOfTime { stack: String, detail: String },
    #[error("DescribeStacks for stack `{stack}` failed: {detail}")]
    DescribeStacks {
        stack: String,
        kind: FailureType,
        detail: String,
    },
    #[error(
        "test function `{function}` (output TestFunction of stack `{stack}`) does not exist: \
         Invoke answered {detail}; redeploy the test stack"
    )]
    FunctionNotFound {
        function: String,
        stack: String,
        detail: String,
    },
    #[error(
        "Invoke of test function `{function}` (output TestFunction of stack `{stack}`) failed: {detail}"
    )]
    Invoke {
        function: String,
        stack: String,
        kind: FailureType,
        detail: String,
    },
    #[error(
        "Invoke of test function `{function}` answered HTTP {status} instead of 202 (accepted for an \
         asynchronous run); the tests were not started"
    )]
    NotAccepted { function: String, status: i32 },
    #[error("{first}; and also: {second}")]
    Both {
        first: Box<StartError>,
        second: Box<StartError>,
    },
}

impl StartError {
    /// The CodePipeline failure this error is reported as.
    pub fn failure_type(&self) -> FailureType {
        match self {
            StartError::Parameters(_)
            | StartError::InvalidParameter { .. }
            | StartError::StackNotFound { .. }
            | StartError::StackRejected { .. }
            | StartError::OutputMissing { .. }
            | StartError::BadApiUrl { .. }
            | StartError::FunctionNotFound { .. } => FailureType::ConfigurationError,
            StartError::DescribeStacks { kind, .. } | StartError::Invoke { kind, .. } => {
                kind.clone()
            }
            StartError::NotAccepted { .. } | StartError::OutOfTime { .. } => FailureType::JobFailed,
            StartError::Both { first, .. } => first.failure_type(),
        }
    }

    pub fn failure(&self) -> Failure {
        Failure::new(self.failure_type(), format!("{COMPONENT}: {self}"))
    }
}

/// The tests were started: the job is run-tests' to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub function: String,
    pub request: TestRunRequest,
}

/// The Lambda handler: parse the event, start the tests, and make sure every
/// path but a successful hand-off ends in a failure report.
pub async fn handle(
    clients: &Clients,
    event: LambdaEvent<Value>,
) -> Result<Settlement, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    let budget = work_budget(&context, REPORT_RESERVE, MAX_WORK);
    handle_with_budget(clients, payload, budget).await
}

/// [`handle`] with the work's time budget given (the Lambda handler derives
/// it from the invocation's deadline).
pub async fn handle_with_budget(
    clients: &Clients,
    payload: Value,
    budget: Duration,
) -> Result<Settlement, lambda_runtime::Error> {
    handle_job_event(&clients.reporter, payload, COMPONENT, budget, |job| {
        run(clients, job, budget)
    })
    .await
}

/// Starts the tests for `job` within `budget` and says what to report.
pub async fn run(clients: &Clients, job: JobEvent, budget: Duration) -> Outcome {
    match start(clients, &job, CallTime::within(budget)).await {
        Ok(started) => {
            tracing::info!(
                job_id = %job.id,
                function = %echo(&started.function),
                api_url = %echo(&started.request.api_url),
                stage = %started.request.stage,
                "tests started; run-tests reports the result"
            );
            Outcome::HandedOff {
                to: format!("test function {}", echo(&started.function)),
            }
        }
        Err(error) => {
            tracing::error!(job_id = %job.id, error = %error, "could not start the tests");
            Outcome::Failed(error.failure())
        }
    }
}

/// The steps, without reporting. Every AWS call gives up at `time.deadline`.
pub async fn start(
    clients: &Clients,
    job: &JobEvent,
    time: CallTime,
) -> Result<Started, StartError> {
    let params = StartTestsParameters::parse(job.user_parameters.as_deref())?;
    let cfn = &clients.cloudformation;
    let (test_stack, app_stack) = tokio::join!(
        describe_stack(cfn, &params.test_stack, "testStack", time),
        describe_stack(cfn, &params.app_stack, "appStack", time),
    );
    let (test_stack, app_stack) = match (test_stack, app_stack) {
        (Ok(test), Ok(app)) => (test, app),
        (Err(first), Err(second)) => {
            return Err(StartError::Both {
                first: Box::new(first),
                second: Box::new(second),
            });
        }
        (Err(error), _) | (_, Err(error)) => return Err(error),
    };
    let function = output(
        &test_stack,
        &params.test_stack,
        "testStack",
        TEST_FUNCTION_OUTPUT,
    )?;
    let api_url = output(&app_stack, &params.app_stack, "appStack", API_URL_OUTPUT)?;
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(StartError::BadApiUrl {
            stack: params.app_stack.clone(),
            value: echo(&api_url).into_owned(),
        });
    }
    let request = TestRunRequest {
        job_id: job.id.to_string(),
        api_url,
        stage: params.stage,
    };
    invoke(
        &clients.lambda,
        &function,
        &params.test_stack,
        &request,
        time,
    )
    .await?;
    Ok(Started { function, request })
}

async fn describe_stack(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    field: &'static str,
    time: CallTime,
) -> Result<Stack, StartError> {
    let call = cfn.describe_stacks().stack_name(stack).send();
    let Ok(result) = tokio::time::timeout_at(time.deadline, call).await else {
        return Err(StartError::OutOfTime {
            stack: stack.to_string(),
            detail: time.ran_out("CloudFormation's DescribeStacks"),
        });
    };
    match result {
        Ok(output) => output
            .stacks
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| StartError::StackNotFound {
                stack: stack.to_string(),
                field,
                message: "DescribeStacks returned no stack".to_string(),
            }),
        Err(error) if error.code() == Some("ValidationError") => {
            let message = error.message().unwrap_or("ValidationError").to_string();
            if message.contains("does not exist") {
                Err(StartError::StackNotFound {
                    stack: stack.to_string(),
                    field,
                    message,
                })
            } else {
                Err(StartError::StackRejected {
                    stack: stack.to_string(),
                    field,
                    message,
                })
            }
        }
        Err(error) => {
            let kind = sdk_failure_type(&error, false);
            Err(StartError::DescribeStacks {
                stack: stack.to_string(),
                kind,
                detail: describe_sdk_error(&error),
            })
        }
    }
}

fn output(
    stack: &Stack,
    name: &str,
    field: &'static str,
    key: &'static str,
) -> Result<String, StartError> {
    let outputs = stack.outputs();
    outputs
        .iter()
        .find(|o| o.output_key() == Some(key))
        .and_then(|o| o.output_value())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            let available: Vec<&str> = outputs.iter().filter_map(|o| o.output_key()).collect();
            StartError::OutputMissing {
                stack: name.to_string(),
                field,
                output: key,
                status: stack
                    .stack_status()
                    .map_or("unknown", |s| s.as_str())
                    .to_string(),
                available: if available.is_empty() {
                    "none".to_string()
                } else {
                    truncate_chars(&available.join(", "), 2 * MAX_ECHO_CHARS).into_owned()
                },
            }
        })
}

async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    stack: &str,
    request: &TestRunRequest,
    time: CallTime,
) -> Result<(), StartError> {
    let shown = echo(function).into_owned();
    let payload = serde_json::to_vec(request).expect("a struct of strings serialises");
    let call = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload))
        .send();
    let Ok(result) = tokio::time::timeout_at(time.deadline, call).await else {
        // The request may have reached Lambda: then run-tests runs and its
        // report finds the job already failed, which is harmless.
        return Err(StartError::Invoke {
            function: shown,
            stack: stack.to_string(),
            kind: FailureType::JobFailed,
            detail: time.ran_out("Lambda's Invoke"),
        });
    };
    match result {
        Ok(output) if output.status_code() == 202 => Ok(()),
        Ok(output) => Err(StartError::NotAccepted {
            function: shown,
            status: output.status_code(),
        }),
        Err(error) => {
            let detail = describe_sdk_error(&error);
            let not_found = error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            if not_found {
                return Err(StartError::FunctionNotFound {
                    function: shown,
                    stack: stack.to_string(),
                    detail,
                });
            }
            let throttled = error
                .as_service_error()
                .is_some_and(|e| e.is_too_many_requests_exception() || e.is_service_exception());
            Err(StartError::Invoke {
                function: shown,
                stack: stack.to_string(),
                kind: sdk_failure_type(&error, throttled),
                detail,
            })
        }
    }
}

/// Denied calls are permission errors; calls that never got an answer
/// (timeouts, connection failures, throttling, 5xx) mean AWS was unavailable;
/// anything else failed the job.
fn sdk_failure_type<E>(error: &SdkError<E, HttpResponse>, transient: bool) -> FailureType
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureType::SystemUnavailable
        }
        SdkError::ServiceError(service) if service.raw().status().is_server_error() => {
            match error.code() {
                Some(code) if code.starts_with("AccessDenied") => FailureType::PermissionError,
                _ => FailureType::SystemUnavailable,
            }
        }
        SdkError::ServiceError(_) => match error.code() {
            Some(code) if code.starts_with("AccessDenied") || code == "UnauthorizedOperation" => {
                FailureType::PermissionError
            }
            Some(
                "Throttling" | "ThrottlingException" | "ServiceUnavailable" | "InternalFailure",
            ) => FailureType::SystemUnavailable,
            _ if transient => FailureType::SystemUnavailable,
            _ => FailureType::JobFailed,
        },
        _ => FailureType::JobFailed,
    }
}

fn describe_sdk_error<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                // Modeled errors keep their message outside the metadata;
                // their Display reads "Name: message".
                _ => err.to_string(),
            }
        }
        SdkError::TimeoutError(_) => format!(
            "no answer within the SDK's timeouts ({} s per attempt, {} s in all, with standard retries)",
            codepipeline_job::ATTEMPT_TIMEOUT.as_secs(),
            codepipeline_job::OPERATION_TIMEOUT.as_secs()
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

#[cfg(test)]
mod tests;

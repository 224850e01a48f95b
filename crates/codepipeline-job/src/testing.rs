//! Test support (feature `testing`, for dev-dependencies only): run a gate
//! function's real binary the way Lambda runs it, under a Lambda Runtime API
//! served here, with its AWS calls answered by a local fake endpoint that
//! `AWS_ENDPOINT_URL` points at.
//!
//! The fake AWS endpoint answers what the gates call: CloudFormation
//! `DescribeStacks` (every stack exists, with outputs `TestFunction` =
//! `<stack>-RunTests` and `ApiUrl`, [`FakeAws::API_URL`] unless
//! [`FakeAws::with_api_url`] says otherwise), Lambda `Invoke`
//! (202, accepted) and CodePipeline `PutJobSuccessResult` /
//! `PutJobFailureResult` (recorded).

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, watch};

/// One call the fake AWS endpoint received.
#[derive(Debug, Clone)]
pub struct AwsCall {
    /// `DescribeStacks`, `Invoke`, `PutJobSuccessResult`, `PutJobFailureResult`
    /// or `unknown`.
    pub operation: String,
    /// The request body as text.
    pub body: String,
}

/// A local stand-in for the AWS APIs the gate functions call.
pub struct FakeAws {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub url: String,
    calls: Arc<Mutex<Vec<AwsCall>>>,
}

impl FakeAws {
    /// The `ApiUrl` output of every stack (nothing listens there).
    pub const API_URL: &'static str = "http://127.0.0.1:9/";

    pub async fn start() -> Self {
        Self::with_api_url(Self::API_URL).await
    }

    /// A fake whose stacks all have `api_url` as their `ApiUrl` output.
    pub async fn with_api_url(api_url: &str) -> Self {
        let calls: Arc<Mutex<Vec<AwsCall>>> = Arc::default();
        let recorded = calls.clone();
        let api_url: Arc<str> = Arc::from(api_url);
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            let api_url = api_url.clone();
            async move { answer_aws(&recorded, &api_url, &uri, &headers, &body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, calls }
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<AwsCall> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls of one operation.
    pub fn calls_of(&self, operation: &str) -> Vec<AwsCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation == operation)
            .collect()
    }
}

fn answer_aws(
    recorded: &Mutex<Vec<AwsCall>>,
    api_url: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let text = String::from_utf8_lossy(body).into_owned();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (operation, response) = if let Some(op) = target.strip_prefix("CodePipeline_20150709.") {
        (
            op.to_string(),
            (
                [("content-type", "application/x-amz-json-1.1")],
                "{}".to_string(),
            )
                .into_response(),
        )
    } else if uri.path().starts_with("/2015-03-31/functions/") {
        ("Invoke".to_string(), StatusCode::ACCEPTED.into_response())
    } else if text.contains("Action=DescribeStacks") {
        let stack = text
            .split('&')
            .find_map(|pair| pair.strip_prefix("StackName="))
            .unwrap_or("unknown")
            .to_string();
        let xml = format!(
            r#"<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>{stack}</StackName><StackStatus>UPDATE_COMPLETE</StackStatus><CreationTime>2026-11-26T10:00:00Z</CreationTime><Outputs><member><OutputKey>TestFunction</OutputKey><OutputValue>{stack}-RunTests</OutputValue></member><member><OutputKey>ApiUrl</OutputKey><OutputValue>{api_url}</OutputValue></member></Outputs></member></Stacks></DescribeStacksResult></DescribeStacksResponse>"#
        );
        (
            "DescribeStacks".to_string(),
            ([("content-type", "text/xml")], xml).into_response(),
        )
    } else {
        (
            "unknown".to_string(),
            StatusCode::BAD_REQUEST.into_response(),
        )
    };
    recorded.lock().unwrap().push(AwsCall {
        operation,
        body: text,
    });
    response
}

/// What one invocation of a binary under the Runtime API came to.
#[derive(Debug)]
pub struct Invocation {
    /// What the function posted for the event: `Ok(response)` or
    /// `Err(error)`; `None` when it posted nothing (it crashed or hung).
    pub result: Option<Result<Value, Value>>,
    /// The exit status when the process ended on its own (a crash).
    pub exit: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Invocation {
    /// stdout and stderr together.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

#[derive(Default)]
struct RuntimeState {
    event: Mutex<Option<Value>>,
    result: Mutex<Option<Result<Value, Value>>>,
    posted: Notify,
}

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

async fn next_event(State(state): State<Arc<RuntimeState>>) -> Response {
    let event = state.event.lock().unwrap().take();
    let Some(event) = event else {
        // One event per run: later polls wait until the process is stopped.
        return std::future::pending().await;
    };
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let deadline_ms = deadline
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static(REQUEST_ID),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline_ms.to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:eu-west-1:123456789012:function:gate"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-5eb33c07-de25b420912dee103a5db434"),
    );
    (StatusCode::OK, headers, event.to_string()).into_response()
}

async fn post_result(state: &RuntimeState, body: &Bytes, ok: bool) -> StatusCode {
    let value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    *state.result.lock().unwrap() = Some(if ok { Ok(value) } else { Err(value) });
    state.posted.notify_one();
    StatusCode::ACCEPTED
}

/// Runs `binary` as a Lambda function on one `event`: a Runtime API on a
/// free port hands it the event (deadline 60 s away), `aws` answers its AWS
/// calls, and `env` is added to a clean environment. Returns once the
/// function posts a result, exits, or `timeout` passes; the process is then
/// stopped and its output collected.
pub async fn invoke_binary(
    binary: impl AsRef<Path>,
    event: Value,
    aws: &FakeAws,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Invocation {
    let state = Arc::new(RuntimeState::default());
    *state.event.lock().unwrap() = Some(event);
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_event))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(
                |State(s): State<Arc<RuntimeState>>, _: UrlPath<String>, body: Bytes| async move {
                    post_result(&s, &body, true).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(
                |State(s): State<Arc<RuntimeState>>, _: UrlPath<String>, body: Bytes| async move {
                    post_result(&s, &body, false).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            post(
                |State(s): State<Arc<RuntimeState>>, body: Bytes| async move {
                    post_result(&s, &body, false).await
                },
            ),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.changed().await;
            })
            .await
            .unwrap()
    });

    let mut command = tokio::process::Command::new(binary.as_ref());
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "gate")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", &aws.url)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.as_ref().display()));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let read_out = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let read_err = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });

    let exit = tokio::select! {
        _ = state.posted.notified() => None,
        status = child.wait() => status.ok(),
        _ = tokio::time::sleep(timeout) => None,
    };
    if exit.is_none() {
        let _ = child.kill().await;
    }
    let _ = stop_tx.send(true);
    let stdout = read_out.await.unwrap_or_default();
    let stderr = read_err.await.unwrap_or_default();
    let result = state.result.lock().unwrap().take();
    Invocation {
        result,
        exit,
        stdout,
        stderr,
    }
}

//! A local Lambda Runtime API (the `2018-06-01` protocol) and the process
//! that runs a function's `bootstrap` under it.
//!
//! Every function process gets its own Runtime API server, as on Lambda: the
//! process polls `GET /2018-06-01/runtime/invocation/next`, answers with
//! `POST .../{id}/response` or `.../{id}/error`, or reports a failed start with
//! `POST /2018-06-01/runtime/init/error`. A process that exits while an
//! invocation is running, or overruns the function's timeout, fails that
//! invocation and is replaced by a fresh process on the next one.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::ids;

/// The wait before the first retry of a failed asynchronous invocation.
/// Lambda waits about a minute, then two; the rehearsal keeps the number
/// of retries and shortens the waits (1 s, then 2 s).
pub const ASYNC_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Everything needed to start one function the way Lambda starts it.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub name: String,
    /// The executable to run: the `bootstrap` of a `provided.*` runtime.
    pub command: PathBuf,
    /// Arguments for `command` (none on Lambda; tests use them).
    pub args: Vec<String>,
    /// `LAMBDA_TASK_ROOT` and the working directory.
    pub task_root: PathBuf,
    /// `_HANDLER`.
    pub handler: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_mb: u32,
    /// How long one invocation may run before the process is killed.
    pub timeout: Duration,
    /// Extra environment: the template's variables, the local AWS endpoint.
    pub environment: BTreeMap<String, String>,
    /// Where the process's stdout and stderr go (its "CloudWatch log");
    /// `None` inherits the rehearsal's own.
    pub log_file: Option<PathBuf>,
    /// How often a failed asynchronous (`Event`) invocation is retried:
    /// `EventInvokeConfig.MaximumRetryAttempts`, 2 when the template does
    /// not say, as on AWS.
    pub async_retries: u32,
}

/// Why an invocation failed, in the shape Lambda reports it
/// (`X-Amz-Function-Error` plus an `{"errorType", "errorMessage"}` payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
    /// The error document as the function (or Lambda) sent it.
    pub payload: Bytes,
}

impl FunctionError {
    fn new(error_type: &str, error_message: String) -> Self {
        let payload = json!({"errorType": error_type, "errorMessage": error_message});
        Self {
            error_type: error_type.to_string(),
            error_message,
            payload: Bytes::from(payload.to_string()),
        }
    }

    fn from_payload(header_type: Option<&str>, payload: Bytes) -> Self {
        let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        let error_type = doc["errorType"]
            .as_str()
            .or(header_type)
            .unwrap_or("Unhandled")
            .to_string();
        let error_message = doc["errorMessage"].as_str().unwrap_or_default().to_string();
        Self {
            error_type,
            error_message,
            payload,
        }
    }
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

/// The result of one invocation: the response payload or the function error.
pub type Outcome = Result<Bytes, FunctionError>;

struct Pending {
    request_id: String,
    payload: Bytes,
    deadline_ms: u128,
    trace_id: String,
    reply: oneshot::Sender<Outcome>,
}

struct ApiState {
    next: Mutex<mpsc::Receiver<Pending>>,
    in_flight: StdMutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: StdMutex<Option<FunctionError>>,
    function_arn: String,
}

/// The Runtime API routes of one function process.
fn runtime_api(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(state)
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn bad_request_id(id: &str) -> Response {
    tracing::warn!(request_id = id, "runtime reported an unknown request id");
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "errorMessage": format!("Invalid request ID: {id}"),
            "errorType": "InvalidRequestID"
        })),
    )
        .into_response()
}

async fn next_invocation(State(state): State<Arc<ApiState>>) -> Response {
    let pending = state.next.lock().await.recv().await;
    let Some(pending) = pending else {
        // The function is being shut down: nothing will ever come.
        return (StatusCode::GONE, "function stopped").into_response();
    };
    state
        .in_flight
        .lock()
        .expect("in-flight map poisoned")
        .insert(pending.request_id.clone(), pending.reply);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &pending.request_id);
    set(
        "lambda-runtime-deadline-ms",
        &pending.deadline_ms.to_string(),
    );
    set("lambda-runtime-invoked-function-arn", &state.function_arn);
    set("lambda-runtime-trace-id", &pending.trace_id);
    set("content-type", "application/json");
    (StatusCode::OK, headers, pending.payload).into_response()
}

fn take_in_flight(state: &ApiState, id: &str) -> Option<oneshot::Sender<Outcome>> {
    state
        .in_flight
        .lock()
        .expect("in-flight map poisoned")
        .remove(id)
}

async fn invocation_response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match take_in_flight(&state, &id) {
        Some(reply) => {
            let _ = reply.send(Ok(body));
            accepted()
        }
        None => bad_request_id(&id),
    }
}

async fn invocation_error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok());
    match take_in_flight(&state, &id) {
        Some(reply) => {
            let _ = reply.send(Err(FunctionError::from_payload(header_type, body)));
            accepted()
        }
        None => bad_request_id(&id),
    }
}

async fn init_error(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Runtime.InitError");
    let error = FunctionError::from_payload(Some(header_type), body);
    tracing::warn!(error = %error, "function reported an init error");
    *state.init_error.lock().expect("init error poisoned") = Some(error);
    accepted()
}

/// Errors starting a function process.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot start {command} for function {function}: {source}; check that the build produced an executable `bootstrap` there"
    )]
    Spawn {
        function: String,
        command: String,
        source: std::io::Error,
    },
    #[error("cannot open the log file {path} of function {function}: {source}")]
    LogFile {
        function: String,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot serve the Runtime API for function {function} on 127.0.0.1: {source}")]
    Listen {
        function: String,
        source: std::io::Error,
    },
}

/// One running process of a function, with its own Runtime API.
struct Instance {
    queue: mpsc::Sender<Pending>,
    state: Arc<ApiState>,
    exit: watch::Receiver<Option<String>>,
    // Dropping the sender kills the process (see `spawn`).
    _kill: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Instance {
    async fn start(config: &FunctionConfig) -> Result<Self, StartError> {
        let (queue, rx) = mpsc::channel(16);
        let state = Arc::new(ApiState {
            next: Mutex::new(rx),
            in_flight: StdMutex::new(HashMap::new()),
            init_error: StdMutex::new(None),
            function_arn: ids::function_arn(&config.name),
        });
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| StartError::Listen {
                function: config.name.clone(),
                source,
            })?;
        let addr: SocketAddr = listener.local_addr().map_err(|source| StartError::Listen {
            function: config.name.clone(),
            source,
        })?;
        let app = runtime_api(state.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "runtime API server stopped");
            }
        });

        let mut cmd = Command::new(&config.command);
        cmd.args(&config.args)
            .current_dir(&config.task_root)
            .env_clear()
            .envs(lambda_environment(config, addr))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match &config.log_file {
            Some(path) => {
                let open = || {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|source| StartError::LogFile {
                            function: config.name.clone(),
                            path: path.display().to_string(),
                            source,
                        })
                };
                cmd.stdout(open()?).stderr(open()?);
            }
            None => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
        }
        let mut child = cmd.spawn().map_err(|source| {
            server.abort();
            StartError::Spawn {
                function: config.name.clone(),
                command: config.command.display().to_string(),
                source,
            }
        })?;
        tracing::debug!(function = %config.name, runtime_api = %addr, "function process started");

        let (kill, kill_rx) = oneshot::channel::<()>();
        let (exit_tx, exit) = watch::channel(None);
        let name = config.name.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let text = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown status ({e})"),
            };
            tracing::debug!(function = %name, status = %text, "function process ended");
            let _ = exit_tx.send(Some(text));
        });

        Ok(Self {
            queue,
            state,
            exit,
            _kill: kill,
            server,
        })
    }

    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    async fn wait_exit(&mut self) -> String {
        match self.exit.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or_default(),
            Err(_) => "unknown status".to_string(),
        }
    }
}

/// The environment Lambda gives a `provided.al2023` function, plus the
/// template's variables (which may not override the reserved ones).
fn lambda_environment(config: &FunctionConfig, api: SocketAddr) -> BTreeMap<String, String> {
    let mut env = config.environment.clone();
    let log_group = format!("/aws/lambda/{}", config.name);
    let reserved = [
        ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", log_group),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("{}/[$LATEST]{}", chrono_date(), &ids::uuid()[..8]),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        (
            "AWS_EXECUTION_ENV",
            "AWS_Lambda_provided.al2023".to_string(),
        ),
        ("AWS_REGION", ids::REGION.to_string()),
        ("AWS_DEFAULT_REGION", ids::REGION.to_string()),
        ("LAMBDA_TASK_ROOT", config.task_root.display().to_string()),
        ("LAMBDA_RUNTIME_DIR", config.task_root.display().to_string()),
        ("_HANDLER", config.handler.clone()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("TZ", ":UTC".to_string()),
        ("LANG", "en_US.UTF-8".to_string()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_string()),
    ];
    for (key, value) in reserved {
        env.insert(key.to_string(), value);
    }
    // The execution role's credentials: those the deployer put in the
    // environment (the role's, created in moto, for a stack with local
    // resources), else fake ones. The local endpoint does not check
    // signatures; real AWS would refuse these.
    if !env.contains_key(CREDENTIAL_VARIABLES[0]) {
        let fake = [
            "AKIAREHEARSALLOCAL00",
            "rehearsal/local/secret/not-a-real-key00",
            "rehearsal-local-session",
        ];
        for (key, value) in CREDENTIAL_VARIABLES.iter().zip(fake) {
            env.insert(key.to_string(), value.to_string());
        }
    }
    env
}

/// What starts the rehearsal's own lines in a function's log (a denied AWS
/// call, written by the rehearsal's AWS proxy, `crate::aws_proxy`).
pub const DENIAL_PREFIX: &str = "[rehearsal]";

/// The variables a function's credentials come in (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`): reserved on Lambda, set
/// by the deployer (the execution role's) or, without it, fake ones.
pub const CREDENTIAL_VARIABLES: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

fn chrono_date() -> String {
    chrono::Utc::now().format("%Y/%m/%d").to_string()
}

/// A function: its configuration and (while warm) its running process.
/// Invocations run one at a time, like a function with reserved concurrency 1.
pub struct FunctionHost {
    config: FunctionConfig,
    slot: Mutex<Option<Instance>>,
}

impl std::fmt::Debug for FunctionHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionHost")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl FunctionHost {
    pub fn new(config: FunctionConfig) -> Self {
        Self {
            config,
            slot: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    /// Starts the process now (a cold start ahead of the first invocation).
    pub async fn warm(&self) -> Result<(), StartError> {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_none_or(Instance::exited) {
            *slot = Some(Instance::start(&self.config).await?);
        }
        Ok(())
    }

    /// Stops the process, if one is running.
    pub async fn stop(&self) {
        self.slot.lock().await.take();
    }

    /// An asynchronous (`Event`) invocation: on failure it is retried
    /// `async_retries` times, as Lambda retries it, with each failure passed
    /// to `on_failure` (attempt number, error). Returns the last outcome.
    pub async fn invoke_async(
        &self,
        payload: Bytes,
        mut on_failure: impl FnMut(u32, &FunctionError),
    ) -> Outcome {
        let mut attempt = 0;
        loop {
            match self.invoke(payload.clone()).await {
                Ok(response) => return Ok(response),
                Err(error) => {
                    on_failure(attempt, &error);
                    if attempt >= self.config.async_retries {
                        return Err(error);
                    }
                }
            }
            attempt += 1;
            tokio::time::sleep(ASYNC_RETRY_DELAY * attempt).await;
            tracing::info!(function = %self.config.name, attempt, "retrying the asynchronous invocation");
        }
    }

    /// Runs one invocation with `payload` and returns what the function
    /// answered. Crashes, init errors and timeouts come back as the function
    /// errors Lambda reports for them. (A function running as its own role
    /// calls moto through the rehearsal's AWS proxy, which writes each
    /// denied call in its log as it happens.)
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        self.invoke_once(payload).await
    }

    async fn invoke_once(&self, payload: Bytes) -> Outcome {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_none_or(Instance::exited) {
            match Instance::start(&self.config).await {
                Ok(instance) => *slot = Some(instance),
                Err(e) => {
                    return Err(FunctionError::new(
                        "Runtime.InvalidEntrypoint",
                        e.to_string(),
                    ));
                }
            }
        }
        let instance = slot.as_mut().expect("instance started above");
        let request_id = ids::uuid();
        let (reply, answer) = oneshot::channel();
        let deadline_ms = (SystemTime::now() + self.config.timeout)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let pending = Pending {
            request_id: request_id.clone(),
            payload,
            deadline_ms,
            trace_id: ids::trace_id(),
            reply,
        };
        if instance.queue.send(pending).await.is_err() {
            slot.take();
            return Err(FunctionError::new(
                "Runtime.Unknown",
                format!("RequestId: {request_id} Error: the function's runtime stopped"),
            ));
        }
        enum Ending {
            Answer(Outcome),
            Exit(String),
            Timeout,
        }
        let ending = tokio::select! {
            biased;
            answer = answer => match answer {
                Ok(outcome) => Ending::Answer(outcome),
                Err(_) => Ending::Exit(instance.wait_exit().await),
            },
            status = instance.wait_exit() => Ending::Exit(status),
            _ = tokio::time::sleep(self.config.timeout) => Ending::Timeout,
        };
        let status = match ending {
            Ending::Answer(outcome) => return outcome,
            Ending::Exit(status) => status,
            Ending::Timeout => {
                tracing::warn!(function = %self.config.name, request_id, "invocation timed out; killing the process");
                slot.take();
                return Err(FunctionError::new(
                    "Sandbox.Timedout",
                    format!(
                        "{} {request_id} Task timed out after {:.2} seconds",
                        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                        self.config.timeout.as_secs_f64()
                    ),
                ));
            }
        };
        let init_error = instance
            .state
            .init_error
            .lock()
            .expect("init error poisoned")
            .take();
        slot.take();
        tracing::warn!(function = %self.config.name, request_id, %status, "function process exited during an invocation");
        Err(match init_error {
            Some(error) => error,
            None => FunctionError::new(
                "Runtime.ExitError",
                format!("RequestId: {request_id} Error: Runtime exited with error: {status}"),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FunctionConfig {
        FunctionConfig {
            name: "fn".into(),
            command: "/bin/true".into(),
            args: vec![],
            task_root: "/tmp".into(),
            handler: "bootstrap".into(),
            memory_mb: 256,
            timeout: Duration::from_secs(3),
            environment: BTreeMap::from([
                ("STAGE".to_string(), "beta".to_string()),
                ("AWS_REGION".to_string(), "eu-west-1".to_string()),
            ]),
            log_file: None,
            async_retries: 2,
        }
    }

    #[test]
    fn the_environment_carries_what_lambda_sets() {
        let env = lambda_environment(&config(), "127.0.0.1:9001".parse().unwrap());
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "fn");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
        assert_eq!(env["LAMBDA_TASK_ROOT"], "/tmp");
        assert_eq!(env["_HANDLER"], "bootstrap");
        assert_eq!(env["STAGE"], "beta");
        assert!(env.contains_key("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn template_variables_cannot_override_reserved_ones() {
        let env = lambda_environment(&config(), "127.0.0.1:9001".parse().unwrap());
        assert_eq!(env["AWS_REGION"], ids::REGION);
    }

    #[test]
    fn error_documents_are_read_from_the_runtime_payload() {
        let e = FunctionError::from_payload(
            Some("Unhandled"),
            Bytes::from(r#"{"errorType":"MyError","errorMessage":"boom"}"#),
        );
        assert_eq!(e.error_type, "MyError");
        assert_eq!(e.error_message, "boom");
    }
}

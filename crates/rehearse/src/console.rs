//! The local console: a page on a loopback port that shows the pipeline as
//! the CodePipeline console does (stages top to bottom, each action's state
//! and time, a gate's summary, links to each running stage's API and to the
//! functions' logs), the current run updating live, and the last runs.
//!
//! Served by the rehearsal's own process (`--keep`, `--watch`) from the
//! printer's [`Event`]s; one self-contained page (inline CSS and script,
//! works offline) that polls `GET /api/state`. Routes:
//! - `GET /`: the page;
//! - `GET /api/state`: the current run ([`RunView`]), the last runs, the logs;
//! - `GET /api/runs/{id}`: a finished run's full [`crate::RunReport`] JSON;
//! - `GET /logs/{stack}/{file}`: a function's log from `<work_dir>/logs`
//!   (the last MiB; names checked, no way out of that directory).
//!
//! Errors are JSON (`{"error": ...}`) with a 4xx status. Each finished run's
//! report is kept under `<work_dir>/console/runs/`, so the list of last runs
//! survives a restart.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::report::Event;
use crate::view::RunView;

/// The page; its script renders the state JSON put in place of `INITIAL_STATE`.
const PAGE: &str = include_str!("console.html");

/// How many finished runs the console lists (and keeps on disk).
pub const HISTORY: usize = 20;

/// How much of a log the console serves: its end.
pub const LOG_TAIL_BYTES: u64 = 1024 * 1024;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The loopback port; 0 takes any free one.
    pub port: u16,
    /// The rehearsal's work directory (function logs, kept run reports).
    pub work_dir: PathBuf,
}

/// A finished run in the list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct RunEntry {
    id: String,
    finished_at: String,
    /// The run's `RunReport` as JSON.
    report: Value,
}

impl RunEntry {
    fn summary(&self) -> Value {
        let r = &self.report;
        let failure = r.get("failedAction").map(|f| {
            format!(
                "{}/{}: {}",
                f["stage"].as_str().unwrap_or_default(),
                f["action"].as_str().unwrap_or_default(),
                f["reason"].as_str().unwrap_or_default()
            )
        });
        json!({
            "id": self.id,
            "finishedAt": self.finished_at,
            "commit": r["commit"],
            "subject": r["subject"],
            "rehearsed": r["rehearsed"],
            "status": r["status"],
            "durationMs": r["durationMs"],
            "failure": failure,
            "url": format!("/api/runs/{}", self.id),
        })
    }
}

struct Shared {
    work_dir: PathBuf,
    current: Option<RunView>,
    /// Newest last.
    history: VecDeque<RunEntry>,
}

type Handle = Arc<Mutex<Shared>>;

fn lock(shared: &Handle) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running console; stops when dropped.
pub struct Console {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    listener: JoinHandle<()>,
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        self.server.abort();
        self.listener.abort();
    }
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve the console on 127.0.0.1:{port}: {source} (--console-port 0 takes any free port)"
)]
pub struct ConsoleError {
    pub port: u16,
    #[source]
    pub source: std::io::Error,
}

impl Console {
    /// Serves on `127.0.0.1:<port>` the runs that `events` (from
    /// `Printer::subscribe`) describe.
    pub async fn start(
        options: ConsoleOptions,
        events: broadcast::Receiver<Event>,
    ) -> Result<Self, ConsoleError> {
        let error = |source| ConsoleError {
            port: options.port,
            source,
        };
        let listener = TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(error)?;
        let addr = listener.local_addr().map_err(error)?;
        let history = load_history(&runs_dir(&options.work_dir));
        let shared = Arc::new(Mutex::new(Shared {
            work_dir: options.work_dir,
            current: None,
            history,
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared.clone(), addr.port());
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "console stopped");
            }
        });
        let listener = tokio::spawn(follow(events, shared));
        Ok(Self {
            addr,
            shutdown: Some(stop),
            server,
            listener,
        })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn runs_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("console").join("runs")
}

/// The kept reports, oldest first (their file names sort by time).
fn load_history(dir: &Path) -> VecDeque<RunEntry> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return VecDeque::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let skip = files.len().saturating_sub(HISTORY);
    files
        .into_iter()
        .skip(skip)
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let value: Value = serde_json::from_str(&text).ok()?;
            Some(RunEntry {
                id: value["id"].as_str()?.to_string(),
                finished_at: value["finishedAt"].as_str().unwrap_or_default().to_string(),
                report: value.get("report")?.clone(),
            })
        })
        .collect()
}

/// Keeps `entry` on disk, and no more than [`HISTORY`] reports.
fn persist(dir: &Path, entry: &RunEntry) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(entry).map_err(std::io::Error::other)?;
    let path = dir.join(format!("{}.json", entry.id));
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, &path)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for old in files.iter().take(files.len().saturating_sub(HISTORY)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// Applies each event to the current run; a finished run joins the history.
async fn follow(mut events: broadcast::Receiver<Event>, shared: Handle) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let now = Instant::now();
        let (entry, dir) = {
            let mut state = lock(&shared);
            if let Some(view) = RunView::from_start(&event, now) {
                state.current = Some(view);
                continue;
            }
            if let Some(view) = &mut state.current {
                view.apply(&event, now);
            }
            let Event::RunEnded { report } = &event else {
                continue;
            };
            let finished = chrono::Utc::now();
            let entry = RunEntry {
                id: format!(
                    "{}-{}",
                    finished.format("%Y%m%dT%H%M%S%3fZ"),
                    &report.commit[..report.commit.len().min(8)]
                ),
                finished_at: finished.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                report: serde_json::to_value(report).unwrap_or(Value::Null),
            };
            (entry, runs_dir(&state.work_dir))
        };
        // Kept on disk first: a run in the list is one a restart lists too.
        let kept = entry.clone();
        match tokio::task::spawn_blocking(move || persist(&dir, &kept)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not keep the run's report"),
            Err(e) => tracing::warn!(error = %e, "could not keep the run's report"),
        }
        let mut state = lock(&shared);
        state.history.push_back(entry);
        while state.history.len() > HISTORY {
            state.history.pop_front();
        }
    }
}

/// The console's routes over its state, for requests to `127.0.0.1:<port>`
/// or `localhost:<port>` only: a page elsewhere that gets a name of its own
/// resolved to 127.0.0.1 (DNS rebinding) cannot read the logs through it.
fn router(shared: Handle, port: u16) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/state", get(api_state))
        .route("/api/runs/{id}", get(api_run))
        .route("/logs/{stack}/{file}", get(log_file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                let host = request
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default();
                if is_loopback_host(host, port) {
                    next.run(request).await
                } else {
                    error(
                        StatusCode::FORBIDDEN,
                        &format!("the console answers only requests to 127.0.0.1:{port} or localhost:{port}"),
                    )
                }
            },
        ))
        .with_state(shared)
}

/// Whether a `Host` header names this console on the loopback interface.
fn is_loopback_host(host: &str, port: u16) -> bool {
    ["127.0.0.1", "localhost"]
        .iter()
        .any(|name| host == format!("{name}:{port}"))
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"error": message, "status": status.as_u16()})),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page")
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "the console only answers GET",
    )
}

fn state_json(shared: &Handle) -> Value {
    let state = lock(shared);
    let now = Instant::now();
    json!({
        "current": state.current.as_ref().map(|v| v.snapshot(now)),
        "runs": state.history.iter().rev().map(RunEntry::summary).collect::<Vec<_>>(),
        "logs": logs(&state.work_dir.join("logs")),
    })
}

async fn api_state(State(shared): State<Handle>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(state_json(&shared)),
    )
        .into_response()
}

async fn api_run(State(shared): State<Handle>, UrlPath(id): UrlPath<String>) -> Response {
    let state = lock(&shared);
    match state.history.iter().find(|e| e.id == id) {
        Some(entry) => axum::Json(entry).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no run {id:?} in the last runs"),
        ),
    }
}

/// The page, with the state as it is now for its first drawing.
async fn page(State(shared): State<Handle>) -> Response {
    // `<` escaped, so no text in the state can end the script element.
    let initial = state_json(&shared).to_string().replace('<', "\\u003c");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE.replace("INITIAL_STATE", &initial),
    )
        .into_response()
}

/// Whether `name` can be a stack or log file name: letters, digits, `-`,
/// `_`, `.`, not starting with a dot (so never `.` or `..`).
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The function logs: `<logs>/<stack>/<function>.log`.
fn logs(dir: &Path) -> Vec<Value> {
    let mut found = Vec::new();
    let Ok(stacks) = std::fs::read_dir(dir) else {
        return found;
    };
    for stack in stacks.filter_map(Result::ok) {
        let stack_name = stack.file_name().to_string_lossy().into_owned();
        if !safe_name(&stack_name) || !stack.path().is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(stack.path()) else {
            continue;
        };
        for file in files.filter_map(Result::ok) {
            let file_name = file.file_name().to_string_lossy().into_owned();
            let Some(function) = file_name.strip_suffix(".log") else {
                continue;
            };
            if !safe_name(&file_name) {
                continue;
            }
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            found.push(json!({
                "stack": stack_name,
                "function": function,
                "bytes": bytes,
                "url": format!("/logs/{stack_name}/{file_name}"),
            }));
        }
    }
    found.sort_by(|a, b| a["url"].as_str().cmp(&b["url"].as_str()));
    found
}

async fn log_file(
    State(shared): State<Handle>,
    UrlPath((stack, file)): UrlPath<(String, String)>,
) -> Response {
    if !safe_name(&stack) || !safe_name(&file) || !file.ends_with(".log") {
        return error(
            StatusCode::BAD_REQUEST,
            "a log is /logs/<stack>/<function>.log, names of letters, digits, '-', '_' and '.'",
        );
    }
    let dir = lock(&shared).work_dir.join("logs");
    let path = dir.join(&stack).join(&file);
    // A symbolic link out of the logs directory is not followed.
    let inside = match (dir.canonicalize(), path.canonicalize()) {
        (Ok(dir), Ok(path)) => path.starts_with(dir),
        _ => false,
    };
    if !inside {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no log {stack}/{file} (yet)"),
        );
    }
    match tokio::task::spawn_blocking(move || tail(&path, LOG_TAIL_BYTES)).await {
        Ok(Ok(text)) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            text,
        )
            .into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("cannot read log {stack}/{file}"),
        ),
    }
}

/// The last `limit` bytes of a file, as text.
fn tail(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut text = String::new();
    if len > limit {
        file.seek(SeekFrom::Start(len - limit))?;
        text.push_str(&format!("[… the first {} bytes left out …]\n", len - limit));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    text.push_str(&String::from_utf8_lossy(&bytes));
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_can_name_a_log() {
        assert!(safe_name("Svc-beta"));
        assert!(safe_name("Svc_gate.log"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a\\b", "a%2Fb", "a b", "é"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_requests_to_this_consoles_loopback_address_are_answered() {
        assert!(is_loopback_host("127.0.0.1:8080", 8080));
        assert!(is_loopback_host("localhost:8080", 8080));
        for other in [
            "127.0.0.1:8081",
            "evil.example:8080",
            "127.0.0.1",
            "",
            "localhost:8080.evil",
        ] {
            assert!(!is_loopback_host(other, 8080), "{other}");
        }
    }

    #[test]
    fn a_long_log_is_served_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        std::fs::write(&path, "0123456789").unwrap();
        assert_eq!(tail(&path, 100).unwrap(), "0123456789");
        assert_eq!(
            tail(&path, 4).unwrap(),
            "[… the first 6 bytes left out …]\n6789"
        );
    }

    #[test]
    fn the_history_keeps_the_newest_reports_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..HISTORY + 3 {
            let entry = RunEntry {
                id: format!("2026010{i:02}-abc"),
                finished_at: String::new(),
                report: json!({"commit": format!("c{i}")}),
            };
            persist(dir.path(), &entry).unwrap();
        }
        let history = load_history(dir.path());
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history[0].report["commit"], "c3");
        assert_eq!(
            history.back().unwrap().report["commit"],
            format!("c{}", HISTORY + 2)
        );
    }
}

//! The Orders integration suite: one order followed through the service,
//! and the two error answers a client relies on.

use std::future::Future;
use std::time::{Duration, Instant};

use codepipeline_job::gate::{CheckResult, SuiteReport};
use codepipeline_job::{echo, truncate_chars};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

/// Default time one request may take, connection included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time the worker may take to mark the test order processed: the
/// queue's event source mapping polls continuously, so a healthy stage
/// takes a second or two.
pub const DEFAULT_PROCESSING_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time the whole suite may take.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(45);
/// Default pause between two reads of the test order.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The checks, by name (as failure messages and logs show them).
pub mod checks {
    pub const ORDER_POSTED: &str = "order posted";
    pub const ORDER_READ_BACK: &str = "order read back";
    pub const ORDER_PROCESSED: &str = "order processed by the worker";
    pub const UNKNOWN_ORDER: &str = "unknown order";
    pub const INVALID_ORDER: &str = "invalid order";
    /// All of them, in the order they are reported.
    pub const ALL: [&str; 5] = [
        ORDER_POSTED,
        ORDER_READ_BACK,
        ORDER_PROCESSED,
        UNKNOWN_ORDER,
        INVALID_ORDER,
    ];
}

/// Where and how to run the suite.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Base URL, always ending in `/`.
    pub api_url: Url,
    /// The stage under test (in the report, and in the test order's item).
    pub stage: String,
    pub request_timeout: Duration,
    pub processing_timeout: Duration,
    pub poll_interval: Duration,
    pub deadline: Duration,
}

/// A suite that cannot run as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "API URL `{url}` is not a valid URL ({reason}); pass the stage's ApiUrl stack output, \
         e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/"
    )]
    BadUrl { url: String, reason: String },
    #[error("API URL `{url}` uses scheme `{scheme}`; use an http:// or https:// URL")]
    BadScheme { url: String, scheme: String },
    #[error("the stage is empty; pass the name of the stage under test")]
    EmptyStage,
}

impl SuiteConfig {
    /// The default timeouts for `api_url` (a trailing `/` is added if
    /// missing, so `orders` is appended, not substituted) and `stage`.
    pub fn new(api_url: &str, stage: &str) -> Result<Self, ConfigError> {
        let shown = echo(api_url).into_owned();
        let mut url = Url::parse(api_url.trim()).map_err(|e| ConfigError::BadUrl {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::BadScheme {
                url: shown,
                scheme: echo(url.scheme()).into_owned(),
            });
        }
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(ConfigError::BadUrl {
                url: shown,
                reason: "it has no host".into(),
            });
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url.set_query(None);
        url.set_fragment(None);
        if stage.trim().is_empty() {
            return Err(ConfigError::EmptyStage);
        }
        Ok(Self {
            api_url: url,
            stage: stage.to_string(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            processing_timeout: DEFAULT_PROCESSING_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            deadline: DEFAULT_DEADLINE,
        })
    }

    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_processing_timeout(mut self, timeout: Duration) -> Self {
        self.processing_timeout = timeout;
        self
    }

    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

/// What a check step found: the value later steps need, or its problems.
type Step<T> = Result<T, Vec<String>>;

/// Runs the suite: the order's life (posted, read back, processed) in
/// sequence, the two error checks beside it. Never takes much longer than
/// `config.deadline`: a check still running then is failed, and the ones
/// after it are reported as not run.
pub async fn run_suite(config: &SuiteConfig) -> SuiteReport {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + config.deadline;
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(3)))
        .user_agent(concat!("orders-gate/", env!("CARGO_PKG_VERSION")))
        .build();
    let results = match client {
        Ok(client) => {
            let api = Api {
                client,
                config,
                deadline,
            };
            let (mut flow, unknown, invalid) =
                tokio::join!(api.order_flow(), api.unknown_order(), api.invalid_order());
            flow.push(unknown);
            flow.push(invalid);
            flow
        }
        Err(e) => {
            // Only a broken TLS backend gets here; every check fails with it.
            let why = format!("could not build the HTTP client: {e}");
            checks::ALL
                .iter()
                .map(|name| CheckResult {
                    name,
                    request: String::new(),
                    problems: vec![why.clone()],
                    elapsed: Duration::ZERO,
                })
                .collect()
        }
    };
    SuiteReport {
        api_url: config.api_url.to_string(),
        stage: config.stage.clone(),
        results,
        elapsed: started.elapsed(),
    }
}

/// An answer as the checks see it.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    /// The body as a JSON object, or the problem.
    fn json_object(&self) -> Step<serde_json::Map<String, Value>> {
        let is_json = self
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"));
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(map)) if is_json => Ok(map),
            Ok(Value::Object(_)) => Err(vec![format!(
                "content-type is {}, expected application/json",
                shown(self.content_type.as_deref())
            )]),
            _ => Err(vec![format!(
                "answered {} with a body that is not a JSON object: {}",
                self.status,
                excerpt(&self.body)
            )]),
        }
    }

    /// The problem of an unexpected status, naming what was seen.
    fn expect_status(&self, expected: StatusCode) -> Step<()> {
        if self.status == expected {
            Ok(())
        } else {
            Err(vec![format!(
                "answered {}, expected {expected}; body: {}",
                self.status,
                excerpt(&self.body)
            )])
        }
    }
}

struct Api<'a> {
    client: reqwest::Client,
    config: &'a SuiteConfig,
    deadline: tokio::time::Instant,
}

impl Api<'_> {
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Step<Answer> {
        let url = self
            .config
            .api_url
            .join(path)
            .map_err(|e| vec![format!("cannot build the URL: {e}")])?;
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| vec![self.describe(&e)])?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let (status, location, content_type) =
            (response.status(), header(LOCATION), header(CONTENT_TYPE));
        let body = response
            .bytes()
            .await
            .map_err(|e| vec![self.describe(&e)])?;
        Ok(Answer {
            status,
            location,
            content_type,
            body: body.to_vec(),
        })
    }

    fn describe(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            format!(
                "no complete answer within {:.1} s (the per-request timeout)",
                self.config.request_timeout.as_secs_f64()
            )
        } else if error.is_connect() {
            let url = &self.config.api_url;
            format!(
                "could not connect to {}:{} ({}); is the API deployed and is the URL right?",
                echo(url.host_str().unwrap_or("?")),
                url.port_or_known_default().unwrap_or(0),
                root_cause(error)
            )
        } else {
            let mut text = error.to_string();
            if let Some(url) = error.url() {
                text = text.replace(url.as_str(), &echo(url.as_str()));
            }
            format!(
                "request failed: {}: {}",
                truncate_chars(&text, 500),
                root_cause(error)
            )
        }
    }

    /// Runs one check under the suite's deadline.
    async fn check<T>(
        &self,
        name: &'static str,
        request: String,
        step: impl Future<Output = Step<T>>,
    ) -> (CheckResult, Option<T>) {
        let started = Instant::now();
        let outcome = match tokio::time::timeout_at(self.deadline, step).await {
            Ok(outcome) => outcome,
            Err(_) => Err(vec![format!(
                "did not finish before the suite's {:.1} s deadline",
                self.config.deadline.as_secs_f64()
            )]),
        };
        let (problems, value) = match outcome {
            Ok(value) => (Vec::new(), Some(value)),
            Err(problems) => (problems, None),
        };
        let result = CheckResult {
            name,
            request,
            problems,
            elapsed: started.elapsed(),
        };
        (result, value)
    }

    /// Posted, read back, processed: each step needs the one before.
    async fn order_flow(&self) -> Vec<CheckResult> {
        let sent = json!({
            "item": format!("orders-gate check ({})", echo(&self.config.stage)),
            "quantity": 3,
        });
        let (posted, created) = self
            .check(
                checks::ORDER_POSTED,
                "POST /orders".into(),
                self.post_order(&sent),
            )
            .await;
        let Some(created) = created else {
            let why = format!(
                "not run: no order was created (see \"{}\")",
                checks::ORDER_POSTED
            );
            let skipped = |name| CheckResult {
                name,
                request: "GET /orders/{id}".into(),
                problems: vec![why.clone()],
                elapsed: Duration::ZERO,
            };
            return vec![
                posted,
                skipped(checks::ORDER_READ_BACK),
                skipped(checks::ORDER_PROCESSED),
            ];
        };
        let path = format!("orders/{}", created.id);
        let request = format!("GET /{path}");
        let (read_back, _) = self
            .check(
                checks::ORDER_READ_BACK,
                request.clone(),
                self.read_back(&path, &created),
            )
            .await;
        let (processed, _) = self
            .check(checks::ORDER_PROCESSED, request, self.processed(&path))
            .await;
        vec![posted, read_back, processed]
    }

    /// 201 with the order as sent, status `received`, and its Location.
    async fn post_order(&self, sent: &Value) -> Step<Created> {
        let answer = self.send(Method::POST, "orders", Some(sent)).await?;
        answer.expect_status(StatusCode::CREATED)?;
        let order = answer.json_object()?;
        let mut problems = Vec::new();
        for field in ["item", "quantity"] {
            if order.get(field) != sent.get(field) {
                problems.push(format!(
                    "{field} is {}, expected {} as posted",
                    shown_json(order.get(field)),
                    sent[field]
                ));
            }
        }
        let status = order.get("status").and_then(Value::as_str);
        if status != Some("received") {
            problems.push(format!(
                "status is {}, expected \"received\"",
                shown(status)
            ));
        }
        let created_at = order.get("createdAt").and_then(Value::as_str);
        if created_at.is_none_or(|t| chrono::DateTime::parse_from_rfc3339(t).is_err()) {
            problems.push(format!(
                "createdAt is {}, expected an RFC 3339 time",
                shown(created_at)
            ));
        }
        let id = order.get("id").and_then(Value::as_str);
        let Some(id) = id.filter(|id| uuid::Uuid::parse_str(id).is_ok()) else {
            problems.push(format!("id is {}, expected a UUID", shown(id)));
            return Err(problems);
        };
        let location = answer.location.as_deref();
        if !location.is_some_and(|l| l.ends_with(&format!("/orders/{id}"))) {
            problems.push(format!(
                "Location is {}, expected a URL ending in /orders/{id}",
                shown(location)
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Created {
            id: id.to_string(),
            order,
        })
    }

    /// 200 with the order as created (its status may already be `processed`).
    async fn read_back(&self, path: &str, created: &Created) -> Step<()> {
        let answer = self.send(Method::GET, path, None).await?;
        answer.expect_status(StatusCode::OK)?;
        let order = answer.json_object()?;
        let mut problems = Vec::new();
        for field in ["id", "item", "quantity", "createdAt"] {
            if order.get(field) != created.order.get(field) {
                problems.push(format!(
                    "{field} is {}, expected {} as created",
                    shown_json(order.get(field)),
                    shown_json(created.order.get(field))
                ));
            }
        }
        let status = order.get("status").and_then(Value::as_str);
        if !matches!(status, Some("received" | "processed")) {
            problems.push(format!(
                "status is {}, expected \"received\" or \"processed\"",
                shown(status)
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Reads the order until its status is `processed` (with a
    /// `processedAt`): the worker consumed the queue message.
    async fn processed(&self, path: &str) -> Step<()> {
        let started = tokio::time::Instant::now();
        let give_up = started + self.config.processing_timeout;
        let mut reads = 0;
        loop {
            reads += 1;
            let seen = match self.send(Method::GET, path, None).await {
                Ok(answer) if answer.status == StatusCode::OK => match answer.json_object() {
                    Ok(order) => {
                        let status = order.get("status").and_then(Value::as_str);
                        let processed_at = order.get("processedAt").and_then(Value::as_str);
                        match (status, processed_at) {
                            (Some("processed"), Some(t))
                                if chrono::DateTime::parse_from_rfc3339(t).is_ok() =>
                            {
                                return Ok(());
                            }
                            (Some("processed"), other) => {
                                return Err(vec![format!(
                                    "status is \"processed\" but processedAt is {}, expected an RFC 3339 time",
                                    shown(other)
                                )]);
                            }
                            _ => format!("status {}", shown(status)),
                        }
                    }
                    Err(problems) => problems.join("; "),
                },
                Ok(answer) => format!("{}; body: {}", answer.status, excerpt(&answer.body)),
                Err(problems) => problems.join("; "),
            };
            if tokio::time::Instant::now() + self.config.poll_interval > give_up {
                return Err(vec![format!(
                    "the order was not processed within {:.1} s ({reads} reads; last seen: {seen}): \
                     the worker did not consume its queue message; see orders-worker's logs, \
                     its SQS event source mapping and the dead-letter queue",
                    self.config.processing_timeout.as_secs_f64()
                )]);
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    async fn unknown_order(&self) -> CheckResult {
        let path = format!("orders/{}", uuid::Uuid::new_v4());
        let step = async {
            let answer = self.send(Method::GET, &path, None).await?;
            answer.expect_status(StatusCode::NOT_FOUND)?;
            let body = answer.json_object()?;
            match body.get("error").and_then(Value::as_str) {
                Some(e) if !e.trim().is_empty() => Ok(()),
                _ => Err(vec![format!(
                    "the 404 has no \"error\" string: {}",
                    excerpt(&answer.body)
                )]),
            }
        };
        self.check(checks::UNKNOWN_ORDER, format!("GET /{path}"), step)
            .await
            .0
    }

    async fn invalid_order(&self) -> CheckResult {
        let step = async {
            let sent = json!({"item": "", "quantity": 1});
            let answer = self.send(Method::POST, "orders", Some(&sent)).await?;
            answer.expect_status(StatusCode::BAD_REQUEST)?;
            let body = answer.json_object()?;
            let field = body.get("field").and_then(Value::as_str);
            let message = body.get("message").and_then(Value::as_str);
            if field == Some("item") && message.is_some_and(|m| m.contains("item")) {
                Ok(())
            } else {
                Err(vec![format!(
                    "the 400 does not name the field \"item\" (field {}, message {})",
                    shown(field),
                    shown(message)
                )])
            }
        };
        self.check(
            checks::INVALID_ORDER,
            "POST /orders (empty item)".into(),
            step,
        )
        .await
        .0
    }
}

/// The order the API created.
struct Created {
    id: String,
    order: serde_json::Map<String, Value>,
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    truncate_chars(&cause.to_string(), 300).into_owned()
}

/// A string value for messages: quoted and echoed, or `missing`.
fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_string(), |v| format!("{:?}", echo(v)))
}

/// A JSON value for messages, echoed, or `missing`.
fn shown_json(value: Option<&Value>) -> String {
    value.map_or_else(
        || "missing".to_string(),
        |v| echo(&v.to_string()).into_owned(),
    )
}

/// The start of a body, for messages (capped by `echo`).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty)".to_string()
    } else {
        format!("{:?}", echo(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_is_added_so_orders_is_appended() {
        let config = SuiteConfig::new(
            "https://abc.execute-api.eu-west-1.amazonaws.com/Prod",
            "beta",
        )
        .unwrap();
        assert_eq!(
            config.api_url.join("orders").unwrap().as_str(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/Prod/orders"
        );
    }

    #[test]
    fn a_url_without_scheme_is_rejected_with_an_example() {
        let error = SuiteConfig::new("abc.execute-api.amazonaws.com", "beta").unwrap_err();
        assert!(error.to_string().contains("e.g. https://"), "{error}");
    }

    #[test]
    fn a_non_http_scheme_and_an_empty_stage_are_rejected() {
        assert!(matches!(
            SuiteConfig::new("ftp://host/", "beta"),
            Err(ConfigError::BadScheme { .. })
        ));
        assert_eq!(
            SuiteConfig::new("http://h/", " ").unwrap_err(),
            ConfigError::EmptyStage
        );
    }

    #[test]
    fn a_body_excerpt_is_capped() {
        let shown = excerpt("x".repeat(10_000).as_bytes());
        assert!(shown.chars().count() < 200, "{shown}");
    }
}

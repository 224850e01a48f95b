//! The TimeService acceptance suite (the API in `docs/contracts.md`).

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use chrono_tz::{OffsetName, Tz};
use codepipeline_job::gate::{CheckResult, SuiteReport};
use codepipeline_job::{echo, truncate_chars};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Default time one request may take, connection included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time the whole suite may take.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// How far the API's clock may be from the runner's.
pub const DEFAULT_CLOCK_TOLERANCE: Duration = Duration::from_secs(5);

/// The header every response must carry, naming the stage that answered.
pub const STAGE_HEADER: &str = "x-service-stage";

/// Where and how to run the suite.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Base URL, always ending in `/`.
    pub api_url: Url,
    /// What every response's `x-service-stage` must say.
    pub stage: String,
    pub request_timeout: Duration,
    pub deadline: Duration,
    pub clock_tolerance: Duration,
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
    #[error("the expected stage is empty; pass the stage name the API reports in x-service-stage")]
    EmptyStage,
}

impl SuiteConfig {
    /// The default timeouts for `api_url` (a trailing `/` is added if missing,
    /// so `/time` is appended, not substituted) and `stage`.
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
            deadline: DEFAULT_DEADLINE,
            clock_tolerance: DEFAULT_CLOCK_TOLERANCE,
        })
    }

    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn with_clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.clock_tolerance = tolerance;
        self
    }
}

/// What a check expects of its response.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// 200, UTC, the current time.
    CurrentTime,
    /// 200 for the canonical zone, with the offset the runner computes.
    Zone { canonical: &'static str },
    /// 400 with a JSON error echoing the zone as sent.
    UnknownZone { sent: &'static str },
    /// A JSON error with this status.
    Error(StatusCode),
    /// The service's own 404 for a path it does not serve (`GET /`): proves
    /// the route reaches the function, not API Gateway's `{"message": "Not Found"}`.
    ServiceNotFound,
}

/// One request and what its answer must be.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub method: Method,
    /// Relative to the API URL, sent exactly as written (percent-escapes kept).
    pub path: &'static str,
    expect: Expect,
}

impl Check {
    fn zone(name: &'static str, path: &'static str, canonical: &'static str) -> Self {
        Self {
            name,
            method: Method::GET,
            path,
            expect: Expect::Zone { canonical },
        }
    }

    /// `GET /time`, how it appears in messages.
    pub fn request(&self) -> String {
        format!("{} /{}", self.method, self.path)
    }
}

/// The suite. Expected offsets are never written down: the runner computes
/// them with chrono-tz at the instant the API reports.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "current time",
            method: Method::GET,
            path: "time",
            expect: Expect::CurrentTime,
        },
        Check::zone("slashed zone", "time/Asia/Tokyo", "Asia/Tokyo"),
        Check::zone(
            "three-part zone",
            "time/America/Argentina/Buenos_Aires",
            "America/Argentina/Buenos_Aires",
        ),
        Check::zone(
            "percent-encoded zone",
            "time/Asia%2FKathmandu",
            "Asia/Kathmandu",
        ),
        Check::zone(
            "lower-case zone",
            "time/australia/lord_howe",
            "Australia/Lord_Howe",
        ),
        Check::zone("old link name", "time/US/Eastern", "America/New_York"),
        Check::zone("renamed zone", "time/Asia/Calcutta", "Asia/Kolkata"),
        Check {
            name: "unknown zone",
            method: Method::GET,
            path: "time/Mars/Olympus_Mons",
            expect: Expect::UnknownZone {
                sent: "Mars/Olympus_Mons",
            },
        },
        Check {
            name: "root path",
            method: Method::GET,
            path: "",
            expect: Expect::ServiceNotFound,
        },
        Check {
            name: "unknown path",
            method: Method::GET,
            path: "no-such-path",
            expect: Expect::Error(StatusCode::NOT_FOUND),
        },
        Check {
            name: "wrong method",
            method: Method::POST,
            path: "time",
            expect: Expect::Error(StatusCode::METHOD_NOT_ALLOWED),
        },
    ]
}

/// Runs every check concurrently and collects the results. Never takes much
/// longer than `config.deadline`: checks still running then are failed.
pub async fn run_suite(config: &SuiteConfig) -> SuiteReport {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + config.deadline;
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(3)))
        .user_agent(concat!("run-tests/", env!("CARGO_PKG_VERSION")))
        .build();
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            // Only a broken TLS backend gets here; every check fails with it.
            let why = format!("could not build the HTTP client: {}", error_chain(&e));
            return SuiteReport {
                api_url: config.api_url.to_string(),
                stage: config.stage.clone(),
                results: checks()
                    .into_iter()
                    .map(|c| CheckResult {
                        name: c.name,
                        request: c.request(),
                        problems: vec![why.clone()],
                        elapsed: Duration::ZERO,
                    })
                    .collect(),
                elapsed: started.elapsed(),
            };
        }
    };
    let runs = checks().into_iter().map(|check| {
        let client = client.clone();
        async move {
            let check_started = Instant::now();
            let problems =
                match tokio::time::timeout_at(deadline, run_check(&client, config, &check)).await {
                    Ok(problems) => problems,
                    Err(_) => vec![format!(
                        "did not finish before the suite's {:.1} s deadline",
                        config.deadline.as_secs_f64()
                    )],
                };
            CheckResult {
                name: check.name,
                request: check.request(),
                problems,
                elapsed: check_started.elapsed(),
            }
        }
    });
    let results = futures::future::join_all(runs).await;
    SuiteReport {
        api_url: config.api_url.to_string(),
        stage: config.stage.clone(),
        results,
        elapsed: started.elapsed(),
    }
}

/// Runs one check; returns its problems (none: passed).
async fn run_check(client: &reqwest::Client, config: &SuiteConfig, check: &Check) -> Vec<String> {
    let url = match config.api_url.join(check.path) {
        Ok(url) => url,
        Err(e) => return vec![format!("cannot build the URL: {e}")],
    };
    let sent_at = Utc::now();
    let response = match client.request(check.method.clone(), url).send().await {
        Ok(response) => response,
        Err(e) => return vec![describe_request_error(&e, config)],
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return vec![describe_request_error(&e, config)],
    };
    let received_at = Utc::now();

    let mut problems = header_problems(&headers, &config.stage);
    let expected_status = match check.expect {
        Expect::CurrentTime | Expect::Zone { .. } => StatusCode::OK,
        Expect::UnknownZone { .. } => StatusCode::BAD_REQUEST,
        Expect::Error(status) => status,
        Expect::ServiceNotFound => StatusCode::NOT_FOUND,
    };
    if status != expected_status {
        problems.push(format!(
            "answered {status}, expected {expected_status}; body: {}",
            excerpt(&body)
        ));
        return problems;
    }
    let json: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            problems.push(format!("body is not a JSON object: {}", excerpt(&body)));
            return problems;
        }
    };
    let window = ClockWindow {
        sent_at,
        received_at,
        tolerance: config.clock_tolerance,
    };
    match &check.expect {
        Expect::CurrentTime => time_problems(&json, "Etc/UTC", &window, &mut problems),
        Expect::Zone { canonical } => time_problems(&json, canonical, &window, &mut problems),
        Expect::UnknownZone { sent } => {
            error_problems(&json, &mut problems);
            match json.get("timeZone").and_then(Value::as_str) {
                Some(zone) if zone == *sent => {}
                Some(zone) => problems.push(format!(
                    "timeZone is {:?}, expected the zone as sent, {sent:?}",
                    echo(zone)
                )),
                None => problems.push("error body has no timeZone (the zone as sent)".into()),
            }
        }
        Expect::Error(_) => error_problems(&json, &mut problems),
        Expect::ServiceNotFound => service_not_found_problems(&json, &mut problems),
    }
    problems
}

/// The service's 404 names the routes it serves; API Gateway's own 404
/// (`{"message": "Not Found"}`) means the route never reached the function.
fn service_not_found_problems(json: &Value, problems: &mut Vec<String>) {
    if json.get("error").is_none() && json.get("message").is_some() {
        problems.push(format!(
            "the 404 came from API Gateway, not the service ({}): the API does not route this \
             path to the function; check the app template's routes",
            excerpt(json.to_string().as_bytes())
        ));
        return;
    }
    match json.get("error").and_then(Value::as_str) {
        Some(error) if error.contains("/time") => {}
        Some(error) => problems.push(format!(
            "error {} does not name the API's routes (GET /time, GET /time/{{timeZone}})",
            shown(Some(error))
        )),
        None => problems.push(format!(
            "body has no \"error\" string: {}",
            excerpt(json.to_string().as_bytes())
        )),
    }
}

/// The runner's clock around a request.
struct ClockWindow {
    sent_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    tolerance: Duration,
}

fn header_problems(headers: &reqwest::header::HeaderMap, stage: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = echo(stage);
    match headers.get(STAGE_HEADER).map(|v| v.to_str()) {
        Some(Ok(value)) if value == stage => {}
        Some(Ok(value)) => problems.push(format!(
            "{STAGE_HEADER} is {:?}, expected {expected:?} (is this URL the {expected} stage's API?)",
            echo(value)
        )),
        Some(Err(_)) => problems.push(format!(
            "{STAGE_HEADER} is not readable text, expected {expected:?}"
        )),
        None => problems.push(format!("no {STAGE_HEADER} header, expected {expected:?}")),
    }
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !content_type.is_some_and(|v| v.starts_with("application/json")) {
        problems.push(format!(
            "content-type is {}, expected application/json",
            shown(content_type)
        ));
    }
    let cache_control = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok());
    if !cache_control.is_some_and(|v| v.contains("no-store")) {
        problems.push(format!(
            "cache-control is {}, expected no-store",
            shown(cache_control)
        ));
    }
    problems
}

fn error_problems(json: &Value, problems: &mut Vec<String>) {
    match json.get("error") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        _ => problems.push(format!(
            "body has no non-empty \"error\" string: {}",
            excerpt(json.to_string().as_bytes())
        )),
    }
}

/// The checks of a time answer for `zone` (canonical name).
fn time_problems(json: &Value, zone: &str, window: &ClockWindow, problems: &mut Vec<String>) {
    let field = |name: &str| json.get(name).and_then(Value::as_str);
    match field("timeZone") {
        Some(z) if z == zone => {}
        other => problems.push(format!("timeZone is {}, expected {zone:?}", shown(other))),
    }
    let Some(time_value) = field("time") else {
        problems.push("no \"time\" string".into());
        return;
    };
    let time_text = &*echo(time_value);
    let time = match DateTime::parse_from_rfc3339(time_value) {
        Ok(time) => time,
        Err(e) => {
            problems.push(format!("time {time_text:?} is not RFC 3339 ({e})"));
            return;
        }
    };
    if time_value.contains('.') {
        problems.push(format!(
            "time {time_text:?} has fractional seconds, expected whole seconds"
        ));
    }
    let instant = time.with_timezone(&Utc);
    match expected_offset(zone, instant) {
        Ok(expected) => {
            let expected_text = format_offset(expected);
            if time.offset() != &expected {
                problems.push(format!(
                    "time {time_text:?} carries offset {}, expected {expected_text} for {zone} at that instant (computed by the runner)",
                    format_offset(*time.offset())
                ));
            }
            match field("utcOffset") {
                Some(offset) if offset == expected_text => {}
                other => problems.push(format!(
                    "utcOffset is {}, expected {expected_text:?} for {zone} (computed by the runner)",
                    shown(other)
                )),
            }
        }
        Err(why) => problems.push(why),
    }
    let earliest = window.sent_at - window.tolerance - chrono::Duration::seconds(1);
    let latest = window.received_at + window.tolerance;
    if instant < earliest {
        let behind = (window.sent_at - instant).num_milliseconds() as f64 / 1000.0;
        problems.push(format!(
            "time {time_text} is {behind:.1} s behind the runner's clock (tolerance {} s)",
            window.tolerance.as_secs_f64()
        ));
    } else if instant > latest {
        let ahead = (instant - window.received_at).num_milliseconds() as f64 / 1000.0;
        problems.push(format!(
            "time {time_text} is {ahead:.1} s ahead of the runner's clock (tolerance {} s)",
            window.tolerance.as_secs_f64()
        ));
    }
    match json.get("epochMillis").and_then(Value::as_i64) {
        Some(millis) if (millis - instant.timestamp_millis()).abs() < 1000 => {}
        Some(millis) => problems.push(format!(
            "epochMillis {millis} is not the instant of time {time_text}"
        )),
        None => problems.push("no integer \"epochMillis\"".into()),
    }
    // chrono-tz names only zones with a letter abbreviation (EST, JST); for
    // the others (-03, +0545) the API may render any text.
    match (field("abbreviation"), expected_abbreviation(zone, instant)) {
        (None, _) => problems.push("no \"abbreviation\" string".into()),
        (Some(got), Some(expected)) if got != expected.as_str() => problems.push(format!(
            "abbreviation is {:?}, expected {expected:?} for {zone} at that instant (computed by the runner)",
            echo(got)
        )),
        _ => {}
    }
}

/// The zone's offset at `instant`, from the runner's own chrono-tz.
pub fn expected_offset(zone: &str, instant: DateTime<Utc>) -> Result<FixedOffset, String> {
    let tz: Tz = zone
        .parse()
        .map_err(|_| format!("the runner's chrono-tz does not know {zone}"))?;
    Ok(tz.offset_from_utc_datetime(&instant.naive_utc()).fix())
}

/// The zone's abbreviation at `instant` when chrono-tz has a letter one.
pub fn expected_abbreviation(zone: &str, instant: DateTime<Utc>) -> Option<String> {
    let tz: Tz = zone.parse().ok()?;
    tz.offset_from_utc_datetime(&instant.naive_utc())
        .abbreviation()
        .map(str::to_string)
}

/// `±HH:MM`.
pub fn format_offset(offset: FixedOffset) -> String {
    let seconds = offset.local_minus_utc();
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

fn describe_request_error(error: &reqwest::Error, config: &SuiteConfig) -> String {
    if error.is_timeout() {
        format!(
            "no complete answer within {:.1} s (the per-request timeout)",
            config.request_timeout.as_secs_f64()
        )
    } else if error.is_builder() {
        let url = error.url().map_or("?", |u| u.as_str());
        format!(
            "could not build the request for {} ({}); is the API URL right? It is {} characters long",
            echo(url),
            root_cause(error),
            config.api_url.as_str().chars().count()
        )
    } else if error.is_connect() {
        let host = echo(config.api_url.host_str().unwrap_or("?"));
        let port = config.api_url.port_or_known_default().unwrap_or(0);
        format!(
            "could not connect to {host}:{port} ({}); is the API deployed and is the URL right?",
            root_cause(error)
        )
    } else {
        // reqwest's message quotes the whole URL: shown echoed, the causes after it kept.
        let mut text = error_chain(error);
        if let Some(url) = error.url() {
            text = text.replace(url.as_str(), &echo(url.as_str()));
        }
        format!("request failed: {}", truncate_chars(&text, 1000))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A field or header value for messages: quoted, or `missing`.
fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_string(), |v| format!("{:?}", echo(v)))
}

/// The start of a body, for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty)".to_string()
    } else {
        format!("{:?}", truncate_chars(text, 200))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_is_added_so_time_is_appended() {
        let config = SuiteConfig::new(
            "https://abc.execute-api.eu-west-1.amazonaws.com/Prod",
            "beta",
        )
        .unwrap();
        assert_eq!(
            config.api_url.join("time").unwrap().as_str(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/Prod/time"
        );
    }

    #[test]
    fn percent_escapes_in_check_paths_are_sent_as_written() {
        let config = SuiteConfig::new("http://127.0.0.1:3000/", "local").unwrap();
        assert_eq!(
            config.api_url.join("time/Asia%2FKathmandu").unwrap().path(),
            "/time/Asia%2FKathmandu"
        );
    }

    #[test]
    fn a_url_without_scheme_is_rejected_with_an_example() {
        let error = SuiteConfig::new("abc.execute-api.amazonaws.com", "beta").unwrap_err();
        assert!(error.to_string().contains("e.g. https://"), "{error}");
    }

    #[test]
    fn a_non_http_scheme_is_rejected() {
        assert!(matches!(
            SuiteConfig::new("ftp://host/", "beta"),
            Err(ConfigError::BadScheme { .. })
        ));
    }

    #[test]
    fn an_empty_stage_is_rejected() {
        assert_eq!(
            SuiteConfig::new("http://h/", " ").unwrap_err(),
            ConfigError::EmptyStage
        );
    }

    #[test]
    fn offsets_come_from_chrono_tz_at_the_given_instant() {
        let winter = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 15, 12, 0, 0).unwrap();
        assert_eq!(
            format_offset(expected_offset("America/New_York", winter).unwrap()),
            "-05:00"
        );
        assert_eq!(
            format_offset(expected_offset("America/New_York", summer).unwrap()),
            "-04:00"
        );
        assert_eq!(
            format_offset(expected_offset("Asia/Kathmandu", winter).unwrap()),
            "+05:45"
        );
    }

    #[test]
    fn the_suite_covers_every_kind_of_zone_and_error() {
        let names: Vec<&str> = checks().iter().map(|c| c.name).collect();
        for expected in [
            "current time",
            "slashed zone",
            "three-part zone",
            "percent-encoded zone",
            "lower-case zone",
            "old link name",
            "unknown zone",
            "root path",
            "unknown path",
        ] {
            assert!(names.contains(&expected), "missing {expected}");
        }
    }

    #[test]
    fn every_expected_zone_is_known_to_the_runner() {
        for check in checks() {
            if let Expect::Zone { canonical } = check.expect {
                assert!(
                    expected_offset(canonical, Utc::now()).is_ok(),
                    "{canonical}"
                );
            }
        }
    }
}

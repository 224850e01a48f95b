//! The HTTP API: one axum [`Router`] served unchanged on Lambda and locally.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use chrono::{DateTime, Offset, SecondsFormat, Utc};
use chrono_tz::{OffsetName, Tz};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::zones::{self, LookupError, MAX_ZONE_NAME_LEN};

/// The header that tells a client which stage answered.
pub const STAGE_HEADER: &str = "x-service-stage";

/// Where the current time comes from; tests pin it.
pub type Clock = fn() -> DateTime<Utc>;

#[derive(Clone)]
struct AppState {
    stage: HeaderValue,
    clock: Clock,
}

/// The TimeService router, tagging every response with `stage`.
pub fn app(stage: impl Into<String>) -> Router {
    app_with_clock(stage, Utc::now)
}

/// [`app`] with the clock replaced, for tests.
pub fn app_with_clock(stage: impl Into<String>, clock: Clock) -> Router {
    let stage = stage.into();
    // main() validates STAGE; a library caller passing garbage still gets a
    // working service whose header says so.
    let stage =
        HeaderValue::from_str(&stage).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    zones::warm_up();
    let state = Arc::new(AppState { stage, clock });
    Router::new()
        .route("/time", get(utc_time))
        .route("/time/", get(empty_zone))
        .route("/time/{*zone}", get(zone_time))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            common_headers,
        ))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The body of a successful answer.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TimeResponse {
    /// Canonical IANA name of the zone.
    pub time_zone: &'static str,
    /// RFC 3339, whole seconds, with the zone's offset.
    pub time: String,
    /// The zone's offset from UTC at that instant, `±HH:MM`.
    pub utc_offset: String,
    /// The zone's abbreviation at that instant (`EST`, `CET`, `+03`).
    pub abbreviation: String,
    /// The same instant in milliseconds since the Unix epoch.
    pub epoch_millis: i64,
}

impl TimeResponse {
    fn at(now: DateTime<Utc>, tz: Tz, canonical: &'static str) -> Self {
        let local = now.with_timezone(&tz);
        let offset = local.offset();
        let seconds = offset.fix().local_minus_utc();
        Self {
            time_zone: canonical,
            time: local.to_rfc3339_opts(SecondsFormat::Secs, false),
            utc_offset: format_offset(seconds),
            abbreviation: offset
                .abbreviation()
                .map_or_else(|| numeric_abbreviation(seconds), str::to_owned),
            epoch_millis: now.timestamp_millis(),
        }
    }
}

/// tzdata's `%z` form, for zones with no letter abbreviation: `-03`, `+0545`.
pub fn numeric_abbreviation(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    match minutes % 60 {
        0 => format!("{sign}{:02}", minutes / 60),
        m => format!("{sign}{:02}{m:02}", minutes / 60),
    }
}

/// `±HH:MM` for an offset in seconds (tzdata offsets since 1970 are whole minutes).
pub fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Every way a request can fail; each becomes a 4xx with a JSON body.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiError {
    /// `/time/` with nothing after it.
    EmptyZone,
    /// The zone was not valid percent-encoded UTF-8.
    BadEncoding {
        sent: String,
    },
    /// Not a zone we know.
    UnknownZone {
        sent: String,
        suggestion: Option<&'static str>,
    },
    NotFound,
    MethodNotAllowed(Method),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggestion: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, time_zone, suggestion) = match &self {
            ApiError::EmptyZone => (
                StatusCode::BAD_REQUEST,
                "missing time zone: use /time for UTC or /time/{timeZone}, e.g. /time/Europe/London"
                    .to_owned(),
                Some(""),
                None,
            ),
            ApiError::BadEncoding { sent } => (
                StatusCode::BAD_REQUEST,
                "time zone is not valid percent-encoded UTF-8: send an IANA name such as America/New_York"
                    .to_owned(),
                Some(sent.as_str()),
                None,
            ),
            ApiError::UnknownZone { sent, suggestion } => (
                StatusCode::BAD_REQUEST,
                match suggestion {
                    Some(s) => format!("unknown time zone; did you mean {s}?"),
                    None => "unknown time zone: use an IANA name such as America/New_York or Europe/London"
                        .to_owned(),
                },
                Some(sent.as_str()),
                *suggestion,
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "no such resource: the API serves GET /time and GET /time/{timeZone}".to_owned(),
                None,
                None,
            ),
            ApiError::MethodNotAllowed(method) => (
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} not allowed: the API serves GET only"),
                None,
                None,
            ),
        };
        let body = ErrorBody {
            error,
            time_zone,
            suggestion,
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::MethodNotAllowed(_) = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        response
    }
}

/// How much of a client's unusable input we echo back.
const ECHO_LIMIT: usize = 2 * MAX_ZONE_NAME_LEN;

fn echo(sent: &str) -> String {
    match sent.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &sent[..cut]),
        None => sent.to_owned(),
    }
}

async fn utc_time(State(state): State<Arc<AppState>>) -> Json<TimeResponse> {
    Json(TimeResponse::at((state.clock)(), Tz::UTC, "Etc/UTC"))
}

async fn empty_zone() -> ApiError {
    ApiError::EmptyZone
}

/// `GET /time/{*zone}`. The zone is taken from the raw path rather than a
/// `Path` extractor so that every decoding failure is ours to report as JSON,
/// and so `America%2FNew_York` and `America/New_York` are the same request.
async fn zone_time(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<TimeResponse>, ApiError> {
    let raw = uri.path().strip_prefix("/time/").unwrap_or_default();
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    let zone = zone_from_raw(raw)?;
    let resolved = zones::resolve(&zone).map_err(|e| match e {
        LookupError::Empty => ApiError::EmptyZone,
        LookupError::TooLong => ApiError::UnknownZone {
            sent: echo(&zone),
            suggestion: None,
        },
        LookupError::Unknown { suggestion } => ApiError::UnknownZone {
            sent: echo(&zone),
            suggestion,
        },
    })?;
    Ok(Json(TimeResponse::at(
        (state.clock)(),
        resolved.tz,
        resolved.canonical,
    )))
}

fn zone_from_raw(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::EmptyZone);
    }
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    // A malformed escape ("%zz", a trailing "%") is an error, not a literal.
    let bytes = raw.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let decoded = percent_decode_str(raw).decode_utf8();
    match decoded {
        Ok(zone) if !malformed => Ok(zone.into_owned()),
        _ => Err(ApiError::BadEncoding { sent: echo(raw) }),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method)
}

/// Adds the headers every response carries, errors included.
async fn common_headers(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(STAGE_HEADER, state.stage.clone());
    response
}

/// One log line per request: method, path, status, latency.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = echo(req.uri().path());
    let response = next.run(req).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_format_as_signed_hours_and_minutes() {
        assert_eq!(format_offset(0), "+00:00");
        assert_eq!(format_offset(-5 * 3600), "-05:00");
        assert_eq!(format_offset(5 * 3600 + 1800), "+05:30");
        assert_eq!(format_offset(-(9 * 3600 + 30 * 60)), "-09:30");
    }

    #[test]
    fn zones_without_letters_get_a_numeric_abbreviation() {
        assert_eq!(numeric_abbreviation(-3 * 3600), "-03");
        assert_eq!(numeric_abbreviation(5 * 3600 + 45 * 60), "+0545");
        assert_eq!(numeric_abbreviation(0), "+00");
    }

    #[test]
    fn malformed_escapes_are_refused() {
        assert!(matches!(
            zone_from_raw("Europe%2"),
            Err(ApiError::BadEncoding { .. })
        ));
        assert!(matches!(
            zone_from_raw("%zzEurope"),
            Err(ApiError::BadEncoding { .. })
        ));
        assert!(matches!(
            zone_from_raw("%ff%fe"),
            Err(ApiError::BadEncoding { .. })
        ));
    }

    #[test]
    fn encoded_slashes_decode() {
        assert_eq!(
            zone_from_raw("America%2FNew_York").unwrap(),
            "America/New_York"
        );
    }

    #[test]
    fn echo_truncates_long_input() {
        let long = "x".repeat(10_000);
        let echoed = echo(&long);
        assert_eq!(echoed.chars().count(), ECHO_LIMIT + 1);
        assert!(echoed.ends_with('…'));
    }
}

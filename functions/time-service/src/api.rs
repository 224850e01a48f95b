//! The HTTP API: one axum [`Router`] served unchanged on Lambda and locally.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use chrono::{DateTime, Datelike, FixedOffset, Offset, SecondsFormat, Timelike, Utc};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::echo::echo;
use crate::finish::FinishLayer;
pub use crate::finish::STAGE_HEADER;
use crate::zones::{self, LookupError, Resolved};

/// Where the current time comes from; tests pin it.
pub type Clock = fn() -> DateTime<Utc>;

#[derive(Clone)]
struct AppState {
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
    let state = Arc::new(AppState { clock });
    Router::new()
        .route("/time", get(utc_time))
        .route("/time/", get(empty_zone))
        .route("/time/{*zone}", get(zone_time))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(FinishLayer { stage })
        .with_state(state)
}

/// A successful answer: one instant in one zone. Its JSON body has
/// `timeZone`, `time` (RFC 3339, whole seconds, with the zone's offset),
/// `utcOffset` (`±HH:MM`), `abbreviation` and `epochMillis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeResponse {
    /// Canonical IANA name of the zone.
    pub time_zone: &'static str,
    /// The instant, at the zone's offset from UTC at that instant.
    pub local: DateTime<FixedOffset>,
    /// The zone's abbreviation at that instant (`EST`, `CET`, `+03`).
    pub abbreviation: &'static str,
}

impl TimeResponse {
    fn at(now: DateTime<Utc>, zone: Resolved) -> Self {
        let offset = zone.zone.offset_at(now.timestamp());
        // tzdb offsets are within ±24 h (build.rs checks), so this is always Some.
        let fixed = FixedOffset::east_opt(offset.seconds).unwrap_or(Utc.fix());
        Self {
            time_zone: zone.canonical,
            local: now.with_timezone(&fixed),
            abbreviation: offset.abbreviation,
        }
    }

    /// The JSON body. It is written by hand, the hottest code in the
    /// service: zone names and abbreviations come from tzdata and need no
    /// escaping (build.rs refuses any that would), and the numbers are
    /// formatted without `core::fmt`, which together measured about a fifth
    /// of the server's own CPU per request with serde_json and `Display`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        out.push_str(r#"{"timeZone":""#);
        out.push_str(self.time_zone);
        out.push_str(r#"","time":""#);
        push_rfc3339(&mut out, &self.local);
        out.push_str(r#"","utcOffset":""#);
        push_offset(&mut out, self.local.offset().local_minus_utc());
        out.push_str(r#"","abbreviation":""#);
        out.push_str(self.abbreviation);
        out.push_str(r#"","epochMillis":"#);
        push_integer(&mut out, self.local.timestamp_millis());
        out.push('}');
        out
    }
}

impl IntoResponse for TimeResponse {
    /// The body only: the `finish` layer adds `content-type` and the other
    /// headers every response carries.
    fn into_response(self) -> Response {
        Body::from(self.to_json()).into_response()
    }
}

/// RFC 3339 with whole seconds: `2026-11-26T08:50:49-05:00`.
fn push_rfc3339(out: &mut String, time: &DateTime<FixedOffset>) {
    let local = time.naive_local();
    let offset = time.offset().local_minus_utc();
    if !(0..=9999).contains(&local.year()) || offset % 60 != 0 {
        // Not a reading of today's clocks (a year past 9999, or a local mean
        // time offset such as -0:44:30): chrono knows the extended year form
        // and rounds the offset to the minute.
        out.push_str(&time.to_rfc3339_opts(SecondsFormat::Secs, false));
        return;
    }
    push_digits(out, local.year().unsigned_abs(), 4);
    out.push('-');
    push_digits(out, local.month(), 2);
    out.push('-');
    push_digits(out, local.day(), 2);
    out.push('T');
    push_digits(out, local.hour(), 2);
    out.push(':');
    push_digits(out, local.minute(), 2);
    out.push(':');
    push_digits(out, local.second(), 2);
    push_offset(out, offset);
}

/// `±HH:MM` for an offset in seconds (tzdata offsets since 1970 are whole
/// minutes; seconds are dropped).
fn push_offset(out: &mut String, seconds: i32) {
    out.push(if seconds < 0 { '-' } else { '+' });
    let minutes = seconds.unsigned_abs() / 60;
    push_digits(out, minutes / 60, 2);
    out.push(':');
    push_digits(out, minutes % 60, 2);
}

/// The last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10_u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// A whole number in decimal.
fn push_integer(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    let mut digits = [0_u8; 20];
    let mut rest = value.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

/// `±HH:MM` for an offset in seconds, as `utcOffset` shows it.
pub fn format_offset(seconds: i32) -> String {
    let mut out = String::with_capacity(6);
    push_offset(&mut out, seconds);
    out
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

async fn utc_time(State(state): State<Arc<AppState>>) -> TimeResponse {
    TimeResponse::at((state.clock)(), zones::utc())
}

async fn empty_zone() -> ApiError {
    ApiError::EmptyZone
}

/// `GET /time/{*zone}`. The zone is taken from the raw path rather than a
/// `Path` extractor so that every decoding failure is ours to report as JSON,
/// and so `America%2FNew_York` and `America/New_York` are the same request.
async fn zone_time(State(state): State<Arc<AppState>>, uri: Uri) -> Result<TimeResponse, ApiError> {
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
    Ok(TimeResponse::at((state.clock)(), resolved))
}

fn zone_from_raw(raw: &str) -> Result<Cow<'_, str>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::EmptyZone);
    }
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
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
        Ok(zone) if !malformed => Ok(zone),
        _ => Err(ApiError::BadEncoding { sent: echo(raw) }),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method)
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
    fn time_is_rfc3339_in_whole_seconds_exactly_as_chrono_writes_it() {
        for (seconds, offset) in [
            (1_795_705_634, -5 * 3600),
            (0, 0),
            (1_700_000_000, 5 * 3600 + 45 * 60),
            (-2_000_000_000, -(9 * 3600 + 30 * 60)),
            (-62_167_219_200, 0),
            // 9999-12-31T23:59:59Z at +14:00 is in year 10000.
            (253_402_300_799, 14 * 3600),
            // Monrovia's mean time until 1972, -0:44:30: rounded to -00:45.
            (-2_000_000_000, -2670),
        ] {
            let local = DateTime::from_timestamp(seconds, 999_000_000)
                .unwrap()
                .with_timezone(&FixedOffset::east_opt(offset).unwrap());
            let mut written = String::new();
            push_rfc3339(&mut written, &local);
            assert_eq!(written, local.to_rfc3339_opts(SecondsFormat::Secs, false));
        }
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        for value in [
            0,
            7,
            10,
            -1,
            -86_400_000,
            1_795_705_634_823,
            i64::MAX,
            i64::MIN,
        ] {
            let mut written = String::new();
            push_integer(&mut written, value);
            assert_eq!(written, value.to_string());
        }
    }

    #[test]
    fn a_time_response_body_is_json_with_every_field() {
        let local = DateTime::from_timestamp(1_795_705_634, 823_000_000)
            .unwrap()
            .with_timezone(&FixedOffset::west_opt(5 * 3600).unwrap());
        let body = TimeResponse {
            time_zone: "America/New_York",
            local,
            abbreviation: "EST",
        };
        let json = body.to_json();
        assert_eq!(
            json,
            r#"{"timeZone":"America/New_York","time":"2026-11-26T10:07:14-05:00","utcOffset":"-05:00","abbreviation":"EST","epochMillis":1795705634823}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["epochMillis"], 1_795_705_634_823_i64);
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
}

//! Property: nothing a client can send makes the service answer 5xx, panic,
//! or answer without its JSON body and headers, neither through the router
//! (any method, path, query string, headers and body) nor through the Lambda
//! adapter (arbitrary API Gateway REST v1 and HTTP API v2 events through
//! `lambda_http`'s own adapter and our stage-prefix stripping).
//!
//! Every generated case is counted as built or rejected (a request the `http`
//! crate refuses to build, an event `lambda_http` cannot read). Each test
//! prints both counts (`cargo test -- --nocapture`) and fails when more than
//! [`MAX_REJECTED_PERCENT`] of its cases were rejected, so a generator that
//! drifts into producing unusable input cannot pass by testing nothing.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use http_body_util::BodyExt;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// The most cases a test may reject (unbuildable request, unreadable event),
/// in percent of the cases it generated.
const MAX_REJECTED_PERCENT: usize = 5;

/// Built and rejected cases of one test.
struct Tally {
    what: &'static str,
    built: AtomicUsize,
    rejected: AtomicUsize,
}

impl Tally {
    const fn new(what: &'static str) -> Self {
        Self {
            what,
            built: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
        }
    }

    fn count(&self, built: bool) {
        let counter = if built { &self.built } else { &self.rejected };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Prints the counts and fails when too many cases were rejected.
    fn check(&self) {
        let built = self.built.load(Ordering::Relaxed);
        let rejected = self.rejected.load(Ordering::Relaxed);
        let total = built + rejected;
        println!(
            "{}: {total} cases, {built} built and sent, {rejected} rejected before sending",
            self.what
        );
        assert!(total > 0, "{}: no case ran", self.what);
        assert!(
            rejected * 100 <= total * MAX_REJECTED_PERCENT,
            "{}: {rejected} of {total} cases were rejected before reaching the service \
             (at most {MAX_REJECTED_PERCENT}% may be)",
            self.what
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

// ---- generators -------------------------------------------------------------

/// Mostly GET, then every other standard method and made-up ones.
fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("GET".to_owned()),
        1 => Just("HEAD".to_owned()),
        1 => Just("POST".to_owned()),
        1 => Just("PUT".to_owned()),
        1 => Just("DELETE".to_owned()),
        1 => Just("PATCH".to_owned()),
        1 => Just("OPTIONS".to_owned()),
        1 => Just("TRACE".to_owned()),
        1 => "[A-Z]{1,12}",
    ]
}

/// Path segments mixing zone-like pieces, escapes (valid and not), dots and noise.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("time".to_owned()),
        Just("America".to_owned()),
        Just("New_York".to_owned()),
        Just("..".to_owned()),
        Just("%2F".to_owned()),
        Just("%".to_owned()),
        Just("%FF".to_owned()),
        Just("%C3%28".to_owned()),
        "[A-Za-z0-9_+\\-.~%]{0,24}",
        "(%[0-9A-Fa-f]{2}){1,8}",
    ]
}

/// Printable ASCII with the characters a request target cannot hold escaped.
fn escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b' ' | b'"' | b'<' | b'>' | b'`' | b'{' | b'}' | b'^' | b'|' | b'\\' | b'#' | b'?'
            | b'[' | b']' => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect()
}

/// A path: structured segments, or `/time/` and anything printable.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(segment(), 0..8).prop_map(|segs| format!("/{}", segs.join("/"))),
        "[ -~]{0,300}".prop_map(|rest| format!("/time/{}", escaped(&rest))),
    ]
}

/// A query string (without `?`), usually absent.
fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.4,
        prop_oneof![
            "[A-Za-z0-9=&+._~-]{0,40}",
            "[ -~]{0,60}".prop_map(|q| escaped(&q).replace('%', "%25")),
            "(zone=[A-Za-z/_]{0,20}&?){0,3}",
        ],
    )
}

/// Request headers a client may send (never `host`: API Gateway routes by it).
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        Just("accept".to_owned()),
        Just("content-type".to_owned()),
        Just("x-forwarded-for".to_owned()),
        Just("accept-encoding".to_owned()),
        Just("x-service-stage".to_owned()),
        Just("cookie".to_owned()),
        "x-[a-z0-9-]{1,20}",
    ];
    prop::collection::vec((name, "[!-~][ -~]{0,60}"), 0..6)
}

/// A request body: none, text, or any bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => "[ -~]{0,200}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

// ---- the router -------------------------------------------------------------

/// A request case for the router.
#[derive(Debug, Clone)]
struct HttpCase {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn http_case() -> impl Strategy<Value = HttpCase> {
    (method(), path(), query(), headers(), body()).prop_map(
        |(method, path, query, headers, body)| HttpCase {
            method,
            path,
            query,
            headers,
            body,
        },
    )
}

fn build(case: &HttpCase) -> Option<Request<Body>> {
    let uri = match &case.query {
        Some(q) => format!("{}?{q}", case.path),
        None => case.path.clone(),
    };
    let mut builder = Request::builder().method(case.method.as_str()).uri(uri);
    for (name, value) in &case.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(case.body.clone())).ok()
}

#[test]
fn no_request_makes_the_router_answer_5xx_or_without_its_json_and_headers() {
    static TALLY: Tally = Tally::new("router: methods, paths, queries, headers, bodies");
    let rt = runtime();
    let router = time_service::app_with_clock("beta", common::winter);
    runner(3000)
        .run(&http_case(), |case| {
            let Some(request) = build(&case) else {
                TALLY.count(false);
                return Ok(());
            };
            TALLY.count(true);
            let answered = std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async {
                    let response = router.clone().oneshot(request).await.unwrap();
                    let (parts, body) = response.into_parts();
                    let bytes = body.collect().await.unwrap().to_bytes();
                    (parts, bytes)
                })
            }));
            let Ok((parts, bytes)) = answered else {
                return Err(TestCaseError::fail(format!(
                    "the router panicked on {case:?}"
                )));
            };
            prop_assert!(parts.status.as_u16() < 500, "{case:?} -> {}", parts.status);
            prop_assert_eq!(
                parts.headers.get("content-type").map(|v| v.as_bytes()),
                Some(&b"application/json"[..]),
                "{:?}",
                case
            );
            prop_assert_eq!(
                parts.headers.get("x-service-stage").map(|v| v.as_bytes()),
                Some(&b"beta"[..]),
                "{:?}",
                case
            );
            if case.method != "HEAD" {
                let json: Result<Map<String, Value>, _> = serde_json::from_slice(&bytes);
                prop_assert!(
                    json.is_ok(),
                    "{:?}: body is not a JSON object: {:?}",
                    case,
                    bytes
                );
            }
            Ok(())
        })
        .unwrap();
    TALLY.check();
}

// ---- the Lambda adapter -----------------------------------------------------

/// Stages as API Gateway names them: HTTP API's `$default`, REST's `Prod`, ours.
fn stage() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$default".to_owned()),
        Just("Prod".to_owned()),
        Just("beta".to_owned()),
        Just("time".to_owned()),
        "[A-Za-z0-9_-]{1,12}",
    ]
}

/// A body as API Gateway passes it: text, or base64 of any bytes.
fn event_body() -> impl Strategy<Value = (Option<String>, bool)> {
    prop_oneof![
        2 => Just((None, false)),
        1 => "[ -~]{0,200}".prop_map(|text| (Some(text), false)),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|bytes| {
            (Some(base64::engine::general_purpose::STANDARD.encode(bytes)), true)
        }),
    ]
}

/// An API Gateway event case: which version, and what the client sent.
#[derive(Debug, Clone)]
struct EventCase {
    v2: bool,
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    stage: String,
    /// Whether the path carries the stage in front, as named stages send it.
    stage_in_path: bool,
    body: Option<String>,
    base64: bool,
}

fn event_case() -> impl Strategy<Value = EventCase> {
    (
        any::<bool>(),
        method(),
        path(),
        query(),
        headers(),
        stage(),
        any::<bool>(),
        event_body(),
    )
        .prop_map(
            |(v2, method, path, query, headers, stage, stage_in_path, (body, base64))| EventCase {
                v2,
                method,
                path,
                query,
                headers,
                stage,
                stage_in_path,
                body,
                base64,
            },
        )
}

const DOMAIN: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

fn header_map(headers: &[(String, String)]) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("host".into(), json!(DOMAIN));
    map.insert("x-forwarded-proto".into(), json!("https"));
    for (name, value) in headers {
        map.insert(name.clone(), json!(value));
    }
    map
}

fn event_json(case: &EventCase) -> Value {
    let path = if case.stage_in_path && case.stage != "$default" {
        format!("/{}{}", case.stage, case.path)
    } else {
        case.path.clone()
    };
    if case.v2 {
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": case.query.clone().unwrap_or_default(),
            "headers": header_map(&case.headers),
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": DOMAIN,
                "domainPrefix": "abc123",
                "http": {"method": case.method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "52.255.255.12", "userAgent": "fuzz"},
                "requestId": "JKJaXmPLvHcESHA=",
                "routeKey": "$default",
                "stage": case.stage,
                "time": "10/Mar/2020:05:16:23 +0000",
                "timeEpoch": 1583817383220u64
            },
            "body": case.body,
            "isBase64Encoded": case.base64
        })
    } else {
        let headers = header_map(&case.headers);
        let multi: Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        let (single_query, multi_query) = match &case.query {
            None => (Value::Null, Value::Null),
            Some(q) => {
                let pairs: Map<String, Value> = q
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (k.to_owned(), json!(v))
                    })
                    .collect();
                let multi: Map<String, Value> =
                    pairs.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
                (Value::Object(pairs), Value::Object(multi))
            }
        };
        json!({
            "resource": "/{proxy+}",
            "path": case.path,
            "httpMethod": case.method,
            "headers": headers,
            "multiValueHeaders": multi,
            "queryStringParameters": single_query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": {"proxy": case.path.trim_start_matches('/')},
            "stageVariables": null,
            "requestContext": {
                "resourceId": "2gxmpl",
                "resourcePath": "/{proxy+}",
                "httpMethod": case.method,
                "requestTime": "10/Mar/2020:00:03:59 +0000",
                "path": path,
                "accountId": "123456789012",
                "protocol": "HTTP/1.1",
                "stage": case.stage,
                "domainPrefix": "abc123",
                "requestTimeEpoch": 1583798639428u64,
                "requestId": "77375676-xmpl-4b79-853a-f982474efe18",
                "identity": {"sourceIp": "52.255.255.12", "userAgent": "fuzz"},
                "domainName": DOMAIN,
                "apiId": "abc123"
            },
            "body": case.body,
            "isBase64Encoded": case.base64
        })
    }
}

#[test]
fn no_api_gateway_event_makes_the_lambda_adapter_answer_5xx_or_without_json() {
    static TALLY: Tally = Tally::new("Lambda adapter: API Gateway v1 and v2 events");
    let rt = runtime();
    let router = time_service::app_with_clock("beta", common::winter);
    runner(1500)
        .run(&event_case(), |case| {
            let event = event_json(&case);
            let Ok(request) = serde_json::from_value::<LambdaRequest>(event.clone()) else {
                TALLY.count(false);
                return Ok(());
            };
            TALLY.count(true);
            let adapter = lambda_http::Adapter::from(time_service::lambda::service(router.clone()));
            let answered = std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(adapter.oneshot(LambdaEvent::new(request, Context::default())))
            }));
            let Ok(Ok(response)) = answered else {
                return Err(TestCaseError::fail(format!(
                    "the adapter panicked or failed on {case:?}"
                )));
            };
            let response = serde_json::to_value(&response).unwrap();
            let status = response["statusCode"].as_u64().unwrap_or(0);
            prop_assert!((200..500).contains(&status), "{:?} -> {}", case, response);
            let stage = if case.v2 {
                response["headers"]["x-service-stage"].clone()
            } else {
                response["multiValueHeaders"]["x-service-stage"][0].clone()
            };
            prop_assert_eq!(stage, json!("beta"), "{:?} -> {}", case, response);
            if case.method != "HEAD" {
                let body = response["body"].as_str().unwrap_or_default();
                let json: Result<Map<String, Value>, _> = serde_json::from_str(body);
                prop_assert!(
                    json.is_ok(),
                    "{:?}: body is not a JSON object: {}",
                    case,
                    response
                );
            }
            Ok(())
        })
        .unwrap();
    TALLY.check();
}

#[test]
fn a_long_path_is_refused_quickly_not_hung() {
    let rt = runtime();
    let router = time_service::app_with_clock("beta", common::winter);
    let request = Request::builder()
        .uri(format!("/time/{}", "%41".repeat(4000)))
        .body(Body::empty())
        .unwrap();
    let status = rt.block_on(router.oneshot(request)).unwrap().status();
    assert_eq!(status.as_u16(), 400);
}

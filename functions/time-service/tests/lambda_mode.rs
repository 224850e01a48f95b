//! Lambda mode: the real `time-service` binary, started the way Lambda starts
//! it (`AWS_LAMBDA_RUNTIME_API` set), fed API Gateway REST (v1) and HTTP API
//! (v2) events through a minimal Lambda Runtime API served by the test.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

/// The test's side of the Runtime API: events to hand out, responses received.
type RuntimeState = (Arc<Runtime>, mpsc::Sender<(String, Value)>);

#[derive(Default)]
struct Runtime {
    events: Mutex<VecDeque<(String, Value)>>,
    ready: Notify,
}

async fn next(State(rt): State<RuntimeState>) -> Response {
    loop {
        if let Some((id, event)) = rt.0.events.lock().unwrap().pop_front() {
            let mut headers = HeaderMap::new();
            headers.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).unwrap(),
            );
            headers.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_static("9999999999999"),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static(
                    "arn:aws:lambda:us-east-1:123456789012:function:time-service-beta",
                ),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-5eb33c07-de25b420912dee103a5db434"),
            );
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        rt.0.ready.notified().await;
    }
}

async fn respond(
    State(rt): State<RuntimeState>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    rt.1.send((id, value)).await.unwrap();
    StatusCode::ACCEPTED
}

async fn error(Path(id): Path<String>, body: Bytes) -> StatusCode {
    panic!("invocation {id} failed: {}", String::from_utf8_lossy(&body));
}

/// Runs the binary on one event and returns the response it posted.
async fn invoke(event: Value) -> Value {
    let (tx, mut rx) = mpsc::channel(4);
    let rt = Arc::new(Runtime::default());
    rt.events.lock().unwrap().push_back(("req-1".into(), event));
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state((rt.clone(), tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    rt.ready.notify_waiters();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_time-service"))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "time-service-beta")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("STAGE", "beta")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (id, response) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the function answered within 30 s")
        .unwrap();
    child.kill().await.ok();
    assert_eq!(id, "req-1");
    response
}

fn rest_v1_event(path: &str, stage: &str) -> Value {
    json!({
        "resource": "/time/{proxy+}",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "curl/8.5.0", "X-Forwarded-Proto": "https"},
        "multiValueHeaders": {"Host": ["abc123.execute-api.us-east-1.amazonaws.com"], "User-Agent": ["curl/8.5.0"], "X-Forwarded-Proto": ["https"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"proxy": path.trim_start_matches("/time/")},
        "stageVariables": null,
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": "/time/{proxy+}",
            "httpMethod": "GET",
            "extendedRequestId": "JJbxmplHYosFVYQ=",
            "requestTime": "10/Mar/2020:00:03:59 +0000",
            "path": format!("/{stage}{path}"),
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1583798639428u64,
            "requestId": "77375676-xmpl-4b79-853a-f982474efe18",
            "identity": {"sourceIp": "52.255.255.12", "userAgent": "curl/8.5.0"},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123"
        },
        "body": null,
        "isBase64Encoded": false
    })
}

fn http_v2_event(raw_path: &str, method: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "curl/8.5.0", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "52.255.255.12", "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2020:05:16:23 +0000",
            "timeEpoch": 1583817383220u64
        },
        "isBase64Encoded": false
    })
}

fn body_of(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().expect("a text body")).unwrap()
}

#[tokio::test]
async fn rest_api_event_with_stage_prefix_is_served() {
    let response = invoke(rest_v1_event("/time/America/New_York", "Prod")).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(body_of(&response)["timeZone"], "America/New_York");
    assert_eq!(
        response["multiValueHeaders"]["x-service-stage"][0], "beta",
        "{response}"
    );
}

#[tokio::test]
async fn http_api_event_is_served() {
    let response = invoke(http_v2_event("/time/Europe/London", "GET")).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(body_of(&response)["timeZone"], "Europe/London");
    assert_eq!(response["headers"]["x-service-stage"], "beta");
    assert_eq!(response["headers"]["content-type"], "application/json");
    assert_eq!(response["headers"]["cache-control"], "no-store");
}

#[tokio::test]
async fn http_api_event_with_encoded_zone_is_served() {
    let response = invoke(http_v2_event("/time/Asia%2FTokyo", "GET")).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(body_of(&response)["timeZone"], "Asia/Tokyo");
}

#[tokio::test]
async fn http_api_event_for_utc_is_served() {
    let response = invoke(http_v2_event("/time", "GET")).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(body_of(&response)["timeZone"], "Etc/UTC");
}

#[tokio::test]
async fn http_api_event_with_unknown_zone_is_a_400() {
    let response = invoke(http_v2_event("/time/Mars/Olympus_Mons", "GET")).await;
    assert_eq!(response["statusCode"], 400, "{response}");
    assert_eq!(body_of(&response)["timeZone"], "Mars/Olympus_Mons");
}

#[tokio::test]
async fn http_api_event_with_wrong_method_is_a_405() {
    let response = invoke(http_v2_event("/time", "POST")).await;
    assert_eq!(response["statusCode"], 405, "{response}");
}

/// url's IDNA runs without a Unicode back end (idna_adapter 1.0, pinned in
/// Cargo.toml to keep the zip small): API Gateway's own domains are ASCII,
/// and a custom internationalized domain reaches us in its ASCII (Punycode)
/// form, which must still be served.
#[tokio::test]
async fn http_api_event_on_a_punycode_custom_domain_is_served() {
    let mut event = http_v2_event("/time/Europe/Berlin", "GET");
    event["headers"]["host"] = json!("zeit.xn--bcher-kva.example");
    event["requestContext"]["domainName"] = json!("zeit.xn--bcher-kva.example");
    let response = invoke(event).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(body_of(&response)["timeZone"], "Europe/Berlin");
}

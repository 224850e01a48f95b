//! The API against mocked DynamoDB and SQS clients, one behaviour per test.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::operation::send_message::{SendMessageError, SendMessageOutput};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::aws::attr;
use crate::{AwsBackend, Config, ConfigError, MAX_BODY_BYTES, app};

const TABLE: &str = "Orders-beta-orders";
const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/Orders-beta-orders";
const ID: &str = "0b5e2c9e-8c52-4c1a-9f5e-2a4f3f0c7d11";

// ---- builders -------------------------------------------------------------

fn config() -> Config {
    Config {
        table_name: TABLE.into(),
        queue_url: QUEUE.into(),
    }
}

fn backend(dynamodb: &[&Rule], sqs: &[&Rule]) -> AwsBackend {
    AwsBackend::with_clients(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, dynamodb),
        mock_client!(aws_sdk_sqs, RuleMode::MatchAny, sqs),
        config(),
    )
}

fn any_put() -> Rule {
    mock!(aws_sdk_dynamodb::Client::put_item).then_output(|| PutItemOutput::builder().build())
}

fn any_send() -> Rule {
    mock!(aws_sdk_sqs::Client::send_message)
        .then_output(|| SendMessageOutput::builder().message_id("m-1").build())
}

fn aws_error(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message("User: arn:aws:sts::123456789012:assumed-role/x is not authorized")
        .build()
}

fn stored(status: &str, processed_at: Option<&str>) -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.into());
    let mut item = HashMap::from([
        (attr::ID.into(), s(ID)),
        (attr::ITEM.into(), s("teapot")),
        (attr::QUANTITY.into(), AttributeValue::N("2".into())),
        (attr::STATUS.into(), s(status)),
        (attr::CREATED_AT.into(), s("2026-11-30T18:00:00.000Z")),
    ]);
    if let Some(at) = processed_at {
        item.insert(attr::PROCESSED_AT.into(), s(at));
    }
    item
}

fn get_answering(item: Option<HashMap<String, AttributeValue>>) -> Rule {
    mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|req| {
            req.table_name() == Some(TABLE)
                && req.consistent_read() == Some(true)
                && req.key().and_then(|k| k.get("id")) == Some(&AttributeValue::S(ID.into()))
        })
        .then_output(move || GetItemOutput::builder().set_item(item.clone()).build())
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
}

async fn call(backend: AwsBackend, request: Request<Body>) -> Answer {
    let response = app(backend).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer {
        status,
        headers,
        json,
    }
}

fn post_json(body: impl Into<String>) -> Request<Body> {
    Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.into()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// Posts `body` with no AWS call expected; returns the answer and asserts
/// that nothing was written or sent.
async fn rejected(request: Request<Body>) -> Answer {
    let (put, send) = (any_put(), any_send());
    let answer = call(backend(&[&put], &[&send]), request).await;
    assert_eq!(
        put.num_calls() + send.num_calls(),
        0,
        "an invalid order reached AWS"
    );
    answer
}

fn assert_invalid_field(answer: &Answer, field: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert_eq!(answer.json["error"], "invalid_field", "{}", answer.json);
    assert_eq!(answer.json["field"], field, "{}", answer.json);
    let message = answer.json["message"].as_str().unwrap();
    assert!(
        message.contains(field),
        "message does not name {field}: {message}"
    );
}

// ---- creating an order ------------------------------------------------------

#[tokio::test]
async fn a_created_order_is_written_to_the_table_with_a_condition_and_announced_on_the_queue() {
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(|req| {
            let item = req.item().unwrap();
            let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            req.table_name() == Some(TABLE)
                && req.condition_expression() == Some("attribute_not_exists(id)")
                && s("id").is_some_and(|id| uuid::Uuid::parse_str(&id).is_ok())
                && s("item").as_deref() == Some("teapot")
                && item.get("quantity") == Some(&AttributeValue::N("2".into()))
                && s("status").as_deref() == Some("received")
                && s("createdAt").is_some_and(|t| chrono::DateTime::parse_from_rfc3339(&t).is_ok())
                && !item.contains_key("processedAt")
        })
        .then_output(|| PutItemOutput::builder().build());
    let send = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(|req| {
            let body: Value = serde_json::from_str(req.message_body().unwrap()).unwrap();
            req.queue_url() == Some(QUEUE)
                && body.as_object().unwrap().len() == 1
                && body["orderId"]
                    .as_str()
                    .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
        })
        .then_output(|| SendMessageOutput::builder().message_id("m-1").build());

    let answer = call(
        backend(&[&put], &[&send]),
        post_json(r#"{"item": "teapot", "quantity": 2}"#),
    )
    .await;

    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    assert_eq!((put.num_calls(), send.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_created_order_is_answered_with_its_id_location_and_status_received() {
    let (put, send) = (any_put(), any_send());
    let answer = call(
        backend(&[&put], &[&send]),
        post_json(r#"{"item": "teapot", "quantity": 2}"#),
    )
    .await;

    assert_eq!(answer.status, StatusCode::CREATED);
    let id = answer.json["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(answer.json["item"], "teapot");
    assert_eq!(answer.json["quantity"], 2);
    assert_eq!(answer.json["status"], "received");
    assert!(
        chrono::DateTime::parse_from_rfc3339(answer.json["createdAt"].as_str().unwrap()).is_ok()
    );
    assert!(answer.json.get("processedAt").is_none());
    assert_eq!(
        answer.headers[header::LOCATION],
        format!("/orders/{id}").as_str()
    );
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn the_message_names_the_order_the_answer_names() {
    let put = any_put();
    let sent = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = sent.clone();
    let send = mock!(aws_sdk_sqs::Client::send_message)
        .match_requests(move |req| {
            *seen.lock().unwrap() = req.message_body().unwrap().to_string();
            true
        })
        .then_output(|| SendMessageOutput::builder().build());
    let answer = call(
        backend(&[&put], &[&send]),
        post_json(r#"{"item": "teapot", "quantity": 2}"#),
    )
    .await;
    let message: Value = serde_json::from_str(&sent.lock().unwrap()).unwrap();
    assert_eq!(message, json!({"orderId": answer.json["id"]}));
}

#[tokio::test]
async fn a_content_type_with_a_charset_is_accepted() {
    let (put, send) = (any_put(), any_send());
    let request = Request::post("/orders")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(r#"{"item": "teapot", "quantity": 1}"#))
        .unwrap();
    assert_eq!(
        call(backend(&[&put], &[&send]), request).await.status,
        StatusCode::CREATED
    );
}

// ---- invalid orders ---------------------------------------------------------

#[tokio::test]
async fn an_empty_item_is_a_400_naming_item() {
    assert_invalid_field(
        &rejected(post_json(r#"{"item": "", "quantity": 1}"#)).await,
        "item",
    );
}

#[tokio::test]
async fn a_blank_item_is_a_400_naming_item() {
    assert_invalid_field(
        &rejected(post_json(r#"{"item": "   ", "quantity": 1}"#)).await,
        "item",
    );
}

#[tokio::test]
async fn an_item_over_100_characters_is_a_400_naming_item() {
    let body = json!({"item": "é".repeat(101), "quantity": 1}).to_string();
    assert_invalid_field(&rejected(post_json(body)).await, "item");
}

#[tokio::test]
async fn an_item_of_exactly_100_characters_is_accepted() {
    let (put, send) = (any_put(), any_send());
    let body = json!({"item": "é".repeat(100), "quantity": 1}).to_string();
    let answer = call(backend(&[&put], &[&send]), post_json(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
}

#[tokio::test]
async fn a_missing_item_is_a_400_naming_item() {
    assert_invalid_field(&rejected(post_json(r#"{"quantity": 1}"#)).await, "item");
}

#[tokio::test]
async fn an_item_that_is_not_a_string_is_a_400_naming_item() {
    assert_invalid_field(
        &rejected(post_json(r#"{"item": 7, "quantity": 1}"#)).await,
        "item",
    );
}

#[tokio::test]
async fn a_missing_quantity_is_a_400_naming_quantity() {
    assert_invalid_field(
        &rejected(post_json(r#"{"item": "teapot"}"#)).await,
        "quantity",
    );
}

#[tokio::test]
async fn a_zero_quantity_is_a_400_naming_quantity() {
    assert_invalid_field(
        &rejected(post_json(r#"{"item": "teapot", "quantity": 0}"#)).await,
        "quantity",
    );
}

#[tokio::test]
async fn a_quantity_over_1000_is_a_400_naming_quantity() {
    assert_invalid_field(
        &rejected(post_json(r#"{"item": "teapot", "quantity": 1001}"#)).await,
        "quantity",
    );
}

#[tokio::test]
async fn a_fractional_negative_or_quoted_quantity_is_a_400_naming_quantity() {
    for quantity in ["2.5", "-1", "\"2\"", "null", "1e3"] {
        let body = format!(r#"{{"item": "teapot", "quantity": {quantity}}}"#);
        assert_invalid_field(&rejected(post_json(body)).await, "quantity");
    }
}

#[tokio::test]
async fn an_unknown_field_is_a_400_naming_it() {
    assert_invalid_field(
        &rejected(post_json(
            r#"{"item": "teapot", "quantity": 1, "price": 3}"#,
        ))
        .await,
        "price",
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_json_400() {
    let answer = rejected(post_json("item=teapot")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"], "invalid_body");
    assert!(
        answer.json["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
}

#[tokio::test]
async fn a_json_array_is_a_json_400() {
    let answer = rejected(post_json("[1, 2]")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"], "invalid_body");
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_a_json_415() {
    let request = Request::post("/orders")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"item": "teapot", "quantity": 1}"#))
        .unwrap();
    let answer = rejected(request).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.json["error"], "unsupported_media_type");
    assert!(
        answer.json["message"]
            .as_str()
            .unwrap()
            .contains("text/plain")
    );
}

#[tokio::test]
async fn a_body_without_any_content_type_is_a_json_415() {
    let request = Request::post("/orders")
        .body(Body::from(r#"{"item": "teapot", "quantity": 1}"#))
        .unwrap();
    assert_eq!(
        rejected(request).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let body = json!({"item": "x".repeat(MAX_BODY_BYTES), "quantity": 1}).to_string();
    let answer = rejected(post_json(body)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["error"], "payload_too_large");
}

// ---- reading an order -------------------------------------------------------

#[tokio::test]
async fn a_stored_order_is_read_back_with_a_consistent_read() {
    let rule = get_answering(Some(stored("received", None)));
    let answer = call(backend(&[&rule], &[]), get(&format!("/orders/{ID}"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        answer.json,
        json!({"id": ID, "item": "teapot", "quantity": 2, "status": "received",
               "createdAt": "2026-11-30T18:00:00.000Z"})
    );
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_processed_order_is_read_back_with_processed_at() {
    let rule = get_answering(Some(stored("processed", Some("2026-11-30T18:00:01.000Z"))));
    let answer = call(backend(&[&rule], &[]), get(&format!("/orders/{ID}"))).await;
    assert_eq!(answer.json["status"], "processed");
    assert_eq!(answer.json["processedAt"], "2026-11-30T18:00:01.000Z");
}

#[tokio::test]
async fn an_upper_case_id_finds_the_order_stored_in_lower_case() {
    let rule = get_answering(Some(stored("received", None)));
    let answer = call(
        backend(&[&rule], &[]),
        get(&format!("/orders/{}", ID.to_uppercase())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn a_missing_order_is_a_json_404() {
    let rule = get_answering(None);
    let answer = call(backend(&[&rule], &[]), get(&format!("/orders/{ID}"))).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json["error"], "order_not_found");
    assert!(answer.json["message"].as_str().unwrap().contains(ID));
}

#[tokio::test]
async fn an_id_that_is_not_a_uuid_is_a_400_naming_id() {
    let rule = get_answering(None);
    let answer = call(backend(&[&rule], &[]), get("/orders/12345")).await;
    assert_invalid_field(&answer, "id");
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn an_item_that_is_not_an_order_is_a_502_not_a_panic() {
    let mut item = stored("received", None);
    item.remove(attr::QUANTITY);
    let rule = get_answering(Some(item));
    let answer = call(backend(&[&rule], &[]), get(&format!("/orders/{ID}"))).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json["message"],
        "dynamodb GetItem failed: UnreadableItem"
    );
}

// ---- AWS errors -------------------------------------------------------------

#[tokio::test]
async fn access_denied_on_put_item_is_a_502_naming_put_item_and_the_code() {
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .then_error(|| PutItemError::generic(aws_error("AccessDeniedException")));
    let send = any_send();
    let answer = call(
        backend(&[&put], &[&send]),
        post_json(r#"{"item": "teapot", "quantity": 2}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json,
        json!({"error": "upstream_error",
               "message": "dynamodb PutItem failed: AccessDeniedException"})
    );
    assert_eq!(
        send.num_calls(),
        0,
        "no message for an order that was not written"
    );
}

#[tokio::test]
async fn the_aws_message_with_its_arns_is_not_shown_to_the_client() {
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .then_error(|| PutItemError::generic(aws_error("AccessDeniedException")));
    let answer = call(
        backend(&[&put], &[]),
        post_json(r#"{"item": "teapot", "quantity": 2}"#),
    )
    .await;
    assert!(
        !answer.json.to_string().contains("arn:aws"),
        "{}",
        answer.json
    );
}

#[tokio::test]
async fn a_failed_send_message_is_a_502_naming_send_message() {
    let put = any_put();
    let send = mock!(aws_sdk_sqs::Client::send_message).then_error(|| {
        SendMessageError::generic(aws_error("AWS.SimpleQueueService.NonExistentQueue"))
    });
    let answer = call(
        backend(&[&put], &[&send]),
        post_json(r#"{"item": "teapot", "quantity": 2}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json["message"],
        "sqs SendMessage failed: AWS.SimpleQueueService.NonExistentQueue"
    );
}

#[tokio::test]
async fn a_failed_get_item_is_a_502_naming_get_item() {
    let get_rule = mock!(aws_sdk_dynamodb::Client::get_item)
        .then_error(|| GetItemError::generic(aws_error("ResourceNotFoundException")));
    let answer = call(backend(&[&get_rule], &[]), get(&format!("/orders/{ID}"))).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json["message"],
        "dynamodb GetItem failed: ResourceNotFoundException"
    );
}

// ---- other paths and methods ------------------------------------------------

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let answer = call(backend(&[], &[]), get("/nothing-here")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json["error"], "not_found");
}

#[tokio::test]
async fn the_root_path_is_a_json_404() {
    assert_eq!(
        call(backend(&[], &[]), get("/")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let answer = call(
        backend(&[], &[]),
        Request::delete(format!("/orders/{ID}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json["error"], "method_not_allowed");
    assert_eq!(
        call(backend(&[], &[]), get("/orders")).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

// ---- configuration ----------------------------------------------------------

fn config_from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|name| vars.get(name).cloned())
}

#[test]
fn the_configuration_comes_from_table_name_and_queue_url() {
    assert_eq!(
        config_from(&[("TABLE_NAME", TABLE), ("QUEUE_URL", QUEUE)]).unwrap(),
        config()
    );
}

#[test]
fn a_missing_table_name_stops_the_start_naming_it() {
    let error = config_from(&[("QUEUE_URL", QUEUE)]).unwrap_err();
    assert!(
        error.to_string().starts_with("TABLE_NAME is not set"),
        "{error}"
    );
}

#[test]
fn an_empty_queue_url_stops_the_start_naming_it() {
    let error = config_from(&[("TABLE_NAME", TABLE), ("QUEUE_URL", " ")]).unwrap_err();
    assert!(
        error.to_string().starts_with("QUEUE_URL is not set"),
        "{error}"
    );
}

// ---- through lambda_http ----------------------------------------------------

/// An HTTP API (payload format 2.0) event as API Gateway sends it for
/// `POST /orders` on the `$default` stage, body base64-encoded.
const HTTP_API_EVENT: &str = r#"{
  "version": "2.0",
  "routeKey": "POST /orders",
  "rawPath": "/orders",
  "rawQueryString": "",
  "headers": {"content-type": "application/json", "host": "abc123.execute-api.eu-west-1.amazonaws.com"},
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "abc123",
    "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
    "domainPrefix": "abc123",
    "http": {"method": "POST", "path": "/orders", "protocol": "HTTP/1.1",
             "sourceIp": "192.0.2.1", "userAgent": "curl/8"},
    "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    "routeKey": "POST /orders",
    "stage": "$default",
    "time": "30/Nov/2026:18:00:00 +0000",
    "timeEpoch": 1796061600000
  },
  "body": "eyJpdGVtIjogInRlYXBvdCIsICJxdWFudGl0eSI6IDJ9",
  "isBase64Encoded": true
}"#;

#[tokio::test]
async fn an_http_api_event_with_a_base64_body_creates_an_order() {
    let (put, send) = (any_put(), any_send());
    let request = lambda_http::request::from_str(HTTP_API_EVENT).unwrap();
    let response = app(backend(&[&put], &[&send]))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!((put.num_calls(), send.num_calls()), (1, 1));
}

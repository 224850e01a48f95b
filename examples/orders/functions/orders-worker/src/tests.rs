//! The worker against a mocked DynamoDB client, one behaviour per test.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

use super::*;

const TABLE: &str = "Orders-beta-orders";
const ORDER_A: &str = "0b5e2c9e-8c52-4c1a-9f5e-2a4f3f0c7d11";
const ORDER_B: &str = "7d3f1a20-1b2c-4d5e-8f90-a1b2c3d4e5f6";

fn record(message_id: &str, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.into());
    record.body = Some(body.into());
    record
}

fn order_record(message_id: &str, order_id: &str) -> SqsMessage {
    record(message_id, &json!({"orderId": order_id}).to_string())
}

fn batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

fn worker(rules: &[&Rule]) -> Worker {
    Worker::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules),
        TABLE,
    )
}

fn key_is(req: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput, id: &str) -> bool {
    req.key().and_then(|k| k.get("id")) == Some(&AttributeValue::S(id.into()))
}

fn update_of(id: &'static str) -> Rule {
    mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(move |req| key_is(req, id))
        .then_output(|| UpdateItemOutput::builder().build())
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

#[tokio::test]
async fn a_readable_record_marks_its_order_processed_if_it_exists() {
    let update = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|req| {
            let values = req.expression_attribute_values().unwrap();
            key_is(req, ORDER_A)
                && req.table_name() == Some(TABLE)
                && req.update_expression() == Some("SET #status = :processed, processedAt = :now")
                && req.condition_expression() == Some("attribute_exists(id)")
                && req.expression_attribute_names().unwrap().get("#status")
                    == Some(&"status".to_string())
                && values.get(":processed") == Some(&AttributeValue::S("processed".into()))
                && values
                    .get(":now")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let response = worker(&[&update])
        .process_batch(batch(vec![order_record("m-1", ORDER_A)]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn every_record_of_a_batch_is_processed() {
    let (a, b) = (update_of(ORDER_A), update_of(ORDER_B));
    let response = worker(&[&a, &b])
        .process_batch(batch(vec![
            order_record("m-1", ORDER_A),
            order_record("m-2", ORDER_B),
        ]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((a.num_calls(), b.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_aws_error_for_one_record_fails_only_that_record() {
    let a = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(|req| key_is(req, ORDER_A))
        .then_error(|| {
            UpdateItemError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .build(),
            )
        });
    let b = update_of(ORDER_B);
    let response = worker(&[&a, &b])
        .process_batch(batch(vec![
            order_record("m-1", ORDER_A),
            order_record("m-2", ORDER_B),
        ]))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["m-1"]);
    assert_eq!(b.num_calls(), 1);
}

#[tokio::test]
async fn a_message_for_an_order_not_in_the_table_is_reported_failed() {
    let update = mock!(aws_sdk_dynamodb::Client::update_item).then_error(|| {
        UpdateItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .meta(
                    ErrorMetadata::builder()
                        .code("ConditionalCheckFailedException")
                        .build(),
                )
                .build(),
        )
    });
    let outcome = worker(&[&update])
        .process(&order_record("m-1", ORDER_A))
        .await;
    assert!(
        matches!(&outcome, Err(RecordError::Update { code, .. }) if code == "ConditionalCheckFailedException"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_unreadable_body_is_reported_failed_so_that_it_reaches_the_dead_letter_queue() {
    let update = update_of(ORDER_A);
    let response = worker(&[&update])
        .process_batch(batch(vec![
            record("m-1", "not json"),
            order_record("m-2", ORDER_A),
        ]))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["m-1"]);
    assert_eq!(
        update.num_calls(),
        1,
        "only the readable record is processed"
    );
}

#[tokio::test]
async fn an_order_id_that_is_not_a_uuid_is_unreadable_and_never_reaches_dynamodb() {
    let update = update_of(ORDER_A);
    let outcome = worker(&[&update])
        .process(&record("m-1", r#"{"orderId": "12345"}"#))
        .await;
    assert!(
        matches!(&outcome, Err(RecordError::Unreadable(why)) if why.contains("not a UUID")),
        "{outcome:?}"
    );
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_body_with_other_fields_is_unreadable() {
    let outcome = worker(&[])
        .process(&record(
            "m-1",
            &json!({"orderId": ORDER_A, "x": 1}).to_string(),
        ))
        .await;
    assert!(
        matches!(outcome, Err(RecordError::Unreadable(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_failed_record_without_a_message_id_fails_the_whole_batch() {
    let mut nameless = record("", "not json");
    nameless.message_id = None;
    let result = worker(&[]).process_batch(batch(vec![nameless])).await;
    assert!(result.is_err());
}

#[tokio::test]
async fn an_empty_batch_has_no_failures() {
    let response = worker(&[])
        .process_batch(SqsEvent::default())
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
}

/// The example event of "Using Lambda with Amazon SQS" (AWS Lambda
/// Developer Guide), with orders-api's body.
fn documented_event(body: &str) -> Value {
    json!({
        "Records": [{
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082649183",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082649185"
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2"
        }]
    })
}

#[tokio::test]
async fn the_handler_answers_lambda_with_the_failed_message_ids() {
    let event: SqsEvent = serde_json::from_value(documented_event("{}")).unwrap();
    let response = handle(&worker(&[]), LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]})
    );
}

#[tokio::test]
async fn the_handler_answers_an_empty_failure_list_when_all_succeed() {
    let body = json!({"orderId": ORDER_A}).to_string();
    let event: SqsEvent = serde_json::from_value(documented_event(&body)).unwrap();
    let update = update_of(ORDER_A);
    let response = handle(
        &worker(&[&update]),
        LambdaEvent::new(event, Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": []})
    );
}

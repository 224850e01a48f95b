//! The Orders worker: consumes the queue `orders-api` writes to.
//!
//! Each SQS record's body is `{"orderId": "<uuid>"}`; the worker sets that
//! order's `status` to `processed` and its `processedAt` with a DynamoDB
//! `UpdateItem` conditioned on `attribute_exists(id)`. The event source
//! mapping has `ReportBatchItemFailures` (app-sam.yaml), so the handler
//! answers which records failed and only those return to the queue.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{SecondsFormat, Utc};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;

pub mod telemetry;

#[cfg(test)]
mod tests;

/// The variable holding the table's name (`!Ref OrdersTable`).
pub const TABLE_NAME_ENV: &str = "TABLE_NAME";

/// The update: `status` is a DynamoDB reserved word, hence `#status`.
pub const UPDATE_EXPRESSION: &str = "SET #status = :processed, processedAt = :now";
/// Only an order the API wrote: never create a half item from a stray message.
pub const CONDITION_EXPRESSION: &str = "attribute_exists(id)";

/// `TABLE_NAME`, or a readable reason why the worker cannot start.
pub fn table_name_from_env() -> Result<String, String> {
    std::env::var(TABLE_NAME_ENV)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!(
                "{TABLE_NAME_ENV} is not set (or empty): it must hold the name of the orders \
                 DynamoDB table; app-sam.yaml sets it on the function"
            )
        })
}

/// The SDK configuration from the environment, with timeouts that keep ten
/// concurrent updates well inside the function's Timeout (app-sam.yaml:
/// 15 s), and standard retries.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The table and its client.
#[derive(Debug, Clone)]
pub struct Worker {
    dynamodb: aws_sdk_dynamodb::Client,
    table_name: String,
}

/// A queue message: `{"orderId": "<uuid>"}` (what orders-api sends).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrderMessage {
    order_id: String,
}

/// Why a record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The body is not `{"orderId": "<uuid>"}`.
    Unreadable(String),
    /// UpdateItem failed with this AWS error code.
    Update { code: String, detail: String },
}

impl Worker {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table_name: impl Into<String>) -> Self {
        Self {
            dynamodb,
            table_name: table_name.into(),
        }
    }

    /// Processes every record of the batch concurrently and answers the
    /// ones that failed. Returns an error (the whole batch goes back to the
    /// queue) only for a failed record without a message id, which a batch
    /// response cannot name.
    pub async fn process_batch(&self, event: SqsEvent) -> Result<SqsBatchResponse, String> {
        let outcomes =
            futures::future::join_all(event.records.iter().map(|r| self.process(r))).await;
        let mut response = SqsBatchResponse::default();
        for (record, outcome) in event.records.iter().zip(outcomes) {
            if outcome.is_ok() {
                continue;
            }
            match record.message_id.as_deref().filter(|id| !id.is_empty()) {
                Some(id) => {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id.to_string();
                    response.batch_item_failures.push(failure);
                }
                None => {
                    return Err(
                        "a failed record has no messageId; failing the whole batch so that \
                         nothing is lost"
                            .into(),
                    );
                }
            }
        }
        Ok(response)
    }

    /// One record: read its order id, mark the order processed.
    pub async fn process(&self, record: &SqsMessage) -> Result<(), RecordError> {
        let message_id = record.message_id.as_deref().unwrap_or("(none)");
        let order_id = match read_order_id(record.body.as_deref()) {
            Ok(id) => id,
            Err(why) => {
                // Retrying cannot make this body readable. It is reported
                // failed anyway: after the queue's maxReceiveCount (3) the
                // redrive policy moves it to the dead-letter queue, where it
                // can be inspected. Dropping it (reporting success) would
                // lose it without a trace.
                tracing::error!(message_id, reason = %why, "unreadable queue message; it goes to the dead-letter queue after its last receive");
                return Err(RecordError::Unreadable(why));
            }
        };
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        // A message delivered twice (SQS standard queues deliver at least
        // once) updates the order again: same status, a later processedAt.
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table_name)
            .key("id", AttributeValue::S(order_id.clone()))
            .update_expression(UPDATE_EXPRESSION)
            .condition_expression(CONDITION_EXPRESSION)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processed", AttributeValue::S("processed".into()))
            .expression_attribute_values(":now", AttributeValue::S(now))
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(message_id, order_id = %order_id, "order processed");
                Ok(())
            }
            Err(error) => {
                let code = aws_error_code(&error).to_string();
                let detail = DisplayErrorContext(&error).to_string();
                // ConditionalCheckFailedException: no such order in the
                // table. Retried like any failure, then kept in the DLQ.
                tracing::error!(message_id, order_id = %order_id, code = %code, detail = %detail, "dynamodb UpdateItem failed: {code}; the message returns to the queue");
                Err(RecordError::Update { code, detail })
            }
        }
    }
}

/// The AWS error code of a failed call, or what kept it from an answer.
fn aws_error_code<E, R>(error: &SdkError<E, R>) -> &str
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::ServiceError(_) => error.code().unwrap_or("UnknownServiceError"),
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "UnreadableResponse",
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        _ => "Unknown",
    }
}

/// The order id of a message body, lower case with hyphens.
fn read_order_id(body: Option<&str>) -> Result<String, String> {
    let body = body.ok_or("the record has no body")?;
    let message: OrderMessage = serde_json::from_str(body)
        .map_err(|e| format!("the body is not {{\"orderId\": \"<uuid>\"}} ({e})"))?;
    let id = uuid::Uuid::parse_str(&message.order_id).map_err(|_| {
        let shown: String = message.order_id.chars().take(100).collect();
        format!("orderId {shown:?} is not a UUID")
    })?;
    Ok(id.hyphenated().to_string())
}

/// The Lambda handler.
pub async fn handle(
    worker: &Worker,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let (event, _context) = event.into_parts();
    let records = event.records.len();
    let response = worker.process_batch(event).await.inspect_err(|why| {
        tracing::error!(reason = %why, "the whole batch returns to the queue");
    })?;
    tracing::info!(
        records,
        failed = response.batch_item_failures.len(),
        "batch done"
    );
    Ok(response)
}

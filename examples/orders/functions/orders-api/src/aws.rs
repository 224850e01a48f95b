//! The backend on AWS: orders in a DynamoDB table, messages on an SQS queue.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::backend::{Backend, BackendError};
use crate::config::Config;
use crate::order::{Order, Status};

/// The table's attribute names (the worker writes `status` and `processedAt`).
pub mod attr {
    pub const ID: &str = "id";
    pub const ITEM: &str = "item";
    pub const QUANTITY: &str = "quantity";
    pub const STATUS: &str = "status";
    pub const CREATED_AT: &str = "createdAt";
    pub const PROCESSED_AT: &str = "processedAt";
}

/// The SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL_*`), with timeouts that keep a slow call well inside
/// the function's Timeout (app-sam.yaml: 10 s) and standard retries.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(4))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// DynamoDB and SQS clients, the table and the queue.
#[derive(Debug, Clone)]
pub struct AwsBackend {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    config: Config,
}

impl AwsBackend {
    pub fn new(sdk: &SdkConfig, config: Config) -> Self {
        Self::with_clients(
            aws_sdk_dynamodb::Client::new(sdk),
            aws_sdk_sqs::Client::new(sdk),
            config,
        )
    }

    /// With the given clients (tests pass mocked ones).
    pub fn with_clients(
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        config: Config,
    ) -> Self {
        Self {
            dynamodb,
            sqs,
            config,
        }
    }
}

impl Backend for AwsBackend {
    async fn put_new_order(&self, order: &Order) -> Result<(), BackendError> {
        self.dynamodb
            .put_item()
            .table_name(&self.config.table_name)
            .set_item(Some(to_item(order)))
            // A fresh UUID v4 never collides in practice; the condition makes
            // sure a collision could never overwrite another order.
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk("dynamodb", "PutItem", &e))
    }

    async fn get_order(&self, id: &str) -> Result<Option<Order>, BackendError> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(&self.config.table_name)
            .key(attr::ID, AttributeValue::S(id.to_string()))
            // Strongly consistent: an order is readable right after its 201,
            // and `processed` right after the worker's update.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("dynamodb", "GetItem", &e))?;
        match output.item() {
            None => Ok(None),
            Some(item) => from_item(item).map(Some).map_err(|why| {
                BackendError::new(
                    "dynamodb",
                    "GetItem",
                    "UnreadableItem",
                    format!("the item of order {id} is not an order: {why}"),
                )
            }),
        }
    }

    async fn send_order_message(&self, id: &str) -> Result<(), BackendError> {
        self.sqs
            .send_message()
            .queue_url(&self.config.queue_url)
            .message_body(order_message(id))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| from_sdk("sqs", "SendMessage", &e))
    }
}

/// The queue message announcing an order: `{"orderId": "<id>"}`.
pub fn order_message(id: &str) -> String {
    serde_json::json!({ "orderId": id }).to_string()
}

/// An order as a DynamoDB item.
pub fn to_item(order: &Order) -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.to_string());
    let mut item = HashMap::from([
        (attr::ID.to_string(), s(&order.id)),
        (attr::ITEM.to_string(), s(&order.item)),
        (
            attr::QUANTITY.to_string(),
            AttributeValue::N(order.quantity.to_string()),
        ),
        (attr::STATUS.to_string(), s(order.status.as_str())),
        (attr::CREATED_AT.to_string(), s(&order.created_at)),
    ]);
    if let Some(at) = &order.processed_at {
        item.insert(attr::PROCESSED_AT.to_string(), s(at));
    }
    item
}

/// A DynamoDB item as an order; the error names the attribute that is wrong.
pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Order, String> {
    let string = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        Some(_) => Err(format!("{name} is not a string")),
        None => Err(format!("{name} is missing")),
    };
    let quantity = match item.get(attr::QUANTITY) {
        Some(AttributeValue::N(n)) => n
            .parse::<u32>()
            .map_err(|_| format!("quantity {n:?} is not a whole number"))?,
        Some(_) => return Err("quantity is not a number".into()),
        None => return Err("quantity is missing".into()),
    };
    let status = string(attr::STATUS)?;
    let status = Status::parse(&status).ok_or_else(|| format!("status {status:?} is unknown"))?;
    let processed_at = match item.get(attr::PROCESSED_AT) {
        None => None,
        Some(_) => Some(string(attr::PROCESSED_AT)?),
    };
    Ok(Order {
        id: string(attr::ID)?,
        item: string(attr::ITEM)?,
        quantity,
        status,
        created_at: string(attr::CREATED_AT)?,
        processed_at,
    })
}

/// A failed SDK call as a [`BackendError`]: the AWS error code when AWS
/// answered, else what kept the call from an answer.
pub fn from_sdk<E, R>(
    service: &'static str,
    operation: &'static str,
    error: &SdkError<E, R>,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = match error {
        SdkError::ServiceError(_) => error.code().unwrap_or("UnknownServiceError"),
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "UnreadableResponse",
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        _ => "Unknown",
    };
    BackendError::new(
        service,
        operation,
        code,
        DisplayErrorContext(error).to_string(),
    )
}

//! What the API needs from its storage and its queue.

use std::future::Future;

use crate::order::Order;

/// Where orders are kept and announced. [`crate::AwsBackend`] is DynamoDB
/// and SQS; tests use mocked clients or an in-memory store.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Writes a new order; must not overwrite an existing one.
    fn put_new_order(&self, order: &Order)
    -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The order with this id (lower-case UUID), if any, as last written.
    fn get_order(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Order>, BackendError>> + Send;

    /// Tells the worker about a new order (`{"orderId": id}`).
    fn send_order_message(&self, id: &str)
    -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// A call to AWS that failed: which service, which call, the AWS error code.
/// Shown to clients as `dynamodb PutItem failed: AccessDeniedException`;
/// `detail` (AWS's own message, which can name ARNs) goes to the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} {operation} failed: {code}")]
pub struct BackendError {
    /// `dynamodb` or `sqs`.
    pub service: &'static str,
    /// The API call, as AWS names it (`PutItem`).
    pub operation: &'static str,
    /// The AWS error code (`AccessDeniedException`), or what went wrong
    /// before AWS answered (`Timeout`, `DispatchFailure`).
    pub code: String,
    /// Everything known about the failure, for the log.
    pub detail: String,
}

impl BackendError {
    pub fn new(
        service: &'static str,
        operation: &'static str,
        code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            service,
            operation,
            code: code.into(),
            detail: detail.into(),
        }
    }
}

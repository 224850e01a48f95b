//! The Orders API of the `examples/orders` service.
//!
//! - `POST /orders` validates `{"item", "quantity"}`, writes the order to the
//!   DynamoDB table (status `received`) and sends `{"orderId"}` to the SQS
//!   queue that `orders-worker` consumes.
//! - `GET /orders/{id}` reads an order back (`received` or `processed`).
//!
//! The router ([`app`]) is generic over a [`Backend`]: [`AwsBackend`] on
//! Lambda, mocked AWS clients in this crate's tests, an in-memory store in
//! `orders-gate`'s tests. `main.rs` only wires `lambda_http` to it.

pub mod api;
pub mod aws;
pub mod backend;
pub mod config;
pub mod error;
pub mod order;
pub mod telemetry;

pub use api::{MAX_BODY_BYTES, app};
pub use aws::AwsBackend;
pub use backend::{Backend, BackendError};
pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use order::{NewOrder, Order, Status};

#[cfg(test)]
mod tests;

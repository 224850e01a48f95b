//! Every error the API answers: a JSON body `{"error", "message"}` (plus
//! `field` for an invalid field) with the right status. Nothing answers a
//! bare 500 or panics.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::backend::BackendError;

/// How many characters of a client's value an error message repeats.
pub const MAX_ECHO_CHARS: usize = 100;

/// `value` cut to [`MAX_ECHO_CHARS`] characters (with `…` when cut).
pub fn cap(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHO_CHARS) {
        None => value.to_string(),
        Some((end, _)) => format!("{}…", &value[..end]),
    }
}

/// An answer other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: a field is missing or wrong (`field` names it).
    #[error("{message}")]
    InvalidField { field: String, message: String },
    /// 400: the body is not a JSON object.
    #[error("{0}")]
    InvalidBody(String),
    /// 415: the body is not declared `application/json`.
    #[error("the body must be sent as application/json, got {}", .0.as_deref().map_or_else(|| "no content-type".to_string(), |t| format!("{:?}", cap(t))))]
    UnsupportedMediaType(Option<String>),
    /// 413: the body is over [`crate::MAX_BODY_BYTES`].
    #[error("the body is larger than {limit} bytes; an order is a few dozen")]
    PayloadTooLarge { limit: usize },
    /// 404: no order with this id.
    #[error("no order with id {0}")]
    OrderNotFound(String),
    /// 404: a path the API does not serve.
    #[error("no route for {0}: the API serves POST /orders and GET /orders/{{id}}")]
    RouteNotFound(String),
    /// 405: a served path with another method.
    #[error(
        "{method} is not allowed on {path}: the API serves POST /orders and GET /orders/{{id}}"
    )]
    MethodNotAllowed { method: String, path: String },
    /// 502: a call to DynamoDB or SQS failed.
    #[error(transparent)]
    Aws(#[from] BackendError),
}

impl ApiError {
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: cap(&field.into()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidField { .. } | Self::InvalidBody(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::OrderNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Aws(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The `error` code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidField { .. } => "invalid_field",
            Self::InvalidBody(_) => "invalid_body",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::OrderNotFound(_) => "order_not_found",
            Self::RouteNotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Aws(_) => "upstream_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let body = match &self {
            Self::InvalidField { field, .. } => {
                json!({"error": self.code(), "field": field, "message": message})
            }
            Self::Aws(e) => {
                tracing::error!(
                    service = e.service,
                    operation = e.operation,
                    code = %e.code,
                    detail = %e.detail,
                    "{message}"
                );
                json!({"error": self.code(), "message": message})
            }
            _ => json!({"error": self.code(), "message": message}),
        };
        (self.status(), Json(body)).into_response()
    }
}

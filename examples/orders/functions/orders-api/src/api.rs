//! The router: `POST /orders`, `GET /orders/{id}`, JSON errors for the rest.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::Utc;
use uuid::Uuid;

use crate::backend::Backend;
use crate::error::{ApiError, cap};
use crate::order::{NewOrder, Order};

/// The largest request body accepted. An order is a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 4096;

/// The API over `backend`.
///
/// Behind an HTTP API's `$default` stage (app-sam.yaml) paths arrive without
/// a stage prefix, so the router sees `/orders` as the client sent it.
pub fn app<B: Backend>(backend: B) -> Router {
    Router::new()
        .route("/orders", post(create_order::<B>))
        .route("/orders/{id}", get(get_order::<B>))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(no_store))
        .with_state(backend)
}

/// Orders change (received -> processed): no cache may keep an answer.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn create_order<B: Backend>(
    State(backend): State<B>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
        } else {
            ApiError::InvalidBody(format!("the body could not be read ({rejection})"))
        }
    })?;
    let order = Order::received(NewOrder::from_json(&body)?, Utc::now());
    backend.put_new_order(&order).await?;
    // If this fails the order stays `received` in the table and the client
    // gets a 502; a retry creates a new order. Where an order must never be
    // left unannounced, write it only and let DynamoDB Streams feed the
    // worker instead (the transactional outbox pattern).
    backend.send_order_message(&order.id).await?;
    tracing::info!(order_id = %order.id, quantity = order.quantity, "order received");
    let location = format!("/orders/{}", order.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(order),
    )
        .into_response())
}

async fn get_order<B: Backend>(
    State(backend): State<B>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Order>, ApiError> {
    let not_a_uuid = |shown: &str| {
        ApiError::invalid_field("id", format!("order id {:?} is not a UUID", cap(shown)))
    };
    let Path(id) = id.map_err(|_| not_a_uuid("(unreadable)"))?;
    // Ids are stored lower case with hyphens; any spelling of a UUID finds its order.
    let key = Uuid::parse_str(&id)
        .map_err(|_| not_a_uuid(&id))?
        .hyphenated()
        .to_string();
    match backend.get_order(&key).await? {
        Some(order) => Ok(Json(order)),
        None => Err(ApiError::OrderNotFound(key)),
    }
}

/// Only `application/json` (parameters such as `charset` allowed).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers.get(header::CONTENT_TYPE).map(|v| {
        v.to_str()
            .map(str::to_string)
            .unwrap_or_else(|_| "(not text)".into())
    });
    let is_json = value.as_deref().is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(value))
    }
}

async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(cap(uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: cap(method.as_str()),
        path: cap(uri.path()),
    }
}

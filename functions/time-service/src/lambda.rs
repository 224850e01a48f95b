//! Serving the router under `lambda_http` behind API Gateway.

use axum::Router;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use tower::ServiceExt;
use tower::util::MapRequest;

/// What `lambda_http` runs: `router` behind [`strip_stage_prefix`].
pub type LambdaService = MapRequest<Router, fn(Request) -> Request>;

/// `router` as the service [`run`] hands to `lambda_http` (tests drive it
/// through `lambda_http`'s adapter with API Gateway events).
pub fn service(router: Router) -> LambdaService {
    router.map_request(strip_stage_prefix as fn(Request) -> Request)
}

/// Runs `router` as a Lambda function until the runtime stops it.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(service(router)).await
}

/// Removes the API Gateway stage that `lambda_http` puts in front of the path
/// of REST API (v1) and named-stage HTTP API (v2) events (`/Prod/time` becomes
/// `/time`), so the router sees the same paths on Lambda as locally.
///
/// Known limit: a stage named like a first path segment of the API (`time`)
/// would be stripped from a request that does not carry it; our stages are
/// beta, gamma, prod and API Gateway's `Prod`/`$default`.
pub fn strip_stage_prefix(mut req: Request) -> Request {
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| s != "$default" && !s.is_empty()) else {
        return req;
    };
    let uri = req.uri();
    let prefix = format!("/{stage}");
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        return req;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return req;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new_uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = new_uri;
        }
    }
    req
}

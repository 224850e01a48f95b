//! Local servers for the suite to test: the real time-service and
//! deliberately broken variants of it.

#![allow(dead_code)] // each test file uses a different subset

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, SecondsFormat};
use run_tests::SuiteConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Serves `router` on 127.0.0.1 on a free port; returns the base URL.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}/")
}

/// A base URL on which nothing listens (connections are refused).
pub async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/")
}

/// Short timeouts so the broken servers fail fast.
pub fn config(url: &str, stage: &str) -> SuiteConfig {
    SuiteConfig::new(url, stage)
        .unwrap()
        .with_request_timeout(Duration::from_secs(2))
        .with_deadline(Duration::from_secs(4))
}

/// The real service.
pub fn time_service(stage: &str) -> Router {
    time_service::app(stage)
}

/// The real service, but every zone answer uses the fixed offset +13:37
/// (time and utcOffset agree with each other, and are wrong).
pub fn wrong_offsets(stage: &str) -> Router {
    time_service::app(stage).layer(middleware::from_fn(|req: Request, next: Next| async move {
        let is_zone = req.uri().path().starts_with("/time/");
        let response = next.run(req).await;
        if !is_zone {
            return response;
        }
        rewrite_json(response, |json| {
            let wrong = FixedOffset::east_opt(13 * 3600 + 37 * 60).unwrap();
            let Some(time) = json["time"].as_str() else {
                return;
            };
            let time = DateTime::parse_from_rfc3339(time).unwrap();
            json["time"] = json!(
                time.with_timezone(&wrong)
                    .to_rfc3339_opts(SecondsFormat::Secs, false)
            );
            json["utcOffset"] = json!("+13:37");
        })
        .await
    }))
}

/// The real service with a clock ten minutes late on `/time`.
pub fn late_clock(stage: &str) -> Router {
    time_service::app(stage).layer(middleware::from_fn(|req: Request, next: Next| async move {
        let is_time = req.uri().path() == "/time";
        let response = next.run(req).await;
        if !is_time {
            return response;
        }
        rewrite_json(response, |json| {
            let time = DateTime::parse_from_rfc3339(json["time"].as_str().unwrap()).unwrap();
            let late = time - chrono::Duration::minutes(10);
            json["time"] = json!(late.to_rfc3339_opts(SecondsFormat::Secs, false));
            json["epochMillis"] = json!(late.timestamp_millis());
        })
        .await
    }))
}

/// The real service, answering every request only after `delay`.
pub fn slow(stage: &str, delay: Duration) -> Router {
    time_service::app(stage).layer(middleware::from_fn(
        move |req: Request, next: Next| async move {
            tokio::time::sleep(delay).await;
            next.run(req).await
        },
    ))
}

/// Every request gets a 500 with the right headers and a JSON error.
pub fn internal_errors(stage: &'static str) -> Router {
    Router::new().fallback(move || async move {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [
                ("x-service-stage", stage),
                (header::CONTENT_TYPE.as_str(), "application/json"),
                (header::CACHE_CONTROL.as_str(), "no-store"),
            ],
            r#"{"error": "database on fire"}"#,
        )
            .into_response()
    })
}

/// The real service, except that `/` gets API Gateway's own 404 (the route
/// `/` does not reach the function): `{"message":"Not Found"}`, no stage header.
pub fn gateway_404_at_root(stage: &str) -> Router {
    time_service::app(stage).layer(middleware::from_fn(|req: Request, next: Next| async move {
        if req.uri().path() != "/" {
            return next.run(req).await;
        }
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE.as_str(), "application/json")],
            r#"{"message":"Not Found"}"#,
        )
            .into_response()
    }))
}

/// The real service, except that `/` gets a JSON 404 with all the right
/// headers whose error does not come from the service (names no route).
pub fn foreign_json_404_at_root(stage: &'static str) -> Router {
    time_service::app(stage).layer(middleware::from_fn(
        move |req: Request, next: Next| async move {
            if req.uri().path() != "/" {
                return next.run(req).await;
            }
            (
                StatusCode::NOT_FOUND,
                [
                    ("x-service-stage", stage),
                    (header::CONTENT_TYPE.as_str(), "application/json"),
                    (header::CACHE_CONTROL.as_str(), "no-store"),
                ],
                r#"{"error": "nothing here"}"#,
            )
                .into_response()
        },
    ))
}

async fn rewrite_json(response: Response, edit: impl FnOnce(&mut Value)) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let mut json: Value = serde_json::from_slice(&bytes).unwrap();
    edit(&mut json);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(serde_json::to_vec(&json).unwrap()))
}

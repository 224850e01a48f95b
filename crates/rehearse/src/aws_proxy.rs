//! The rehearsal's local AWS proxy: one per rehearsal, next to its moto.
//! Functions' `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` for the
//! services moto serves point here; every request is forwarded to moto
//! unchanged (method, path, query, headers including `Host` and the SigV4
//! `Authorization`, body), and moto's answer comes back unchanged.
//!
//! Why forwarding keeps signatures valid: moto recomputes a SigV4
//! signature over the request it receives, `Host` header included
//! (moto/iam/access_control.py builds botocore's `AWSRequest` from the
//! request's headers); the SDK signed `Host: 127.0.0.1:<proxy port>`, and
//! the proxy forwards that header as it came (hyper adds a `Host` only
//! when the request has none), so moto sees exactly what was signed
//! (test `calls_through_the_proxy_keep_their_signature`).
//!
//! What it adds: on an AccessDenied answer
//! ([`local_resources::denied::is_access_denied`]) it works out the action
//! and the resource's ARN from the request
//! ([`local_resources::denied::DeniedCall`]) and appends
//! `[rehearsal] AccessDenied: role R may not ACTION on ARN; add the
//! permission to the function's Policies` to the calling function's log.
//! The caller is the access key that signed the request (`Credential=` of
//! the `Authorization` header): the rehearsal gives each function its own
//! role's credentials and [`AwsProxy::register`]s them.
//!
//! Forwarding is buffered (the whole request, then the whole answer):
//! function calls are small, and moto itself reads bodies whole. Measured
//! added latency: bench/local-resources.sh.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use local_resources::denied::{self, DeniedCall};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::runtime::DENIAL_PREFIX;

/// Who signs with an access key: a function, its role, its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The function's name.
    pub function: String,
    /// Its execution role's name (in moto).
    pub role: String,
    /// Its log file (`None`: the denial goes to the rehearsal's own log
    /// only).
    pub log_file: Option<PathBuf>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    callers: RwLock<HashMap<String, Caller>>,
}

/// The running proxy; stops when dropped.
pub struct AwsProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for AwsProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProxy")
            .field("url", &self.url)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers that belong to one connection, not to the request (RFC 9110,
/// 7.6.1), and `Expect` (the proxy has read the body already): not
/// forwarded. None of them is signed by the SDKs (botocore and aws-sigv4
/// leave `expect` out of SignedHeaders).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(header::EXPECT);
}

impl AwsProxy {
    /// Starts the proxy on a free loopback port, forwarding to `upstream`
    /// (moto's `http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> std::io::Result<AwsProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            callers: RwLock::new(HashMap::new()),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the AWS proxy stopped");
            }
        });
        Ok(AwsProxy {
            url: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`: what functions' endpoint variables name.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where requests go (moto).
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Requests signed with `access_key_id` come from `caller`.
    pub fn register(&self, access_key_id: &str, caller: Caller) {
        self.shared
            .callers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(access_key_id.to_string(), caller);
    }

    /// Who signs with `access_key_id`, if registered.
    pub fn caller(&self, access_key_id: &str) -> Option<Caller> {
        self.shared
            .callers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key_id)
            .cloned()
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                &format!("reading the request: {e}"),
            );
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    let mut forwarded = shared
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", shared.upstream),
        )
        .headers(headers);
    if !body.is_empty() {
        forwarded = forwarded.body(body.clone());
    }
    let answer = forwarded.send().await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            return proxy_error(
                StatusCode::BAD_GATEWAY,
                &format!("moto at {} did not answer: {e}", shared.upstream),
            );
        }
    };
    let status = answer.status();
    let mut answer_headers = answer.headers().clone();
    strip_hop_by_hop(&mut answer_headers);
    let answer_body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return proxy_error(
                StatusCode::BAD_GATEWAY,
                &format!("reading moto's answer: {e}"),
            );
        }
    };
    if denied::is_access_denied(status.as_u16(), &answer_body) {
        let call = note_denial(&shared, &parts, &body, &answer_body);
        if let Some(response) = json_protocol_access_denied(&parts, &call, &answer_body) {
            return response;
        }
    }
    let mut response = Response::new(Body::from(answer_body));
    *response.status_mut() = status;
    *response.headers_mut() = answer_headers;
    response
}

/// The service's own answer to a denied call of a JSON-protocol service
/// whose error shape AWS documents, in place of moto's: moto answers every
/// denial with a 403 and a query-protocol XML body, which an SDK cannot read
/// for a JSON protocol (the Rust SDK reports an `UnknownServiceError`).
/// AWS answers HTTP 400 with `{"__type": "<namespace>#AccessDeniedException",
/// "message": ...}`:
/// - DynamoDB: "Error handling with DynamoDB" (Amazon DynamoDB Developer
///   Guide: error components, the example response, AccessDeniedException
///   under HTTP status code 400);
/// - SQS: "Interpreting Amazon SQS JSON API responses" (Amazon SQS
///   Developer Guide: the JSON error response structure) and "Common
///   Errors" (Amazon SQS API Reference: AccessDeniedException, 400).
///
/// So a function sees `AccessDeniedException`, as on AWS. The message
/// follows IAM's "User: P is not authorized to perform: A on resource: R"
/// with the resource the rehearsal worked out. Other services' answers
/// pass unchanged.
fn json_protocol_access_denied(
    parts: &axum::http::request::Parts,
    call: &DeniedCall,
    answer: &[u8],
) -> Option<Response> {
    let target = parts.headers.get("x-amz-target")?.to_str().ok()?;
    let namespace = if target.starts_with("DynamoDB_20120810.") {
        "com.amazonaws.dynamodb.v20120810"
    } else if target.starts_with("AmazonSQS.") {
        "com.amazonaws.sqs"
    } else {
        return None;
    };
    let principal = local_resources::iam::Denial::from_body(&String::from_utf8_lossy(answer))
        .map(|d| d.principal)
        .unwrap_or_else(|| "the caller".to_string());
    let on = call
        .resource
        .as_deref()
        .map(|r| format!(" on resource: {r}"))
        .unwrap_or_default();
    let body = serde_json::json!({
        "__type": format!("{namespace}#AccessDeniedException"),
        "message": format!(
            "User: {principal} is not authorized to perform: {}{on} because no identity-based policy allows the {} action",
            call.action, call.action
        ),
    });
    Some(
        (
            StatusCode::BAD_REQUEST,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.0"),
            )],
            body.to_string(),
        )
            .into_response(),
    )
}

/// Writes the denial to the calling function's log (one line per denied
/// request) and to the rehearsal's own log; returns the denied call.
fn note_denial(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    answer: &Bytes,
) -> DeniedCall {
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let request = denied::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        host: header(header::HOST).unwrap_or(""),
        authorization: header(header::AUTHORIZATION),
        target: parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok()),
        content_type: header(header::CONTENT_TYPE),
        body,
    };
    let call = DeniedCall::from_request(&request, answer);
    let caller = request.access_key_id().and_then(|key| {
        shared
            .callers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    });
    let Some(caller) = caller else {
        // Not a function's key (the rehearsal's own calls go to moto
        // directly): only the rehearsal's log.
        let principal = local_resources::iam::Denial::from_body(&String::from_utf8_lossy(answer))
            .map(|d| d.principal)
            .unwrap_or_else(|| "an unknown caller".to_string());
        tracing::warn!("{}", call.line(&principal));
        return call;
    };
    let line = format!("{DENIAL_PREFIX} {}\n", call.line(&caller.role));
    tracing::warn!(function = %caller.function, "{}", line.trim_end());
    if let Some(path) = &caller.log_file {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                // On a line of its own, even when the function's output so
                // far ends mid-line.
                let len = f.metadata()?.len();
                let mut last = [b'\n'];
                if len > 0 {
                    f.seek(SeekFrom::Start(len - 1))?;
                    f.read_exact(&mut last)?;
                }
                let text = if last[0] == b'\n' {
                    line.clone()
                } else {
                    format!("\n{line}")
                };
                f.write_all(text.as_bytes())
            });
        if let Err(error) = written {
            tracing::warn!(function = %caller.function, %error, path = %path.display(), "cannot write the denial to the function's log");
        }
    }
    call
}

/// An answer of the proxy itself, in the query protocol's error shape
/// (what the SDKs parse for any service when the body is XML).
fn proxy_error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse><Error><Code>RehearsalProxyError</Code><Message>the rehearsal's AWS proxy: {}</Message></Error></ErrorResponse>",
        message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOTO_DENIAL: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/R/R is not authorized to perform: sqs:SendMessage</Message><Type>Sender</Type></Error></Errors></ErrorResponse>";

    fn parts(target: Option<&str>) -> axum::http::request::Parts {
        let mut request = axum::http::Request::builder().method("POST").uri("/");
        if let Some(target) = target {
            request = request.header("x-amz-target", target);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn call(action: &str, resource: Option<&str>) -> DeniedCall {
        DeniedCall {
            service: action.split(':').next().unwrap().to_string(),
            action: action.to_string(),
            resource: resource.map(str::to_string),
        }
    }

    async fn body_of(response: Response) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_denied_sqs_json_call_is_answered_as_sqs_answers_it() {
        let arn = "arn:aws:sqs:us-east-1:123456789012:q";
        let response = json_protocol_access_denied(
            &parts(Some("AmazonSQS.SendMessage")),
            &call("sqs:SendMessage", Some(arn)),
            MOTO_DENIAL,
        )
        .expect("SQS's JSON protocol is rewritten");
        let (status, body) = body_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["__type"], "com.amazonaws.sqs#AccessDeniedException");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("User: arn:aws:sts::123456789012:assumed-role/R/R is not authorized to perform: sqs:SendMessage on resource: arn:aws:sqs:us-east-1:123456789012:q"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_denied_dynamodb_call_is_answered_as_dynamodb_answers_it() {
        let response = json_protocol_access_denied(
            &parts(Some("DynamoDB_20120810.PutItem")),
            &call("dynamodb:PutItem", None),
            MOTO_DENIAL,
        )
        .expect("DynamoDB is rewritten");
        let (status, body) = body_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#AccessDeniedException"
        );
    }

    #[test]
    fn other_services_keep_motos_answer() {
        for target in [None, Some("Kinesis_20131202.PutRecord")] {
            assert!(
                json_protocol_access_denied(
                    &parts(target),
                    &call("kinesis:PutRecord", None),
                    MOTO_DENIAL
                )
                .is_none(),
                "{target:?}"
            );
        }
    }
}

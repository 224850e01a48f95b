//! A local API gateway for one stage: an HTTP server on a loopback port that
//! turns each request into the API Gateway event the function's template asks
//! for (HTTP API payload 2.0 for `HttpApi` events, REST payload 1.0 for `Api`
//! events) and the function's answer back into an HTTP response.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::ids;
use crate::runtime::FunctionHost;

/// Which API Gateway flavour (and so which event payload) a route uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKind {
    /// `AWS::Serverless::HttpApi` / `HttpApi` events: payload format 2.0.
    Http,
    /// `AWS::Serverless::Api` / `Api` events: payload format 1.0, URLs carry the stage name.
    Rest { stage: String },
}

/// One route: a method and path template sending to a function.
#[derive(Debug, Clone)]
pub struct Route {
    pub api_id: String,
    pub kind: ApiKind,
    /// `None` is `ANY`.
    pub method: Option<Method>,
    /// A path template (`/time/{timeZone+}`), or `$default` (HTTP APIs).
    pub path: String,
    pub function: Arc<FunctionHost>,
}

impl Route {
    fn route_key(&self) -> String {
        if self.path == "$default" {
            return "$default".to_string();
        }
        let method = self.method.as_ref().map_or("ANY", Method::as_str);
        format!("{method} {}", self.path)
    }

    /// Matches `path` (stage prefix already removed); returns path parameters.
    fn matches(&self, method: &Method, path: &str) -> Option<BTreeMap<String, String>> {
        if let Some(m) = &self.method
            && m != method
        {
            return None;
        }
        if self.path == "$default" {
            return Some(BTreeMap::new());
        }
        match_path(&self.path, path)
    }

    /// Sort key: literal segments beat parameters, parameters beat greedy ones.
    fn specificity(&self) -> (usize, usize, usize, bool) {
        if self.path == "$default" {
            return (0, 0, 0, false);
        }
        let segments: Vec<&str> = self.path.split('/').filter(|s| !s.is_empty()).collect();
        let literal = segments.iter().filter(|s| !s.starts_with('{')).count();
        let params = segments
            .iter()
            .filter(|s| s.starts_with('{') && !s.ends_with("+}"))
            .count();
        (1, literal, params, self.method.is_some())
    }
}

/// Matches an API Gateway path template against a request path.
pub fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let wanted: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let got: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut params = BTreeMap::new();
    for (i, segment) in wanted.iter().enumerate() {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            if i >= got.len() {
                return None;
            }
            params.insert(name.to_string(), decode(&got[i..].join("/")));
            return Some(params);
        }
        let actual = got.get(i)?;
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.insert(name.to_string(), decode(actual));
        } else if segment != actual {
            return None;
        }
    }
    (wanted.len() == got.len()).then_some(params)
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

struct Shared {
    routes: RwLock<Vec<Route>>,
}

/// A running gateway. Its port stays the same when a redeploy swaps routes.
pub struct Gateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            routes: RwLock::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "API gateway stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces every route (a redeploy).
    pub fn set_routes(&self, mut routes: Vec<Route>) {
        routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        *self.shared.routes.write().expect("routes poisoned") = routes;
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"message": text}).to_string(),
    )
        .into_response()
}

/// Finds the route for a request; returns it, the matched path (stage
/// removed) and the path parameters.
fn find_route(
    routes: &[Route],
    method: &Method,
    path: &str,
) -> Option<(Route, String, BTreeMap<String, String>)> {
    routes.iter().find_map(|route| {
        let path = match &route.kind {
            ApiKind::Http => path.to_string(),
            ApiKind::Rest { stage } => {
                let rest = path.strip_prefix('/')?.strip_prefix(stage.as_str())?;
                if !(rest.is_empty() || rest.starts_with('/')) {
                    return None;
                }
                if rest.is_empty() {
                    "/".to_string()
                } else {
                    rest.to_string()
                }
            }
        };
        route
            .matches(method, &path)
            .map(|params| (route.clone(), path, params))
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let routes = shared.routes.read().expect("routes poisoned").clone();
    let Some((route, path, params)) = find_route(&routes, &method, uri.path()) else {
        // What API Gateway answers for a path no route matches.
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let request = RequestParts {
        method: &method,
        raw_path: uri.path(),
        path: &path,
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
        source_ip: peer.ip().to_string(),
        path_params: &params,
    };
    let event = match &route.kind {
        ApiKind::Http => http_api_event(&route, &request),
        ApiKind::Rest { stage } => rest_api_event(&route, stage, &request),
    };
    match route.function.invoke(Bytes::from(event.to_string())).await {
        Ok(payload) => match function_response(&route.kind, &payload) {
            Ok(response) => response,
            Err(why) => {
                tracing::warn!(function = route.function.name(), %why, "malformed Lambda proxy response");
                message(StatusCode::BAD_GATEWAY, "Internal Server Error")
            }
        },
        Err(error) => {
            tracing::warn!(function = route.function.name(), %error, "function failed behind the API");
            if error.error_type == "Sandbox.Timedout" {
                message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            } else {
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }
}

struct RequestParts<'a> {
    method: &'a Method,
    raw_path: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    source_ip: String,
    path_params: &'a BTreeMap<String, String>,
}

impl RequestParts<'_> {
    /// Headers with repeated values joined by commas (names are lower case,
    /// as hyper delivers them).
    fn header_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for (name, value) in self.headers {
            let key = name.as_str().to_string();
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match map.get_mut(&key) {
                Some(Value::String(existing)) => {
                    existing.push(',');
                    existing.push_str(&value);
                }
                _ => {
                    map.insert(key, Value::String(value));
                }
            }
        }
        map
    }

    fn multi_value_headers(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for (name, value) in self.headers {
            let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
            match map
                .entry(name.as_str().to_string())
                .or_insert_with(|| Value::Array(vec![]))
            {
                Value::Array(values) => values.push(value),
                _ => unreachable!("only arrays are inserted"),
            }
        }
        map
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The body as API Gateway passes it: text, or base64 for binary.
    fn body_value(&self) -> (Value, bool) {
        if self.body.is_empty() {
            return (Value::Null, false);
        }
        match std::str::from_utf8(self.body) {
            Ok(text) => (Value::String(text.to_string()), false),
            Err(_) => (Value::String(BASE64.encode(self.body)), true),
        }
    }

    fn params_value(&self) -> Value {
        if self.path_params.is_empty() {
            Value::Null
        } else {
            json!(self.path_params)
        }
    }

    fn user_agent(&self) -> String {
        self.headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    fn host(&self) -> String {
        self.headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string()
    }
}

fn now_parts() -> (String, i64) {
    let now = chrono::Utc::now();
    (
        now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
        now.timestamp_millis(),
    )
}

/// An HTTP API (payload format 2.0) event.
fn http_api_event(route: &Route, request: &RequestParts<'_>) -> Value {
    let (time, epoch) = now_parts();
    let mut query = Map::new();
    for (key, value) in request.query_pairs() {
        match query.get_mut(&key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                query.insert(key, Value::String(value));
            }
        }
    }
    let mut headers = request.header_map();
    let cookies: Vec<String> = headers
        .remove("cookie")
        .and_then(|v| v.as_str().map(str::to_string))
        .map(|c| c.split(';').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let (body, is_base64) = request.body_value();
    let host = request.host();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.route_key(),
        "rawPath": request.raw_path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": ids::ACCOUNT_ID,
            "apiId": route.api_id,
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": request.method.as_str(),
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": request.user_agent(),
            },
            "requestId": ids::uuid(),
            "routeKey": route.route_key(),
            "stage": "$default",
            "time": time,
            "timeEpoch": epoch,
        },
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !request.path_params.is_empty() {
        event["pathParameters"] = request.params_value();
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// A REST API (payload format 1.0) event.
fn rest_api_event(route: &Route, stage: &str, request: &RequestParts<'_>) -> Value {
    let (time, epoch) = now_parts();
    let pairs = request.query_pairs();
    let (query, multi_query) = if pairs.is_empty() {
        (Value::Null, Value::Null)
    } else {
        let mut single = Map::new();
        let mut multi: Map<String, Value> = Map::new();
        for (key, value) in pairs {
            single.insert(key.clone(), Value::String(value.clone()));
            match multi.entry(key).or_insert_with(|| Value::Array(vec![])) {
                Value::Array(values) => values.push(Value::String(value)),
                _ => unreachable!("only arrays are inserted"),
            }
        }
        (Value::Object(single), Value::Object(multi))
    };
    let (body, is_base64) = request.body_value();
    let resource = if route.path == "$default" {
        "/{proxy+}".to_string()
    } else {
        route.path.clone()
    };
    json!({
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method.as_str(),
        "headers": request.header_map(),
        "multiValueHeaders": request.multi_value_headers(),
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": request.params_value(),
        "stageVariables": null,
        "requestContext": {
            "accountId": ids::ACCOUNT_ID,
            "apiId": route.api_id,
            "domainName": request.host(),
            "httpMethod": request.method.as_str(),
            "identity": {"sourceIp": request.source_ip, "userAgent": request.user_agent()},
            "path": format!("/{stage}{}", request.path),
            "protocol": "HTTP/1.1",
            "requestId": ids::uuid(),
            "requestTime": time,
            "requestTimeEpoch": epoch,
            "resourceId": ids::stable_suffix(&resource, 6).to_lowercase(),
            "resourcePath": resource,
            "stage": stage,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// Turns a Lambda proxy integration response into HTTP.
fn function_response(kind: &ApiKind, payload: &[u8]) -> Result<Response, String> {
    let doc: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let structured = doc.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(object) = structured else {
        if *kind == ApiKind::Http {
            // Payload 2.0 without a statusCode: the whole payload is a JSON body.
            return Ok((
                StatusCode::OK,
                [("content-type", "application/json")],
                doc.to_string(),
            )
                .into_response());
        }
        return Err("the response has no statusCode".to_string());
    };
    let status = object["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or("statusCode is not an HTTP status")?;
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => {
            if object.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                BASE64
                    .decode(text)
                    .map_err(|e| format!("body is not base64: {e}"))?
            } else {
                text.clone().into_bytes()
            }
        }
        Some(other) => other.to_string().into_bytes(),
    };
    // Built by hand: axum's `IntoResponse` for bytes would add a
    // content-type of its own next to the function's.
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut add = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    };
    if let Some(Value::Object(map)) = object.get("headers") {
        for (name, value) in map {
            if let Some(value) = value.as_str() {
                add(name, value);
            }
        }
    }
    if let Some(Value::Object(map)) = object.get("multiValueHeaders") {
        for (name, values) in map {
            for value in values.as_array().into_iter().flatten() {
                if let Some(value) = value.as_str() {
                    add(name, value);
                }
            }
        }
    }
    if let Some(Value::Array(cookies)) = object.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            add("set-cookie", cookie);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_parameters_take_the_rest_of_the_path() {
        let params =
            match_path("/time/{timeZone+}", "/time/America/Argentina/Buenos_Aires").unwrap();
        assert_eq!(params["timeZone"], "America/Argentina/Buenos_Aires");
    }

    #[test]
    fn greedy_parameters_need_at_least_one_segment() {
        assert!(match_path("/time/{tz+}", "/time").is_none());
    }

    #[test]
    fn literal_paths_match_exactly() {
        assert!(match_path("/time", "/time").is_some());
        assert!(match_path("/time", "/times").is_none());
        assert!(match_path("/time", "/time/x").is_none());
    }

    #[test]
    fn path_parameters_are_percent_decoded() {
        let params = match_path("/time/{tz}", "/time/Europe%2FLondon").unwrap();
        assert_eq!(params["tz"], "Europe/London");
    }

    #[test]
    fn a_structured_response_keeps_status_headers_and_body() {
        let payload = json!({"statusCode": 404, "headers": {"x-a": "1"}, "body": "{}", "isBase64Encoded": false});
        let response = function_response(&ApiKind::Http, payload.to_string().as_bytes()).unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["x-a"], "1");
    }

    #[test]
    fn the_functions_content_type_is_the_only_one() {
        let payload = json!({"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"});
        let response = function_response(&ApiKind::Http, payload.to_string().as_bytes()).unwrap();
        let types: Vec<_> = response.headers().get_all("content-type").iter().collect();
        assert_eq!(types, ["application/json"]);
    }

    #[test]
    fn an_http_api_response_without_status_is_a_json_body() {
        let response = function_response(&ApiKind::Http, br#"{"a":1}"#).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn a_rest_api_response_without_status_is_malformed() {
        let kind = ApiKind::Rest {
            stage: "Prod".into(),
        };
        assert!(function_response(&kind, br#"{"a":1}"#).is_err());
    }
}

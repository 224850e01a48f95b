//! A local API gateway for one stage: an HTTP server on a loopback port that
//! turns each request into the API Gateway event the function's template asks
//! for (HTTP API payload 2.0 for `HttpApi` events, REST payload 1.0 for `Api`
//! events) and the function's answer back into an HTTP response.
//!
//! The events are `aws_lambda_events`' own types (`ApiGatewayV2httpRequest`,
//! `ApiGatewayProxyRequest`), the ones `lambda_http` parses them into.
//! Routes match as API Gateway matches them: `/` only the root, a greedy
//! `{proxy+}` one segment or more, literal segments before parameters.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayRequestIdentity,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::ids;
use crate::runtime::FunctionHost;
use crate::shift::{Alias, ObservedRequest, Observer};

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
    pub target: Target,
}

/// What a route invokes: a function, or an alias (which picks one of its
/// versions per request by its weights).
#[derive(Debug, Clone)]
pub enum Target {
    Function(Arc<FunctionHost>),
    Alias(Arc<Alias>),
}

impl From<Arc<FunctionHost>> for Target {
    fn from(host: Arc<FunctionHost>) -> Self {
        Target::Function(host)
    }
}

impl Target {
    /// The process for the next request, and the version it runs (aliases).
    fn pick(&self) -> (Arc<FunctionHost>, Option<u32>) {
        match self {
            Target::Function(host) => (host.clone(), None),
            Target::Alias(alias) => {
                let version = alias.pick();
                (version.host.clone(), Some(version.number))
            }
        }
    }
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
    observer: RwLock<Option<Arc<Observer>>>,
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
            observer: RwLock::new(None),
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
        *self
            .shared
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = routes;
    }

    /// The routes now served.
    pub fn routes(&self) -> Vec<Route> {
        self.shared
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Records every request from now on in `observer` (the stage's metrics).
    pub fn set_observer(&self, observer: Arc<Observer>) {
        *self
            .shared
            .observer
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(observer);
    }

    /// Paths for synthetic load: one per route that answers GET, path
    /// parameters filled with `rehearsal`, REST routes under their stage.
    pub fn load_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .routes()
            .iter()
            .filter(|r| r.method.as_ref().is_none_or(|m| *m == Method::GET))
            .map(|r| {
                let path = if r.path == "$default" {
                    "/".to_string()
                } else {
                    r.path
                        .split('/')
                        .map(|s| if s.starts_with('{') { "rehearsal" } else { s })
                        .collect::<Vec<_>>()
                        .join("/")
                };
                match &r.kind {
                    ApiKind::Http => path,
                    ApiKind::Rest { stage } => format!("/{stage}{path}"),
                }
            })
            .collect();
        paths.sort();
        paths.dedup();
        paths
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
    let routes = shared
        .routes
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
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
        ApiKind::Http => serde_json::to_vec(&http_api_event(&route, &request)),
        ApiKind::Rest { stage } => serde_json::to_vec(&rest_api_event(&route, stage, &request)),
    };
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(%error, "request that cannot be written as an API Gateway event");
            return message(StatusCode::BAD_REQUEST, "Bad Request");
        }
    };
    let (host, version) = route.target.pick();
    let started = std::time::Instant::now();
    let outcome = host.invoke(Bytes::from(event)).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let error = outcome.is_err();
    let response = match outcome {
        Ok(payload) => match function_response(&route.kind, &payload) {
            Ok(response) => response,
            Err(why) => {
                tracing::warn!(function = host.name(), %why, "malformed Lambda proxy response");
                message(StatusCode::BAD_GATEWAY, "Internal Server Error")
            }
        },
        Err(error) => {
            tracing::warn!(function = host.name(), %error, "function failed behind the API");
            if error.error_type == "Sandbox.Timedout" {
                message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            } else {
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    };
    let observer = shared
        .observer
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    if let Some(observer) = observer {
        let api_stage = match &route.kind {
            ApiKind::Http => "$default",
            ApiKind::Rest { stage } => stage.as_str(),
        };
        observer.record_request(&ObservedRequest {
            api_id: &route.api_id,
            api_stage,
            status: response.status().as_u16(),
            function: Some(host.name()),
            alias_resource: match &route.target {
                Target::Alias(alias) => Some(alias.resource()),
                Target::Function(_) => None,
            },
            version,
            error,
            duration_ms,
        });
    }
    response
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
    /// Headers with repeated values joined by commas, as HTTP APIs pass
    /// them (names are lower case, as hyper delivers them).
    fn joined_headers(&self) -> HeaderMap {
        let mut joined = HeaderMap::new();
        for name in self.headers.keys() {
            let values: Vec<&[u8]> = self
                .headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            if let Ok(value) = HeaderValue::from_bytes(&values.join(&b","[..])) {
                joined.insert(name.clone(), value);
            }
        }
        joined
    }

    fn query_pairs(&self) -> HashMap<String, Vec<String>> {
        let mut pairs: HashMap<String, Vec<String>> = HashMap::new();
        for (key, value) in form_urlencoded::parse(self.query.as_bytes()).into_owned() {
            pairs.entry(key).or_default().push(value);
        }
        pairs
    }

    /// The body as API Gateway passes it: text, or base64 for binary.
    fn body_value(&self) -> (Option<String>, bool) {
        if self.body.is_empty() {
            return (None, false);
        }
        match std::str::from_utf8(self.body) {
            Ok(text) => (Some(text.to_string()), false),
            Err(_) => (Some(BASE64.encode(self.body)), true),
        }
    }

    fn path_params(&self) -> HashMap<String, String> {
        self.path_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn header_text(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn host(&self) -> String {
        self.header_text("host")
            .unwrap_or_else(|| "127.0.0.1".to_string())
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
fn http_api_event(route: &Route, request: &RequestParts<'_>) -> ApiGatewayV2httpRequest {
    let (time, epoch) = now_parts();
    let mut headers = request.joined_headers();
    let cookies: Vec<String> = headers
        .remove("cookie")
        .and_then(|v| v.to_str().ok().map(str::to_string))
        .map(|c| c.split(';').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let (body, is_base64) = request.body_value();
    let host = request.host();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = request.method.clone();
    http.path = Some(request.raw_path.to_string());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(request.source_ip.clone());
    http.user_agent = Some(request.header_text("user-agent").unwrap_or_default());

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route.route_key());
    context.account_id = Some(ids::ACCOUNT_ID.into());
    context.stage = Some("$default".into());
    context.request_id = Some(ids::uuid());
    context.apiid = Some(route.api_id.clone());
    context.domain_prefix = host.split('.').next().map(str::to_string);
    context.domain_name = Some(host);
    context.time = Some(time);
    context.time_epoch = epoch;
    context.http = http;

    let mut event = ApiGatewayV2httpRequest::default();
    // Not part of payload 2.0, but the type always writes it: make it true.
    #[allow(deprecated)]
    {
        event.http_method = request.method.clone();
    }
    event.version = Some("2.0".into());
    event.route_key = Some(route.route_key());
    event.raw_path = Some(request.raw_path.to_string());
    event.raw_query_string = Some(request.query.to_string());
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.query_string_parameters = request.query_pairs().into();
    event.path_parameters = request.path_params();
    event.request_context = context;
    event.body = body;
    event.is_base64_encoded = is_base64;
    event
}

/// A REST API (payload format 1.0) event.
fn rest_api_event(
    route: &Route,
    stage: &str,
    request: &RequestParts<'_>,
) -> ApiGatewayProxyRequest {
    let (time, epoch) = now_parts();
    let (body, is_base64) = request.body_value();
    let resource = if route.path == "$default" {
        "/{proxy+}".to_string()
    } else {
        route.path.clone()
    };

    let mut identity = ApiGatewayRequestIdentity::default();
    identity.source_ip = Some(request.source_ip.clone());
    identity.user_agent = request.header_text("user-agent");

    let mut context = ApiGatewayProxyRequestContext::default();
    context.account_id = Some(ids::ACCOUNT_ID.into());
    context.apiid = Some(route.api_id.clone());
    context.domain_name = Some(request.host());
    context.http_method = request.method.clone();
    context.identity = identity;
    context.path = Some(format!("/{stage}{}", request.path));
    context.protocol = Some("HTTP/1.1".into());
    context.request_id = Some(ids::uuid());
    context.request_time = Some(time);
    context.request_time_epoch = epoch;
    context.resource_id = Some(ids::stable_suffix(&resource, 6).to_lowercase());
    context.resource_path = Some(resource.clone());
    context.stage = Some(stage.to_string());

    let query = request.query_pairs();
    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some(resource);
    event.path = Some(request.path.to_string());
    event.http_method = request.method.clone();
    event.headers = request.headers.clone();
    event.multi_value_headers = request.headers.clone();
    event.query_string_parameters = query.clone().into();
    event.multi_value_query_string_parameters = query.into();
    event.path_parameters = request.path_params();
    event.request_context = context;
    event.body = body;
    event.is_base64_encoded = is_base64;
    event
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

    fn route(method: Option<Method>, path: &str) -> Route {
        let config = crate::runtime::FunctionConfig {
            name: format!("fn {path}"),
            command: "/bin/true".into(),
            args: Vec::new(),
            task_root: "/tmp".into(),
            handler: "bootstrap".into(),
            memory_mb: 128,
            timeout: std::time::Duration::from_secs(1),
            environment: BTreeMap::new(),
            log_file: None,
            async_retries: 0,
        };
        Route {
            api_id: "api".into(),
            kind: ApiKind::Http,
            method,
            path: path.into(),
            target: Target::Function(Arc::new(FunctionHost::new(config))),
        }
    }

    /// The routes of app-sam.yaml, sorted as `set_routes` sorts them.
    fn app_routes() -> Vec<Route> {
        let mut routes = vec![
            route(None, "/{proxy+}"),
            route(Some(Method::GET), "/time/{proxy+}"),
            route(None, "/"),
            route(Some(Method::GET), "/time"),
        ];
        routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        routes
    }

    fn routed(routes: &[Route], method: Method, path: &str) -> Option<String> {
        find_route(routes, &method, path).map(|(route, _, _)| route.path)
    }

    #[tokio::test]
    async fn synthetic_load_paths_are_the_get_routes_with_parameters_filled_in() {
        let gateway = Gateway::start().await.unwrap();
        let mut routes = app_routes();
        routes.push(route(Some(Method::POST), "/only-post"));
        gateway.set_routes(routes);
        assert_eq!(
            gateway.load_paths(),
            ["/", "/rehearsal", "/time", "/time/rehearsal"]
        );
    }

    #[test]
    fn the_root_route_matches_only_the_root() {
        assert!(match_path("/", "/").is_some());
        assert!(match_path("/", "/time").is_none());
        assert_eq!(
            routed(&app_routes(), Method::GET, "/").as_deref(),
            Some("/")
        );
    }

    #[test]
    fn a_greedy_proxy_needs_at_least_one_segment_so_the_root_is_not_its() {
        assert!(match_path("/{proxy+}", "/").is_none());
        let without_root: Vec<Route> = app_routes().into_iter().filter(|r| r.path != "/").collect();
        assert_eq!(routed(&without_root, Method::GET, "/"), None);
    }

    #[test]
    fn other_paths_go_to_the_most_specific_route() {
        let routes = app_routes();
        assert_eq!(
            routed(&routes, Method::GET, "/time").as_deref(),
            Some("/time")
        );
        assert_eq!(
            routed(&routes, Method::GET, "/time/Europe/London").as_deref(),
            Some("/time/{proxy+}")
        );
        assert_eq!(
            routed(&routes, Method::POST, "/time").as_deref(),
            Some("/{proxy+}")
        );
        assert_eq!(
            routed(&routes, Method::GET, "/x").as_deref(),
            Some("/{proxy+}")
        );
    }

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

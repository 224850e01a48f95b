//! Deploying a packaged SAM template as a local stack: every
//! `AWS::Serverless::Function` runs as a local process of its `bootstrap`
//! under the Runtime API, its API events are served by the stack's gateway,
//! and the stack's outputs resolve to the local values.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::cfn::{self, CfnError, Context, ResourceValues};
use crate::gateway::{ApiKind, Gateway, Route};
use crate::ids;
use crate::runtime::{FunctionConfig, FunctionHost, StartError};
use crate::world::{StackRecord, World};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Template(#[from] CfnError),
    #[error(
        "function {function}: CodeUri {code_uri} is not a local directory; the rehearsal deploys templates packaged without --s3-bucket (scripts/build.sh --out DIR)"
    )]
    RemoteCode { function: String, code_uri: String },
    #[error("function {function}: no executable bootstrap at {path}; did the build produce it?")]
    MissingBootstrap { function: String, path: String },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot start the API gateway of stack {stack} on 127.0.0.1: {source}")]
    Gateway {
        stack: String,
        source: std::io::Error,
    },
    #[error("function {function}: event {event} has a Path or Method the rehearsal cannot read")]
    BadEvent { function: String, event: String },
    #[error("stack {stack} does not exist")]
    NoSuchStack { stack: String },
}

/// What a deploy produced, for the report.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub stack: String,
    pub outputs: BTreeMap<String, String>,
    pub functions: Vec<String>,
    /// The stack's API gateway, `http://127.0.0.1:PORT/`, if it serves APIs.
    pub api_base: Option<String>,
}

struct LocalStack {
    functions: Vec<Arc<FunctionHost>>,
    gateway: Option<Arc<Gateway>>,
    record: StackRecord,
}

/// Deploys and holds the local stacks of one rehearsal.
pub struct Deployer {
    world: Arc<World>,
    endpoint_url: String,
    log_dir: PathBuf,
    stacks: Mutex<HashMap<String, LocalStack>>,
}

/// A function resource read from the template, before it starts.
struct FunctionSpec {
    logical_id: String,
    config: FunctionConfig,
    events: Vec<(String, ApiKind, String, Option<String>, String)>,
}

const API_TYPES: [&str; 2] = ["AWS::Serverless::HttpApi", "AWS::Serverless::Api"];
pub(crate) const FUNCTION_TYPES: [&str; 2] = ["AWS::Serverless::Function", "AWS::Lambda::Function"];

impl Deployer {
    pub fn new(world: Arc<World>, endpoint_url: String, log_dir: PathBuf) -> Self {
        Self {
            world,
            endpoint_url,
            log_dir,
            stacks: Mutex::new(HashMap::new()),
        }
    }

    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// The API base URLs of the running stacks, by stack name.
    pub async fn api_urls(&self) -> BTreeMap<String, String> {
        self.stacks
            .lock()
            .await
            .iter()
            .filter_map(|(name, stack)| {
                stack
                    .gateway
                    .as_ref()
                    .map(|g| (name.clone(), format!("{}/", g.base_url())))
            })
            .collect()
    }

    /// Deletes a stack: stops its functions and its gateway.
    pub async fn delete(&self, stack_name: &str) -> Result<(), DeployError> {
        let stack = self.stacks.lock().await.remove(stack_name).ok_or_else(|| {
            DeployError::NoSuchStack {
                stack: stack_name.to_string(),
            }
        })?;
        self.world.remove_stack(stack_name);
        for host in &stack.functions {
            self.world.remove_function(host.name());
            host.stop().await;
        }
        Ok(())
    }

    /// Stops every stack (end of the rehearsal).
    pub async fn shutdown(&self) {
        let stacks: Vec<LocalStack> = self.stacks.lock().await.drain().map(|(_, s)| s).collect();
        for stack in stacks {
            for host in stack.functions {
                host.stop().await;
            }
        }
    }

    /// Creates or updates `stack_name` from the template at `template_path`
    /// with `overrides` for its parameters. An update starts the new
    /// processes before it stops the old ones and keeps the gateway's port.
    pub async fn deploy(
        &self,
        stack_name: &str,
        template_path: &Path,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Deployed, DeployError> {
        let template = cfn::load(template_path)?;
        let what = format!("stack {stack_name} ({})", template_path.display());
        let parameters = cfn::parameter_values(&template, overrides, &what)?;
        let mut ctx = Context::new(stack_name, &template, parameters.clone());
        let template_dir = template_path.parent().unwrap_or(Path::new("."));

        let resources = live_resources(&template, &ctx, &what)?;
        let needs_gateway = resources.iter().any(|(_, body)| {
            API_TYPES.contains(&resource_type(body))
                || api_events(body).any(|(_, kind, _)| kind.is_some())
        });
        let existing_gateway = {
            let stacks = self.stacks.lock().await;
            stacks.get(stack_name).and_then(|s| s.gateway.clone())
        };
        let gateway = match (needs_gateway, existing_gateway) {
            (false, _) => None,
            (true, Some(g)) => Some(g),
            (true, None) => Some(Arc::new(Gateway::start().await.map_err(|source| {
                DeployError::Gateway {
                    stack: stack_name.to_string(),
                    source,
                }
            })?)),
        };
        let base_url = gateway.as_ref().map(|g| g.base_url());

        // Physical ids and attributes of every resource, implicit ones included.
        let mut api_kinds: BTreeMap<String, (String, ApiKind)> = BTreeMap::new();
        for (logical_id, body) in &resources {
            let kind = resource_type(body);
            let mut values = ResourceValues {
                resource_type: kind.to_string(),
                reference: generated_name(stack_name, logical_id),
                attributes: BTreeMap::new(),
            };
            if FUNCTION_TYPES.contains(&kind) {
                if let Some(name) = body["Properties"].get("FunctionName") {
                    values.reference = ctx.resolve_string(
                        name,
                        &format!("Resources.{logical_id}.Properties.FunctionName"),
                    )?;
                }
                values
                    .attributes
                    .insert("Arn".into(), ids::function_arn(&values.reference));
                ctx.resources.insert(
                    format!("{logical_id}Role"),
                    ResourceValues {
                        resource_type: "AWS::IAM::Role".into(),
                        reference: generated_name(stack_name, &format!("{logical_id}Role")),
                        attributes: BTreeMap::new(),
                    },
                );
                for (_, event_kind, _) in api_events(body) {
                    match event_kind {
                        Some("HttpApi") => implicit_api(
                            &mut ctx,
                            &mut api_kinds,
                            stack_name,
                            "ServerlessHttpApi",
                            ApiKind::Http,
                            base_url.as_deref(),
                        ),
                        Some("Api") => implicit_api(
                            &mut ctx,
                            &mut api_kinds,
                            stack_name,
                            "ServerlessRestApi",
                            ApiKind::Rest {
                                stage: "Prod".into(),
                            },
                            base_url.as_deref(),
                        ),
                        _ => {}
                    }
                }
            } else if API_TYPES.contains(&kind) {
                let api_kind = if kind == "AWS::Serverless::HttpApi" {
                    ApiKind::Http
                } else {
                    let stage = body["Properties"]
                        .get("StageName")
                        .map(|s| {
                            ctx.resolve_string(
                                s,
                                &format!("Resources.{logical_id}.Properties.StageName"),
                            )
                        })
                        .transpose()?
                        .unwrap_or_else(|| "Prod".to_string());
                    ApiKind::Rest { stage }
                };
                values.reference = api_id(stack_name, logical_id);
                if let ApiKind::Rest { stage } = &api_kind {
                    values.attributes.insert("StageName".into(), stage.clone());
                }
                if let Some(base) = &base_url {
                    values.attributes.insert("ApiEndpoint".into(), base.clone());
                }
                values.attributes.insert(
                    "RootResourceId".into(),
                    ids::stable_suffix(logical_id, 10).to_lowercase(),
                );
                api_kinds.insert(logical_id.clone(), (values.reference.clone(), api_kind));
            }
            ctx.resources.insert(logical_id.clone(), values);
        }

        // Functions, with Globals.Function merged in as SAM merges it.
        let globals = template["Globals"]["Function"].clone();
        let mut specs = Vec::new();
        for (logical_id, body) in &resources {
            if FUNCTION_TYPES.contains(&resource_type(body)) {
                specs.push(self.function_spec(
                    stack_name,
                    logical_id,
                    body,
                    &globals,
                    &ctx,
                    template_dir,
                    base_url.as_deref(),
                )?);
            }
        }

        let mut outputs = BTreeMap::new();
        if let Some(Value::Object(section)) = template.get("Outputs") {
            for (name, output) in section {
                if let Some(condition) = output.get("Condition").and_then(Value::as_str)
                    && !ctx.condition(condition, &format!("Outputs.{name}"))?
                {
                    continue;
                }
                // An output that needs a resource the rehearsal does not run
                // (a repository's clone URL, say) is left out, as a stack
                // without it would be: a consumer then reports it missing.
                match ctx.resolve_string(&output["Value"], &format!("Outputs.{name}.Value")) {
                    Ok(value) => {
                        outputs.insert(
                            name.clone(),
                            localize_urls(&value, &api_kinds, base_url.as_deref()),
                        );
                    }
                    Err(error) => {
                        tracing::info!(stack = stack_name, output = %name, %error, "output left out: no local value");
                    }
                }
            }
        }

        // Start the new processes before anything old is replaced.
        let hosts: Vec<Arc<FunctionHost>> = specs
            .iter()
            .map(|s| Arc::new(FunctionHost::new(s.config.clone())))
            .collect();
        futures::future::try_join_all(hosts.iter().map(|h| h.warm())).await?;

        let mut routes = Vec::new();
        for (spec, host) in specs.iter().zip(&hosts) {
            for (event, kind, api_id, method, path) in &spec.events {
                let method = match method.as_deref() {
                    None | Some("ANY") | Some("any") | Some("x-amazon-apigateway-any-method") => {
                        None
                    }
                    Some(m) => {
                        Some(
                            m.to_uppercase()
                                .parse()
                                .map_err(|_| DeployError::BadEvent {
                                    function: spec.logical_id.clone(),
                                    event: event.clone(),
                                })?,
                        )
                    }
                };
                routes.push(Route {
                    api_id: api_id.clone(),
                    kind: kind.clone(),
                    method,
                    path: path.clone(),
                    function: host.clone(),
                });
            }
        }

        let mut stacks = self.stacks.lock().await;
        let old = stacks.remove(stack_name);
        let mut record = StackRecord::new(stack_name);
        if let Some(old) = &old {
            record.stack_id = old.record.stack_id.clone();
            record.created = old.record.created;
            record.updated = Some(chrono::Utc::now());
            record.status = "UPDATE_COMPLETE".into();
        }
        record.parameters = parameters;
        record.outputs = outputs.clone();
        if let Some(old) = &old {
            for host in &old.functions {
                self.world.remove_function(host.name());
            }
        }
        for host in &hosts {
            self.world.put_function(host.clone());
        }
        if let Some(gateway) = &gateway {
            gateway.set_routes(routes);
        }
        self.world.put_stack(record.clone());
        stacks.insert(
            stack_name.to_string(),
            LocalStack {
                functions: hosts.clone(),
                gateway: gateway.clone(),
                record,
            },
        );
        drop(stacks);
        if let Some(old) = old {
            // An invocation still running on an old process may finish.
            tokio::spawn(async move {
                for host in old.functions {
                    host.stop().await;
                }
            });
        }
        tracing::info!(
            stack = stack_name,
            functions = hosts.len(),
            "stack deployed"
        );
        Ok(Deployed {
            stack: stack_name.to_string(),
            outputs,
            functions: hosts.iter().map(|h| h.name().to_string()).collect(),
            api_base: base_url.map(|b| format!("{b}/")),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn function_spec(
        &self,
        stack_name: &str,
        logical_id: &str,
        body: &Value,
        globals: &Value,
        ctx: &Context,
        template_dir: &Path,
        base_url: Option<&str>,
    ) -> Result<FunctionSpec, DeployError> {
        let at = |key: &str| format!("Resources.{logical_id}.Properties.{key}");
        let properties = merged_properties(&body["Properties"], globals);
        let property = |key: &str| properties.get(key).filter(|v| !v.is_null());
        let name = ctx.resources[logical_id].reference.clone();

        let code_uri = match property("CodeUri") {
            Some(v) => ctx.resolve(v, &at("CodeUri"))?,
            None => Value::String(".".into()),
        };
        let code_dir = match &code_uri {
            Value::String(dir) if !dir.starts_with("s3://") => template_dir.join(dir),
            other => {
                return Err(DeployError::RemoteCode {
                    function: logical_id.to_string(),
                    code_uri: other.to_string(),
                });
            }
        };
        let bootstrap = code_dir.join("bootstrap");
        if !bootstrap.is_file() {
            return Err(DeployError::MissingBootstrap {
                function: logical_id.to_string(),
                path: bootstrap.display().to_string(),
            });
        }
        let number = |key: &str, default: u64| -> Result<u64, DeployError> {
            match property(key) {
                None => Ok(default),
                Some(v) => {
                    let text = ctx.resolve_string(v, &at(key))?;
                    text.parse().map_err(|_| {
                        DeployError::Template(CfnError::Eval {
                            context: at(key),
                            message: format!("{text:?} is not a number"),
                        })
                    })
                }
            }
        };
        let timeout = number("Timeout", 3)?;
        let memory = number("MemorySize", 128)?;
        let handler = match property("Handler") {
            Some(v) => ctx.resolve_string(v, &at("Handler"))?,
            None => "bootstrap".to_string(),
        };

        let mut environment = BTreeMap::new();
        if let Some(variables) = properties
            .get("Environment")
            .and_then(|e| e.get("Variables"))
        {
            if let Value::Object(vars) = ctx.resolve(variables, &at("Environment.Variables"))? {
                for (key, value) in vars {
                    let value = cfn::scalar_text(&value);
                    environment.insert(key, localize_urls(&value, &BTreeMap::new(), base_url));
                }
            }
        }
        environment.insert("AWS_ENDPOINT_URL".into(), self.endpoint_url.clone());
        for service in ["CLOUDFORMATION", "LAMBDA", "CODEPIPELINE"] {
            environment.insert(
                format!("AWS_ENDPOINT_URL_{service}"),
                self.endpoint_url.clone(),
            );
        }

        let mut events = Vec::new();
        for (event_name, kind, properties) in api_events(body) {
            let Some(kind) = kind else { continue };
            let props = ctx.resolve(
                properties,
                &format!("Resources.{logical_id}.Properties.Events.{event_name}"),
            )?;
            let (implicit, api_kind) = if kind == "HttpApi" {
                ("ServerlessHttpApi", ApiKind::Http)
            } else {
                (
                    "ServerlessRestApi",
                    ApiKind::Rest {
                        stage: "Prod".into(),
                    },
                )
            };
            let api_ref = props
                .get("ApiId")
                .or_else(|| props.get("RestApiId"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| ctx.resources[implicit].reference.clone());
            let api = ctx.resources.values().find(|v| v.reference == api_ref);
            let api_kind = match api {
                Some(v) if v.resource_type == "AWS::Serverless::Api" => ApiKind::Rest {
                    stage: v
                        .attributes
                        .get("StageName")
                        .cloned()
                        .unwrap_or_else(|| "Prod".into()),
                },
                Some(v) if v.resource_type == "AWS::Serverless::HttpApi" => ApiKind::Http,
                _ => api_kind,
            };
            let path = props
                .get("Path")
                .and_then(Value::as_str)
                .unwrap_or("$default")
                .to_string();
            let method = props
                .get("Method")
                .and_then(Value::as_str)
                .map(str::to_string);
            events.push((event_name.to_string(), api_kind, api_ref, method, path));
        }

        let async_retries = match properties
            .get("EventInvokeConfig")
            .and_then(|c| c.get("MaximumRetryAttempts"))
        {
            Some(v) => {
                let text = ctx.resolve_string(v, &at("EventInvokeConfig.MaximumRetryAttempts"))?;
                text.parse().map_err(|_| {
                    DeployError::Template(CfnError::Eval {
                        context: at("EventInvokeConfig.MaximumRetryAttempts"),
                        message: format!("{text:?} is not a number"),
                    })
                })?
            }
            None => 2,
        };
        let log_file = self.log_dir.join(stack_name).join(format!("{name}.log"));
        if let Some(dir) = log_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        Ok(FunctionSpec {
            logical_id: logical_id.to_string(),
            config: FunctionConfig {
                name,
                command: bootstrap,
                args: Vec::new(),
                task_root: code_dir,
                handler,
                memory_mb: u32::try_from(memory).unwrap_or(128),
                timeout: Duration::from_secs(timeout),
                environment,
                log_file: Some(log_file),
                async_retries,
            },
            events,
        })
    }
}

fn resource_type(body: &Value) -> &str {
    body["Type"].as_str().unwrap_or_default()
}

/// The resources whose `Condition` holds, in template order.
fn live_resources(
    template: &Value,
    ctx: &Context,
    what: &str,
) -> Result<Vec<(String, Value)>, DeployError> {
    let mut out = Vec::new();
    if let Some(Value::Object(resources)) = template.get("Resources") {
        for (logical_id, body) in resources {
            if let Some(condition) = body.get("Condition").and_then(Value::as_str)
                && !ctx.condition(condition, &format!("{what}: Resources.{logical_id}"))?
            {
                continue;
            }
            out.push((logical_id.clone(), body.clone()));
        }
    }
    Ok(out)
}

/// A function's `Events`: (name, `Some("HttpApi"|"Api")` for API events, properties).
fn api_events(body: &Value) -> impl Iterator<Item = (&str, Option<&str>, &Value)> {
    body["Properties"]["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, event)| {
            let kind = event["Type"]
                .as_str()
                .filter(|t| *t == "HttpApi" || *t == "Api");
            (name.as_str(), kind, &event["Properties"])
        })
}

fn implicit_api(
    ctx: &mut Context,
    api_kinds: &mut BTreeMap<String, (String, ApiKind)>,
    stack_name: &str,
    logical_id: &str,
    kind: ApiKind,
    base_url: Option<&str>,
) {
    if ctx.resources.contains_key(logical_id) {
        return;
    }
    let id = api_id(stack_name, logical_id);
    let mut attributes = BTreeMap::new();
    if let Some(base) = base_url {
        attributes.insert("ApiEndpoint".to_string(), base.to_string());
    }
    ctx.resources.insert(
        logical_id.to_string(),
        ResourceValues {
            resource_type: if kind == ApiKind::Http {
                "AWS::Serverless::HttpApi".into()
            } else {
                "AWS::Serverless::Api".into()
            },
            reference: id.clone(),
            attributes,
        },
    );
    api_kinds.insert(logical_id.to_string(), (id, kind));
}

/// Properties with `Globals.Function` merged under them (the resource wins;
/// environment variables merge key by key).
fn merged_properties(properties: &Value, globals: &Value) -> Map<String, Value> {
    let mut merged = globals.as_object().cloned().unwrap_or_default();
    for (key, value) in properties.as_object().into_iter().flatten() {
        if key == "Environment"
            && let (Some(global), Some(own)) = (
                merged
                    .get("Environment")
                    .and_then(|e| e.get("Variables"))
                    .and_then(Value::as_object)
                    .cloned(),
                value.get("Variables").and_then(Value::as_object),
            )
        {
            let mut variables = global;
            variables.extend(own.clone());
            merged.insert(key.clone(), serde_json::json!({"Variables": variables}));
            continue;
        }
        merged.insert(key.clone(), value.clone());
    }
    merged
}

/// A CloudFormation-style generated physical name.
pub(crate) fn generated_name(stack_name: &str, logical_id: &str) -> String {
    let suffix = ids::stable_suffix(&format!("{stack_name}/{logical_id}"), 12);
    let mut name = format!("{stack_name}-{logical_id}");
    name.truncate(64 - 13);
    format!("{name}-{suffix}")
}

/// A 10-character API id, as API Gateway assigns.
fn api_id(stack_name: &str, logical_id: &str) -> String {
    ids::stable_suffix(&format!("{stack_name}/{logical_id}/api"), 10).to_lowercase()
}

/// Rewrites `https://{api-id}.execute-api.{region}.amazonaws.com` (any of the
/// stack's API ids) to the stack's local gateway.
fn localize_urls(
    value: &str,
    api_kinds: &BTreeMap<String, (String, ApiKind)>,
    base_url: Option<&str>,
) -> String {
    let Some(base) = base_url else {
        return value.to_string();
    };
    let mut out = value.to_string();
    for (id, _) in api_kinds.values() {
        for suffix in ["amazonaws.com", "amazonaws.com.cn"] {
            let remote = format!("https://{id}.execute-api.{}.{suffix}", ids::REGION);
            out = out.replace(&remote, base);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_gateway_urls_become_the_local_gateway() {
        let kinds = BTreeMap::from([("Api".to_string(), ("abc123".to_string(), ApiKind::Http))]);
        assert_eq!(
            localize_urls(
                "https://abc123.execute-api.us-east-1.amazonaws.com/",
                &kinds,
                Some("http://127.0.0.1:4000")
            ),
            "http://127.0.0.1:4000/"
        );
    }

    #[test]
    fn globals_merge_under_the_function_properties() {
        let globals =
            serde_json::json!({"Timeout": 10, "Environment": {"Variables": {"A": "1", "B": "1"}}});
        let own = serde_json::json!({"Timeout": 5, "Environment": {"Variables": {"B": "2"}}});
        let merged = merged_properties(&own, &globals);
        assert_eq!(merged["Timeout"], 5);
        assert_eq!(merged["Environment"]["Variables"]["A"], "1");
        assert_eq!(merged["Environment"]["Variables"]["B"], "2");
    }

    #[test]
    fn generated_names_fit_lambda_limits() {
        let name = generated_name(&"s".repeat(60), "RunTestsFunction");
        assert!(name.len() <= 64, "{name}");
    }
}

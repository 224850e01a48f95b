//! Deploying a packaged SAM template as a local stack: every
//! `AWS::Serverless::Function` runs as a local process of its `bootstrap`
//! under the Runtime API, its API events are served by the stack's gateway,
//! and the stack's outputs resolve to the local values.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cfn_template::{ParameterError, ResolveError, Resolver, Template};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use local_resources::endpoints::{REHEARSAL_SERVICES, endpoint_env};
use local_resources::iam::{
    RoleSpec, TemplatePolicy, fold_template_policies, role_from_template, sam_function_policies,
};
use local_resources::{Credentials, LocalValues, MotoServer, StackResources};

use crate::alarms::{AlarmRule, AlarmsError, alarm_rules};
use crate::aws_proxy::Caller;
use crate::gateway::{ApiKind, Gateway, Route, Target};
use crate::ids;
use crate::moto::{Moto, MotoError};
use crate::runtime::{CREDENTIAL_VARIABLES, FunctionConfig, FunctionHost, StartError};
use crate::shift::{Alias, Observer, Shift, Version};
use crate::traffic::{DeploymentType, TrafficError};
use crate::world::{StackRecord, World};

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot load template {path}: {source}")]
    Load {
        path: String,
        source: cfn_template::Error,
    },
    #[error("stack {stack}: {source}")]
    Parameters {
        stack: String,
        source: ParameterError,
    },
    #[error(
        "stack {stack}, {at}: {source}; the rehearsal has local values for parameters, pseudo parameters, and the names, ARNs and URLs of functions and APIs"
    )]
    Resolve {
        stack: String,
        at: String,
        source: ResolveError,
    },
    #[error("stack {stack}, {at}: {value:?} is not a whole number; write one there")]
    NotANumber {
        stack: String,
        at: String,
        value: String,
    },
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
    #[error(
        "stack {stack}: {source}; the rehearsal evaluates metric alarms (Namespace, MetricName, Dimensions, Statistic or ExtendedStatistic, Period, EvaluationPeriods, Threshold, ComparisonOperator)"
    )]
    Alarms { stack: String, source: AlarmsError },
    #[error("function {function}: DeploymentPreference: {source}")]
    DeploymentType {
        function: String,
        source: TrafficError,
    },
    /// Resources moto cannot create: found before anything starts.
    /// `source` is `local_resources::Error::Unsupported`, naming each type
    /// and logical id.
    #[error("stack {stack}: {source}")]
    Unsupported {
        stack: String,
        source: local_resources::Error,
    },
    #[error("stack {stack} has resources the rehearsal creates in moto ({resources}): {source}")]
    NoMoto {
        stack: String,
        resources: String,
        source: MotoError,
    },
    #[error("stack {stack}: its resources in moto: {source}")]
    Moto {
        stack: String,
        source: local_resources::Error,
    },
    #[error(
        "function {function}: its execution role in moto: {source}; the rehearsal builds it from the function's Policies (SAM) or the template's AWS::IAM::Role its Role names"
    )]
    Role {
        function: String,
        source: local_resources::Error,
    },
    /// Lambda's CreateEventSourceMapping refuses an SQS event source whose
    /// execution role may not poll the queue (see `check_poller`).
    #[error(
        "function {function}: event {event} (SQS): the provided execution role does not have permissions to call {action} on SQS (Lambda CreateEventSourceMapping: InvalidParameterValueException): role {role} may not sqs:{action} on {queue_arn}; add sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on the queue to the role (SQSPollerPolicy, or the AWSLambdaSQSQueueExecutionRole managed policy)"
    )]
    EventSourcePermission {
        function: String,
        event: String,
        role: String,
        action: String,
        queue_arn: String,
    },
}

/// What a stack has in moto: the sub-template and parameters it was
/// created from, and moto's values.
#[derive(Debug, Clone)]
struct MotoStack {
    body: String,
    parameters: Vec<(String, String)>,
    resources: StackResources,
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
    /// The processes serving now (for an alias: its current version's).
    functions: Vec<Arc<FunctionHost>>,
    gateway: Option<Arc<Gateway>>,
    record: StackRecord,
    routes: Vec<Route>,
    /// `AutoPublishAlias` aliases, by the function's logical id.
    aliases: HashMap<String, Arc<Alias>>,
    /// What the gateway observed since the last deploy.
    observer: Arc<Observer>,
    /// The stack's `AWS::CloudWatch::Alarm`s, by alarm name.
    alarms: BTreeMap<String, AlarmRule>,
    /// The template and parameter overrides of the last deploy.
    template: PathBuf,
    overrides: BTreeMap<String, String>,
    /// Its resources in moto, if it has any.
    moto: Option<MotoStack>,
    /// Its functions' SQS event sources, polling (stopped on drop).
    pollers: Vec<Poller>,
}

/// A function's SQS event source, resolved against the stack's queues.
#[derive(Clone)]
struct SqsSubscription {
    function: String,
    event: String,
    queue_url: String,
    queue_arn: String,
    batch_size: u32,
    report_failures: bool,
    target: Target,
    /// The function's execution role (name, credentials): Lambda's event
    /// source mapping reads the queue with it.
    role: Option<(String, Credentials)>,
}

/// A running SQS poller; aborted when dropped.
struct Poller(tokio::task::JoinHandle<()>);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A stack's alarm, with what the rehearsal needs to watch it.
pub struct StackAlarm {
    pub stack: String,
    pub rule: AlarmRule,
    pub observer: Arc<Observer>,
    /// The stack's gateway (where synthetic load goes), if it has one.
    pub gateway: Option<Arc<Gateway>>,
}

/// A prepared update of a stack: new processes started and routed, the
/// traffic shifts of its aliases still to run. Finish it with
/// [`Deployer::commit`] or [`Deployer::abandon`].
pub struct Update {
    stack: String,
    deployed: Deployed,
    /// Every process the update started.
    hosts: Vec<Arc<FunctionHost>>,
    routes: Vec<Route>,
    gateway: Option<Arc<Gateway>>,
    parameters: BTreeMap<String, String>,
    aliases: HashMap<String, Arc<Alias>>,
    observer: Arc<Observer>,
    alarms: BTreeMap<String, AlarmRule>,
    template: PathBuf,
    overrides: BTreeMap<String, String>,
    moto: Option<MotoStack>,
    sqs: Vec<SqsSubscription>,
    /// Whether this update replaced the stack's resources in moto.
    replaced_moto: bool,
    /// The shifts to run, each with the version its alias pointed to before.
    pub shifts: Vec<(Shift, Arc<Version>)>,
    /// What the rehearsal does not emulate in this template.
    pub notes: Vec<String>,
}

impl Update {
    pub fn stack(&self) -> &str {
        &self.stack
    }
}

/// A function's `AutoPublishAlias` and `DeploymentPreference`, resolved.
struct AliasSpec {
    name: String,
    deployment_type: DeploymentType,
    /// The preference's alarms, by name.
    alarms: Vec<String>,
}

/// Deploys and holds the local stacks of one rehearsal.
pub struct Deployer {
    world: Arc<World>,
    endpoint_url: String,
    log_dir: PathBuf,
    stacks: Mutex<HashMap<String, LocalStack>>,
    /// The rehearsal's moto, started by the first stack that needs it.
    moto: Arc<Moto>,
}

/// A function resource read from the template, before it starts.
struct FunctionSpec {
    logical_id: String,
    config: FunctionConfig,
    events: Vec<(String, ApiKind, String, Option<String>, String)>,
    /// SQS events: (event name, queue ARN, batch size, ReportBatchItemFailures).
    sqs: Vec<(String, String, u32, bool)>,
    alias: Option<AliasSpec>,
    notes: Vec<String>,
    /// Its execution role in moto (name, credentials), when it runs as
    /// itself.
    role: Option<(String, Credentials)>,
    /// Whether the template says what that role allows (a SAM role or the
    /// template's own AWS::IAM::Role): only then is its SQS event source
    /// held to it.
    role_known: bool,
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
            moto: Arc::new(Moto::new(None)),
        }
    }

    /// Uses `moto` for the stacks' resources other than functions and APIs
    /// (without it, a stack that has such resources fails to deploy,
    /// saying how to install moto).
    pub fn with_moto(mut self, moto: Moto) -> Self {
        self.moto = Arc::new(moto);
        self
    }

    /// The rehearsal's moto (started or not).
    pub fn moto(&self) -> &Moto {
        &self.moto
    }

    /// Starts moto in the background when one of `templates` (the app's
    /// templates in the build's checkout; missing ones are skipped) will
    /// need it (`local_resources::needs_moto`, the pipeline's own stack
    /// excepted), so that its start-up overlaps the Build stage; the first
    /// deploy then awaits the same start ([`Moto::warm_up`]). Returns
    /// whether it started moto now.
    pub fn warm_up_moto(&self, templates: &[PathBuf]) -> bool {
        let needed = templates
            .iter()
            .filter(|p| p.is_file())
            .any(|p| Template::from_path(p).is_ok_and(|t| uses_moto(&t)));
        needed && self.moto.warm_up()
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

    /// The gateway of `stack_name`, if it serves APIs.
    pub async fn gateway(&self, stack_name: &str) -> Option<Arc<Gateway>> {
        self.stacks
            .lock()
            .await
            .get(stack_name)
            .and_then(|s| s.gateway.clone())
    }

    /// Deletes a stack: stops its functions and its gateway.
    pub async fn delete(&self, stack_name: &str) -> Result<(), DeployError> {
        let mut stack = self.stacks.lock().await.remove(stack_name).ok_or_else(|| {
            DeployError::NoSuchStack {
                stack: stack_name.to_string(),
            }
        })?;
        stack.pollers.clear();
        self.world.remove_stack(stack_name);
        for host in &stack.functions {
            self.world.remove_function(host.name());
            host.stop().await;
        }
        if let (Some(moto), Some(server)) = (&stack.moto, self.moto.running()) {
            server
                .delete_stack(&moto.resources.stack_name)
                .await
                .map_err(|source| DeployError::Moto {
                    stack: stack_name.to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Stops every stack (end of the rehearsal).
    pub async fn shutdown(&self) {
        let stacks: Vec<LocalStack> = self.stacks.lock().await.drain().map(|(_, s)| s).collect();
        for mut stack in stacks {
            stack.pollers.clear();
            for host in stack.functions {
                host.stop().await;
            }
        }
    }

    /// Creates or updates `stack_name` from the template at `template_path`
    /// with `overrides` for its parameters, all at once: every alias points
    /// to its new version straight away. An update starts the new processes
    /// before it stops the old ones and keeps the gateway's port.
    pub async fn deploy(
        &self,
        stack_name: &str,
        template_path: &Path,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Deployed, DeployError> {
        let update = self.prepare(stack_name, template_path, overrides).await?;
        for (shift, _) in &update.shifts {
            shift.alias.begin_shift(shift.new.clone());
            shift.alias.promote();
        }
        Ok(self.commit(update).await)
    }

    /// Whether `stack_name` runs the template at `template_path` with
    /// `overrides` already (CloudFormation would find no changes).
    pub async fn is_current(
        &self,
        stack_name: &str,
        template_path: &Path,
        overrides: &BTreeMap<String, String>,
    ) -> bool {
        self.stacks
            .lock()
            .await
            .get(stack_name)
            .is_some_and(|s| s.template == template_path && &s.overrides == overrides)
    }

    /// The template and parameter overrides `stack_name` runs (its last
    /// deploy), if it exists: what a change set is computed against.
    pub async fn running(&self, stack_name: &str) -> Option<(PathBuf, BTreeMap<String, String>)> {
        self.stacks
            .lock()
            .await
            .get(stack_name)
            .map(|s| (s.template.clone(), s.overrides.clone()))
    }

    /// The alarm named `name` of any running stack.
    pub async fn alarm(&self, name: &str) -> Option<StackAlarm> {
        let stacks = self.stacks.lock().await;
        stacks.iter().find_map(|(stack, local)| {
            local.alarms.get(name).map(|rule| StackAlarm {
                stack: stack.clone(),
                rule: rule.clone(),
                observer: local.observer.clone(),
                gateway: local.gateway.clone(),
            })
        })
    }

    /// The current version of each alias of `stack_name`: (`function:alias`, version).
    pub async fn alias_versions(&self, stack_name: &str) -> BTreeMap<String, u32> {
        let stacks = self.stacks.lock().await;
        stacks
            .get(stack_name)
            .map(|s| {
                s.aliases
                    .values()
                    .map(|a| (a.resource(), a.current().number))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Prepares an update (or the creation) of `stack_name`: starts the new
    /// processes and routes the gateway to them; an alias with a previous
    /// version gets a new version and a shift to run (its traffic stays on
    /// the previous version until the shift moves it).
    pub async fn prepare(
        &self,
        stack_name: &str,
        template_path: &Path,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Update, DeployError> {
        let template = Template::from_path(template_path).map_err(|source| DeployError::Load {
            path: template_path.display().to_string(),
            source,
        })?;
        let parameters =
            template
                .parameter_values(overrides)
                .map_err(|source| DeployError::Parameters {
                    stack: stack_name.to_string(),
                    source,
                })?;
        let mut locals = Locals::new(stack_name, &template, parameters.clone());
        let template_dir = template_path.parent().unwrap_or(Path::new("."));

        let resources = live_resources(&template, &locals)?;
        let uses_moto = uses_moto(&template);
        if uses_moto {
            // Before anything starts: every type moto cannot create, named.
            local_resources::check_supported(
                resources
                    .iter()
                    .map(|(id, body)| (id.as_str(), resource_type(body))),
            )
            .map_err(|source| DeployError::Unsupported {
                stack: stack_name.to_string(),
                source,
            })?;
        }
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
            let mut values = ResourceValues::new(kind, generated_name(stack_name, logical_id));
            if FUNCTION_TYPES.contains(&kind) {
                if let Some(name) = body["Properties"].get("FunctionName") {
                    values.reference = locals.text(
                        name,
                        &format!("Resources.{logical_id}.Properties.FunctionName"),
                    )?;
                }
                values
                    .attributes
                    .insert("Arn".into(), ids::function_arn(&values.reference));
                let role = format!("{logical_id}Role");
                locals.insert(
                    &role,
                    ResourceValues::new("AWS::IAM::Role", generated_name(stack_name, &role)),
                );
                for (_, event_kind, _) in api_events(body) {
                    match event_kind {
                        Some("HttpApi") => implicit_api(
                            &mut locals,
                            &mut api_kinds,
                            "ServerlessHttpApi",
                            ApiKind::Http,
                            base_url.as_deref(),
                        ),
                        Some("Api") => implicit_api(
                            &mut locals,
                            &mut api_kinds,
                            "ServerlessRestApi",
                            ApiKind::Rest {
                                stage: "Prod".into(),
                            },
                            base_url.as_deref(),
                        ),
                        _ => {}
                    }
                }
            } else if kind == "AWS::IAM::ManagedPolicy" {
                // Its Ref is its ARN (CloudFormation, AWS::IAM::ManagedPolicy
                // return values); the rehearsal folds it into the roles it
                // attaches to (`as_itself`).
                let name = match body["Properties"].get("ManagedPolicyName") {
                    Some(n) => locals.text(
                        n,
                        &format!("Resources.{logical_id}.Properties.ManagedPolicyName"),
                    )?,
                    None => values.reference.clone(),
                };
                values.reference = format!("arn:aws:iam::{}:policy/{name}", ids::ACCOUNT_ID);
                values
                    .attributes
                    .insert("PolicyArn".into(), values.reference.clone());
            } else if API_TYPES.contains(&kind) {
                let api_kind = if kind == "AWS::Serverless::HttpApi" {
                    ApiKind::Http
                } else {
                    let stage = body["Properties"]
                        .get("StageName")
                        .map(|s| {
                            locals.text(s, &format!("Resources.{logical_id}.Properties.StageName"))
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
            locals.insert(logical_id, values);
        }
        // An alarm's Ref is its name (what DeploymentPreference.Alarms and
        // the stack's outputs hold).
        for (logical_id, body) in &resources {
            if resource_type(body) == "AWS::CloudWatch::Alarm"
                && let Some(name) = body["Properties"].get("AlarmName")
            {
                let name = locals.text(
                    name,
                    &format!("Resources.{logical_id}.Properties.AlarmName"),
                )?;
                let mut values = locals.resources[logical_id.as_str()].clone();
                values.reference = name;
                locals.insert(logical_id, values);
            }
        }
        let alarms: BTreeMap<String, AlarmRule> = alarm_rules(&template, &locals.resolver)
            .map_err(|source| DeployError::Alarms {
                stack: stack_name.to_string(),
                source,
            })?
            .into_iter()
            .map(|(logical_id, rule)| {
                let name = rule
                    .name
                    .clone()
                    .or_else(|| {
                        locals
                            .resources
                            .get(&logical_id)
                            .map(|v| v.reference.clone())
                    })
                    .unwrap_or(logical_id);
                (name, rule)
            })
            .collect();

        // The other resources, in moto: their names, ARNs and URLs are what
        // the functions' environment and the outputs resolve to.
        let mut notes = Vec::new();
        let (moto_stack, replaced_moto) = if uses_moto {
            let (moto_stack, replaced) = self
                .moto_resources(stack_name, &template, &parameters, &locals, &mut notes)
                .await?;
            for (logical_id, r) in &moto_stack.resources.resources {
                let mut values = ResourceValues::new(&r.resource_type, r.reference.clone());
                values.attributes = r.attributes.clone();
                locals.insert(logical_id, values);
            }
            (Some(moto_stack), replaced)
        } else {
            (None, false)
        };

        // Functions, with Globals.Function merged in as SAM merges it.
        let globals = template
            .section("Globals")
            .find(|(k, _)| *k == "Function")
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        let mut specs = Vec::new();
        for (logical_id, body) in &resources {
            if FUNCTION_TYPES.contains(&resource_type(body)) {
                let mut spec = self.function_spec(
                    logical_id,
                    body,
                    &globals,
                    &locals,
                    template_dir,
                    base_url.as_deref(),
                )?;
                if let Some(moto_stack) = &moto_stack {
                    let server = self.moto_server(stack_name).await?;
                    self.as_itself(server, &mut spec, body, &globals, &resources, &locals)
                        .await?;
                    check_poller(server, &spec, moto_stack).await?;
                }
                specs.push(spec);
            }
        }

        let mut outputs = BTreeMap::new();
        for output in template.outputs() {
            let name = output.name();
            if let Some(condition) = output.condition()
                && !locals.condition(condition, &format!("Outputs.{name}.Condition"))?
            {
                continue;
            }
            // An output that needs a resource the rehearsal does not run
            // (a repository's clone URL, say) is left out, as a stack
            // without it would be: a consumer then reports it missing.
            let value = output.value().unwrap_or(&Value::Null);
            match locals.text(value, &format!("Outputs.{name}.Value")) {
                Ok(value) => {
                    outputs.insert(
                        name.to_string(),
                        localize_urls(&value, &api_kinds, base_url.as_deref()),
                    );
                }
                Err(error) => {
                    tracing::info!(stack = stack_name, output = %name, %error, "output left out: no local value");
                }
            }
        }

        // Start the new processes before anything old is replaced.
        let hosts: Vec<Arc<FunctionHost>> = specs
            .iter()
            .map(|s| Arc::new(FunctionHost::new(s.config.clone())))
            .collect();
        futures::future::try_join_all(hosts.iter().map(|h| h.warm())).await?;

        let (old_aliases, observer) = {
            let stacks = self.stacks.lock().await;
            match stacks.get(stack_name) {
                Some(old) => (old.aliases.clone(), old.observer.clone()),
                None => (HashMap::new(), Arc::new(Observer::new())),
            }
        };
        // The alarms watch what happens from this deployment on.
        observer.reset();
        let mut aliases = HashMap::new();
        let mut shifts = Vec::new();
        let mut targets = Vec::new();
        for (spec, host) in specs.iter().zip(&hosts) {
            notes.extend(spec.notes.iter().cloned());
            let Some(alias_spec) = &spec.alias else {
                targets.push(Target::Function(host.clone()));
                continue;
            };
            let previous = old_aliases
                .get(&spec.logical_id)
                .filter(|a| a.name == alias_spec.name && a.function == spec.config.name);
            let alias = match previous {
                Some(alias) => {
                    let new = alias.publish(host.clone());
                    let mut watched = Vec::new();
                    for name in &alias_spec.alarms {
                        match alarms.get(name) {
                            Some(rule) => watched.push((name.clone(), rule.clone())),
                            None => notes.push(format!(
                                "{}: alarm {name} of its DeploymentPreference is not in stack {stack_name}; not watched",
                                spec.logical_id
                            )),
                        }
                    }
                    shifts.push((
                        Shift {
                            alias: alias.clone(),
                            new,
                            deployment_type: alias_spec.deployment_type,
                            alarms: watched,
                            observer: observer.clone(),
                        },
                        alias.current(),
                    ));
                    alias.clone()
                }
                None => Arc::new(Alias::new(
                    &spec.config.name,
                    &alias_spec.name,
                    host.clone(),
                )),
            };
            aliases.insert(spec.logical_id.clone(), alias.clone());
            targets.push(Target::Alias(alias));
        }

        let mut sqs = Vec::new();
        for (spec, target) in specs.iter().zip(&targets) {
            for (event, queue_arn, batch_size, report_failures) in &spec.sqs {
                let queue = moto_stack.as_ref().and_then(|m| {
                    m.resources.resources.values().find(|r| {
                        r.resource_type == "AWS::SQS::Queue"
                            && r.attributes.get("Arn") == Some(queue_arn)
                    })
                });
                match queue {
                    Some(queue) => {
                        notes.push(format!(
                            "{}: event {event} (SQS): the queue's messages are delivered in batches of at most {batch_size}{}",
                            spec.logical_id,
                            if *report_failures {
                                ", ReportBatchItemFailures honoured"
                            } else {
                                ""
                            }
                        ));
                        sqs.push(SqsSubscription {
                            function: spec.config.name.clone(),
                            event: event.clone(),
                            queue_url: queue.reference.clone(),
                            queue_arn: queue_arn.clone(),
                            batch_size: *batch_size,
                            report_failures: *report_failures,
                            target: target.clone(),
                            role: spec.role.clone().filter(|_| spec.role_known),
                        });
                    }
                    None => notes.push(format!(
                        "{}: event {event} (SQS): queue {queue_arn} is not a queue of this stack; its messages are not delivered (not emulated)",
                        spec.logical_id
                    )),
                }
            }
        }

        let mut routes = Vec::new();
        for (spec, target) in specs.iter().zip(&targets) {
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
                    target: target.clone(),
                });
            }
        }
        if let Some(gateway) = &gateway {
            gateway.set_observer(observer.clone());
            gateway.set_routes(routes.clone());
        }
        Ok(Update {
            stack: stack_name.to_string(),
            deployed: Deployed {
                stack: stack_name.to_string(),
                outputs,
                functions: hosts.iter().map(|h| h.name().to_string()).collect(),
                api_base: base_url.map(|b| format!("{b}/")),
            },
            hosts,
            routes,
            gateway,
            parameters,
            aliases,
            observer,
            alarms,
            template: template_path.to_path_buf(),
            overrides: overrides.clone(),
            moto: moto_stack,
            sqs,
            replaced_moto,
            shifts,
            notes,
        })
    }

    /// Completes an update whose shifts all completed: the stack now runs
    /// the new processes, and the old ones stop.
    pub async fn commit(&self, update: Update) -> Deployed {
        let stack_name = update.stack.clone();
        let mut stacks = self.stacks.lock().await;
        let old = stacks.remove(&stack_name);
        let mut record = StackRecord::new(&stack_name);
        if let Some(old) = &old {
            record.stack_id = old.record.stack_id.clone();
            record.created = old.record.created;
            record.updated = Some(chrono::Utc::now());
            record.status = "UPDATE_COMPLETE".into();
        }
        record.parameters = update.parameters;
        record.outputs = update.deployed.outputs.clone();
        if let Some(old) = &old {
            for host in &old.functions {
                self.world.remove_function(host.name());
            }
        }
        for host in &update.hosts {
            self.world.put_function(host.clone());
        }
        self.world.put_stack(record.clone());
        stacks.insert(
            stack_name.clone(),
            LocalStack {
                functions: update.hosts.clone(),
                gateway: update.gateway,
                record,
                routes: update.routes,
                aliases: update.aliases,
                observer: update.observer,
                alarms: update.alarms,
                template: update.template,
                overrides: update.overrides,
                moto: update.moto,
                pollers: update
                    .sqs
                    .into_iter()
                    .map(|sub| Poller(tokio::spawn(poll_queue(self.moto.clone(), sub))))
                    .collect(),
            },
        );
        drop(stacks);
        if let Some(mut old) = old {
            // The old version's queues are polled for the new one now.
            old.pollers.clear();
            // An invocation still running on an old process may finish.
            tokio::spawn(async move {
                for host in old.functions {
                    host.stop().await;
                }
            });
        }
        tracing::info!(
            stack = stack_name,
            functions = update.hosts.len(),
            "stack deployed"
        );
        update.deployed
    }

    /// Gives up an update (an alarm rolled a shift back): the stack goes
    /// back to what it ran before, as CloudFormation rolls a failed update
    /// back, and the update's processes stop.
    pub async fn abandon(&self, update: Update) {
        for (shift, previous) in &update.shifts {
            shift.alias.point_to(previous.clone());
        }
        let stacks = self.stacks.lock().await;
        match stacks.get(&update.stack) {
            Some(old) => {
                if let Some(gateway) = &old.gateway {
                    gateway.set_routes(old.routes.clone());
                }
            }
            None => {
                if let Some(gateway) = &update.gateway {
                    gateway.set_routes(Vec::new());
                }
            }
        }
        drop(stacks);
        if update.replaced_moto {
            tracing::warn!(
                stack = update.stack,
                "the abandoned update replaced the stack's resources in moto; they stay replaced (the previous version's environment names the old ones)"
            );
        }
        for host in &update.hosts {
            host.stop().await;
        }
    }

    /// The rehearsal's moto, started now if no stack has started it yet.
    async fn moto_server(&self, stack_name: &str) -> Result<&MotoServer, DeployError> {
        self.moto
            .server()
            .await
            .map_err(|source| DeployError::NoMoto {
                stack: stack_name.to_string(),
                resources: "its functions' execution roles".to_string(),
                source,
            })
    }

    /// Creates the stack's resources other than functions and APIs in moto
    /// (starting moto first if needed), with the functions' and APIs' local
    /// values for their references. An unchanged sub-template keeps what
    /// moto has (and its data); a changed one replaces it: the old moto
    /// stack is deleted and the new one created, so data is not kept.
    async fn moto_resources(
        &self,
        stack_name: &str,
        template: &Template,
        parameters: &BTreeMap<String, String>,
        locals: &Locals,
        notes: &mut Vec<String>,
    ) -> Result<(MotoStack, bool), DeployError> {
        let moto_error = |source| DeployError::Moto {
            stack: stack_name.to_string(),
            source,
        };
        let sub = local_resources::moto_template(template, parameters, &local_values(locals))
            .map_err(|source| match source {
                local_resources::Error::Unsupported { .. } => DeployError::Unsupported {
                    stack: stack_name.to_string(),
                    source,
                },
                source => moto_error(source),
            })?;
        let body = sub.body.to_string();
        let previous = {
            let stacks = self.stacks.lock().await;
            stacks.get(stack_name).and_then(|s| s.moto.clone())
        };
        if let Some(previous) = &previous
            && previous.body == body
            && previous.parameters == sub.parameters
        {
            return Ok((previous.clone(), false));
        }
        let (server, start) =
            self.moto
                .server_reporting()
                .await
                .map_err(|source| DeployError::NoMoto {
                    stack: stack_name.to_string(),
                    resources: sub.resources.join(", "),
                    source,
                })?;
        if start.first {
            let proxy = self.moto.proxy().map(|p| p.url()).unwrap_or_default();
            notes.push(if start.warmed_up {
                format!(
                    "moto started during the build in {:.1} s ({}, functions call it through {proxy}; IAM enforced); stack {stack_name} waited {:.1} s for it",
                    start.took.as_secs_f64(),
                    server.url(),
                    start.waited.as_secs_f64()
                )
            } else {
                format!(
                    "moto started for stack {stack_name}'s resources in {:.1} s ({}, functions call it through {proxy}; IAM enforced)",
                    start.took.as_secs_f64(),
                    server.url()
                )
            });
        }
        if previous.is_some() {
            server.delete_stack(stack_name).await.map_err(moto_error)?;
            notes.push(format!(
                "stack {stack_name}: its resources in moto changed; they were replaced (deleted and created again: their data is not kept)"
            ));
        }
        let resources = match server.create_stack(stack_name, &sub).await {
            Ok(r) => r,
            Err(e) => {
                // A failed stack would block the next CreateStack of its name.
                let _ = server.delete_stack(stack_name).await;
                return Err(moto_error(e));
            }
        };
        notes.push(format!(
            "stack {stack_name}: created in moto: {}",
            resources
                .resources
                .iter()
                .map(|(id, r)| format!("{id} ({}) {}", r.resource_type, r.reference))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok((
            MotoStack {
                body,
                parameters: sub.parameters,
                resources,
            },
            true,
        ))
    }

    /// Makes a function of a stack with moto call AWS as itself: its
    /// execution role created in moto (from its SAM `Policies`, or the
    /// template's `AWS::IAM::Role` its `Role` names) and assumed, its
    /// credentials and moto's endpoints in the process's environment.
    async fn as_itself(
        &self,
        server: &MotoServer,
        spec: &mut FunctionSpec,
        body: &Value,
        globals: &Value,
        resources: &[(String, Value)],
        locals: &Locals,
    ) -> Result<(), DeployError> {
        let logical_id = spec.logical_id.clone();
        let stack_name = locals.stack_name.as_str();
        let at = |key: &str| format!("Resources.{logical_id}.Properties.{key}");
        let role_error = |source| DeployError::Role {
            function: logical_id.clone(),
            source,
        };
        let properties = merged_properties(&body["Properties"], globals);
        // The role's logical id: the template's AWS::IAM::Role, or the one
        // SAM generates, `<Function>Role` (what `!Ref` names it by).
        let (mut role, role_id) = match properties.get("Role").filter(|v| !v.is_null()) {
            None => {
                let policies = match properties.get("Policies") {
                    Some(p) => locals.value(p, &at("Policies"))?,
                    None => None,
                };
                let mut role = sam_function_policies(stack_name, &logical_id, policies.as_ref())
                    .map_err(role_error)?;
                // SAM adds the event source's managed policy to the role it
                // generates (samtranslator model/eventsources/pull.py,
                // `PullEventSource._link_policy`; SQS: `get_policy_arn`,
                // service-role/AWSLambdaSQSQueueExecutionRole), and only to
                // that role.
                if !spec.sqs.is_empty() {
                    let arn = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole";
                    if !role.managed_policy_arns.iter().any(|a| a == arn) {
                        role.managed_policy_arns.push(arn.to_string());
                    }
                }
                spec.role_known = true;
                (role, Some(format!("{logical_id}Role")))
            }
            Some(role) => match template_role(role, resources) {
                Some((role_id, role_body)) => {
                    let props = locals
                        .value(
                            &role_body["Properties"],
                            &format!("Resources.{role_id}.Properties"),
                        )?
                        .unwrap_or(Value::Null);
                    spec.role_known = true;
                    (
                        role_from_template(stack_name, role_id, &props).map_err(role_error)?,
                        Some(role_id.to_string()),
                    )
                }
                None => {
                    spec.notes.push(format!(
                        "{logical_id}: its Role is not an AWS::IAM::Role of this template, so its permissions are unknown here; it runs with AWSLambdaBasicExecutionRole only (its other AWS calls are denied{})",
                        if spec.sqs.is_empty() {
                            ""
                        } else {
                            "; its SQS events are read from the queue as the administrator"
                        }
                    ));
                    spec.role_known = false;
                    (
                        sam_function_policies(stack_name, &logical_id, None).map_err(role_error)?,
                        None,
                    )
                }
            },
        };
        resolve_policies(&mut role, locals, &logical_id)?;
        // The template's AWS::IAM::Policy / ManagedPolicy resources
        // attached to this role.
        let policies = template_policies(resources, locals)?;
        let mut names = vec![role.name.clone()];
        if let Some(v) = role_id.as_ref().and_then(|id| locals.resources.get(id)) {
            names.push(v.reference.clone());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let folded = fold_template_policies(&mut role, &names, &policies);
        if !folded.is_empty() {
            tracing::info!(function = %logical_id, role = %role.name, policies = ?folded, "template policies folded into the execution role");
        }
        let credentials = server.role_credentials(&role).await.map_err(role_error)?;
        let proxy = self.moto.proxy().ok_or_else(|| DeployError::NoMoto {
            stack: stack_name.to_string(),
            resources: "its functions' execution roles".to_string(),
            source: MotoError::Start("moto's AWS proxy is not running".into()),
        })?;
        proxy.register(
            &credentials.access_key_id,
            Caller {
                function: spec.config.name.clone(),
                role: role.name.clone(),
                log_file: spec.config.log_file.clone(),
            },
        );
        let environment = &mut spec.config.environment;
        environment.extend(endpoint_env(
            Some(proxy.url()),
            &self.endpoint_url,
            &REHEARSAL_SERVICES,
        ));
        environment.extend(credentials.env_vars());
        spec.role = Some((role.name, credentials));
        Ok(())
    }

    fn function_spec(
        &self,
        logical_id: &str,
        body: &Value,
        globals: &Value,
        locals: &Locals,
        template_dir: &Path,
        base_url: Option<&str>,
    ) -> Result<FunctionSpec, DeployError> {
        let stack_name = locals.stack_name.as_str();
        let at = |key: &str| format!("Resources.{logical_id}.Properties.{key}");
        let properties = merged_properties(&body["Properties"], globals);
        let property = |key: &str| properties.get(key).filter(|v| !v.is_null());
        let name = locals.resources[logical_id].reference.clone();

        let code_uri = match property("CodeUri") {
            Some(v) => locals.value(v, &at("CodeUri"))?,
            None => None,
        }
        .unwrap_or_else(|| Value::String(".".into()));
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
                Some(v) => locals.number(v, &at(key)),
            }
        };
        let timeout = number("Timeout", 3)?;
        let memory = number("MemorySize", 128)?;
        let handler = match property("Handler") {
            Some(v) => locals.text(v, &at("Handler"))?,
            None => "bootstrap".to_string(),
        };

        let mut environment = BTreeMap::new();
        if let Some(variables) = properties
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            && let Some(Value::Object(vars)) =
                locals.value(variables, &at("Environment.Variables"))?
        {
            for (key, value) in vars {
                let value = match &value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                environment.insert(key, localize_urls(&value, &BTreeMap::new(), base_url));
            }
        }
        let mut notes = Vec::new();
        for key in CREDENTIAL_VARIABLES {
            if environment.remove(key).is_some() {
                notes.push(format!(
                    "{logical_id}: environment variable {key} is reserved by Lambda (the execution role's credentials); the template's value is not used"
                ));
            }
        }
        // Without moto every AWS call goes to the rehearsal's endpoint;
        // `as_itself` points the other services at moto.
        environment.extend(endpoint_env(None, &self.endpoint_url, &REHEARSAL_SERVICES));
        let mut sqs = Vec::new();
        for (event_name, event) in body["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let kind = event["Type"].as_str().unwrap_or("(no Type)");
            let at = format!("Resources.{logical_id}.Properties.Events.{event_name}.Properties");
            if kind == "SQS" {
                let props = locals
                    .value(&event["Properties"], &at)?
                    .unwrap_or(Value::Null);
                let enabled = !matches!(props.get("Enabled"), Some(Value::Bool(false)));
                let queue = props.get("Queue").and_then(Value::as_str);
                let batch_size = match props.get("BatchSize") {
                    Some(v) => locals.number(v, &format!("{at}.BatchSize"))?,
                    None => 10,
                };
                let report_failures = props
                    .get("FunctionResponseTypes")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures"));
                match queue {
                    Some(queue) if enabled => sqs.push((
                        event_name.clone(),
                        queue.to_string(),
                        u32::try_from(batch_size).unwrap_or(10),
                        report_failures,
                    )),
                    Some(_) => {}
                    None => notes.push(format!(
                        "{logical_id}: event {event_name} (SQS) has no Queue ARN; not delivered"
                    )),
                }
            } else if kind != "HttpApi" && kind != "Api" {
                notes.push(format!(
                    "{logical_id}: event {event_name} ({kind}) is not emulated: the rehearsal does not deliver {kind} events to the function"
                ));
            }
        }

        let mut events = Vec::new();
        for (event_name, kind, properties) in api_events(body) {
            let Some(kind) = kind else { continue };
            let props = locals
                .value(
                    properties,
                    &format!("Resources.{logical_id}.Properties.Events.{event_name}"),
                )?
                .unwrap_or(Value::Null);
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
                .unwrap_or_else(|| locals.resources[implicit].reference.clone());
            let api = locals.resources.values().find(|v| v.reference == api_ref);
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
                let retries = locals.number(v, &at("EventInvokeConfig.MaximumRetryAttempts"))?;
                u32::try_from(retries).unwrap_or(u32::MAX)
            }
            None => 2,
        };
        let alias = match property("AutoPublishAlias") {
            None => None,
            Some(v) => {
                let alias_name = locals.text(v, &at("AutoPublishAlias"))?;
                let preference = match property("DeploymentPreference") {
                    Some(p) => locals
                        .value(p, &at("DeploymentPreference"))?
                        .unwrap_or(Value::Null),
                    None => Value::Null,
                };
                let enabled = match preference.get("Enabled") {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
                    _ => true,
                };
                let deployment_type = match preference.get("Type").and_then(Value::as_str) {
                    Some(t) if enabled => {
                        t.parse().map_err(|source| DeployError::DeploymentType {
                            function: logical_id.to_string(),
                            source,
                        })?
                    }
                    _ => DeploymentType::AllAtOnce,
                };
                let alarms = preference
                    .get("Alarms")
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .filter_map(|a| a.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if preference.get("Hooks").is_some() {
                    notes.push(format!(
                        "{logical_id}: DeploymentPreference Hooks (PreTraffic/PostTraffic) are not run by the rehearsal"
                    ));
                }
                Some(AliasSpec {
                    name: alias_name,
                    deployment_type,
                    alarms,
                })
            }
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
            sqs,
            alias,
            notes,
            role: None,
            role_known: false,
        })
    }
}

/// The local value of one resource: what `Ref` gives and its attributes.
#[derive(Debug, Clone)]
pub(crate) struct ResourceValues {
    pub resource_type: String,
    pub reference: String,
    pub attributes: BTreeMap<String, String>,
}

impl ResourceValues {
    pub fn new(resource_type: &str, reference: String) -> Self {
        Self {
            resource_type: resource_type.to_string(),
            reference,
            attributes: BTreeMap::new(),
        }
    }

    /// The ARN of a resource the rehearsal does not run (a role, a bucket,
    /// a topic): of the right service, so templates that pass it resolve.
    fn default_arn(&self, logical_id: &str) -> String {
        let service = self
            .resource_type
            .split("::")
            .nth(1)
            .unwrap_or("local")
            .to_lowercase();
        format!(
            "arn:aws:{service}:{}:{}:{logical_id}/{}",
            ids::REGION,
            ids::ACCOUNT_ID,
            self.reference
        )
    }
}

/// A template's [`Resolver`] with the local values of one stack: its
/// parameters, the pseudo parameters, and every resource's `Ref` and
/// attributes (each resource gets at least an `Arn`).
pub(crate) struct Locals {
    pub stack_name: String,
    pub resolver: Resolver,
    pub resources: BTreeMap<String, ResourceValues>,
    /// The pipeline template's CodeBuild projects: each one's environment
    /// variables (plain text ones, resolved), by the project's name (what
    /// the build action's ProjectName resolves to). Empty for other stacks.
    pub build_environments: BTreeMap<String, BTreeMap<String, String>>,
}

impl Locals {
    pub fn new(
        stack_name: &str,
        template: &Template,
        parameters: BTreeMap<String, String>,
    ) -> Self {
        let mut resolver = Resolver::for_template(template, parameters);
        let stack_id = format!(
            "arn:aws:cloudformation:{}:{}:stack/{stack_name}/{}",
            ids::REGION,
            ids::ACCOUNT_ID,
            ids::stable_suffix(stack_name, 12)
        );
        for (name, value) in [
            ("AWS::Region", Value::from(ids::REGION)),
            ("AWS::AccountId", Value::from(ids::ACCOUNT_ID)),
            ("AWS::StackName", Value::from(stack_name)),
            ("AWS::StackId", Value::from(stack_id)),
            ("AWS::Partition", Value::from("aws")),
            ("AWS::URLSuffix", Value::from("amazonaws.com")),
            ("AWS::NotificationARNs", Value::Array(Vec::new())),
        ] {
            resolver.set_ref(name, value);
        }
        let mut locals = Self {
            stack_name: stack_name.to_string(),
            resolver,
            resources: BTreeMap::new(),
            build_environments: BTreeMap::new(),
        };
        for resource in template.resources() {
            let id = resource.logical_id();
            locals.insert(
                id,
                ResourceValues::new(resource.resource_type(), generated_name(stack_name, id)),
            );
        }
        locals
    }

    /// Sets (or replaces) a resource's local values.
    pub fn insert(&mut self, logical_id: &str, values: ResourceValues) {
        self.resolver.set_ref(logical_id, values.reference.as_str());
        self.resolver
            .set_attribute(logical_id, "Arn", values.default_arn(logical_id));
        for (attribute, value) in &values.attributes {
            self.resolver
                .set_attribute(logical_id, attribute, value.as_str());
        }
        self.resources.insert(logical_id.to_string(), values);
    }

    fn error(&self, at: &str, source: ResolveError) -> DeployError {
        DeployError::Resolve {
            stack: self.stack_name.clone(),
            at: at.to_string(),
            source,
        }
    }

    /// `value` fully resolved; `None` when it is `AWS::NoValue`.
    pub fn value(&self, value: &Value, at: &str) -> Result<Option<Value>, DeployError> {
        match self.resolver.resolve(value) {
            None => Ok(None),
            Some(resolved) => self
                .resolver
                .resolve_complete(&resolved)
                .map(Some)
                .map_err(|e| self.error(at, e)),
        }
    }

    /// `value` resolved to text (numbers and booleans as CloudFormation
    /// passes them).
    pub fn text(&self, value: &Value, at: &str) -> Result<String, DeployError> {
        self.resolver
            .resolve_text(value)
            .map_err(|e| self.error(at, e))
    }

    /// `value` resolved to a whole number.
    pub fn number(&self, value: &Value, at: &str) -> Result<u64, DeployError> {
        let text = self.text(value, at)?;
        text.parse().map_err(|_| DeployError::NotANumber {
            stack: self.stack_name.clone(),
            at: at.to_string(),
            value: text,
        })
    }

    /// A named condition of the template.
    pub fn condition(&self, name: &str, at: &str) -> Result<bool, DeployError> {
        self.resolver.condition(name).map_err(|e| self.error(at, e))
    }
}

/// How long one ReceiveMessage waits for a message (long polling).
const SQS_WAIT_SECONDS: u32 = 1;

/// Delivers a queue's messages to a function as Lambda's event source
/// mapping does: batches of at most the event's `BatchSize` as an SQS event
/// (`aws_lambda_events::sqs::SqsEvent`'s shape); a successful invocation
/// deletes the batch (except the `batchItemFailures` it reports, with
/// `ReportBatchItemFailures`), a failed one leaves it, so the messages
/// return to the queue after its visibility timeout. It reads and deletes
/// with the function's execution role, as Lambda's event source mapping
/// does (AWS Lambda Developer Guide, "Creating and configuring an Amazon
/// SQS event source mapping", "Setting up Lambda execution role
/// permissions"; `check_poller` has refused a role without them at
/// deploy). Runs until aborted.
async fn poll_queue(moto: Arc<Moto>, sub: SqsSubscription) {
    loop {
        let Some(server) = moto.running() else { return };
        let creds = sub.role.as_ref().map(|(_, c)| c);
        let messages = match server
            .receive_messages_as(creds, &sub.queue_url, sub.batch_size, SQS_WAIT_SECONDS)
            .await
        {
            Ok(m) => m,
            Err(error) => {
                let role = sub.role.as_ref().map_or("the administrator", |(r, _)| r);
                tracing::warn!(function = sub.function, event = sub.event, role, %error, "cannot receive the queue's messages as the function's role");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            // moto may answer at once; do not spin.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                serde_json::json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": m.attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": sub.queue_arn,
                    "awsRegion": ids::REGION,
                })
            })
            .collect();
        let event = serde_json::json!({ "Records": records });
        let host = match &sub.target {
            Target::Function(host) => host.clone(),
            Target::Alias(alias) => alias.current().host.clone(),
        };
        match host.invoke(bytes::Bytes::from(event.to_string())).await {
            Ok(response) => {
                let failed: Vec<String> = if sub.report_failures {
                    serde_json::from_slice::<Value>(&response)
                        .ok()
                        .and_then(|r| r.get("batchItemFailures").cloned())
                        .and_then(|f| f.as_array().cloned())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                        .collect()
                } else {
                    Vec::new()
                };
                for m in messages.iter().filter(|m| !failed.contains(&m.message_id)) {
                    if let Err(error) = server
                        .delete_message_as(creds, &sub.queue_url, &m.receipt_handle)
                        .await
                    {
                        tracing::warn!(function = sub.function, %error, "cannot delete a processed message");
                    }
                }
                tracing::info!(
                    function = sub.function,
                    event = sub.event,
                    delivered = messages.len(),
                    failed = failed.len(),
                    "SQS batch processed"
                );
            }
            Err(error) => {
                tracing::warn!(function = sub.function, event = sub.event, %error, batch = messages.len(), "SQS batch failed; its messages return to the queue after its visibility timeout");
            }
        }
    }
}

/// Whether a stack's resources other than functions and APIs are created
/// in moto: when it has any (`local_resources::needs_moto`), except in the
/// pipeline's own stack (an `AWS::CodePipeline::Pipeline`), which the
/// rehearsal plays itself.
fn uses_moto(template: &Template) -> bool {
    local_resources::needs_moto(template)
        && !template
            .resources()
            .any(|r| r.resource_type() == "AWS::CodePipeline::Pipeline")
}

/// The local values (functions, APIs, roles, alarms, log groups) that
/// moto's resources may refer to.
fn local_values(locals: &Locals) -> LocalValues {
    let mut values = LocalValues::new();
    for (id, r) in &locals.resources {
        if !local_resources::is_local_type(&r.resource_type) {
            continue;
        }
        values = values
            .with_ref(id.as_str(), r.reference.as_str())
            .with_attribute(id.as_str(), "Arn", r.default_arn(id));
        for (attribute, value) in &r.attributes {
            values = values.with_attribute(id.as_str(), attribute.as_str(), value.as_str());
        }
    }
    values
}

/// The template's `AWS::IAM::Role` a function's `Role: !GetAtt X.Arn`
/// names, if it does.
fn template_role<'a>(
    role: &Value,
    resources: &'a [(String, Value)],
) -> Option<(&'a str, &'a Value)> {
    let target = match role.get("Fn::GetAtt")? {
        Value::Array(parts) if parts.len() == 2 && parts[1] == "Arn" => parts[0].as_str()?,
        Value::String(s) => s.strip_suffix(".Arn")?,
        _ => return None,
    };
    resources
        .iter()
        .find(|(id, body)| id == target && resource_type(body) == "AWS::IAM::Role")
        .map(|(id, body)| (id.as_str(), body))
}

/// The template's `AWS::IAM::Policy` and `AWS::IAM::ManagedPolicy`
/// resources, resolved, for `fold_template_policies`.
fn template_policies(
    resources: &[(String, Value)],
    locals: &Locals,
) -> Result<Vec<TemplatePolicy>, DeployError> {
    let mut out = Vec::new();
    for (logical_id, body) in resources {
        let kind = resource_type(body);
        if kind != "AWS::IAM::Policy" && kind != "AWS::IAM::ManagedPolicy" {
            continue;
        }
        let at = format!("Resources.{logical_id}.Properties");
        let props = locals
            .value(&body["Properties"], &at)?
            .unwrap_or(Value::Null);
        let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
        let managed = kind == "AWS::IAM::ManagedPolicy";
        let name = if managed {
            text("ManagedPolicyName")
        } else {
            text("PolicyName")
        }
        .unwrap_or_else(|| logical_id.clone());
        let roles = props
            .get("Roles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.push(TemplatePolicy {
            logical_id: logical_id.clone(),
            name,
            document: props.get("PolicyDocument").cloned().unwrap_or(Value::Null),
            roles,
            managed_arn: managed
                .then(|| {
                    locals
                        .resources
                        .get(logical_id)
                        .map(|v| v.reference.clone())
                })
                .flatten(),
        });
    }
    Ok(out)
}

/// What Lambda's CreateEventSourceMapping checks for an SQS event source:
/// that the function's execution role may call sqs:ReceiveMessage,
/// sqs:DeleteMessage and sqs:GetQueueAttributes on the queue. The AWS
/// Lambda Developer Guide, "Creating and configuring an Amazon SQS event
/// source mapping"
/// (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html),
/// "Setting up Lambda execution role permissions", says the role needs
/// them (the AWSLambdaSQSQueueExecutionRole managed policy); without them
/// creating the mapping fails (it is not created disabled) with
/// InvalidParameterValueException "The provided execution role does not
/// have permissions to call ReceiveMessage on SQS" (the error CloudFormation
/// reports for the AWS::Lambda::EventSourceMapping, as users report it:
/// aws/aws-cdk#6770, functionalone/serverless-iam-roles-per-function#21
/// for DeleteMessage). The rehearsal fails the deploy the same way,
/// before any function starts, naming the role and the missing action.
async fn check_poller(
    server: &MotoServer,
    spec: &FunctionSpec,
    moto_stack: &MotoStack,
) -> Result<(), DeployError> {
    let Some((role, creds)) = spec.role.as_ref().filter(|_| spec.role_known) else {
        return Ok(());
    };
    for (event, queue_arn, _, _) in &spec.sqs {
        let Some(queue) = moto_stack.resources.resources.values().find(|r| {
            r.resource_type == "AWS::SQS::Queue" && r.attributes.get("Arn") == Some(queue_arn)
        }) else {
            continue;
        };
        let missing = server
            .missing_poller_permission(creds, &queue.reference)
            .await
            .map_err(|source| DeployError::Moto {
                stack: moto_stack.resources.stack_name.clone(),
                source,
            })?;
        if let Some(action) = missing {
            return Err(DeployError::EventSourcePermission {
                function: spec.logical_id.clone(),
                event: event.clone(),
                role: role.clone(),
                action: action.to_string(),
                queue_arn: queue_arn.clone(),
            });
        }
    }
    Ok(())
}

/// A role's inline policies with their intrinsic functions resolved (SAM's
/// policy templates use `Fn::Sub` with pseudo parameters).
fn resolve_policies(
    role: &mut RoleSpec,
    locals: &Locals,
    function: &str,
) -> Result<(), DeployError> {
    for (name, document) in &mut role.inline_policies {
        *document = locals
            .value(
                document,
                &format!("Resources.{function}: policy {name} of its execution role"),
            )?
            .unwrap_or(Value::Null);
    }
    Ok(())
}

fn resource_type(body: &Value) -> &str {
    body["Type"].as_str().unwrap_or_default()
}

/// The resources whose `Condition` holds.
pub(crate) fn live_resources(
    template: &Template,
    locals: &Locals,
) -> Result<Vec<(String, Value)>, DeployError> {
    let mut out = Vec::new();
    for resource in template.resources() {
        let logical_id = resource.logical_id();
        if let Some(condition) = resource.condition()
            && !locals.condition(condition, &format!("Resources.{logical_id}.Condition"))?
        {
            continue;
        }
        out.push((logical_id.to_string(), resource.as_json().clone()));
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
    locals: &mut Locals,
    api_kinds: &mut BTreeMap<String, (String, ApiKind)>,
    logical_id: &str,
    kind: ApiKind,
    base_url: Option<&str>,
) {
    if locals.resources.contains_key(logical_id) {
        return;
    }
    let id = api_id(&locals.stack_name, logical_id);
    let resource_type = if kind == ApiKind::Http {
        "AWS::Serverless::HttpApi"
    } else {
        "AWS::Serverless::Api"
    };
    let mut values = ResourceValues::new(resource_type, id.clone());
    if let Some(base) = base_url {
        values
            .attributes
            .insert("ApiEndpoint".to_string(), base.to_string());
    }
    locals.insert(logical_id, values);
    api_kinds.insert(logical_id.to_string(), (id, kind));
}

/// Properties with `Globals.Function` merged under them (the resource wins;
/// environment variables merge key by key).
pub(crate) fn merged_properties(properties: &Value, globals: &Value) -> Map<String, Value> {
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

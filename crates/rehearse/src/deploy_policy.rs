//! Whether a CloudFormation deploy action's role may create the roles a
//! stack template defines (issue 11, section 4: bounded permissions).
//!
//! CloudFormation creates a stack's roles with the credentials of the role
//! the deploy action names in `RoleArn`. For every role a template creates
//! (its `AWS::IAM::Role` resources, the execution role SAM generates for an
//! `AWS::Serverless::Function` without `Role`, and the CodeDeploy role SAM
//! generates for a `DeploymentPreference` without `Role`), this module asks
//! the deploy role's IAM policies (from the pipeline template, resolved with
//! the pipeline's [`Resolver`]) whether it may `iam:CreateRole`,
//! `iam:PutRolePolicy` (inline policies) and `iam:AttachRolePolicy` (each
//! managed policy, with `iam:PolicyARN`), with the request context key
//! `iam:PermissionsBoundary` set to the role's boundary (absent when it has
//! none). On a stack that runs already, only what changes is asked for: a
//! role it adds is created; a role it keeps gets `iam:PutRolePermissionsBoundary`
//! or `iam:DeleteRolePermissionsBoundary` when its boundary changes,
//! `iam:PutRolePolicy` when its inline policies change and
//! `iam:AttachRolePolicy` for a managed policy it did not have. A denied call
//! fails the deploy before anything starts, naming the role.
//!
//! The evaluator ([`evaluate`]) is a small subset of IAM's identity-policy
//! evaluation: an explicit `Deny` wins, then an `Allow` whose `Action`
//! (`NotAction`) and `Resource` (`NotResource`) match (wildcards `*`, `?`)
//! and whose `Condition` holds; otherwise the request is implicitly denied.
//! Condition operators follow "IAM JSON policy elements: Condition
//! operators" (IAM User Guide): several operators, and several keys in one
//! operator, must all hold (AND); several values of one key match if any
//! matches (OR), and a negated operator holds when none matches (NOR;
//! "Conditions with multiple context keys or values", IAM User Guide); a
//! missing key makes a positive operator false, its `...IfExists` form
//! true, and a negated operator (`StringNotEquals`, `ArnNotEquals`, ...)
//! true. ARNs compare component by component (`ArnLike`). An
//! operator outside the supported list, in a statement whose action and
//! resource match the request, is an error
//! ([`PolicyError::UnsupportedOperator`]), never silently true or false.
//!
//! Not evaluated: permissions boundaries or SCPs on the deploy role itself,
//! resource-based policies, policy variables (`${aws:username}`),
//! multi-valued context keys (`ForAnyValue:`/`ForAllValues:`), operators
//! other than the String/Arn/Null ones above (an error), the other IAM calls
//! a deploy makes (`iam:PassRole`, tagging, deletes, and every non-IAM call),
//! roles of resource types other than `AWS::IAM::Role` and SAM functions
//! (state machines, event sources' roles), and AWS managed policies attached
//! to the deploy role (their text is not in the template: an error).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use cfn_template::{ResolveError, Resolver, Template};
use serde_json::Value;

use crate::ids;
use crate::stack::{Locals, generated_name};

/// Why a policy could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A condition operator the evaluator does not implement.
    #[error(
        "statement {} uses the condition operator {operator}, which the rehearsal does not evaluate (supported: StringEquals, StringNotEquals, StringLike, StringNotLike, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike, each with IfExists, and Null)",
        .sid.as_deref().unwrap_or("(no Sid)")
    )]
    UnsupportedOperator {
        operator: String,
        sid: Option<String>,
    },
    /// A policy document that is not shaped as IAM expects.
    #[error("malformed policy: {0}")]
    Malformed(String),
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` statement matched (its `Sid`, if any).
    Allow { sid: Option<String> },
    /// A `Deny` statement matched (its `Sid`, if any).
    ExplicitDeny { sid: Option<String> },
    /// No statement allowed it.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// One IAM request: an action on a resource with its context keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    pub resource: String,
    /// Context keys (single-valued), matched case-insensitively by name.
    pub context: BTreeMap<String, String>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Self {
        Self {
            action: action.to_string(),
            resource: resource.to_string(),
            context: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_lowercase(), value.to_string());
        self
    }

    fn key(&self, key: &str) -> Option<&str> {
        self.context.get(&key.to_lowercase()).map(String::as_str)
    }
}

/// Evaluates `request` against identity policy documents (already resolved
/// JSON): explicit deny, then allow, else implicit deny.
pub fn evaluate(policies: &[Value], request: &Request) -> Result<Decision, PolicyError> {
    let mut allowed = None;
    for policy in policies {
        for statement in statements(policy)? {
            if !statement.applies(request)? {
                continue;
            }
            match statement.effect {
                Effect::Deny => return Ok(Decision::ExplicitDeny { sid: statement.sid }),
                Effect::Allow => {
                    if allowed.is_none() {
                        allowed = Some(statement.sid);
                    }
                }
            }
        }
    }
    Ok(match allowed {
        Some(sid) => Decision::Allow { sid },
        None => Decision::ImplicitDeny,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

struct Statement<'a> {
    sid: Option<String>,
    effect: Effect,
    /// Patterns, and whether they are `NotAction`.
    actions: (Vec<String>, bool),
    resources: (Vec<String>, bool),
    condition: Option<&'a Value>,
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::Array(items) => items.iter().map(|v| scalar(v, what)).collect(),
        other => Ok(vec![scalar(other, what)?]),
    }
}

fn scalar(value: &Value, what: &str) -> Result<String, PolicyError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(PolicyError::Malformed(format!(
            "{what} holds {other}, not a string"
        ))),
    }
}

fn statements(policy: &Value) -> Result<Vec<Statement<'_>>, PolicyError> {
    let list: Vec<&Value> = match policy.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err(PolicyError::Malformed("no Statement".into())),
    };
    list.into_iter()
        .map(|s| {
            let sid = s.get("Sid").and_then(Value::as_str).map(str::to_string);
            let effect = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                other => {
                    return Err(PolicyError::Malformed(format!(
                        "statement {}: Effect {other:?} is neither Allow nor Deny",
                        sid.as_deref().unwrap_or("(no Sid)")
                    )));
                }
            };
            let element = |name: &str, not: &str| match (s.get(name), s.get(not)) {
                (Some(v), None) => Ok((strings(v, name)?, false)),
                (None, Some(v)) => Ok((strings(v, not)?, true)),
                _ => Err(PolicyError::Malformed(format!(
                    "statement {}: needs exactly one of {name} and {not}",
                    sid.as_deref().unwrap_or("(no Sid)")
                ))),
            };
            Ok(Statement {
                effect,
                actions: element("Action", "NotAction")?,
                resources: element("Resource", "NotResource")?,
                condition: s.get("Condition"),
                sid,
            })
        })
        .collect()
}

impl Statement<'_> {
    fn applies(&self, request: &Request) -> Result<bool, PolicyError> {
        let action = self
            .actions
            .0
            .iter()
            .any(|p| wildcard(&p.to_lowercase(), &request.action.to_lowercase()))
            != self.actions.1;
        let resource = self
            .resources
            .0
            .iter()
            .any(|p| wildcard(p, &request.resource))
            != self.resources.1;
        if !(action && resource) {
            return Ok(false);
        }
        match self.condition {
            None => Ok(true),
            Some(condition) => condition_holds(condition, request, self.sid.as_deref()),
        }
    }
}

/// `*` matches any run of characters, `?` any one; case-sensitive.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// ArnLike/ArnEquals: "each of the six colon-delimited components of the
/// ARN is checked separately", each with `*`/`?`. A value that is not an
/// ARN matches nothing.
fn arn_like(pattern: &str, value: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    p.len() == 6 && v.len() == 6 && v[0] == "arn" && p.iter().zip(&v).all(|(p, v)| wildcard(p, v))
}

/// How a condition operator compares a policy value with the request's.
type Compare = fn(&str, &str) -> bool;

fn condition_holds(
    condition: &Value,
    request: &Request,
    sid: Option<&str>,
) -> Result<bool, PolicyError> {
    let Value::Object(operators) = condition else {
        return Err(PolicyError::Malformed("Condition is not a map".into()));
    };
    let unsupported = |operator: &str| PolicyError::UnsupportedOperator {
        operator: operator.to_string(),
        sid: sid.map(str::to_string),
    };
    let mut holds = true;
    for (operator, block) in operators {
        let (base, if_exists) = match operator.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (operator.as_str(), false),
        };
        // (compare, negated)
        let compare: Option<(Compare, bool)> = match base {
            "StringEquals" => Some((|p, v| p == v, false)),
            "StringNotEquals" => Some((|p, v| p == v, true)),
            "StringLike" => Some((wildcard, false)),
            "StringNotLike" => Some((wildcard, true)),
            "ArnEquals" | "ArnLike" => Some((arn_like, false)),
            "ArnNotEquals" | "ArnNotLike" => Some((arn_like, true)),
            "Null" if !if_exists => None,
            _ => return Err(unsupported(operator)),
        };
        let Value::Object(keys) = block else {
            return Err(PolicyError::Malformed(format!(
                "Condition {operator} is not a map of keys to values"
            )));
        };
        for (key, values) in keys {
            let values = strings(values, key)?;
            let actual = request.key(key);
            let key_holds = match compare {
                // Null: "true" means the key is absent, "false" present.
                None => values.iter().any(|v| match v.as_str() {
                    "true" => actual.is_none(),
                    _ => actual.is_some(),
                }),
                Some((compare, negated)) => match actual {
                    None => if_exists || negated,
                    Some(actual) => values.iter().any(|p| compare(p, actual)) != negated,
                },
            };
            holds &= key_holds;
        }
    }
    Ok(holds)
}

/// Why a deploy may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum DeployPolicyError {
    /// One or more of the roles the stack creates would be refused.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Denied(Vec<Denial>),
    #[error("role {role}'s policies cannot be evaluated: {source}")]
    Policy { role: String, source: PolicyError },
    #[error("cannot resolve {at} of role {role} in {template}: {source}")]
    Resolve {
        role: String,
        at: String,
        template: String,
        source: ResolveError,
    },
    #[error(
        "role {role} has the managed policy {arn}, which is not defined in {template}; the rehearsal cannot evaluate it"
    )]
    UnknownManagedPolicy {
        role: String,
        arn: String,
        template: String,
    },
    #[error("cannot read the stack template {path}: {source}")]
    Load {
        path: String,
        source: cfn_template::Error,
    },
    #[error("the parameters of stack {stack}: {source}")]
    Parameters {
        stack: String,
        source: cfn_template::ParameterError,
    },
    #[error("cannot read the pipeline template: {0}")]
    Pipeline(cfn_template::Error),
    #[error("cannot read the pipeline stack's template {path}: {source}")]
    ReadPipeline {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
}

/// One refused IAM call for one role the stack would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The deploy role's logical id in the pipeline template.
    pub deploy_role: String,
    pub action: String,
    /// The logical id of the role the stack creates.
    pub role: String,
    /// `AWS::IAM::Role`, and where it comes from when SAM generates it.
    pub origin: String,
    /// The role's boundary (None: it has none).
    pub boundary: Option<String>,
    /// The boundary the deploy role's allowing statements ask for.
    pub required: Option<String>,
    /// The managed policy of an `iam:AttachRolePolicy`.
    pub policy_arn: Option<String>,
    /// The explicit Deny's Sid (None: no Sid, or no statement allowed it).
    pub denied_by: Option<String>,
    pub explicit: bool,
    /// What to change in the template.
    pub hint: Option<String>,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} may not {} for role {} ({})",
            self.deploy_role, self.action, self.role, self.origin
        )?;
        if let Some(arn) = &self.policy_arn {
            write!(f, " with the managed policy {arn}")?;
        }
        match (&self.boundary, &self.required) {
            (None, Some(required)) => write!(f, " without the permissions boundary {required}")?,
            (Some(b), Some(required)) if b != required => write!(
                f,
                " with the permissions boundary {b} instead of {required}"
            )?,
            _ => {}
        }
        match (&self.denied_by, self.explicit) {
            (Some(sid), _) => write!(f, " (denied by statement {sid})")?,
            (None, true) => write!(f, " (denied by a Deny statement)")?,
            (None, false) => write!(f, " (no statement allows it)")?,
        }
        if let Some(hint) = &self.hint {
            write!(f, ": {hint}")?;
        }
        Ok(())
    }
}

/// A CloudFormation deploy action, as the hook in `executor` sees it.
pub(crate) struct DeployAction<'a> {
    /// The template the pipeline stack runs (its roles' policies are the
    /// ones in effect); None before its first deploy: then `pipeline_file`
    /// at `commit` in `repo`.
    pub pipeline_stack: Option<&'a Path>,
    pub repo: &'a Path,
    pub commit: &'a str,
    pub pipeline_file: &'a str,
    /// The pipeline's local values (as `read_pipeline` built them).
    pub locals: &'a Locals,
    /// The action's resolved `RoleArn` (None: not set).
    pub role_arn: Option<&'a str>,
    pub stack_name: &'a str,
    /// The stack template the action deploys.
    pub template: &'a Path,
    pub overrides: &'a BTreeMap<String, String>,
    /// The template and overrides the stack runs now, if it exists: its
    /// roles are updated, not created.
    pub running: Option<&'a (PathBuf, BTreeMap<String, String>)>,
}

/// Checks a deploy action: Ok when its role may create every role of the
/// template (or it names no role of the pipeline template, which the
/// rehearsal cannot evaluate).
pub(crate) fn check(action: &DeployAction<'_>) -> Result<(), DeployPolicyError> {
    let text = match action.pipeline_stack {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|source| DeployPolicyError::ReadPipeline {
                path: path.display().to_string(),
                source,
            })?
        }
        None => crate::source::show_file(action.repo, action.commit, action.pipeline_file)?,
    };
    let pipeline = Template::from_yaml_str(&text).map_err(DeployPolicyError::Pipeline)?;
    let Some(role_arn) = action.role_arn else {
        return Ok(());
    };
    let Some(deploy_role) = pipeline.resources_of_type("AWS::IAM::Role").find(|r| {
        action
            .locals
            .resolver
            .attribute(r.logical_id(), "Arn")
            .and_then(Value::as_str)
            == Some(role_arn)
    }) else {
        return Ok(());
    };
    let template =
        Template::from_path(action.template).map_err(|source| DeployPolicyError::Load {
            path: action.template.display().to_string(),
            source,
        })?;
    // A running template that cannot be read any more (a pruned run) counts
    // as no stack: every role is checked as created.
    let running = action
        .running
        .and_then(|(path, overrides)| Some((Template::from_path(path).ok()?, overrides)));
    check_template(
        &pipeline,
        action.locals,
        deploy_role.logical_id(),
        action.stack_name,
        &template,
        action.overrides,
        running.as_ref().map(|(t, o)| (t, *o)),
    )
}

/// The policies of `deploy_role` (logical id in `pipeline`) evaluated for
/// the IAM calls CloudFormation makes for the roles of `template` deployed
/// as stack `stack_name` with `overrides`: every role on a first deploy;
/// with `running` (the stack's template and overrides now), the roles it
/// adds, and what changes on the ones it keeps.
pub(crate) fn check_template(
    pipeline: &Template,
    locals: &Locals,
    deploy_role: &str,
    stack_name: &str,
    template: &Template,
    overrides: &BTreeMap<String, String>,
    running: Option<(&Template, &BTreeMap<String, String>)>,
) -> Result<(), DeployPolicyError> {
    // IAM's own values for the pipeline's IAM resources: a managed policy's
    // Ref is its ARN. The rehearsal's locals give it a local name, which the
    // action's ParameterOverrides carry too: both are mapped to the ARN.
    let mut resolver = locals.resolver.clone();
    let mut arns = BTreeMap::new();
    for policy in pipeline.resources_of_type("AWS::IAM::ManagedPolicy") {
        let id = policy.logical_id();
        let Some(local) = locals.resolver.reference(id).and_then(Value::as_str) else {
            continue;
        };
        let name = policy
            .property("ManagedPolicyName")
            .and_then(|n| locals.resolver.resolve_text(n).ok())
            .unwrap_or_else(|| local.to_string());
        let path = policy
            .property("Path")
            .and_then(|p| locals.resolver.resolve_text(p).ok())
            .unwrap_or_else(|| "/".to_string());
        let arn = format!("arn:aws:iam::{}:policy{path}{name}", ids::ACCOUNT_ID);
        resolver.set_ref(id, arn.as_str());
        arns.insert(local.to_string(), arn);
    }
    let documents = role_policies(pipeline, locals, &resolver, deploy_role, &arns)?;

    let to_arns = |overrides: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        overrides
            .iter()
            .map(|(k, v)| (k.clone(), arns.get(v).cloned().unwrap_or_else(|| v.clone())))
            .collect()
    };
    let overrides = to_arns(overrides);
    // The roles the stack has now (none when it cannot be evaluated).
    let old_roles: Vec<StackRole> = running
        .and_then(|(old, old_overrides)| {
            let parameters = old.parameter_values(&to_arns(old_overrides)).ok()?;
            let old_locals = Locals::new(stack_name, old, parameters);
            stack_roles(old, &old_locals, stack_name).ok()
        })
        .unwrap_or_default();
    let parameters =
        template
            .parameter_values(&overrides)
            .map_err(|source| DeployPolicyError::Parameters {
                stack: stack_name.to_string(),
                source,
            })?;
    let stack = Locals::new(stack_name, template, parameters.clone());
    let mut denials = Vec::new();
    for role in stack_roles(template, &stack, stack_name)? {
        let old = old_roles
            .iter()
            .find(|old| old.logical_id == role.logical_id && old.name == role.name);
        for request in iam_calls(&role, old) {
            let decision =
                evaluate(&documents, &request).map_err(|source| DeployPolicyError::Policy {
                    role: deploy_role.to_string(),
                    source,
                })?;
            if decision.is_allowed() {
                continue;
            }
            // The boundary the allowing statements ask for; for a kept role
            // that loses its boundary, the one it had.
            let required = required_boundary(&documents, &request).or_else(|| {
                old.filter(|_| role.boundary.is_none())
                    .and_then(|old| old.boundary.clone())
            });
            let wrong_boundary = required.is_some() && role.boundary != required;
            let hint = if !wrong_boundary {
                None
            } else if role.from_deployment_preference {
                Some(format!(
                    "give the DeploymentPreference a Role (an AWS::IAM::Role with PermissionsBoundary{}): SAM's generated CodeDeploy role has no boundary",
                    boundary_value(&parameters, required.as_deref())
                ))
            } else {
                Some(format!(
                    "add PermissionsBoundary{}",
                    boundary_value(&parameters, required.as_deref())
                ))
            };
            let (explicit, denied_by) = match decision {
                Decision::ExplicitDeny { sid } => (true, sid),
                _ => (false, None),
            };
            denials.push(Denial {
                deploy_role: deploy_role.to_string(),
                action: request.action.clone(),
                role: role.logical_id.clone(),
                origin: role.origin.clone(),
                boundary: role.boundary.clone(),
                required,
                policy_arn: request.key("iam:PolicyARN").map(str::to_string),
                denied_by,
                explicit,
                hint,
            });
            break;
        }
    }
    if denials.is_empty() {
        Ok(())
    } else {
        Err(DeployPolicyError::Denied(denials))
    }
}

/// The IAM calls CloudFormation makes for `role`: a new role (or one
/// replaced under a new name) is created, its inline policies put and its
/// managed policies attached; a kept role (`old`) gets its boundary put or
/// deleted when it changes, its inline policies put when they change, and
/// the managed policies it did not have attached. Every call carries the
/// boundary the role has (`iam:PermissionsBoundary`; absent without one).
fn iam_calls(role: &StackRole, old: Option<&StackRole>) -> Vec<Request> {
    let arn = format!("arn:aws:iam::{}:role/{}", ids::ACCOUNT_ID, role.name);
    let with_boundary = |request: Request, boundary: Option<&String>| match boundary {
        Some(b) => request.with("iam:PermissionsBoundary", b),
        None => request,
    };
    let boundary = role.boundary.as_ref();
    let mut calls = Vec::new();
    match old {
        None => calls.push(with_boundary(
            Request::new("iam:CreateRole", &arn),
            boundary,
        )),
        Some(old) if old.boundary != role.boundary => calls.push(match boundary {
            Some(_) => with_boundary(
                Request::new("iam:PutRolePermissionsBoundary", &arn),
                boundary,
            ),
            None => with_boundary(
                Request::new("iam:DeleteRolePermissionsBoundary", &arn),
                old.boundary.as_ref(),
            ),
        }),
        Some(_) => {}
    }
    if !role.inline_policies.is_empty()
        && old.is_none_or(|old| old.inline_policies != role.inline_policies)
    {
        calls.push(with_boundary(
            Request::new("iam:PutRolePolicy", &arn),
            boundary,
        ));
    }
    for policy in &role.managed {
        if old.is_none_or(|old| !old.managed.contains(policy)) {
            calls.push(with_boundary(
                Request::new("iam:AttachRolePolicy", &arn).with("iam:PolicyARN", policy),
                boundary,
            ));
        }
    }
    calls
}

/// `: !Ref <Parameter>` when a stack parameter holds the required boundary,
/// else `: <arn>`.
fn boundary_value(parameters: &BTreeMap<String, String>, required: Option<&str>) -> String {
    match required {
        None => String::new(),
        Some(arn) => match parameters.iter().find(|(_, v)| v.as_str() == arn) {
            Some((name, _)) => format!(": !Ref {name}"),
            None => format!(": {arn}"),
        },
    }
}

/// The boundary an allowing statement for this action and resource names
/// in a condition on `iam:PermissionsBoundary`.
fn required_boundary(documents: &[Value], request: &Request) -> Option<String> {
    let mut bare = request.clone();
    bare.context.clear();
    for document in documents {
        for statement in statements(document).ok()? {
            let matches = statement.effect == Effect::Allow
                && Statement {
                    condition: None,
                    ..statement_clone(&statement)
                }
                .applies(&bare)
                .unwrap_or(false);
            let Some(Value::Object(operators)) = statement.condition.filter(|_| matches) else {
                continue;
            };
            for (operator, block) in operators {
                if operator.starts_with("ArnEquals")
                    || operator.starts_with("ArnLike")
                    || operator.starts_with("StringEquals")
                    || operator.starts_with("StringLike")
                {
                    let Value::Object(keys) = block else { continue };
                    for (key, value) in keys {
                        if key.eq_ignore_ascii_case("iam:PermissionsBoundary")
                            && let Ok(values) = strings(value, key)
                            && let Some(first) = values.into_iter().next()
                        {
                            return Some(first);
                        }
                    }
                }
            }
        }
    }
    None
}

fn statement_clone<'a>(s: &Statement<'a>) -> Statement<'a> {
    Statement {
        sid: s.sid.clone(),
        effect: s.effect,
        actions: s.actions.clone(),
        resources: s.resources.clone(),
        condition: s.condition,
    }
}

/// The deploy role's policy documents, resolved: its inline `Policies`,
/// its `ManagedPolicyArns` that are managed policies of the pipeline
/// template, and the `AWS::IAM::Policy`/`AWS::IAM::ManagedPolicy`
/// resources whose `Roles` name it.
fn role_policies(
    pipeline: &Template,
    locals: &Locals,
    resolver: &Resolver,
    role: &str,
    arns: &BTreeMap<String, String>,
) -> Result<Vec<Value>, DeployPolicyError> {
    let resolve = |value: &Value, at: &str| {
        resolver
            .resolve_complete(value)
            .map_err(|source| DeployPolicyError::Resolve {
                role: role.to_string(),
                at: at.to_string(),
                template: "the pipeline template".into(),
                source,
            })
    };
    let mut documents = Vec::new();
    let resource = pipeline.resource(role);
    let properties = resource.as_ref().map(|r| r.properties());
    if let Some(Value::Array(policies)) = properties.and_then(|p| p.get("Policies")) {
        for (i, policy) in policies.iter().enumerate() {
            if let Some(document) = policy.get("PolicyDocument") {
                documents.push(resolve(document, &format!("Policies[{i}].PolicyDocument"))?);
            }
        }
    }
    let role_ref = locals.resolver.reference(role).and_then(Value::as_str);
    let mut attached: Vec<String> = Vec::new();
    if let Some(managed) = properties.and_then(|p| p.get("ManagedPolicyArns"))
        && let Value::Array(items) = resolve(managed, "ManagedPolicyArns")?
    {
        attached.extend(items.iter().filter_map(Value::as_str).map(str::to_string));
    }
    for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for policy in pipeline.resources_of_type(kind) {
            let id = policy.logical_id();
            let names_role = policy
                .property("Roles")
                .and_then(|roles| locals.resolver.resolve(roles))
                .is_some_and(|roles| match roles {
                    Value::Array(items) => items.iter().any(|r| r.as_str() == role_ref),
                    _ => false,
                });
            let arn = resolver.reference(id).and_then(Value::as_str);
            let listed = arn.is_some_and(|arn| attached.iter().any(|a| a == arn));
            if (names_role || listed)
                && let Some(document) = policy.property("PolicyDocument")
            {
                documents.push(resolve(document, &format!("{id}.PolicyDocument"))?);
            }
            if let Some(arn) = arn {
                attached.retain(|a| a != arn);
            }
        }
    }
    // Anything attached that is not a policy of this template (an AWS
    // managed policy, another stack's) cannot be read here.
    if let Some(arn) = attached
        .into_iter()
        .find(|a| !arns.values().any(|v| v == a))
    {
        return Err(DeployPolicyError::UnknownManagedPolicy {
            role: role.to_string(),
            arn,
            template: "the pipeline template".into(),
        });
    }
    Ok(documents)
}

/// A role the stack creates.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StackRole {
    logical_id: String,
    origin: String,
    name: String,
    boundary: Option<String>,
    /// Its inline policies (resolved as far as the stack's values go).
    inline_policies: Vec<Value>,
    managed: Vec<String>,
    from_deployment_preference: bool,
}

/// SAM's `Globals.Function` value of `key`, for a function without it.
fn function_property<'a>(
    template: &'a Template,
    properties: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Option<&'a Value> {
    properties.get(key).or_else(|| {
        template
            .section("Globals")
            .find(|(name, _)| *name == "Function")
            .and_then(|(_, globals)| globals.get(key))
    })
}

fn stack_roles(
    template: &Template,
    stack: &Locals,
    stack_name: &str,
) -> Result<Vec<StackRole>, DeployPolicyError> {
    let resolve = |role: &str, value: &Value, at: &str| {
        stack
            .resolver
            .resolve(value)
            .map(|v| stack.resolver.resolve_complete(&v))
            .transpose()
            .map_err(|source| DeployPolicyError::Resolve {
                role: role.to_string(),
                at: at.to_string(),
                template: format!("the template of stack {stack_name}"),
                source,
            })
    };
    let text = |role: &str,
                value: Option<&Value>,
                at: &str|
     -> Result<Option<String>, DeployPolicyError> {
        match value {
            None => Ok(None),
            Some(v) => Ok(resolve(role, v, at)?.and_then(|v| scalar(&v, at).ok())),
        }
    };
    let mut roles = Vec::new();
    let mut codedeploy_role = false;
    for resource in template.resources() {
        let id = resource.logical_id();
        if let Some(condition) = resource.condition()
            && !stack.resolver.condition(condition).unwrap_or(true)
        {
            continue;
        }
        let properties = resource.properties();
        match resource.resource_type() {
            "AWS::IAM::Role" => {
                let managed = match properties.get("ManagedPolicyArns") {
                    None => Vec::new(),
                    Some(v) => match resolve(id, v, "ManagedPolicyArns")? {
                        Some(v) => strings(&v, "ManagedPolicyArns").unwrap_or_default(),
                        None => Vec::new(),
                    },
                };
                roles.push(StackRole {
                    logical_id: id.to_string(),
                    origin: "AWS::IAM::Role".into(),
                    name: text(id, properties.get("RoleName"), "RoleName")?
                        .unwrap_or_else(|| generated_name(stack_name, id)),
                    boundary: text(
                        id,
                        properties.get("PermissionsBoundary"),
                        "PermissionsBoundary",
                    )?,
                    inline_policies: match properties
                        .get("Policies")
                        .and_then(|p| stack.resolver.resolve(p))
                    {
                        None => Vec::new(),
                        Some(Value::Array(items)) => items,
                        Some(one) => vec![one],
                    },
                    managed,
                    from_deployment_preference: false,
                });
            }
            "AWS::Serverless::Function" => {
                let property = |key| function_property(template, properties, key);
                let role_id = format!("{id}Role");
                if text(&role_id, property("Role"), "Role")?.is_none() {
                    let mut managed = vec![
                        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
                            .to_string(),
                    ];
                    if text(&role_id, property("Tracing"), "Tracing")?.as_deref() == Some("Active")
                    {
                        managed.push("arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess".into());
                    }
                    let mut inline_policies = Vec::new();
                    let policies = match property("Policies") {
                        None => None,
                        Some(p) => stack.resolver.resolve(p),
                    };
                    let entries = match policies {
                        None => Vec::new(),
                        Some(Value::Array(items)) => items,
                        Some(one) => vec![one],
                    };
                    for entry in entries {
                        match entry {
                            Value::String(name) if name.starts_with("arn:") => managed.push(name),
                            Value::String(name) => {
                                managed.push(format!("arn:aws:iam::aws:policy/{name}"))
                            }
                            other => inline_policies.push(other),
                        }
                    }
                    roles.push(StackRole {
                        name: generated_name(stack_name, &role_id),
                        logical_id: role_id.clone(),
                        origin: format!("AWS::IAM::Role, from AWS::Serverless::Function {id}"),
                        boundary: text(
                            &role_id,
                            property("PermissionsBoundary"),
                            "PermissionsBoundary",
                        )?,
                        inline_policies,
                        managed,
                        from_deployment_preference: false,
                    });
                }
                if let Some(preference) =
                    property("DeploymentPreference").and_then(|p| stack.resolver.resolve(p))
                    && preference.get("Enabled").and_then(Value::as_bool) != Some(false)
                    && preference.get("Role").is_none()
                    && !codedeploy_role
                {
                    codedeploy_role = true;
                    let role_id = "CodeDeployServiceRole";
                    roles.push(StackRole {
                        name: generated_name(stack_name, role_id),
                        logical_id: role_id.to_string(),
                        origin: format!(
                            "AWS::IAM::Role, from the DeploymentPreference of AWS::Serverless::Function {id}"
                        ),
                        boundary: None,
                        inline_policies: Vec::new(),
                        managed: vec![
                            "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda".into(),
                        ],
                        from_deployment_preference: true,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/Svc_boundary";

    fn bounded_writes() -> Value {
        json!({"Statement": [
            {"Sid": "Create", "Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePolicy"],
             "Resource": "arn:aws:iam::123456789012:role/Svc-beta-*",
             "Condition": {"ArnEquals": {"iam:PermissionsBoundary": BOUNDARY}}},
            {"Sid": "NoRoleWithoutTheBoundary", "Effect": "Deny", "Action": "iam:CreateRole",
             "Resource": "*",
             "Condition": {"ArnNotEquals": {"iam:PermissionsBoundary": BOUNDARY}}}
        ]})
    }

    fn create(role: &str) -> Request {
        Request::new(
            "iam:CreateRole",
            &format!("arn:aws:iam::123456789012:role/{role}"),
        )
    }

    #[test]
    fn an_allow_whose_condition_holds_allows() {
        let decision = evaluate(
            &[bounded_writes()],
            &create("Svc-beta-FnRole-ABC").with("iam:PermissionsBoundary", BOUNDARY),
        )
        .unwrap();
        assert_eq!(
            decision,
            Decision::Allow {
                sid: Some("Create".into())
            }
        );
    }

    #[test]
    fn a_missing_boundary_is_denied_by_the_negated_operator() {
        let decision = evaluate(&[bounded_writes()], &create("Svc-beta-FnRole-ABC")).unwrap();
        assert_eq!(
            decision,
            Decision::ExplicitDeny {
                sid: Some("NoRoleWithoutTheBoundary".into())
            }
        );
    }

    #[test]
    fn a_negated_operator_with_several_values_holds_when_none_matches() {
        let policy = json!({"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1", "us-east-1"]}}}});
        let denied = |region: &str| {
            let request = Request::new("s3:GetObject", "x").with("aws:RequestedRegion", region);
            evaluate(std::slice::from_ref(&policy), &request).unwrap() != Decision::ImplicitDeny
        };
        assert!(!denied("us-east-1"));
        assert!(!denied("eu-west-1"));
        assert!(denied("ap-south-1"));
    }

    #[test]
    fn an_explicit_deny_wins_over_an_allow() {
        let policies = [
            json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}),
            json!({"Statement": {"Sid": "Never", "Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*"}}),
        ];
        let decision = evaluate(&policies, &create("anything")).unwrap();
        assert_eq!(
            decision,
            Decision::ExplicitDeny {
                sid: Some("Never".into())
            }
        );
        let other = evaluate(&policies, &Request::new("iam:GetRole", "x")).unwrap();
        assert!(other.is_allowed());
    }

    #[test]
    fn actions_and_resources_match_with_wildcards() {
        let policy = json!({"Statement": {"Effect": "Allow", "Action": "iam:*Role?olicy",
            "Resource": "arn:aws:iam::*:role/Svc-?eta-*"}});
        let allowed = |action: &str, resource: &str| {
            evaluate(
                std::slice::from_ref(&policy),
                &Request::new(action, resource),
            )
            .unwrap()
            .is_allowed()
        };
        assert!(allowed(
            "iam:PutRolePolicy",
            "arn:aws:iam::1:role/Svc-beta-X"
        ));
        assert!(allowed(
            "IAM:putrolepolicy",
            "arn:aws:iam::1:role/Svc-zeta-X"
        ));
        assert!(!allowed(
            "iam:PutRolePolicies",
            "arn:aws:iam::1:role/Svc-beta-X"
        ));
        assert!(!allowed(
            "iam:PutRolePolicy",
            "arn:aws:iam::1:role/Svc-gamma-X"
        ));
        assert_eq!(
            evaluate(
                &[policy],
                &Request::new("iam:CreateRole", "arn:aws:iam::1:role/Svc-beta-X")
            )
            .unwrap(),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn if_exists_is_true_for_a_missing_key_and_checks_a_present_one() {
        let policy = json!({"Statement": {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
            "Condition": {"StringEqualsIfExists": {"iam:PassedToService": ["lambda.amazonaws.com", "codedeploy.amazonaws.com"]}}}});
        let pass = Request::new("iam:PassRole", "r");
        let allowed = |request: Request| {
            evaluate(std::slice::from_ref(&policy), &request)
                .unwrap()
                .is_allowed()
        };
        assert!(allowed(pass.clone()));
        assert!(allowed(
            pass.clone()
                .with("iam:PassedToService", "codedeploy.amazonaws.com")
        ));
        assert!(!allowed(
            pass.with("iam:PassedToService", "ec2.amazonaws.com")
        ));
    }

    #[test]
    fn several_keys_must_all_hold_and_null_checks_presence() {
        let policy = json!({"Statement": {"Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": "*",
            "Condition": {"ArnLike": {"iam:PermissionsBoundary": BOUNDARY, "iam:PolicyARN": "arn:aws:iam::aws:policy/*"},
                          "Null": {"aws:SourceIp": "true"}}}});
        let attach =
            Request::new("iam:AttachRolePolicy", "r").with("iam:PermissionsBoundary", BOUNDARY);
        let allowed = |request: Request| {
            evaluate(std::slice::from_ref(&policy), &request)
                .unwrap()
                .is_allowed()
        };
        assert!(!allowed(attach.clone()));
        let with_policy = attach.with("iam:PolicyARN", "arn:aws:iam::aws:policy/X");
        assert!(allowed(with_policy.clone()));
        assert!(!allowed(with_policy.with("aws:SourceIp", "10.0.0.1")));
    }

    #[test]
    fn an_unsupported_operator_is_named() {
        let policy = json!({"Statement": {"Sid": "Dates", "Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}}});
        let error = evaluate(&[policy], &create("x")).unwrap_err();
        assert_eq!(
            error,
            PolicyError::UnsupportedOperator {
                operator: "DateGreaterThan".into(),
                sid: Some("Dates".into())
            }
        );
        assert!(error.to_string().contains("DateGreaterThan"), "{error}");
    }

    // Against the real templates.

    fn repo_file(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every CloudFormation deploy action of pipeline.yaml, checked with
    /// `edit` applied to its stack template.
    /// With `update`, each stack runs the unedited template already.
    fn check_pipeline(
        update: bool,
        edit: impl Fn(&str, String) -> String,
    ) -> Vec<(String, Result<(), DeployPolicyError>)> {
        let pipeline = Template::from_yaml_str(&repo_file("pipeline.yaml")).unwrap();
        let parameters = pipeline.parameter_values(&BTreeMap::new()).unwrap();
        let locals = Locals::new("TimeService-pipeline", &pipeline, parameters);
        let resolved = pipeline.resolved(&locals.resolver).only_pipeline().unwrap();
        let mut results = Vec::new();
        for (stage, action) in resolved.actions() {
            let (Some(mode), Some(role_arn), Some((_, file))) = (
                action.config_str("ActionMode"),
                action.config_str("RoleArn"),
                action.template_path(),
            ) else {
                continue;
            };
            if !matches!(
                mode,
                "CREATE_UPDATE" | "REPLACE_ON_FAILURE" | "CHANGE_SET_REPLACE"
            ) {
                continue;
            }
            let source = if file.contains("test") {
                "test-sam.yaml"
            } else if file.contains("pipeline") {
                "pipeline.yaml"
            } else {
                "app-sam.yaml"
            };
            let template = Template::from_yaml_str(&edit(source, repo_file(source))).unwrap();
            let unedited = Template::from_yaml_str(&repo_file(source)).unwrap();
            let overrides: BTreeMap<String, String> =
                serde_json::from_str(action.config_str("ParameterOverrides").unwrap()).unwrap();
            let role = pipeline
                .resources_of_type("AWS::IAM::Role")
                .find(|r| {
                    locals
                        .resolver
                        .attribute(r.logical_id(), "Arn")
                        .and_then(Value::as_str)
                        == Some(role_arn)
                })
                .unwrap();
            let stack = action.config_str("StackName").unwrap();
            // The pipeline's own stack always exists (a manual `sam deploy`
            // creates it): its self-update is an update of what runs.
            let running = (update || source == "pipeline.yaml").then_some((&unedited, &overrides));
            results.push((
                format!("{}/{}", stage.name, action.name),
                check_template(
                    &pipeline,
                    &locals,
                    role.logical_id(),
                    stack,
                    &template,
                    &overrides,
                    running,
                ),
            ));
        }
        results
    }

    #[test]
    fn the_real_templates_deploy_in_every_stage() {
        let results = check_pipeline(false, |_, text| text);
        assert!(
            results.len() >= 4,
            "{:?}",
            results.iter().map(|r| &r.0).collect::<Vec<_>>()
        );
        for (action, result) in results {
            assert!(result.is_ok(), "{action}: {}", result.unwrap_err());
        }
    }

    #[test]
    fn a_function_without_the_boundary_is_denied_naming_its_role() {
        let results = check_pipeline(false, |file, text| {
            if file == "app-sam.yaml" {
                text.replacen(
                    "      PermissionsBoundary: !Ref PermissionsBoundaryArn\n",
                    "",
                    1,
                )
            } else {
                text
            }
        });
        for (action, result) in results {
            if action.starts_with("UpdatePipeline") {
                assert!(result.is_ok(), "{action}");
                continue;
            }
            if action.starts_with("DeployTests") {
                assert!(result.is_ok(), "{action}");
                continue;
            }
            let message = result.unwrap_err().to_string();
            assert!(
                message.starts_with("DeployRole may not iam:CreateRole for role TimeFunctionRole (AWS::IAM::Role, from AWS::Serverless::Function TimeFunction) without the permissions boundary arn:aws:iam::123456789012:policy/TimeService_stack_role_boundary (denied by statement NoRoleWithoutTheBoundary): add PermissionsBoundary: !Ref PermissionsBoundaryArn"),
                "{action}: {message}"
            );
        }
    }

    #[test]
    fn a_new_role_without_the_boundary_is_denied_naming_it() {
        let role = "  ExtraRole:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n        Version: \"2012-10-17\"\n        Statement:\n          - Effect: Allow\n            Principal:\n              Service: lambda.amazonaws.com\n            Action: sts:AssumeRole\n\n";
        let results = check_pipeline(false, |file, text| {
            if file == "pipeline.yaml" {
                return text;
            }
            text.replacen("Resources:\n", &format!("Resources:\n{role}"), 1)
        });
        for (action, result) in results {
            if action.starts_with("UpdatePipeline") {
                assert!(result.is_ok(), "{action}");
                continue;
            }
            let message = result.unwrap_err().to_string();
            assert_eq!(
                message,
                "DeployRole may not iam:CreateRole for role ExtraRole (AWS::IAM::Role) without the permissions boundary arn:aws:iam::123456789012:policy/TimeService_stack_role_boundary (denied by statement NoRoleWithoutTheBoundary): add PermissionsBoundary: !Ref PermissionsBoundaryArn",
                "{action}"
            );
        }
    }

    #[test]
    fn an_update_that_takes_the_boundary_off_a_role_is_denied() {
        let results = check_pipeline(true, |file, text| {
            if file == "app-sam.yaml" {
                text.replacen(
                    "      PermissionsBoundary: !Ref PermissionsBoundaryArn\n",
                    "",
                    1,
                )
            } else {
                text
            }
        });
        let (action, result) = results
            .into_iter()
            .find(|(a, _)| a.starts_with("Gamma"))
            .unwrap();
        let message = result.unwrap_err().to_string();
        assert!(
            message.starts_with("DeployRole may not iam:DeleteRolePermissionsBoundary for role TimeFunctionRole (AWS::IAM::Role, from AWS::Serverless::Function TimeFunction) without the permissions boundary arn:aws:iam::123456789012:policy/TimeService_stack_role_boundary (denied by statement KeepTheBoundary)"),
            "{action}: {message}"
        );
    }

    #[test]
    fn an_update_that_keeps_the_roles_asks_for_no_role_write() {
        for (action, result) in check_pipeline(true, |_, text| text) {
            assert!(result.is_ok(), "{action}: {}", result.unwrap_err());
        }
    }

    #[test]
    fn a_generated_codedeploy_role_is_denied_with_a_hint() {
        let results = check_pipeline(false, |file, text| {
            if file == "app-sam.yaml" {
                text.replacen("        Role: !GetAtt CodeDeployServiceRole.Arn\n", "", 1)
            } else {
                text
            }
        });
        let (action, result) = results
            .into_iter()
            .find(|(a, _)| a.starts_with("Beta"))
            .unwrap();
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains("role CodeDeployServiceRole (AWS::IAM::Role, from the DeploymentPreference of AWS::Serverless::Function TimeFunction)")
                && message.contains("SAM's generated CodeDeploy role has no boundary"),
            "{action}: {message}"
        );
    }
}

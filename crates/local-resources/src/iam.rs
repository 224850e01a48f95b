//! Functions held to their own IAM permissions, by moto.
//!
//! How moto enforces IAM (moto's docs, "IAM-like Access Control",
//! https://github.com/getmoto/moto/blob/master/docs/docs/iam.rst: off
//! unless `INITIAL_NO_AUTH_ACTION_COUNT` is set, "very basic, see the
//! source code"; and the moto 5.2.5 source):
//! - `moto/settings.py`: `INITIAL_NO_AUTH_ACTION_COUNT` (default infinite)
//!   is how many requests moto serves before it checks any;
//!   `POST /moto-api/reset-auth` with a number sets it at run time and
//!   restarts the count (`moto/moto_api/_internal/responses.py`).
//!   [`MotoServer::enforce_iam`] sets it to 0 after creating an
//!   administrator user whose key the rehearsal signs its own calls with.
//! - `moto/core/authorization.py`, `moto/iam/access_control.py`: once
//!   enforced, every request must be SigV4-signed by a known key: an IAM
//!   user's access key, or an assumed role's temporary key with its session
//!   token (`AssumedRoleAccessKey`: the role's inline and attached
//!   policies are collected). A call no policy allows, or one a policy
//!   denies, is answered `AccessDenied`, "User: <principal> is not
//!   authorized to perform: <service>:<Action>".
//! - The same module's `TODO add support for the Resource ... parts`:
//!   moto checks a statement's `Resource` only for the services whose
//!   responses determine the resource of a request (SQS queues, IAM, STS
//!   roles; S3 buckets and keys). For every other service (DynamoDB among
//!   them) the request's resource is `*`, which a statement scoped to a
//!   table's ARN never matches. [`moto_enforceable`] therefore widens the
//!   `Resource` of statements about those services to `*` before the role
//!   is created: moto then holds a function to its *actions* there (the
//!   commonest missing permission), and to actions and resources for SQS,
//!   S3, IAM and STS. A `Deny` widened this way denies on every resource
//!   (stricter than AWS, never more lenient).
//! - Trust policies: moto's `_check_principal` only understands
//!   `Principal: {AWS: ...}` (a `Service` principal such as
//!   `lambda.amazonaws.com` fails with a server error). Locally the
//!   rehearsal plays the Lambda service, so the role is created trusting
//!   the rehearsal's administrator, who assumes it.
//!
//! SAM policy templates (`DynamoDBCrudPolicy`, `SQSPollerPolicy`, ...) are
//! expanded from samtranslator's own definitions
//! (`samtranslator/policy_templates_data/policy_templates.json`, embedded
//! here for the pinned SAM CLI's samtranslator [`SAMTRANSLATOR_VERSION`]; a
//! test checks the copy against the installed one), the way
//! `samtranslator/policy_template_processor/template.py`
//! (`Template.to_statement`) does: each `{"Ref": <template parameter>}` in
//! the template's `Definition` replaced by the value given.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::client::{Credentials, xml_first};
use crate::{ACCOUNT_ID, Error, MotoServer, REGION, Result};

const IAM: &str = "2010-05-08";
const STS: &str = "2011-06-15";

/// The IAM user the rehearsal's own calls are signed as once IAM is
/// enforced (allowed everything).
pub const ADMIN_USER: &str = "rehearsal-admin";

/// Its ARN.
pub fn admin_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:user/{ADMIN_USER}")
}

/// A function's execution role: what is created in moto for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleSpec {
    /// The role's name (`[\w+=,.@-]`, at most 64 characters; also the
    /// session name).
    pub name: String,
    /// Inline policies: name and document, fully resolved (no `Ref`,
    /// `Fn::*` left: resolve them with `cfn_template::Resolver` first).
    pub inline_policies: Vec<(String, Value)>,
    /// Managed policy ARNs (`arn:aws:iam::aws:policy/...` or a customer
    /// managed policy created in moto).
    pub managed_policy_arns: Vec<String>,
}

impl MotoServer {
    /// Turns on moto's IAM enforcement for every later request, after
    /// creating the administrator user [`ADMIN_USER`] (allowed `*` on `*`)
    /// whose key this server signs its own calls with from then on.
    /// Returns that key. Call it once, before any function runs.
    pub async fn enforce_iam(&self) -> Result<Credentials> {
        let c = self.client();
        c.query("iam", IAM, "CreateUser", &[("UserName", ADMIN_USER)])
            .await?;
        let admin_policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string();
        c.query(
            "iam",
            IAM,
            "PutUserPolicy",
            &[
                ("UserName", ADMIN_USER),
                ("PolicyName", "everything"),
                ("PolicyDocument", &admin_policy),
            ],
        )
        .await?;
        let key = c
            .query("iam", IAM, "CreateAccessKey", &[("UserName", ADMIN_USER)])
            .await?;
        let creds = Credentials {
            access_key_id: field(&key, "CreateAccessKey", "AccessKeyId")?,
            secret_access_key: field(&key, "CreateAccessKey", "SecretAccessKey")?,
            session_token: None,
        };
        let url = format!("{}/moto-api/reset-auth", self.url());
        let resp = c
            .http()
            .post(&url)
            .body("0")
            .send()
            .await
            .map_err(|source| Error::Http {
                action: "reset-auth".into(),
                url: url.clone(),
                source,
            })?;
        if !resp.status().is_success() {
            return Err(Error::Response {
                action: "reset-auth".into(),
                detail: format!("HTTP {}", resp.status()),
            });
        }
        c.set_credentials(creds.clone());
        Ok(creds)
    }

    /// Creates (or replaces the policies of) the execution role `role` in
    /// moto and returns temporary credentials for it (STS AssumeRole, as
    /// the administrator): the credentials a function process runs with.
    /// Statements are passed through [`moto_enforceable`] first.
    pub async fn role_credentials(&self, role: &RoleSpec) -> Result<Credentials> {
        let context = |what: &str| format!("role {}: {what}", role.name);
        for (name, doc) in &role.inline_policies {
            if let Some(left) = find_intrinsic(doc) {
                return Err(Error::Template {
                    context: context(&format!("policy {name}")),
                    message: format!(
                        "still has {left}; resolve the policy (cfn_template::Resolver::resolve_complete) before creating the role"
                    ),
                });
            }
        }
        let c = self.client();
        let trust = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": admin_arn()}, "Action": "sts:AssumeRole"}]})
        .to_string();
        match c
            .query(
                "iam",
                IAM,
                "CreateRole",
                &[
                    ("RoleName", &role.name),
                    ("AssumeRolePolicyDocument", &trust),
                ],
            )
            .await
        {
            Ok(_) => {}
            Err(Error::Aws { code, .. }) if code == "EntityAlreadyExists" => {
                self.clear_role(&role.name).await?;
            }
            Err(e) => return Err(e),
        }
        for (name, doc) in &role.inline_policies {
            let doc = moto_enforceable(doc).to_string();
            c.query(
                "iam",
                IAM,
                "PutRolePolicy",
                &[
                    ("RoleName", &role.name),
                    ("PolicyName", name),
                    ("PolicyDocument", &doc),
                ],
            )
            .await?;
        }
        for arn in &role.managed_policy_arns {
            c.query(
                "iam",
                IAM,
                "AttachRolePolicy",
                &[("RoleName", &role.name), ("PolicyArn", arn)],
            )
            .await?;
        }
        let role_arn = format!("arn:aws:iam::{ACCOUNT_ID}:role/{}", role.name);
        let session: String = role.name.chars().take(64).collect();
        let assumed = c
            .query(
                "sts",
                STS,
                "AssumeRole",
                &[("RoleArn", &role_arn), ("RoleSessionName", &session)],
            )
            .await?;
        Ok(Credentials {
            access_key_id: field(&assumed, "AssumeRole", "AccessKeyId")?,
            secret_access_key: field(&assumed, "AssumeRole", "SecretAccessKey")?,
            session_token: Some(field(&assumed, "AssumeRole", "SessionToken")?),
        })
    }

    /// Removes every policy of an existing role (a redeploy replaces them).
    async fn clear_role(&self, name: &str) -> Result<()> {
        let c = self.client();
        let inline = c
            .query("iam", IAM, "ListRolePolicies", &[("RoleName", name)])
            .await?;
        for member in crate::client::xml_all(&inline, "member") {
            c.query(
                "iam",
                IAM,
                "DeleteRolePolicy",
                &[("RoleName", name), ("PolicyName", &member)],
            )
            .await?;
        }
        let attached = c
            .query(
                "iam",
                IAM,
                "ListAttachedRolePolicies",
                &[("RoleName", name)],
            )
            .await?;
        for arn in crate::client::xml_all(&attached, "PolicyArn") {
            c.query(
                "iam",
                IAM,
                "DetachRolePolicy",
                &[("RoleName", name), ("PolicyArn", &arn)],
            )
            .await?;
        }
        Ok(())
    }
}

fn field(xml: &str, action: &str, tag: &str) -> Result<String> {
    xml_first(xml, tag).ok_or_else(|| Error::Response {
        action: action.to_string(),
        detail: format!("no {tag}"),
    })
}

/// The first intrinsic function (`Ref`, `Fn::...`) left in a value.
fn find_intrinsic(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => {
            if m.len() == 1
                && let Some(k) = m.keys().next()
                && (k == "Ref" || k.starts_with("Fn::"))
            {
                return Some(Value::Object(m.clone()).to_string());
            }
            m.values().find_map(find_intrinsic)
        }
        Value::Array(a) => a.iter().find_map(find_intrinsic),
        _ => None,
    }
}

/// Services for which moto checks a statement's `Resource` against the
/// request's resource (their responses implement `_determine_resource`, or
/// S3's own `_authenticate_and_authorize_s3_action`).
const RESOURCE_CHECKED: [&str; 4] = ["sqs", "iam", "sts", "s3"];

/// A policy document as moto can enforce it: statements about services
/// whose requests moto does not give a resource (see the module notes)
/// get `Resource: "*"`; a statement mixing such services with
/// resource-checked ones is split in two. `NotResource` statements are
/// kept as they are. A missing `Version` becomes `2012-10-17`.
pub fn moto_enforceable(doc: &Value) -> Value {
    let Some(obj) = doc.as_object() else {
        return doc.clone();
    };
    let statements: Vec<Value> = match obj.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return doc.clone(),
    };
    let mut out = Vec::new();
    for s in statements {
        let (Some(st), Some(actions)) = (s.as_object(), s.get("Action")) else {
            out.push(s);
            continue;
        };
        if !st.contains_key("Resource") {
            out.push(s);
            continue;
        }
        let actions: Vec<Value> = match actions {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let checked = |a: &Value| {
            a.as_str()
                .and_then(|a| a.split_once(':'))
                .is_some_and(|(svc, _)| {
                    RESOURCE_CHECKED.contains(&svc.to_ascii_lowercase().as_str())
                })
        };
        let (kept, widened): (Vec<Value>, Vec<Value>) = actions.into_iter().partition(checked);
        if !kept.is_empty() {
            let mut k = st.clone();
            k.insert("Action".into(), Value::Array(kept));
            out.push(Value::Object(k));
        }
        if !widened.is_empty() {
            let mut w = st.clone();
            w.insert("Action".into(), Value::Array(widened));
            w.insert("Resource".into(), json!("*"));
            out.push(Value::Object(w));
        }
    }
    let mut doc = obj.clone();
    doc.insert("Statement".into(), Value::Array(out));
    // SAM's policy templates have no Version, which AWS accepts; moto's
    // validation (moto/iam/policy_validation.py) rejects a policy without
    // one. "IAM JSON policy elements: Version"
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html):
    // 2012-10-17 is the current language version; without it, features
    // such as policy variables are not available. Policies that use no
    // policy variables mean the same under either.
    doc.entry("Version").or_insert_with(|| json!("2012-10-17"));
    Value::Object(doc)
}

/// A call moto denied, read from its error body, for a log line such as
/// `denied: role Api-role may not dynamodb:PutItem on arn:aws:dynamodb:...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Who was denied (`arn:aws:sts::...:assumed-role/<role>/<session>`).
    pub principal: String,
    /// The action (`dynamodb:PutItem`).
    pub action: String,
    /// The resource, when known: AWS names it (`... on resource: <arn>`);
    /// moto does not, so [`Denial::with_request`] adds it from the request.
    pub resource: Option<String>,
}

impl Denial {
    /// Reads moto's (or AWS's) AccessDenied message, "User: P is not
    /// authorized to perform: A[ on resource: R]", from an error body of any
    /// protocol (XML or JSON).
    pub fn from_body(body: &str) -> Option<Denial> {
        const USER: &str = "User: ";
        const NOT: &str = " is not authorized to perform: ";
        let start = body.find(USER)? + USER.len();
        let rest = &body[start..];
        let not = rest.find(NOT)?;
        let principal = rest[..not].to_string();
        let rest = &rest[not + NOT.len()..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '<' || c == '"')
            .unwrap_or(rest.len());
        let action = rest[..end].to_string();
        let resource = rest[end..].strip_prefix(" on resource: ").map(|r| {
            let end = r
                .find(|c: char| c.is_whitespace() || c == '<' || c == '"')
                .unwrap_or(r.len());
            r[..end].to_string()
        });
        Some(Denial {
            principal,
            action,
            resource,
        })
    }

    /// Fills in the resource from the denied request's JSON body (as a
    /// function's SDK sent it): DynamoDB's `TableName`, SQS's `QueueUrl`.
    pub fn with_request(mut self, request: &Value) -> Self {
        if self.resource.is_none() {
            self.resource = request_resource(&self.action, request);
        }
        self
    }

    /// The role name of an assumed-role principal.
    pub fn role(&self) -> Option<&str> {
        let rest = self.principal.split(":assumed-role/").nth(1)?;
        rest.split('/').next()
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = match self.role() {
            Some(r) => format!("role {r}"),
            None => self.principal.clone(),
        };
        write!(
            f,
            "AccessDenied: {who} may not {} on {}; add the permission to the function's Policies",
            self.action,
            self.resource.as_deref().unwrap_or("its resource")
        )
    }
}

/// The ARN a request is about, from its JSON body.
fn request_resource(action: &str, body: &Value) -> Option<String> {
    let service = action.split(':').next()?;
    match service {
        "dynamodb" => {
            let table = body.get("TableName")?.as_str()?;
            Some(format!(
                "arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}"
            ))
        }
        "sqs" => {
            let url = body.get("QueueUrl")?.as_str()?;
            let name = url.rsplit('/').next()?;
            Some(format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"))
        }
        _ => None,
    }
}

/// The samtranslator version the embedded policy templates come from (the
/// one the pinned SAM CLI installs).
pub const SAMTRANSLATOR_VERSION: &str = "1.115.0";

/// samtranslator's `policy_templates.json`, as installed with it.
pub(crate) const POLICY_TEMPLATES_JSON: &str = include_str!("../data/policy_templates.json");

fn policy_templates() -> &'static Map<String, Value> {
    static T: OnceLock<Map<String, Value>> = OnceLock::new();
    T.get_or_init(|| {
        serde_json::from_str::<Value>(POLICY_TEMPLATES_JSON)
            .ok()
            .and_then(|v| v.get("Templates").and_then(Value::as_object).cloned())
            .unwrap_or_default()
    })
}

/// Whether SAM defines a policy template of this name.
pub fn is_policy_template(name: &str) -> bool {
    policy_templates().contains_key(name)
}

/// Expands SAM policy template `name` with `parameters` (a mapping such as
/// `{"TableName": ...}`) to the policy document SAM puts in the role.
/// `Err` says what is wrong, in SAM's words.
pub fn expand_policy_template(name: &str, parameters: &Value) -> Result<Value, String> {
    let t = policy_templates()
        .get(name)
        .ok_or_else(|| format!("SAM {SAMTRANSLATOR_VERSION} has no policy template {name}"))?;
    let Some(values) = parameters.as_object() else {
        return Err(format!(
            "Parameter values are required to process a policy template; write {name}: {{}} when it takes none"
        ));
    };
    let declared: Vec<&String> = t
        .get("Parameters")
        .and_then(Value::as_object)
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    let missing: Vec<&str> = declared
        .iter()
        .filter(|p| !values.contains_key(p.as_str()))
        .map(|p| p.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "Following required parameters of template '{name}' don't have values: {missing:?}"
        ));
    }
    fn subst(v: &Value, declared: &[&String], values: &Map<String, Value>) -> Value {
        match v {
            Value::Object(m) => {
                if m.len() == 1
                    && let Some(Value::String(p)) = m.get("Ref")
                    && declared.contains(&p)
                    && let Some(value) = values.get(p)
                {
                    return value.clone();
                }
                Value::Object(
                    m.iter()
                        .map(|(k, x)| (k.clone(), subst(x, declared, values)))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| subst(x, declared, values)).collect()),
            other => other.clone(),
        }
    }
    let definition = t.get("Definition").cloned().unwrap_or(Value::Null);
    Ok(subst(&definition, &declared, values))
}

/// The policies of a SAM function's generated execution role, from its
/// `Policies` property, as samtranslator 1.115.0 builds them (the role is
/// named `<stack>-<Function>Role`, at most 64 characters)
/// (`sam_resources.py` `_construct_role`, `role_constructor.py`
/// `construct_role_for_resource`): managed
/// `service-role/AWSLambdaBasicExecutionRole` first, then each entry at
/// index `i` of `Policies`: a managed policy name or ARN (a bare name as
/// `arn:aws:iam::aws:policy/<name>`), a policy template expanded, or a
/// policy document, named `<Function>RolePolicy<i>`.
///
/// Not covered yet: the policies SAM adds for `Tracing`, `VpcConfig`,
/// `DeadLetterQueue`, `EventInvokeConfig` and event sources.
pub fn sam_function_policies(
    stack: &str,
    function: &str,
    policies: Option<&Value>,
) -> Result<RoleSpec> {
    let mut role = RoleSpec {
        // Unique across the stacks of one moto (IAM names are global).
        name: format!("{stack}-{function}Role").chars().take(64).collect(),
        inline_policies: Vec::new(),
        managed_policy_arns: vec![
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole".to_string(),
        ],
    };
    let entries: Vec<Value> = match policies {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    let invalid = |i: usize, why: &str| Error::Template {
        context: format!("Resources.{function}.Properties.Policies[{i}]"),
        message: why.to_string(),
    };
    for (i, entry) in entries.iter().enumerate() {
        match entry {
            Value::String(name) => {
                let arn = if name.starts_with("arn:") {
                    name.clone()
                } else {
                    format!("arn:aws:iam::aws:policy/{name}")
                };
                if !role.managed_policy_arns.contains(&arn) {
                    role.managed_policy_arns.push(arn);
                }
            }
            Value::Object(m) if m.contains_key("Statement") => {
                role.inline_policies
                    .push((format!("{function}RolePolicy{i}"), entry.clone()));
            }
            Value::Object(m) if m.len() == 1 => {
                let (name, params) = m.iter().next().expect("one entry");
                if is_policy_template(name) {
                    let doc = expand_policy_template(name, params).map_err(|message| {
                        Error::PolicyTemplate {
                            function: function.to_string(),
                            template: name.clone(),
                            message,
                        }
                    })?;
                    role.inline_policies
                        .push((format!("{function}RolePolicy{i}"), doc));
                } else if name == "Ref" || name.starts_with("Fn::") {
                    return Err(invalid(
                        i,
                        "is an intrinsic function; resolve the template (cfn_template::Resolver) first",
                    ));
                } else {
                    return Err(invalid(
                        i,
                        &format!(
                            "{name} is not a SAM {SAMTRANSLATOR_VERSION} policy template; use a policy template, a managed policy name or ARN, or a policy document"
                        ),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    i,
                    "is not a managed policy, a policy template or a policy document",
                ));
            }
        }
    }
    Ok(role)
}

/// The policies of an `AWS::IAM::Role` resource of the template (the
/// execution role a function names in `Role: !GetAtt X.Arn`), its
/// properties already resolved: inline `Policies` (`PolicyName`,
/// `PolicyDocument`) and `ManagedPolicyArns`. Named `RoleName` when the
/// template names it, else `<stack>-<LogicalId>` (at most 64 characters).
/// moto does not evaluate `PermissionsBoundary` (moto/iam/access_control.py
/// collects only inline and attached policies), so it is ignored here.
pub fn role_from_template(stack: &str, logical_id: &str, properties: &Value) -> Result<RoleSpec> {
    let context = format!("Resources.{logical_id}.Properties");
    let mut role = RoleSpec {
        name: match properties.get("RoleName").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => format!("{stack}-{logical_id}").chars().take(64).collect(),
        },
        ..RoleSpec::default()
    };
    if let Some(policies) = properties.get("Policies") {
        let Some(list) = policies.as_array() else {
            return Err(Error::Template {
                context: format!("{context}.Policies"),
                message: "is not a list of {PolicyName, PolicyDocument}".into(),
            });
        };
        for (i, p) in list.iter().enumerate() {
            let name = p.get("PolicyName").and_then(Value::as_str);
            let doc = p.get("PolicyDocument");
            match (name, doc) {
                (Some(n), Some(d)) => role.inline_policies.push((n.to_string(), d.clone())),
                _ => {
                    return Err(Error::Template {
                        context: format!("{context}.Policies[{i}]"),
                        message: "needs a PolicyName (string) and a PolicyDocument".into(),
                    });
                }
            }
        }
    }
    if let Some(arns) = properties.get("ManagedPolicyArns") {
        let list: Option<Vec<String>> = arns
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or(None);
        role.managed_policy_arns = list.ok_or_else(|| Error::Template {
            context: format!("{context}.ManagedPolicyArns"),
            message: "is not a list of ARNs (resolve its intrinsic functions first)".into(),
        })?;
    }
    Ok(role)
}

/// An `AWS::IAM::Policy` or `AWS::IAM::ManagedPolicy` of the template,
/// its properties resolved: what [`fold_template_policies`] attaches.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePolicy {
    /// Its logical id.
    pub logical_id: String,
    /// `PolicyName` (Policy) or `ManagedPolicyName` (ManagedPolicy; the
    /// logical id when the template gives none).
    pub name: String,
    /// `PolicyDocument`, resolved.
    pub document: Value,
    /// `Roles`, resolved: the role names it attaches to.
    pub roles: Vec<String>,
    /// A managed policy's ARN (its `Ref`, what a role's
    /// `ManagedPolicyArns` or a SAM function's `Policies` name it by);
    /// `None` for an `AWS::IAM::Policy`.
    pub managed_arn: Option<String>,
}

/// Folds the template's policies attached to `role` into it as inline
/// policies, as CloudFormation attaches them
/// ("AWS::IAM::Policy": `Roles`, "The name of the role to associate the
/// policy with"; "AWS::IAM::ManagedPolicy": `Roles`, and a role's
/// `ManagedPolicyArns` naming its ARN, the managed policy's `Ref`;
/// CloudFormation User Guide, the resources' pages). `role_names` are the
/// values by which the template may name the role (its name in moto, the
/// `Ref` of its resource). A managed policy is attached inline rather than
/// created in moto: the permissions are the same, and its ARN is removed
/// from `managed_policy_arns` (moto does not have it). Returns the logical
/// ids of the policies folded in.
pub fn fold_template_policies(
    role: &mut RoleSpec,
    role_names: &[&str],
    policies: &[TemplatePolicy],
) -> Vec<String> {
    let mut folded = Vec::new();
    for p in policies {
        let by_roles = p.roles.iter().any(|r| role_names.contains(&r.as_str()));
        let by_arn = p
            .managed_arn
            .as_ref()
            .is_some_and(|arn| role.managed_policy_arns.contains(arn));
        if !by_roles && !by_arn {
            continue;
        }
        if let Some(arn) = &p.managed_arn {
            role.managed_policy_arns.retain(|a| a != arn);
        }
        let name = if role.inline_policies.iter().any(|(n, _)| n == &p.name) {
            format!("{}-{}", p.name, p.logical_id)
        } else {
            p.name.clone()
        };
        role.inline_policies.push((name, p.document.clone()));
        folded.push(p.logical_id.clone());
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_from_moto_and_aws_messages() {
        let moto = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/ApiRole/ApiRole is not authorized to perform: dynamodb:PutItem</Message></Error></ErrorResponse>";
        let d = Denial::from_body(moto).unwrap();
        assert_eq!(d.action, "dynamodb:PutItem");
        assert_eq!(d.role(), Some("ApiRole"));
        assert_eq!(d.resource, None);
        let d = d.with_request(&json!({"TableName": "items"}));
        assert_eq!(
            d.to_string(),
            "AccessDenied: role ApiRole may not dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/items; add the permission to the function's Policies"
        );
        let aws = r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::1:assumed-role/R/s is not authorized to perform: sqs:SendMessage on resource: arn:aws:sqs:us-east-1:1:q because no identity-based policy allows the sqs:SendMessage action"}"#;
        let d = Denial::from_body(aws).unwrap();
        assert_eq!(d.action, "sqs:SendMessage");
        assert_eq!(d.resource.as_deref(), Some("arn:aws:sqs:us-east-1:1:q"));
        assert!(Denial::from_body("<Error><Code>Throttling</Code></Error>").is_none());
    }

    #[test]
    fn statements_moto_cannot_scope_are_widened() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:PutItem", "sqs:SendMessage"], "Resource": ["arn:t", "arn:q"]},
            {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "arn:q"},
            {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:b"}]});
        assert_eq!(
            moto_enforceable(&doc)["Statement"],
            json!([
                {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": ["arn:t", "arn:q"]},
                {"Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": "*"},
                {"Effect": "Allow", "Action": ["sqs:ReceiveMessage"], "Resource": "arn:q"},
                {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:b"}])
        );
    }

    #[test]
    fn function_policies_as_sam_builds_them() {
        let policies = json!([
            "AmazonS3ReadOnlyAccess",
            {"DynamoDBCrudPolicy": {"TableName": {"Ref": "Table"}}},
            {"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}
        ]);
        let role = sam_function_policies("beta", "Api", Some(&policies)).unwrap();
        assert_eq!(role.name, "beta-ApiRole");
        assert_eq!(
            role.managed_policy_arns,
            [
                "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
            ]
        );
        assert_eq!(role.inline_policies[0].0, "ApiRolePolicy1");
        assert_eq!(role.inline_policies[1].0, "ApiRolePolicy2");
        let crud = role.inline_policies[0].1.to_string();
        assert!(crud.contains(r#""tableName":{"Ref":"Table"}"#), "{crud}");

        let e =
            sam_function_policies("beta", "Api", Some(&json!([{"NoSuchPolicy": {}}]))).unwrap_err();
        assert!(e.to_string().contains("NoSuchPolicy is not a SAM"), "{e}");
        let e = sam_function_policies("beta", "Api", Some(&json!({"DynamoDBCrudPolicy": {}})))
            .unwrap_err();
        assert!(
            e.to_string().contains("don't have values: [\"TableName\"]"),
            "{e}"
        );
    }

    #[test]
    fn roles_of_the_template() {
        let props = json!({
            "AssumeRolePolicyDocument": {},
            "Policies": [{"PolicyName": "logs", "PolicyDocument": {"Statement": []}}],
            "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"]
        });
        let role = role_from_template("beta", "FnRole", &props).unwrap();
        assert_eq!(role.name, "beta-FnRole");
        assert_eq!(role.inline_policies[0].0, "logs");
        assert_eq!(role.managed_policy_arns.len(), 1);
        let e = role_from_template(
            "beta",
            "FnRole",
            &json!({"Policies": [{"PolicyName": "x"}]}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Policies[0]"), "{e}");
    }

    #[test]
    fn unresolved_policies_are_found() {
        assert!(find_intrinsic(&json!({"Statement": [{"Resource": {"Fn::Sub": "x"}}]})).is_some());
        assert!(find_intrinsic(&json!({"Statement": [{"Resource": "arn:x"}]})).is_none());
    }

    #[test]
    fn template_policies_are_folded_into_the_roles_they_attach_to() {
        let doc =
            |a: &str| json!({"Statement": [{"Effect": "Allow", "Action": a, "Resource": "*"}]});
        let mp_arn = "arn:aws:iam::123456789012:policy/beta-Shared".to_string();
        let policies = vec![
            TemplatePolicy {
                logical_id: "QueuePolicy".into(),
                name: "queue".into(),
                document: doc("sqs:SendMessage"),
                roles: vec!["beta-WriterRole".into(), "other".into()],
                managed_arn: None,
            },
            TemplatePolicy {
                logical_id: "Shared".into(),
                name: "shared".into(),
                document: doc("dynamodb:GetItem"),
                roles: vec![],
                managed_arn: Some(mp_arn.clone()),
            },
            TemplatePolicy {
                logical_id: "ByRoles".into(),
                name: "by-roles".into(),
                document: doc("s3:GetObject"),
                roles: vec!["beta-WriterRole-ref".into()],
                managed_arn: Some("arn:aws:iam::123456789012:policy/x".into()),
            },
            TemplatePolicy {
                logical_id: "Elsewhere".into(),
                name: "elsewhere".into(),
                document: doc("sns:Publish"),
                roles: vec!["another-role".into()],
                managed_arn: None,
            },
        ];
        let mut role = RoleSpec {
            name: "beta-WriterRole".into(),
            inline_policies: vec![("queue".into(), doc("logs:PutLogEvents"))],
            managed_policy_arns: vec![
                "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole".into(),
                mp_arn.clone(),
            ],
        };
        let folded = fold_template_policies(
            &mut role,
            &["beta-WriterRole", "beta-WriterRole-ref"],
            &policies,
        );
        assert_eq!(folded, ["QueuePolicy", "Shared", "ByRoles"]);
        let names: Vec<&str> = role
            .inline_policies
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["queue", "queue-QueuePolicy", "shared", "by-roles"]);
        assert_eq!(
            role.managed_policy_arns,
            ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
            "the template's managed policy is attached inline, not by an ARN moto lacks"
        );
    }
}

//! CloudFormation change sets as the rehearsal computes them: what a
//! `CHANGE_SET_REPLACE` of a template and parameters would do to the stack
//! that runs now, resource by resource, in the shape `DescribeChangeSet`
//! answers (`Changes` of `ResourceChange`s, AWS CloudFormation API
//! Reference), so the real review-changes binary reviews it unchanged.
//!
//! How it compares, and where it differs from CloudFormation:
//! - It compares the templates as written (SAM resources before the SAM
//!   transform; `Globals` merged into each function and API, as SAM merges
//!   them), after dropping resources whose `Condition` is false. On AWS the
//!   change set lists the transformed resources (`AWS::Lambda::Function`,
//!   `AWS::Lambda::Version`, ...). One generated resource is added here
//!   because the review depends on it: a SAM function without `Role` gets
//!   the role SAM generates for it, `<LogicalId>Role` (`AWS::IAM::Role`;
//!   "Generated AWS CloudFormation resources for AWS SAM", AWS SAM Developer
//!   Guide), added, removed, or modified when the function's `Policies`,
//!   `PermissionsBoundary`, `AssumeRolePolicyDocument` or `RolePath` change.
//! - A property is changed when its value as written differs, or when it
//!   refers (`Ref`, `${Name}` in `Fn::Sub`) to a parameter whose value
//!   changed (CloudFormation's `ChangeSource: ParameterReference`). A
//!   property that depends on a changed parameter only through a
//!   `Condition` or `Fn::If` is not seen.
//! - A function whose `CodeUri` is a local directory (a template packaged
//!   without `--s3-bucket`, as the rehearsal builds) changes its code when
//!   the `bootstrap` in it changes: on AWS, `sam package` gives changed code
//!   a new S3 key, which is a change of `CodeUri`.
//! - Replacement is judged simply: a changed resource type, or a change of
//!   one of the properties [`REPLACING`] lists, each of which the
//!   CloudFormation resource reference documents as "Update requires:
//!   Replacement"; everything else is `False`. `Conditional` is never
//!   answered.
//! - Nothing changed: the change set is `FAILED` with CloudFormation's
//!   reason for it, [`NO_CHANGES`].

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::path::Path;

use cfn_template::Template;
use serde_json::{Map, Value};

use crate::stack::{DeployError, Locals, live_resources, merged_properties};

/// The status reason of a change set with nothing to do: what
/// DescribeChangeSet answers for one (review-changes matches its start).
pub const NO_CHANGES: &str = "The submitted information didn't contain changes. Submit different information to create a change set.";

/// Properties whose change replaces the resource ("Update requires:
/// Replacement" in each type's page of the AWS CloudFormation resource and
/// property types reference), for the types this repository's templates
/// use and a few common others.
pub const REPLACING: &[(&str, &[&str])] = &[
    ("AWS::IAM::Role", &["RoleName", "Path"]),
    ("AWS::IAM::ManagedPolicy", &["ManagedPolicyName", "Path"]),
    ("AWS::Lambda::Function", &["FunctionName", "PackageType"]),
    (
        "AWS::Serverless::Function",
        &["FunctionName", "PackageType"],
    ),
    (
        "AWS::Lambda::Permission",
        &[
            "Action",
            "FunctionName",
            "Principal",
            "SourceAccount",
            "SourceArn",
            "EventSourceToken",
            "FunctionUrlAuthType",
            "PrincipalOrgID",
        ],
    ),
    ("AWS::Logs::LogGroup", &["LogGroupName"]),
    ("AWS::CloudWatch::Alarm", &["AlarmName"]),
    ("AWS::SNS::Topic", &["TopicName", "FifoTopic"]),
    ("AWS::SQS::Queue", &["QueueName", "FifoQueue"]),
    ("AWS::S3::Bucket", &["BucketName"]),
    ("AWS::DynamoDB::Table", &["TableName"]),
];

/// Properties that grant or hand over permissions (flagged in the summary;
/// the review makes its own, wider judgement from the same changes).
const PERMISSION_PROPERTIES: &[&str] = &[
    "Role",
    "Policies",
    "PolicyDocument",
    "ManagedPolicyArns",
    "PermissionsBoundary",
    "AssumeRolePolicyDocument",
    "KeyPolicy",
    "AuthType",
    "AuthorizationType",
];

/// SAM function properties that shape the role SAM generates for it.
const GENERATED_ROLE_PROPERTIES: &[&str] = &[
    "Policies",
    "PermissionsBoundary",
    "AssumeRolePolicyDocument",
    "RolePath",
];

/// `ResourceChange.Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeAction {
    Add,
    Modify,
    Remove,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Add => "Add",
            ChangeAction::Modify => "Modify",
            ChangeAction::Remove => "Remove",
        }
    }
}

/// One changed property of a modified resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyChange {
    pub name: String,
    /// Whether the change replaces the resource (`RequiresRecreation`
    /// `Always`; otherwise `Never`).
    pub replaces: bool,
    /// The changed parameter it refers to, when that is why it changed
    /// (`ChangeSource: ParameterReference`).
    pub parameter: Option<String>,
}

/// One resource the change set touches (`ResourceChange`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    pub action: ChangeAction,
    pub logical_id: String,
    pub resource_type: String,
    /// The changed properties (modifications only).
    pub properties: Vec<PropertyChange>,
    /// The resource's type itself changed (a replacement).
    pub type_changed: bool,
    /// IAM, or a property that grants or hands over permissions.
    pub permission: bool,
}

impl ResourceChange {
    /// `ResourceChange.Replacement` of a modification: `True` or `False`.
    pub fn replaces(&self) -> bool {
        self.action == ChangeAction::Modify
            && (self.type_changed || self.properties.iter().any(|p| p.replaces))
    }

    /// `+ TimeFunction2 (AWS::Serverless::Function)`, `~ TimeFunction
    /// (AWS::Serverless::Function): Environment [PERMISSIONS]`.
    pub fn line(&self) -> String {
        let mark = match self.action {
            ChangeAction::Add => '+',
            ChangeAction::Modify => '~',
            ChangeAction::Remove => '-',
        };
        let mut line = format!("{mark} {} ({})", self.logical_id, self.resource_type);
        if !self.properties.is_empty() {
            let names: Vec<&str> = self.properties.iter().map(|p| p.name.as_str()).collect();
            line += &format!(": {}", names.join(", "));
        }
        if self.replaces() {
            line += " [REPLACED]";
        }
        if self.permission {
            line += " [PERMISSIONS]";
        }
        line
    }
}

/// One side of the comparison: a template, the parameter values it is
/// deployed with (defaults applied), and the directory its local `CodeUri`s
/// are relative to.
pub struct Side<'a> {
    pub template: &'a Template,
    pub parameters: &'a BTreeMap<String, String>,
    pub dir: &'a Path,
}

/// A resource as compared: its type and its properties (globals merged,
/// local code replaced by a digest of it).
struct Compared {
    resource_type: String,
    properties: Map<String, Value>,
}

fn compared(stack: &str, side: &Side) -> Result<BTreeMap<String, Compared>, DeployError> {
    let locals = Locals::new(stack, side.template, side.parameters.clone());
    let globals: BTreeMap<&str, &Value> = side.template.section("Globals").collect();
    let mut out = BTreeMap::new();
    for (logical_id, body) in live_resources(side.template, &locals)? {
        let resource_type = body["Type"].as_str().unwrap_or_default().to_string();
        let global = match resource_type.as_str() {
            "AWS::Serverless::Function" => globals.get("Function"),
            "AWS::Serverless::HttpApi" => globals.get("HttpApi"),
            "AWS::Serverless::Api" => globals.get("Api"),
            "AWS::Serverless::SimpleTable" => globals.get("SimpleTable"),
            _ => None,
        };
        let mut properties = match global {
            Some(global) => merged_properties(&body["Properties"], global),
            None => body["Properties"].as_object().cloned().unwrap_or_default(),
        };
        if let Some(Value::String(code_uri)) = properties.get("CodeUri")
            && !code_uri.starts_with("s3://")
        {
            let digest = code_digest(&side.dir.join(code_uri));
            properties.insert("CodeUri".into(), Value::String(digest));
        }
        out.insert(
            logical_id,
            Compared {
                resource_type,
                properties,
            },
        );
    }
    Ok(out)
}

/// A digest of a local function's `bootstrap` (or a note that it has none).
fn code_digest(dir: &Path) -> String {
    let Ok(mut file) = std::fs::File::open(dir.join("bootstrap")) else {
        return format!("no bootstrap in {}", dir.display());
    };
    let mut hasher = DefaultHasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.write(&buffer[..n]),
            Err(_) => return format!("unreadable bootstrap in {}", dir.display()),
        }
    }
    format!("bootstrap {:016x}", hasher.finish())
}

/// The parameters whose values differ between the two sides.
fn changed_parameters(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    old.keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

/// The first of `parameters` that `value` refers to (`Ref`, or `${Name}`
/// in an `Fn::Sub` string).
fn refers_to(value: &Value, parameters: &BTreeSet<String>) -> Option<String> {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("Ref")
                && parameters.contains(name)
            {
                return Some(name.clone());
            }
            let sub = match map.get("Fn::Sub") {
                Some(Value::String(text)) => Some(text.as_str()),
                Some(Value::Array(items)) => items.first().and_then(Value::as_str),
                _ => None,
            };
            if let Some(text) = sub
                && let Some(name) = parameters
                    .iter()
                    .find(|p| text.contains(&format!("${{{p}}}")))
            {
                return Some(name.clone());
            }
            map.values().find_map(|v| refers_to(v, parameters))
        }
        Value::Array(items) => items.iter().find_map(|v| refers_to(v, parameters)),
        _ => None,
    }
}

fn replacing(resource_type: &str, property: &str) -> bool {
    REPLACING
        .iter()
        .any(|(t, props)| *t == resource_type && props.contains(&property))
}

fn is_permission(resource_type: &str, properties: &[PropertyChange]) -> bool {
    resource_type.starts_with("AWS::IAM::")
        || resource_type == "AWS::Lambda::Permission"
        || properties
            .iter()
            .any(|p| PERMISSION_PROPERTIES.contains(&p.name.as_str()))
}

/// Whether a SAM function gets a role generated by SAM.
fn generates_role(resource: &Compared) -> bool {
    resource.resource_type == "AWS::Serverless::Function"
        && !resource.properties.contains_key("Role")
}

fn generated_role(
    action: ChangeAction,
    function: &str,
    properties: Vec<PropertyChange>,
) -> ResourceChange {
    ResourceChange {
        action,
        logical_id: format!("{function}Role"),
        resource_type: "AWS::IAM::Role".into(),
        properties,
        type_changed: false,
        permission: true,
    }
}

/// What deploying `new` to stack `stack` (running `old`, or not existing)
/// changes: additions first, then modifications and removals, each by
/// logical id.
pub fn diff(
    stack: &str,
    old: Option<&Side>,
    new: &Side,
) -> Result<Vec<ResourceChange>, DeployError> {
    let before = match old {
        Some(old) => compared(stack, old)?,
        None => BTreeMap::new(),
    };
    let after = compared(stack, new)?;
    let parameters = match old {
        Some(old) => changed_parameters(old.parameters, new.parameters),
        None => BTreeSet::new(),
    };
    let mut changes = Vec::new();
    for (id, resource) in &after {
        let Some(previous) = before.get(id) else {
            changes.push(ResourceChange {
                action: ChangeAction::Add,
                logical_id: id.clone(),
                resource_type: resource.resource_type.clone(),
                properties: Vec::new(),
                type_changed: false,
                permission: is_permission(&resource.resource_type, &[]),
            });
            if generates_role(resource) {
                changes.push(generated_role(ChangeAction::Add, id, Vec::new()));
            }
            continue;
        };
        let names: BTreeSet<&String> = resource
            .properties
            .keys()
            .chain(previous.properties.keys())
            .collect();
        let mut properties = Vec::new();
        for name in names {
            let (was, is) = (previous.properties.get(name), resource.properties.get(name));
            let parameter = is.and_then(|v| refers_to(v, &parameters));
            if was != is || parameter.is_some() {
                properties.push(PropertyChange {
                    name: name.clone(),
                    replaces: replacing(&resource.resource_type, name),
                    parameter: if was == is { parameter } else { None },
                });
            }
        }
        let type_changed = resource.resource_type != previous.resource_type;
        if properties.is_empty() && !type_changed {
            continue;
        }
        let role_properties: Vec<PropertyChange> = properties
            .iter()
            .filter(|p| GENERATED_ROLE_PROPERTIES.contains(&p.name.as_str()))
            .cloned()
            .collect();
        changes.push(ResourceChange {
            action: ChangeAction::Modify,
            logical_id: id.clone(),
            resource_type: resource.resource_type.clone(),
            permission: is_permission(&resource.resource_type, &properties),
            properties,
            type_changed,
        });
        match (generates_role(previous), generates_role(resource)) {
            (true, true) if !role_properties.is_empty() => {
                changes.push(generated_role(ChangeAction::Modify, id, role_properties));
            }
            (false, true) => changes.push(generated_role(ChangeAction::Add, id, Vec::new())),
            (true, false) => changes.push(generated_role(ChangeAction::Remove, id, Vec::new())),
            _ => {}
        }
    }
    for (id, resource) in &before {
        if after.contains_key(id) {
            continue;
        }
        changes.push(ResourceChange {
            action: ChangeAction::Remove,
            logical_id: id.clone(),
            resource_type: resource.resource_type.clone(),
            properties: Vec::new(),
            type_changed: false,
            permission: is_permission(&resource.resource_type, &[]),
        });
        if generates_role(resource) {
            changes.push(generated_role(ChangeAction::Remove, id, Vec::new()));
        }
    }
    changes.sort_by(|a, b| (a.action, &a.logical_id).cmp(&(b.action, &b.logical_id)));
    Ok(changes)
}

/// One line of counts: `2 to add, 1 to modify (1 replaced), 0 to remove;
/// permission changes in 1`.
pub fn counts(changes: &[ResourceChange]) -> String {
    let count = |action| changes.iter().filter(|c| c.action == action).count();
    let replaced = changes.iter().filter(|c| c.replaces()).count();
    let permissions = changes.iter().filter(|c| c.permission).count();
    let mut text = format!(
        "{} to add, {} to modify ({replaced} replaced), {} to remove",
        count(ChangeAction::Add),
        count(ChangeAction::Modify),
        count(ChangeAction::Remove)
    );
    if permissions > 0 {
        text += &format!("; permission changes in {permissions}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String}
  Memory: {Type: Number, Default: 128}
Globals:
  Function:
    Timeout: 5
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "svc-${Stage}-fn"
      CodeUri: functions/fn
      MemorySize: !Ref Memory
      Environment: {Variables: {STAGE: !Ref Stage}}
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: /aws/lambda/svc-fn
      RetentionInDays: 30
"#;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(code: &[u8]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("functions/fn")).unwrap();
            std::fs::write(dir.path().join("functions/fn/bootstrap"), code).unwrap();
            Self { dir }
        }
    }

    fn changes(
        old: (&str, &[(&str, &str)], &Fixture),
        new: (&str, &[(&str, &str)], &Fixture),
    ) -> Vec<ResourceChange> {
        let parse = |text: &str, params: &[(&str, &str)]| {
            let template = Template::from_yaml_str(text).unwrap();
            let overrides: BTreeMap<String, String> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let values = template.parameter_values(&overrides).unwrap();
            (template, values)
        };
        let (old_t, old_p) = parse(old.0, old.1);
        let (new_t, new_p) = parse(new.0, new.1);
        let old_side = Side {
            template: &old_t,
            parameters: &old_p,
            dir: old.2.dir.path(),
        };
        let new_side = Side {
            template: &new_t,
            parameters: &new_p,
            dir: new.2.dir.path(),
        };
        diff("svc-prod", Some(&old_side), &new_side).unwrap()
    }

    const PROD: &[(&str, &str)] = &[("Stage", "prod")];

    #[test]
    fn the_same_template_parameters_and_code_change_nothing() {
        let (a, b) = (Fixture::new(b"v1"), Fixture::new(b"v1"));
        assert!(changes((BASE, PROD, &a), (BASE, PROD, &b)).is_empty());
    }

    #[test]
    fn new_code_modifies_the_function_through_its_code_uri() {
        let (a, b) = (Fixture::new(b"v1"), Fixture::new(b"v2"));
        let c = changes((BASE, PROD, &a), (BASE, PROD, &b));
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].action, ChangeAction::Modify);
        assert_eq!(c[0].logical_id, "Fn");
        assert_eq!(c[0].properties[0].name, "CodeUri");
        assert!(!c[0].replaces() && !c[0].permission);
    }

    #[test]
    fn a_changed_parameter_modifies_the_properties_that_refer_to_it_and_a_name_replaces() {
        let a = Fixture::new(b"v1");
        let c = changes((BASE, PROD, &a), (BASE, &[("Stage", "prod2")], &a));
        assert_eq!(c.len(), 1, "{c:?}");
        let names: Vec<(&str, bool, Option<&str>)> = c[0]
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.replaces, p.parameter.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("Environment", false, Some("Stage")),
                ("FunctionName", true, Some("Stage"))
            ]
        );
        assert!(c[0].replaces());
        assert!(c[0].line().ends_with("[REPLACED]"), "{}", c[0].line());
    }

    #[test]
    fn a_globals_change_modifies_every_function() {
        let a = Fixture::new(b"v1");
        let changed = BASE.replace("Timeout: 5", "Timeout: 9");
        let c = changes((BASE, PROD, &a), (&changed, PROD, &a));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].properties[0].name, "Timeout");
    }

    #[test]
    fn an_added_function_adds_its_generated_role_a_permission_change() {
        let a = Fixture::new(b"v1");
        let added = format!(
            "{BASE}  Fn2:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: functions/fn\n"
        );
        let c = changes((BASE, PROD, &a), (&added, PROD, &a));
        let lines: Vec<String> = c.iter().map(ResourceChange::line).collect();
        assert_eq!(
            lines,
            [
                "+ Fn2 (AWS::Serverless::Function)",
                "+ Fn2Role (AWS::IAM::Role) [PERMISSIONS]"
            ]
        );
        assert_eq!(
            counts(&c),
            "2 to add, 0 to modify (0 replaced), 0 to remove; permission changes in 1"
        );
    }

    #[test]
    fn a_removed_resource_and_a_policy_change_are_seen() {
        let a = Fixture::new(b"v1");
        let changed = BASE
            .replace(
                "  Logs:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: /aws/lambda/svc-fn\n      RetentionInDays: 30\n",
                "",
            )
            .replace(
                "      MemorySize: !Ref Memory\n",
                "      MemorySize: !Ref Memory\n      Policies: [AWSLambdaBasicExecutionRole]\n",
            );
        let c = changes((BASE, PROD, &a), (&changed, PROD, &a));
        let lines: Vec<String> = c.iter().map(ResourceChange::line).collect();
        assert_eq!(
            lines,
            [
                "~ Fn (AWS::Serverless::Function): Policies [PERMISSIONS]",
                "~ FnRole (AWS::IAM::Role): Policies [PERMISSIONS]",
                "- Logs (AWS::Logs::LogGroup)"
            ]
        );
    }

    #[test]
    fn a_stack_that_does_not_exist_yet_adds_everything() {
        let a = Fixture::new(b"v1");
        let template = Template::from_yaml_str(BASE).unwrap();
        let parameters = template
            .parameter_values(&BTreeMap::from([("Stage".to_string(), "prod".to_string())]))
            .unwrap();
        let side = Side {
            template: &template,
            parameters: &parameters,
            dir: a.dir.path(),
        };
        let c = diff("svc-prod", None, &side).unwrap();
        let ids: Vec<(&str, ChangeAction)> = c
            .iter()
            .map(|c| (c.logical_id.as_str(), c.action))
            .collect();
        assert_eq!(
            ids,
            [
                ("Fn", ChangeAction::Add),
                ("FnRole", ChangeAction::Add),
                ("Logs", ChangeAction::Add)
            ]
        );
    }
}

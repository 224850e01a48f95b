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

use e2e::{repo_root, run, tool};
use serde_json::Value;

/// The templates the pipeline deploys as the service's stacks.
pub const STACK_TEMPLATES: [&str; 2] = ["app-sam.yaml", "test-sam.yaml"];

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

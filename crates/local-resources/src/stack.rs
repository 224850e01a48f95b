//! The part of a stack moto creates: which resources, the sub-template
//! (pure), and what moto answers for each resource.

use std::collections::{BTreeMap, BTreeSet};

use cfn_template::Template;
use serde_json::{Map, Value, json};

use crate::types::{moto_can_create, moto_declared_attributes};
use crate::{Error, MOTO_VERSION, Result, UnsupportedResource};

/// Whether the rehearsal itself runs or emulates resources of this type,
/// so that moto does not create them:
/// - functions and APIs (`AWS::Serverless::Function`, `AWS::Lambda::*`,
///   `AWS::Serverless::Api`/`HttpApi`/..., `AWS::ApiGateway*`,
///   `AWS::Serverless::LayerVersion`): local processes and gateways;
/// - `AWS::CloudWatch::Alarm`: evaluated by the rehearsal on what its
///   gateways observe;
/// - `AWS::Logs::LogGroup`: function logs are files;
/// - `AWS::IAM::Role`: execution roles are created in moto by
///   [`crate::MotoServer::role_credentials`] (with a trust policy moto can
///   evaluate), not by moto's CloudFormation;
/// - `AWS::IAM::Policy`, `AWS::IAM::ManagedPolicy`: folded into the
///   execution roles they attach to ([`crate::iam::fold_template_policies`]);
///   moto's CloudFormation would attach them to roles it does not have.
pub fn is_local_type(resource_type: &str) -> bool {
    resource_type == "AWS::Serverless::Function"
        || resource_type == "AWS::Serverless::LayerVersion"
        || resource_type.starts_with("AWS::Lambda::")
        || (resource_type.starts_with("AWS::Serverless::") && resource_type.ends_with("Api"))
        || resource_type.starts_with("AWS::ApiGateway")
        || resource_type == "AWS::CloudWatch::Alarm"
        || resource_type == "AWS::Logs::LogGroup"
        || resource_type == "AWS::IAM::Role"
        || resource_type == "AWS::IAM::Policy"
        || resource_type == "AWS::IAM::ManagedPolicy"
}

/// Whether moto must be started for this template: it has a resource the
/// rehearsal does not run itself ([`is_local_type`]). A template of only
/// functions and APIs (TimeService's) needs no moto.
pub fn needs_moto(template: &Template) -> bool {
    template
        .resources()
        .any(|r| !is_local_type(r.resource_type()))
}

/// Fails with [`Error::Unsupported`], naming every such resource, when moto
/// cannot create one of `resources` (logical id, type) that is not
/// [`is_local_type`]: the check [`moto_template`] makes, for a caller that
/// wants it before it has the local values (before anything starts).
pub fn check_supported<'a>(resources: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<()> {
    let unsupported: Vec<UnsupportedResource> = resources
        .into_iter()
        .filter(|(_, ty)| {
            !is_local_type(ty) && *ty != "AWS::Serverless::SimpleTable" && !moto_can_create(ty)
        })
        .map(|(id, ty)| UnsupportedResource {
            logical_id: id.to_string(),
            resource_type: ty.to_string(),
        })
        .collect();
    if unsupported.is_empty() {
        Ok(())
    } else {
        Err(Error::Unsupported {
            resources: unsupported,
            moto: MOTO_VERSION,
        })
    }
}

/// The local values of the resources moto does not create (functions,
/// APIs, roles, ...), for the references moto's resources make to them: an
/// SNS subscription's `Endpoint: !GetAtt Worker.Arn`, a queue policy's
/// `!Ref Api`. They replace the reference before moto sees the template.
#[derive(Debug, Clone, Default)]
pub struct LocalValues {
    refs: BTreeMap<String, Value>,
    attributes: BTreeMap<(String, String), Value>,
}

impl LocalValues {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// What `!Ref logical_id` gives for a local resource.
    pub fn with_ref(mut self, logical_id: impl Into<String>, value: impl Into<Value>) -> Self {
        self.refs.insert(logical_id.into(), value.into());
        self
    }

    /// What `!GetAtt logical_id.attribute` gives for a local resource.
    pub fn with_attribute(
        mut self,
        logical_id: impl Into<String>,
        attribute: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        self.attributes
            .insert((logical_id.into(), attribute.into()), value.into());
        self
    }
}

/// What moto gives back for one output of the sub-template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OutputOf {
    Ref(String),
    Attribute(String, String),
}

/// The sub-template moto creates, with the parameters to pass it.
#[derive(Debug, Clone)]
pub struct MotoTemplate {
    /// The template body (JSON) moto's CreateStack receives.
    pub body: Value,
    /// Parameter values for CreateStack (only declared parameters).
    pub parameters: Vec<(String, String)>,
    /// Logical ids of the resources moto creates, sorted (serde_json's map
    /// order depends on a feature other crates of a build may switch on).
    pub resources: Vec<String>,
    outputs: BTreeMap<String, OutputOf>,
}

impl MotoTemplate {
    /// Whether there is nothing for moto to create.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// One resource moto created: its physical id (what `!Ref` gives) and the
/// attributes (`!GetAtt`) moto gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceValues {
    /// The resource's type.
    pub resource_type: String,
    /// moto's physical id (DescribeStackResources `PhysicalResourceId`).
    pub physical_id: String,
    /// What `!Ref` gives (DescribeStacks output; the same as the physical id
    /// for every type moto creates).
    pub reference: String,
    /// `Arn`, `QueueName`, `QueueUrl`, `StreamArn`, ... by name.
    pub attributes: BTreeMap<String, String>,
}

/// Every resource of a stack moto created, by logical id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackResources {
    /// The stack's name in moto.
    pub stack_name: String,
    /// By logical id.
    pub resources: BTreeMap<String, ResourceValues>,
}

impl StackResources {
    /// Adds every value to a resolver, so the rest of the template (the
    /// functions' environment, the outputs) resolves to moto's names.
    pub fn add_to(&self, resolver: &mut cfn_template::Resolver) {
        for (id, r) in &self.resources {
            resolver.set_ref(id.clone(), r.reference.clone());
            for (attr, value) in &r.attributes {
                resolver.set_attribute(id.clone(), attr.clone(), value.clone());
            }
        }
    }
}

/// Attributes worth having without a reference: every function's
/// environment usually wants an ARN or a name.
const DEFAULT_ATTRIBUTES: [&str; 4] = ["Arn", "QueueName", "TopicName", "Name"];

/// Builds the sub-template moto creates: every resource that is not
/// [`is_local_type`], `AWS::Serverless::SimpleTable` expanded to
/// `AWS::DynamoDB::Table` as SAM expands it, references to the local
/// resources replaced by `local`'s values, and outputs for every resource's
/// `Ref` and attributes (those the whole template uses, plus `Arn`-like
/// ones moto declares).
///
/// `parameters` are the stack's parameter values (for example from
/// [`Template::parameter_values`]); moto evaluates `Parameters`,
/// `Conditions` and `Mappings` itself.
///
/// Fails before anything is created when moto cannot create a type
/// ([`Error::Unsupported`], every such resource named), when a reference to
/// a local resource has no local value, or on a malformed `SimpleTable`.
pub fn moto_template(
    template: &Template,
    parameters: &BTreeMap<String, String>,
    local: &LocalValues,
) -> Result<MotoTemplate> {
    let local_ids: BTreeSet<&str> = template
        .resources()
        .filter(|r| is_local_type(r.resource_type()))
        .map(|r| r.logical_id())
        .collect();

    let mut unsupported = Vec::new();
    let mut resources = Map::new();
    let globals = template
        .as_json()
        .get("Globals")
        .and_then(|g| g.get("SimpleTable"))
        .and_then(Value::as_object);
    for r in template.resources() {
        let ty = r.resource_type();
        if is_local_type(ty) {
            continue;
        }
        let body = if ty == "AWS::Serverless::SimpleTable" {
            simple_table(r.logical_id(), r.as_json(), globals)?
        } else if moto_can_create(ty) {
            r.as_json().clone()
        } else {
            unsupported.push(UnsupportedResource {
                logical_id: r.logical_id().to_string(),
                resource_type: ty.to_string(),
            });
            continue;
        };
        let body = replace_local_refs(r.logical_id(), &body, &local_ids, local)?;
        resources.insert(
            r.logical_id().to_string(),
            without_local_depends(body, &local_ids),
        );
    }
    if !unsupported.is_empty() {
        return Err(Error::Unsupported {
            resources: unsupported,
            moto: MOTO_VERSION,
        });
    }

    let used = used_attributes(template.as_json());
    let mut outputs = BTreeMap::new();
    let mut output_section = Map::new();
    for (i, (id, body)) in resources.iter().enumerate() {
        let ty = body.get("Type").and_then(Value::as_str).unwrap_or_default();
        let condition = body.get("Condition").cloned();
        let mut add = |name: String, value: Value, of: OutputOf| {
            let mut o = Map::new();
            o.insert("Value".into(), value);
            if let Some(c) = &condition {
                o.insert("Condition".into(), c.clone());
            }
            output_section.insert(name.clone(), Value::Object(o));
            outputs.insert(name, of);
        };
        add(
            format!("R{i}Ref"),
            json!({"Ref": id}),
            OutputOf::Ref(id.clone()),
        );
        let declared = moto_declared_attributes(ty);
        let mut attrs: BTreeSet<String> = DEFAULT_ATTRIBUTES
            .iter()
            .filter(|a| declared.contains(a))
            .map(|a| a.to_string())
            .collect();
        // moto answers StreamArn only for a table with a stream.
        if ty == "AWS::DynamoDB::Table" && body.pointer("/Properties/StreamSpecification").is_some()
        {
            attrs.insert("StreamArn".into());
        }
        attrs.extend(
            used.iter()
                .filter(|(rid, _)| rid == id)
                .map(|(_, a)| a.clone()),
        );
        // An SQS queue's QueueUrl is its Ref (moto's GetAtt does not
        // declare it); filled in from the Ref by `create_stack`.
        attrs.remove("QueueUrl");
        for (j, attr) in attrs.into_iter().enumerate() {
            add(
                format!("R{i}A{j}"),
                json!({"Fn::GetAtt": [id, attr]}),
                OutputOf::Attribute(id.clone(), attr),
            );
        }
    }

    let mut body = Map::new();
    body.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
    for section in ["Parameters", "Conditions", "Mappings"] {
        if let Some(v) = template.as_json().get(section) {
            body.insert(section.into(), v.clone());
        }
    }
    body.insert("Resources".into(), Value::Object(resources.clone()));
    body.insert("Outputs".into(), Value::Object(output_section));
    let declared: BTreeSet<&str> = template.parameters().map(|p| p.name()).collect();
    Ok(MotoTemplate {
        body: Value::Object(body),
        parameters: parameters
            .iter()
            .filter(|(k, _)| declared.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        resources: {
            let mut ids: Vec<String> = resources.keys().cloned().collect();
            ids.sort();
            ids
        },
        outputs,
    })
}

/// Fills the values of a created stack from moto's DescribeStackResources
/// rows (logical id, physical id, type) and DescribeStacks outputs.
pub(crate) fn collect(
    stack_name: &str,
    template: &MotoTemplate,
    rows: &[(String, String, String)],
    outputs: &BTreeMap<String, String>,
) -> StackResources {
    let mut resources = BTreeMap::new();
    for (logical, physical, ty) in rows {
        resources.insert(
            logical.clone(),
            ResourceValues {
                resource_type: ty.clone(),
                physical_id: physical.clone(),
                reference: physical.clone(),
                attributes: BTreeMap::new(),
            },
        );
    }
    for (name, of) in &template.outputs {
        let Some(value) = outputs.get(name) else {
            continue;
        };
        match of {
            OutputOf::Ref(id) => {
                if let Some(r) = resources.get_mut(id) {
                    r.reference = value.clone();
                }
            }
            OutputOf::Attribute(id, attr) => {
                if let Some(r) = resources.get_mut(id) {
                    r.attributes.insert(attr.clone(), value.clone());
                }
            }
        }
    }
    for r in resources.values_mut() {
        // AWS::SQS::Queue: Ref returns the queue URL, GetAtt QueueUrl too
        // ("AWS::SQS::Queue", Return values,
        // https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-sqs-queue.html).
        if r.resource_type == "AWS::SQS::Queue" {
            r.attributes
                .insert("QueueUrl".to_string(), r.reference.clone());
        }
    }
    StackResources {
        stack_name: stack_name.to_string(),
        resources,
    }
}

/// `AWS::Serverless::SimpleTable` as SAM 1.115.0 expands it
/// (samtranslator/model/sam_resources.py, `SamSimpleTable`): the primary
/// key (default `id`, String) as the only attribute and HASH key,
/// `PAY_PER_REQUEST` unless `ProvisionedThroughput` is given,
/// `TableName`, `SSESpecification`, `PointInTimeRecoverySpecification`
/// passed through, `Tags` as a Key/Value list, resource attributes kept.
/// `Globals.SimpleTable` applies first (SAM's globals: maps merged, the
/// resource's values win).
fn simple_table(id: &str, resource: &Value, globals: Option<&Map<String, Value>>) -> Result<Value> {
    let mut props = resource
        .get("Properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(g) = globals {
        props = merge_globals(g, &props);
    }
    let context = format!("Resources.{id}.Properties");
    let primary = match props.get("PrimaryKey") {
        None => json!({"AttributeName": "id", "AttributeType": "S"}),
        Some(pk) => {
            let field =
                |name: &str| {
                    pk.get(name).and_then(Value::as_str).ok_or_else(|| Error::Template {
                    context: format!("{context}.PrimaryKey"),
                    message: format!(
                        "needs {name} (a string); write PrimaryKey: {{Name: id, Type: String}}"
                    ),
                })
                };
            let name = field("Name")?;
            let ty = match field("Type")? {
                "String" => "S",
                "Number" => "N",
                "Binary" => "B",
                other => {
                    return Err(Error::Template {
                        context: format!("{context}.PrimaryKey.Type"),
                        message: format!(
                            "Invalid 'Type' \"{other}\"; SAM accepts String, Number or Binary"
                        ),
                    });
                }
            };
            json!({"AttributeName": name, "AttributeType": ty})
        }
    };
    let mut table = Map::new();
    table.insert("AttributeDefinitions".into(), json!([primary]));
    table.insert(
        "KeySchema".into(),
        json!([{"AttributeName": primary["AttributeName"], "KeyType": "HASH"}]),
    );
    if let Some(v) = props.get("PointInTimeRecoverySpecification") {
        table.insert("PointInTimeRecoverySpecification".into(), v.clone());
    }
    match props.get("ProvisionedThroughput") {
        Some(v) => {
            table.insert("ProvisionedThroughput".into(), v.clone());
        }
        None => {
            table.insert("BillingMode".into(), json!("PAY_PER_REQUEST"));
        }
    }
    for key in ["SSESpecification", "TableName"] {
        if let Some(v) = props.get(key) {
            table.insert(key.into(), v.clone());
        }
    }
    if let Some(Value::Object(tags)) = props.get("Tags")
        && !tags.is_empty()
    {
        let list: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        table.insert("Tags".into(), Value::Array(list));
    }
    let mut out = resource.as_object().cloned().unwrap_or_default();
    out.insert("Type".into(), json!("AWS::DynamoDB::Table"));
    out.insert("Properties".into(), Value::Object(table));
    Ok(Value::Object(out))
}

/// SAM's globals merge: maps merge key by key, lists concatenate (globals
/// first), anything else the resource's value wins.
fn merge_globals(globals: &Map<String, Value>, local: &Map<String, Value>) -> Map<String, Value> {
    let mut out = globals.clone();
    for (k, v) in local {
        let merged = match (out.get(k), v) {
            (Some(Value::Object(g)), Value::Object(l)) => Value::Object(merge_globals(g, l)),
            (Some(Value::Array(g)), Value::Array(l)) => {
                Value::Array(g.iter().chain(l.iter()).cloned().collect())
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    out
}

/// Every `(logical id, attribute)` the template's `Fn::GetAtt`s and
/// `Fn::Sub`s (`${X.Attr}`) use.
fn used_attributes(root: &Map<String, Value>) -> BTreeSet<(String, String)> {
    fn walk(v: &Value, out: &mut BTreeSet<(String, String)>) {
        match v {
            Value::Object(m) => {
                if m.len() == 1 {
                    if let Some(att) = m.get("Fn::GetAtt")
                        && let Some((id, a)) = getatt_parts(att)
                    {
                        out.insert((id, a));
                    }
                    if let Some(sub) = m.get("Fn::Sub") {
                        let text = match sub {
                            Value::String(s) => Some(s.as_str()),
                            Value::Array(a) => a.first().and_then(Value::as_str),
                            _ => None,
                        };
                        for var in text.map(sub_variables).unwrap_or_default() {
                            if let Some((id, a)) = var.split_once('.') {
                                out.insert((id.to_string(), a.to_string()));
                            }
                        }
                    }
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for v in root.values() {
        walk(v, &mut out);
    }
    out
}

/// `["X", "Attr"]` or `"X.Attr"`.
fn getatt_parts(v: &Value) -> Option<(String, String)> {
    match v {
        Value::Array(a) if a.len() == 2 => Some((a[0].as_str()?.into(), a[1].as_str()?.into())),
        Value::String(s) => s
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string())),
        _ => None,
    }
}

/// The `${...}` variables of a `Fn::Sub` string (`${!Literal}` excluded).
fn sub_variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let var = &after[..end];
        if !var.starts_with('!') {
            out.push(var.trim().to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

/// Replaces `Ref`, `Fn::GetAtt` and `Fn::Sub` references to local
/// resources by their local values.
fn replace_local_refs(
    resource: &str,
    value: &Value,
    local_ids: &BTreeSet<&str>,
    local: &LocalValues,
) -> Result<Value> {
    let missing = |reference: String| Error::MissingLocalValue {
        resource: resource.to_string(),
        reference,
    };
    match value {
        Value::Object(m) if m.len() == 1 => {
            let (key, arg) = m.iter().next().expect("one entry");
            match (key.as_str(), arg) {
                ("Ref", Value::String(id)) if local_ids.contains(id.as_str()) => local
                    .refs
                    .get(id)
                    .cloned()
                    .ok_or_else(|| missing(id.clone())),
                ("Fn::GetAtt", att) => match getatt_parts(att) {
                    Some((id, a)) if local_ids.contains(id.as_str()) => local
                        .attributes
                        .get(&(id.clone(), a.clone()))
                        .cloned()
                        .ok_or_else(|| missing(format!("{id}.{a}"))),
                    _ => Ok(value.clone()),
                },
                ("Fn::Sub", Value::String(text)) => Ok(json!({
                    "Fn::Sub": substitute(text, &BTreeSet::new(), local_ids, local).map_err(missing)?
                })),
                ("Fn::Sub", Value::Array(a)) if a.len() == 2 => {
                    let names: BTreeSet<String> = a[1]
                        .as_object()
                        .map(|o| o.keys().cloned().collect())
                        .unwrap_or_default();
                    let text = a[0].as_str().unwrap_or_default();
                    let vars = replace_local_refs(resource, &a[1], local_ids, local)?;
                    Ok(json!({
                        "Fn::Sub": [substitute(text, &names, local_ids, local).map_err(missing)?, vars]
                    }))
                }
                _ => Ok(json!({key.clone(): replace_local_refs(resource, arg, local_ids, local)?})),
            }
        }
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(
                    k.clone(),
                    replace_local_refs(resource, v, local_ids, local)?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => a
            .iter()
            .map(|v| replace_local_refs(resource, v, local_ids, local))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        _ => Ok(value.clone()),
    }
}

/// A `Fn::Sub` string with `${X}` / `${X.Attr}` of local resources
/// replaced by their values; `Err(reference)` when one has no value.
fn substitute(
    text: &str,
    shadowed: &BTreeSet<String>,
    local_ids: &BTreeSet<&str>,
    local: &LocalValues,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let var = after[..end].trim();
        let (id, attr) = match var.split_once('.') {
            Some((i, a)) => (i, Some(a)),
            None => (var, None),
        };
        let value = if var.starts_with('!') || shadowed.contains(var) || !local_ids.contains(id) {
            None
        } else {
            let v = match attr {
                None => local.refs.get(id),
                Some(a) => local.attributes.get(&(id.to_string(), a.to_string())),
            };
            Some(v.ok_or_else(|| var.to_string())?)
        };
        match value {
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Drops `DependsOn` entries naming local resources (moto has no such
/// resource; the rehearsal starts them after moto's).
fn without_local_depends(mut body: Value, local_ids: &BTreeSet<&str>) -> Value {
    if let Some(obj) = body.as_object_mut() {
        let kept = match obj.get("DependsOn") {
            Some(Value::String(s)) if local_ids.contains(s.as_str()) => Some(None),
            Some(Value::Array(a)) => Some(Some(Value::Array(
                a.iter()
                    .filter(|d| d.as_str().is_none_or(|s| !local_ids.contains(s)))
                    .cloned()
                    .collect(),
            ))),
            _ => None,
        };
        match kept {
            Some(None) => {
                obj.remove("DependsOn");
            }
            Some(Some(v)) => {
                obj.insert("DependsOn".into(), v);
            }
            None => {}
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(yaml: &str) -> Template {
        Template::from_yaml_str(yaml).unwrap()
    }

    #[test]
    fn functions_apis_alarms_roles_and_log_groups_need_no_moto() {
        let tpl = t(r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn: {Type: AWS::Serverless::Function, Properties: {Handler: x}}
  Api: {Type: AWS::Serverless::HttpApi}
  Rest: {Type: AWS::Serverless::Api}
  Perm: {Type: AWS::Lambda::Permission}
  Alarm: {Type: AWS::CloudWatch::Alarm}
  Logs: {Type: AWS::Logs::LogGroup}
  Role: {Type: AWS::IAM::Role}
  V2: {Type: AWS::ApiGatewayV2::Api}
"#);
        assert!(!needs_moto(&tpl));
        let m = moto_template(&tpl, &BTreeMap::new(), &LocalValues::new()).unwrap();
        assert!(m.is_empty());
        let tpl = t("Resources:\n  Q: {Type: AWS::SQS::Queue}\n");
        assert!(needs_moto(&tpl));
    }

    #[test]
    fn simple_table_expands_as_sam_does() {
        let tpl = t(r#"
Globals:
  SimpleTable:
    SSESpecification: {SSEEnabled: true}
Resources:
  Plain: {Type: AWS::Serverless::SimpleTable}
  Keyed:
    Type: AWS::Serverless::SimpleTable
    DependsOn: Fn
    Properties:
      TableName: !Sub "${AWS::StackName}-keyed"
      PrimaryKey: {Name: pk, Type: Number}
      ProvisionedThroughput: {ReadCapacityUnits: 5, WriteCapacityUnits: 5}
      Tags: {team: x}
  Fn: {Type: AWS::Serverless::Function}
"#);
        let m = moto_template(&tpl, &BTreeMap::new(), &LocalValues::new()).unwrap();
        assert_eq!(
            m.body["Resources"]["Plain"],
            json!({"Type": "AWS::DynamoDB::Table", "Properties": {
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": true}}})
        );
        assert_eq!(
            m.body["Resources"]["Keyed"],
            json!({"Type": "AWS::DynamoDB::Table", "Properties": {
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "N"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                "SSESpecification": {"SSEEnabled": true},
                "TableName": {"Fn::Sub": "${AWS::StackName}-keyed"},
                "Tags": [{"Key": "team", "Value": "x"}]}})
        );
        assert_eq!(m.resources, ["Keyed", "Plain"]);
    }

    #[test]
    fn a_bad_primary_key_type_is_named() {
        let tpl = t(r#"
Resources:
  T: {Type: AWS::Serverless::SimpleTable, Properties: {PrimaryKey: {Name: id, Type: Text}}}
"#);
        let e = moto_template(&tpl, &BTreeMap::new(), &LocalValues::new()).unwrap_err();
        assert!(e.to_string().contains("Invalid 'Type' \"Text\""), "{e}");
    }

    #[test]
    fn every_unsupported_resource_is_named_before_anything_else() {
        let tpl = t(r#"
Resources:
  Secret: {Type: AWS::SecretsManager::Secret}
  Q: {Type: AWS::SQS::Queue}
  Custom: {Type: Custom::Seed}
"#);
        let e = moto_template(&tpl, &BTreeMap::new(), &LocalValues::new()).unwrap_err();
        let Error::Unsupported { resources, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(resources.len(), 2);
        let text = e.to_string();
        assert!(text.contains("Custom::Seed (Custom)"), "{text}");
        assert!(
            text.contains("AWS::SecretsManager::Secret (Secret)"),
            "{text}"
        );
    }

    #[test]
    fn references_to_local_resources_take_local_values() {
        let tpl = t(r#"
Resources:
  Fn: {Type: AWS::Serverless::Function}
  Topic:
    Type: AWS::SNS::Topic
    DependsOn: [Fn, Q]
    Properties:
      Subscription:
        - {Endpoint: !GetAtt Fn.Arn, Protocol: lambda}
      DisplayName: !Sub "${Fn}-${Q}-${Fn.Arn}-${!Lit}"
  Q: {Type: AWS::SQS::Queue}
"#);
        let local = LocalValues::new()
            .with_ref("Fn", "stack-Fn")
            .with_attribute(
                "Fn",
                "Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:stack-Fn",
            );
        let m = moto_template(&tpl, &BTreeMap::new(), &local).unwrap();
        let topic = &m.body["Resources"]["Topic"];
        assert_eq!(
            topic["Properties"]["Subscription"][0]["Endpoint"],
            "arn:aws:lambda:us-east-1:123456789012:function:stack-Fn"
        );
        assert_eq!(
            topic["Properties"]["DisplayName"],
            json!({"Fn::Sub": "stack-Fn-${Q}-arn:aws:lambda:us-east-1:123456789012:function:stack-Fn-${!Lit}"})
        );
        assert_eq!(topic["DependsOn"], json!(["Q"]));

        let e = moto_template(&tpl, &BTreeMap::new(), &LocalValues::new()).unwrap_err();
        assert!(
            matches!(&e, Error::MissingLocalValue { resource, reference } if resource == "Topic" && reference.starts_with("Fn")),
            "{e}"
        );
    }

    #[test]
    fn outputs_cover_refs_used_attributes_and_declared_arns() {
        let tpl = t(r#"
Parameters:
  Stage: {Type: String}
Resources:
  Q: {Type: AWS::SQS::Queue}
  T:
    Type: AWS::DynamoDB::Table
    Properties: {StreamSpecification: {StreamViewType: NEW_IMAGE}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables: {URL: !GetAtt Q.QueueUrl, N: !Sub "${Q.QueueName}"}
"#);
        let params = BTreeMap::from([
            ("Stage".to_string(), "beta".to_string()),
            ("Other".to_string(), "x".to_string()),
        ]);
        let m = moto_template(&tpl, &params, &LocalValues::new()).unwrap();
        assert_eq!(m.parameters, [("Stage".to_string(), "beta".to_string())]);
        let outputs = &m.body["Outputs"];
        assert_eq!(outputs["R0Ref"]["Value"], json!({"Ref": "Q"}));
        assert_eq!(
            outputs["R0A0"]["Value"],
            json!({"Fn::GetAtt": ["Q", "Arn"]})
        );
        assert_eq!(
            outputs["R0A1"]["Value"],
            json!({"Fn::GetAtt": ["Q", "QueueName"]})
        );
        assert!(outputs.get("R0A2").is_none(), "QueueUrl comes from the Ref");
        assert_eq!(
            outputs["R1A1"]["Value"],
            json!({"Fn::GetAtt": ["T", "StreamArn"]})
        );
        assert!(m.body.get("Transform").is_none());
    }

    #[test]
    fn collect_fills_refs_attributes_and_queue_urls() {
        let tpl = t("Resources:\n  Q: {Type: AWS::SQS::Queue}\n");
        let m = moto_template(&tpl, &BTreeMap::new(), &LocalValues::new()).unwrap();
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/s-Q-x";
        let got = collect(
            "s",
            &m,
            &[("Q".into(), url.into(), "AWS::SQS::Queue".into())],
            &BTreeMap::from([
                ("R0Ref".to_string(), url.to_string()),
                (
                    "R0A0".to_string(),
                    "arn:aws:sqs:us-east-1:123456789012:s-Q-x".to_string(),
                ),
            ]),
        );
        let q = &got.resources["Q"];
        assert_eq!(q.reference, url);
        assert_eq!(q.attributes["QueueUrl"], url);
        assert_eq!(
            q.attributes["Arn"],
            "arn:aws:sqs:us-east-1:123456789012:s-Q-x"
        );
    }
}

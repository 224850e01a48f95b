//! Reading CloudFormation/SAM templates and resolving their intrinsic
//! functions (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`, ...) to the values a
//! local deployment gives them.
//!
//! YAML short forms (`!Ref X`, `!Sub ...`, `!GetAtt A.B`) are turned into the
//! long JSON forms (`{"Ref": "X"}`, ...) on loading, so the rest of the code
//! sees one shape.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value};

use crate::ids;

#[derive(Debug, thiserror::Error)]
pub enum CfnError {
    #[error("cannot load template {path}: {source}")]
    Load {
        path: String,
        source: cfn_template::Error,
    },
    #[error("{context}: {message}")]
    Eval { context: String, message: String },
}

fn eval_error(context: &str, message: impl Into<String>) -> CfnError {
    CfnError::Eval {
        context: context.to_string(),
        message: message.into(),
    }
}

/// Loads a template file as JSON, YAML short forms turned into long forms.
pub fn load(path: &Path) -> Result<Value, CfnError> {
    cfn_template::Template::from_path(path)
        .map(cfn_template::Template::into_json)
        .map_err(|source| CfnError::Load {
            path: path.display().to_string(),
            source,
        })
}

/// Parses template text (YAML or JSON) the same way.
pub fn parse(text: &str) -> Result<Value, cfn_template::Error> {
    cfn_template::Template::from_yaml_str(text).map(cfn_template::Template::into_json)
}

/// The local values of one resource: what `Ref` gives and its attributes.
#[derive(Debug, Clone, Default)]
pub struct ResourceValues {
    pub resource_type: String,
    pub reference: String,
    pub attributes: BTreeMap<String, String>,
}

/// Everything intrinsic functions can refer to in one template.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub stack_name: String,
    pub stack_id: String,
    pub parameters: BTreeMap<String, String>,
    pub resources: BTreeMap<String, ResourceValues>,
    pub conditions: Map<String, Value>,
    pub mappings: Map<String, Value>,
}

impl Context {
    /// A context for `template` with `parameters` (already defaulted).
    pub fn new(stack_name: &str, template: &Value, parameters: BTreeMap<String, String>) -> Self {
        Self {
            stack_name: stack_name.to_string(),
            stack_id: format!(
                "arn:aws:cloudformation:{}:{}:stack/{stack_name}/{}",
                ids::REGION,
                ids::ACCOUNT_ID,
                ids::stable_suffix(stack_name, 12)
            ),
            parameters,
            resources: BTreeMap::new(),
            conditions: template["Conditions"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            mappings: template["Mappings"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Resolves every intrinsic function in `value`. `where_` names the
    /// place in the template for error messages.
    pub fn resolve(&self, value: &Value, where_: &str) -> Result<Value, CfnError> {
        Ok(self.eval(value, where_)?.unwrap_or(Value::Null))
    }

    /// Resolves `value` to a string (numbers and booleans are stringified).
    pub fn resolve_string(&self, value: &Value, where_: &str) -> Result<String, CfnError> {
        match self.resolve(value, where_)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(eval_error(
                where_,
                format!("expected a string, got {other}"),
            )),
        }
    }

    /// Evaluates a named condition from the template's `Conditions`.
    pub fn condition(&self, name: &str, where_: &str) -> Result<bool, CfnError> {
        let definition = self.conditions.get(name).ok_or_else(|| {
            eval_error(
                where_,
                format!("condition {name} is not defined in Conditions"),
            )
        })?;
        self.truth(definition, &format!("{where_} (condition {name})"))
    }

    fn truth(&self, value: &Value, where_: &str) -> Result<bool, CfnError> {
        if let Some((name, arg)) = single_key(value) {
            match name {
                "Condition" => {
                    let name = arg
                        .as_str()
                        .ok_or_else(|| eval_error(where_, "Condition takes a condition name"))?;
                    return self.condition(name, where_);
                }
                "Fn::Equals" => {
                    let args = two_args(arg, "Fn::Equals", where_)?;
                    let a = self.resolve(args.0, where_)?;
                    let b = self.resolve(args.1, where_)?;
                    return Ok(scalar_text(&a) == scalar_text(&b));
                }
                "Fn::Not" => {
                    let inner = arg.as_array().and_then(|a| a.first()).ok_or_else(|| {
                        eval_error(where_, "Fn::Not takes a list of one condition")
                    })?;
                    return Ok(!self.truth(inner, where_)?);
                }
                "Fn::And" | "Fn::Or" => {
                    let items = arg.as_array().ok_or_else(|| {
                        eval_error(where_, format!("{name} takes a list of conditions"))
                    })?;
                    let mut results = Vec::new();
                    for item in items {
                        results.push(self.truth(item, where_)?);
                    }
                    return Ok(if name == "Fn::And" {
                        results.iter().all(|b| *b)
                    } else {
                        results.iter().any(|b| *b)
                    });
                }
                _ => {}
            }
        }
        match self.resolve(value, where_)? {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(eval_error(where_, format!("{other} is not a condition"))),
        }
    }

    fn reference(&self, name: &str, where_: &str) -> Result<Option<Value>, CfnError> {
        let pseudo = match name {
            "AWS::Region" => Some(ids::REGION.to_string()),
            "AWS::AccountId" => Some(ids::ACCOUNT_ID.to_string()),
            "AWS::StackName" => Some(self.stack_name.clone()),
            "AWS::StackId" => Some(self.stack_id.clone()),
            "AWS::Partition" => Some("aws".to_string()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_string()),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(vec![]))),
            "AWS::NoValue" => return Ok(None),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Some(Value::String(value)));
        }
        if let Some(value) = self.parameters.get(name) {
            return Ok(Some(Value::String(value.clone())));
        }
        if let Some(resource) = self.resources.get(name) {
            return Ok(Some(Value::String(resource.reference.clone())));
        }
        Err(eval_error(
            where_,
            format!("Ref {name}: no parameter, pseudo parameter or resource of that name"),
        ))
    }

    fn attribute(&self, resource: &str, attribute: &str, where_: &str) -> Result<String, CfnError> {
        let values = self.resources.get(resource).ok_or_else(|| {
            eval_error(
                where_,
                format!(
                    "Fn::GetAtt {resource}.{attribute}: no resource {resource} in the template"
                ),
            )
        })?;
        if let Some(value) = values.attributes.get(attribute) {
            return Ok(value.clone());
        }
        if attribute == "Arn" {
            // Resources the rehearsal does not run (roles, buckets, topics)
            // still get an ARN of the right service, so templates resolve.
            let service = values
                .resource_type
                .split("::")
                .nth(1)
                .unwrap_or("local")
                .to_lowercase();
            return Ok(format!(
                "arn:aws:{service}:{}:{}:{resource}/{}",
                ids::REGION,
                ids::ACCOUNT_ID,
                values.reference
            ));
        }
        Err(eval_error(
            where_,
            format!(
                "Fn::GetAtt {resource}.{attribute}: the rehearsal has no local value for attribute {attribute} of a {}",
                values.resource_type
            ),
        ))
    }

    fn eval(&self, value: &Value, where_: &str) -> Result<Option<Value>, CfnError> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(v) = self.eval(item, where_)? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(object) => {
                if let Some((name, arg)) = single_key(value)
                    && (name == "Ref" || name.starts_with("Fn::"))
                {
                    return self.intrinsic(name, arg, where_);
                }
                let mut out = Map::new();
                for (key, item) in object {
                    if let Some(v) = self.eval(item, &format!("{where_}.{key}"))? {
                        out.insert(key.clone(), v);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn intrinsic(&self, name: &str, arg: &Value, where_: &str) -> Result<Option<Value>, CfnError> {
        match name {
            "Ref" => {
                let target = arg
                    .as_str()
                    .ok_or_else(|| eval_error(where_, "Ref takes a name"))?;
                self.reference(target, where_)
            }
            "Fn::GetAtt" => {
                let arg = self.resolve(arg, where_)?;
                let (resource, attribute) = match &arg {
                    Value::Array(parts) if parts.len() == 2 => {
                        (scalar_text(&parts[0]), scalar_text(&parts[1]))
                    }
                    Value::String(s) => match s.split_once('.') {
                        Some((r, a)) => (r.to_string(), a.to_string()),
                        None => {
                            return Err(eval_error(
                                where_,
                                format!("Fn::GetAtt {s}: expected Resource.Attribute"),
                            ));
                        }
                    },
                    other => {
                        return Err(eval_error(
                            where_,
                            format!("Fn::GetAtt {other}: expected [Resource, Attribute]"),
                        ));
                    }
                };
                Ok(Some(Value::String(
                    self.attribute(&resource, &attribute, where_)?,
                )))
            }
            "Fn::Sub" => {
                let (template, variables) = match arg {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(parts) if parts.len() == 2 => {
                        let template = parts[0]
                            .as_str()
                            .ok_or_else(|| {
                                eval_error(where_, "Fn::Sub: the first item must be a string")
                            })?
                            .to_string();
                        let variables = match self.resolve(&parts[1], where_)? {
                            Value::Object(map) => map,
                            _ => {
                                return Err(eval_error(
                                    where_,
                                    "Fn::Sub: the second item must be a map",
                                ));
                            }
                        };
                        (template, variables)
                    }
                    _ => {
                        return Err(eval_error(
                            where_,
                            "Fn::Sub takes a string or [string, map]",
                        ));
                    }
                };
                Ok(Some(Value::String(
                    self.substitute(&template, &variables, where_)?,
                )))
            }
            "Fn::Join" => {
                let args = two_args(arg, "Fn::Join", where_)?;
                let delimiter = scalar_text(args.0);
                let items = self.resolve(args.1, where_)?;
                let items = items.as_array().ok_or_else(|| {
                    eval_error(where_, "Fn::Join: the second item must be a list")
                })?;
                Ok(Some(Value::String(
                    items
                        .iter()
                        .map(scalar_text)
                        .collect::<Vec<_>>()
                        .join(&delimiter),
                )))
            }
            "Fn::Select" => {
                let args = two_args(arg, "Fn::Select", where_)?;
                let index: usize = scalar_text(&self.resolve(args.0, where_)?)
                    .parse()
                    .map_err(|_| eval_error(where_, "Fn::Select: the index must be a number"))?;
                let list = self.resolve(args.1, where_)?;
                list.as_array()
                    .and_then(|items| items.get(index).cloned())
                    .map(Some)
                    .ok_or_else(|| eval_error(where_, format!("Fn::Select: no item {index}")))
            }
            "Fn::Split" => {
                let args = two_args(arg, "Fn::Split", where_)?;
                let delimiter = scalar_text(args.0);
                let text = self.resolve_string(args.1, where_)?;
                Ok(Some(Value::Array(
                    text.split(delimiter.as_str())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                )))
            }
            "Fn::If" => {
                let parts = arg
                    .as_array()
                    .filter(|p| p.len() == 3)
                    .ok_or_else(|| eval_error(where_, "Fn::If takes [condition, then, else]"))?;
                let condition = parts[0]
                    .as_str()
                    .ok_or_else(|| eval_error(where_, "Fn::If: the condition must be a name"))?;
                let chosen = if self.condition(condition, where_)? {
                    &parts[1]
                } else {
                    &parts[2]
                };
                self.eval(chosen, where_)
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" => {
                let mut object = Map::new();
                object.insert(name.to_string(), arg.clone());
                Ok(Some(Value::Bool(
                    self.truth(&Value::Object(object), where_)?,
                )))
            }
            "Fn::FindInMap" => {
                let parts = self.resolve(arg, where_)?;
                let parts = parts
                    .as_array()
                    .filter(|p| p.len() >= 3)
                    .ok_or_else(|| eval_error(where_, "Fn::FindInMap takes [map, key, key]"))?;
                let (map, first, second) = (
                    scalar_text(&parts[0]),
                    scalar_text(&parts[1]),
                    scalar_text(&parts[2]),
                );
                self.mappings
                    .get(&map)
                    .and_then(|m| m.get(&first))
                    .and_then(|m| m.get(&second))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| {
                        eval_error(
                            where_,
                            format!("Fn::FindInMap: no {map}.{first}.{second} in Mappings"),
                        )
                    })
            }
            "Fn::GetAZs" => Ok(Some(Value::Array(vec![
                format!("{}a", ids::REGION).into(),
                format!("{}b", ids::REGION).into(),
                format!("{}c", ids::REGION).into(),
            ]))),
            "Fn::Base64" => {
                let text = self.resolve_string(arg, where_)?;
                Ok(Some(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(text),
                )))
            }
            "Fn::ToJsonString" => Ok(Some(Value::String(self.resolve(arg, where_)?.to_string()))),
            other => Err(eval_error(
                where_,
                format!("the intrinsic function {other} cannot be rehearsed locally"),
            )),
        }
    }

    fn substitute(
        &self,
        template: &str,
        variables: &Map<String, Value>,
        where_: &str,
    ) -> Result<String, CfnError> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                eval_error(where_, format!("Fn::Sub: unclosed ${{ in {template:?}"))
            })?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&scalar_text(value));
            } else if let Some((resource, attribute)) = name.split_once('.')
                && !name.starts_with("AWS::")
            {
                out.push_str(&self.attribute(resource, attribute, where_)?);
            } else {
                let value = self.reference(name, where_)?.unwrap_or(Value::Null);
                out.push_str(&scalar_text(&value));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn single_key(value: &Value) -> Option<(&str, &Value)> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn two_args<'a>(
    arg: &'a Value,
    name: &str,
    where_: &str,
) -> Result<(&'a Value, &'a Value), CfnError> {
    match arg.as_array() {
        Some(items) if items.len() == 2 => Ok((&items[0], &items[1])),
        _ => Err(eval_error(
            where_,
            format!("{name} takes a list of two items"),
        )),
    }
}

/// A scalar as CloudFormation stringifies it.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parameter values: the template's defaults overlaid with `overrides`.
/// Errors name a parameter without a value or an override the template does
/// not declare, as CloudFormation does.
pub fn parameter_values(
    template: &Value,
    overrides: &BTreeMap<String, String>,
    what: &str,
) -> Result<BTreeMap<String, String>, CfnError> {
    let declared = template["Parameters"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(unknown) = overrides.keys().find(|k| !declared.contains_key(*k)) {
        return Err(eval_error(
            what,
            format!("Parameters: [{unknown}] do not exist in the template"),
        ));
    }
    let mut values = BTreeMap::new();
    for (name, definition) in &declared {
        let value = match overrides.get(name) {
            Some(v) => v.clone(),
            None => match definition.get("Default") {
                Some(default) => match default {
                    Value::Array(items) => {
                        items.iter().map(scalar_text).collect::<Vec<_>>().join(",")
                    }
                    other => scalar_text(other),
                },
                None => {
                    return Err(eval_error(
                        what,
                        format!(
                            "Parameters: [{name}] must have values (no default and no override)"
                        ),
                    ));
                }
            },
        };
        if let Some(allowed) = definition.get("AllowedValues").and_then(Value::as_array)
            && !allowed.iter().any(|a| scalar_text(a) == value)
        {
            return Err(eval_error(
                what,
                format!(
                    "Parameter {name} value {value:?} is not one of the AllowedValues {allowed:?}"
                ),
            ));
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Context {
        let template = parse(
            "Conditions:\n  IsProd: !Equals [!Ref Stage, prod]\n  NotProd: !Not [!Condition IsProd]\n",
        )
        .unwrap();
        let mut ctx = Context::new(
            "svc-beta",
            &template,
            BTreeMap::from([("Stage".to_string(), "beta".to_string())]),
        );
        ctx.resources.insert(
            "Fn".into(),
            ResourceValues {
                resource_type: "AWS::Serverless::Function".into(),
                reference: "svc-beta-Fn-ABC".into(),
                attributes: BTreeMap::from([("Arn".to_string(), "arn:fn".to_string())]),
            },
        );
        ctx
    }

    #[test]
    fn sub_resolves_parameters_pseudo_parameters_and_attributes() {
        let v = json!({"Fn::Sub": "${AWS::StackName}/${Stage}/${Fn.Arn}/${!Literal}"});
        assert_eq!(
            context().resolve_string(&v, "t").unwrap(),
            "svc-beta/beta/arn:fn/${Literal}"
        );
    }

    #[test]
    fn conditions_choose_the_if_branch() {
        let v = parse("x: !If [NotProd, yes, no]").unwrap();
        assert_eq!(context().resolve(&v, "t").unwrap(), json!({"x": "yes"}));
    }

    #[test]
    fn no_value_removes_the_key() {
        let v = parse("x: !If [IsProd, 1, !Ref AWS::NoValue]\ny: 2").unwrap();
        assert_eq!(context().resolve(&v, "t").unwrap(), json!({"y": 2}));
    }

    #[test]
    fn an_unknown_reference_is_an_error_naming_it() {
        let err = context()
            .resolve(&json!({"Ref": "Nope"}), "Outputs.X")
            .unwrap_err();
        assert!(err.to_string().contains("Ref Nope"), "{err}");
    }

    #[test]
    fn parameters_take_defaults_and_overrides() {
        let t =
            parse("Parameters:\n  A: {Type: String, Default: x}\n  B: {Type: String}\n").unwrap();
        let values =
            parameter_values(&t, &BTreeMap::from([("B".into(), "y".into())]), "t").unwrap();
        assert_eq!(values["A"], "x");
        assert_eq!(values["B"], "y");
    }

    #[test]
    fn a_parameter_without_value_is_an_error() {
        let t = parse("Parameters:\n  B: {Type: String}\n").unwrap();
        let err = parameter_values(&t, &BTreeMap::new(), "t").unwrap_err();
        assert!(err.to_string().contains("[B] must have values"), "{err}");
    }

    #[test]
    fn an_override_for_an_undeclared_parameter_is_an_error() {
        let t = parse("Parameters:\n  A: {Type: String, Default: x}\n").unwrap();
        let err =
            parameter_values(&t, &BTreeMap::from([("Z".into(), "1".into())]), "t").unwrap_err();
        assert!(err.to_string().contains("[Z] do not exist"), "{err}");
    }
}

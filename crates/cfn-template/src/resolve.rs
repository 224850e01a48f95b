//! Evaluating the intrinsic functions whose inputs are known.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value};

use crate::Template;

/// Why a value or condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Something the resolver does not know remains (the JSON shown).
    #[error("cannot resolve {0}")]
    Unresolved(String),
    /// The value resolved, but not to a string.
    #[error("resolves to {0}, not a string")]
    NotAString(String),
    /// A condition name that the template does not define.
    #[error("no condition named {0}")]
    UnknownCondition(String),
    /// Conditions that refer to each other in a loop: the names along it,
    /// first and last the same (`A -> B -> A`).
    #[error(
        "the conditions {} refer to each other in a loop; one of them must be decided without the others",
        .0.join(" -> ")
    )]
    ConditionCycle(Vec<String>),
    /// A condition nested deeper than any real template nests.
    #[error("condition {0} nests more than {MAX_DEPTH} levels deep")]
    ConditionTooDeep(String),
}

/// Evaluates `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`, `Fn::Select`,
/// `Fn::Split`, `Fn::If`, `Fn::FindInMap`, `Fn::Base64`, `Fn::GetAZs`,
/// `Fn::ToJsonString` and the condition functions (`Fn::Equals`, `Fn::Not`,
/// `Fn::And`, `Fn::Or`, `Condition`) for the references it has been given
/// values for.
///
/// A reference it has no value for (a resource's `Ref`, a `Fn::GetAtt` not
/// set with [`Resolver::with_attribute`], an unset parameter) leaves that
/// intrinsic function in place, so resolving is always safe and partial.
///
/// ```
/// use cfn_template::Resolver;
/// use serde_json::json;
///
/// let r = Resolver::new()
///     .with_ref("ServiceName", "TimeService")
///     .with_attribute("Bucket", "Arn", "arn:aws:s3:::b");
/// let v = json!({"Fn::Sub": "${ServiceName}-beta ${Bucket.Arn} ${!Literal} ${Other}"});
/// // `Other` is unknown: the Fn::Sub stays.
/// assert_eq!(r.resolve(&v), Some(v.clone()));
/// assert!(r.resolve_str(&v).is_err());
/// assert_eq!(r.resolve_str(&json!({"Fn::Sub": "${ServiceName}-beta ${!Literal}"})).unwrap(),
///            "TimeService-beta ${Literal}");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    refs: BTreeMap<String, Value>,
    attributes: BTreeMap<(String, String), Value>,
    conditions: Map<String, Value>,
    mappings: Map<String, Value>,
}

/// Nesting limit for condition evaluation (absurd templates; loops between
/// named conditions are found by name before this).
const MAX_DEPTH: usize = 64;

impl Resolver {
    /// A resolver that knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver for `template`: every parameter's `Default`, replaced by
    /// `overrides` (name, value as text), plus the template's `Conditions`.
    /// List parameters (`CommaDelimitedList`, `List<...>`) become lists.
    /// Pseudo parameters (`AWS::Region`, `AWS::AccountId`, ...) are unset:
    /// add them with [`Resolver::with_ref`].
    pub fn for_template<K, V>(
        template: &Template,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut r = Resolver::new();
        let mut list_params = Vec::new();
        for p in template.parameters() {
            let ty = p.parameter_type().unwrap_or("String");
            if ty == "CommaDelimitedList" || ty.starts_with("List<") {
                list_params.push(p.name().to_string());
            }
            if let Some(default) = p.default() {
                r.refs.insert(p.name().to_string(), Value::String(default));
            }
        }
        for (k, v) in overrides {
            r.refs.insert(k.into(), Value::String(v.into()));
        }
        for name in list_params {
            if let Some(Value::String(s)) = r.refs.get(&name) {
                let items = s.split(',').map(|i| Value::String(i.to_string())).collect();
                r.refs.insert(name, Value::Array(items));
            }
        }
        r.conditions = template
            .section("Conditions")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        r.mappings = template
            .section("Mappings")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        r
    }

    /// Sets what `{"Ref": name}` (and `${name}` in `Fn::Sub`) resolves to:
    /// a parameter, a pseudo parameter or a resource's physical id.
    pub fn with_ref(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set_ref(name, value);
        self
    }

    /// In-place form of [`Resolver::with_ref`].
    pub fn set_ref(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.refs.insert(name.into(), value.into());
    }

    /// Sets what `{"Fn::GetAtt": [logical_id, attribute]}` (and
    /// `${logical_id.attribute}` in `Fn::Sub`) resolves to.
    pub fn with_attribute(
        mut self,
        logical_id: impl Into<String>,
        attribute: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        self.set_attribute(logical_id, attribute, value);
        self
    }

    /// In-place form of [`Resolver::with_attribute`].
    pub fn set_attribute(
        &mut self,
        logical_id: impl Into<String>,
        attribute: impl Into<String>,
        value: impl Into<Value>,
    ) {
        self.attributes
            .insert((logical_id.into(), attribute.into()), value.into());
    }

    /// Defines (or replaces) a named condition.
    pub fn with_condition(mut self, name: impl Into<String>, definition: Value) -> Self {
        self.conditions.insert(name.into(), definition);
        self
    }

    /// Defines (or replaces) a top-level map of `Mappings`, for `Fn::FindInMap`.
    pub fn with_mapping(mut self, name: impl Into<String>, map: Value) -> Self {
        self.mappings.insert(name.into(), map);
        self
    }

    /// What `{"Ref": name}` resolves to, if known.
    pub fn reference(&self, name: &str) -> Option<&Value> {
        self.refs.get(name)
    }

    /// What `{"Fn::GetAtt": [logical_id, attribute]}` resolves to, if known.
    pub fn attribute(&self, logical_id: &str, attribute: &str) -> Option<&Value> {
        self.attributes
            .get(&(logical_id.to_string(), attribute.to_string()))
    }

    /// Evaluates a named condition. A condition that refers to itself,
    /// directly or through others, is [`ResolveError::ConditionCycle`].
    pub fn condition(&self, name: &str) -> Result<bool, ResolveError> {
        self.named_condition(name, &mut Vec::new(), 0)
    }

    /// Resolves everything it can in `value`. Returns `None` when the value
    /// itself is `{"Ref": "AWS::NoValue"}` (or an `Fn::If` that chooses it);
    /// inside mappings and lists such values are removed, as CloudFormation
    /// does.
    pub fn resolve(&self, value: &Value) -> Option<Value> {
        match value {
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|v| self.resolve(v)).collect(),
            )),
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                self.function(key, arg, value)
            }
            Value::Object(map) => Some(Value::Object(
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), self.resolve(v)?)))
                    .collect(),
            )),
            scalar => Some(scalar.clone()),
        }
    }

    /// Resolves `value` completely to a string, or says what is missing.
    pub fn resolve_str(&self, value: &Value) -> Result<String, ResolveError> {
        match self.resolve_complete(value)? {
            Value::String(s) => Ok(s),
            other => Err(ResolveError::NotAString(other.to_string())),
        }
    }

    /// Resolves `value` completely to a scalar's text, as CloudFormation
    /// passes numbers and booleans to properties (`5`, `true`), or says what
    /// is missing.
    pub fn resolve_text(&self, value: &Value) -> Result<String, ResolveError> {
        let resolved = self.resolve_complete(value)?;
        text_of(&resolved).ok_or_else(|| ResolveError::NotAString(resolved.to_string()))
    }

    /// Resolves `value` with no intrinsic function left anywhere in it, or
    /// says what is missing: the innermost function it could not evaluate,
    /// or the condition error that kept an `Fn::If` undecided.
    pub fn resolve_complete(&self, value: &Value) -> Result<Value, ResolveError> {
        let resolved = self
            .resolve(value)
            .ok_or_else(|| ResolveError::Unresolved("AWS::NoValue".into()))?;
        match self.first_unresolved(&resolved) {
            None => Ok(resolved),
            Some(error) => Err(error),
        }
    }

    /// Why `value` (already resolved) still holds an intrinsic function.
    fn first_unresolved(&self, value: &Value) -> Option<ResolveError> {
        match value {
            Value::Array(items) => items.iter().find_map(|v| self.first_unresolved(v)),
            Value::Object(map) => {
                let intrinsic =
                    map.len() == 1 && map.keys().any(|k| k == "Ref" || k.starts_with("Fn::"));
                if let Some(Value::Array(args)) = map.get("Fn::If")
                    && let Some(Value::String(name)) = args.first()
                    && let Err(error) = self.condition(name)
                {
                    return Some(error);
                }
                map.values()
                    .find_map(|v| self.first_unresolved(v))
                    .or_else(|| intrinsic.then(|| ResolveError::Unresolved(value.to_string())))
            }
            _ => None,
        }
    }

    /// One single-key mapping: an intrinsic function, or an ordinary mapping
    /// with one key.
    fn function(&self, key: &str, arg: &Value, whole: &Value) -> Option<Value> {
        let keep = |arg: Value| Some(single(key, arg));
        match key {
            "Ref" => {
                let name = arg.as_str()?;
                if name == "AWS::NoValue" {
                    return None;
                }
                Some(
                    self.refs
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| whole.clone()),
                )
            }
            "Fn::GetAtt" => {
                let arg = self.resolve(arg)?;
                let found = match arg.as_array().map(Vec::as_slice) {
                    Some([Value::String(res), Value::String(attr)]) => {
                        self.attributes.get(&(res.clone(), attr.clone())).cloned()
                    }
                    _ => None,
                };
                found.or_else(|| keep(arg))
            }
            "Fn::Sub" => {
                let arg = self.resolve(arg)?;
                let (text, vars) = match &arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Array(a) => match a.as_slice() {
                        [Value::String(s), Value::Object(vars)] => (s.as_str(), Some(vars)),
                        _ => return keep(arg),
                    },
                    _ => return keep(arg),
                };
                self.substitute(text, vars)
                    .map(Value::String)
                    .or_else(|| keep(arg.clone()))
            }
            "Fn::Join" => {
                let arg = self.resolve(arg)?;
                let joined = match arg.as_array().map(Vec::as_slice) {
                    Some([Value::String(delim), Value::Array(parts)]) => parts
                        .iter()
                        .map(text_of)
                        .collect::<Option<Vec<_>>>()
                        .map(|p| Value::String(p.join(delim))),
                    _ => None,
                };
                joined.or_else(|| keep(arg))
            }
            "Fn::Select" => {
                let arg = self.resolve(arg)?;
                let chosen = match arg.as_array().map(Vec::as_slice) {
                    Some([index, Value::Array(items)]) => text_of(index)
                        .and_then(|i| i.parse::<usize>().ok())
                        .and_then(|i| items.get(i).cloned()),
                    _ => None,
                };
                chosen.or_else(|| keep(arg))
            }
            "Fn::Split" => {
                let arg = self.resolve(arg)?;
                let split = match arg.as_array().map(Vec::as_slice) {
                    Some([Value::String(delim), Value::String(s)]) if !delim.is_empty() => Some(
                        Value::Array(s.split(delim.as_str()).map(|p| p.into()).collect()),
                    ),
                    _ => None,
                };
                split.or_else(|| keep(arg))
            }
            "Fn::If" => match arg.as_array().map(Vec::as_slice) {
                Some([Value::String(cond), yes, no]) => match self.condition(cond) {
                    Ok(true) => self.resolve(yes),
                    Ok(false) => self.resolve(no),
                    Err(_) => keep(self.resolve(arg)?),
                },
                _ => keep(self.resolve(arg)?),
            },
            "Fn::FindInMap" => {
                let arg = self.resolve(arg)?;
                let found = match arg.as_array().map(Vec::as_slice) {
                    Some([map, top, second, ..]) => (|| {
                        self.mappings
                            .get(&text_of(map)?)?
                            .get(text_of(top)?)?
                            .get(text_of(second)?)
                            .cloned()
                    })(),
                    _ => None,
                };
                found.or_else(|| keep(arg))
            }
            "Fn::Base64" => {
                let arg = self.resolve(arg)?;
                match &arg {
                    Value::String(s) => Some(Value::String(
                        base64::engine::general_purpose::STANDARD.encode(s),
                    )),
                    _ => keep(arg),
                }
            }
            "Fn::GetAZs" => {
                let arg = self.resolve(arg)?;
                let region = match &arg {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::String(_) => self.refs.get("AWS::Region").and_then(text_of),
                    _ => None,
                };
                match region {
                    Some(region) => Some(Value::Array(
                        ["a", "b", "c"]
                            .iter()
                            .map(|zone| Value::String(format!("{region}{zone}")))
                            .collect(),
                    )),
                    None => keep(arg),
                }
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" => {
                match self.evaluate(whole, &mut Vec::new(), 0) {
                    Ok(b) => Some(Value::Bool(b)),
                    Err(_) => keep(self.resolve(arg)?),
                }
            }
            "Fn::ToJsonString" => {
                let arg = self.resolve(arg)?;
                if has_intrinsic(&arg) {
                    keep(arg)
                } else {
                    Some(Value::String(arg.to_string()))
                }
            }
            _ => Some(match self.resolve(arg) {
                Some(v) => single(key, v),
                // `{"Key": {"Ref": "AWS::NoValue"}}`: the key goes away.
                None => Value::Object(Map::new()),
            }),
        }
    }

    /// `Fn::Sub` text with `${Name}`, `${Res.Attr}` and `${!Literal}`;
    /// `None` when a variable is unknown or not text.
    fn substitute(&self, text: &str, vars: Option<&Map<String, Value>>) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}')?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let name = name.trim();
                let value = vars
                    .and_then(|v| v.get(name))
                    .or_else(|| self.refs.get(name))
                    .or_else(|| {
                        let (res, attr) = name.split_once('.')?;
                        self.attributes.get(&(res.to_string(), attr.to_string()))
                    })?;
                out.push_str(&text_of(value)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn named_condition(
        &self,
        name: &str,
        path: &mut Vec<String>,
        depth: usize,
    ) -> Result<bool, ResolveError> {
        if let Some(start) = path.iter().position(|n| n == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Err(ResolveError::ConditionCycle(cycle));
        }
        let def = self
            .conditions
            .get(name)
            .ok_or_else(|| ResolveError::UnknownCondition(name.to_string()))?;
        path.push(name.to_string());
        let result = self.evaluate(def, path, depth + 1);
        path.pop();
        result
    }

    fn evaluate(
        &self,
        cond: &Value,
        path: &mut Vec<String>,
        depth: usize,
    ) -> Result<bool, ResolveError> {
        if depth > MAX_DEPTH {
            let name = path.last().cloned().unwrap_or_else(|| cond.to_string());
            return Err(ResolveError::ConditionTooDeep(name));
        }
        let unresolved = || ResolveError::Unresolved(cond.to_string());
        let Some((key, arg)) = cond
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        else {
            return match cond {
                Value::Bool(b) => Ok(*b),
                Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
                _ => Err(unresolved()),
            };
        };
        let args = || arg.as_array().ok_or_else(unresolved);
        match key.as_str() {
            "Condition" => self.named_condition(arg.as_str().ok_or_else(unresolved)?, path, depth),
            "Fn::Equals" => match args()?.as_slice() {
                [a, b] => {
                    let text = |v: &Value| {
                        self.resolve(v)
                            .filter(|r| !has_intrinsic(r))
                            .and_then(|r| text_of(&r))
                            .ok_or_else(unresolved)
                    };
                    Ok(text(a)? == text(b)?)
                }
                _ => Err(unresolved()),
            },
            "Fn::Not" => match args()?.as_slice() {
                [c] => Ok(!self.evaluate(c, path, depth + 1)?),
                _ => Err(unresolved()),
            },
            "Fn::And" => {
                let mut all = true;
                for c in args()? {
                    all &= self.evaluate(c, path, depth + 1)?;
                }
                Ok(all)
            }
            "Fn::Or" => {
                let mut any = false;
                for c in args()? {
                    any |= self.evaluate(c, path, depth + 1)?;
                }
                Ok(any)
            }
            _ => Err(unresolved()),
        }
    }
}

fn single(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), value);
    Value::Object(m)
}

/// A scalar as text (CloudFormation passes parameters as strings).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether an intrinsic function (`Ref`, `Fn::*`) remains anywhere.
fn has_intrinsic(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(has_intrinsic),
        Value::Object(map) => {
            (map.len() == 1 && map.keys().any(|k| k == "Ref" || k.starts_with("Fn::")))
                || map.values().any(has_intrinsic)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Resolver {
        Resolver::new().with_ref("ServiceName", "TimeService")
    }

    #[test]
    fn ref_of_a_known_parameter_resolves() {
        assert_eq!(
            svc().resolve(&json!({"Ref": "ServiceName"})),
            Some(json!("TimeService"))
        );
    }

    #[test]
    fn ref_of_an_unknown_name_is_kept() {
        let v = json!({"Ref": "Bucket"});
        assert_eq!(svc().resolve(&v), Some(v.clone()));
        assert_eq!(
            svc().resolve_str(&v),
            Err(ResolveError::Unresolved(r#"{"Ref":"Bucket"}"#.into()))
        );
    }

    #[test]
    fn sub_replaces_refs_attributes_and_escapes() {
        let r = svc().with_attribute("Fn", "Arn", "arn:fn");
        assert_eq!(
            r.resolve_str(&json!({"Fn::Sub": "${ServiceName}-x ${Fn.Arn} ${!Keep}"}))
                .unwrap(),
            "TimeService-x arn:fn ${Keep}"
        );
    }

    #[test]
    fn sub_list_form_uses_local_variables_first() {
        let v = json!({"Fn::Sub": ["${ServiceName}/${Stage}", {"Stage": {"Ref": "Env"}, "ServiceName": "local"}]});
        assert!(svc().resolve_str(&v).is_err(), "Env is unknown");
        assert_eq!(
            svc().with_ref("Env", "beta").resolve_str(&v).unwrap(),
            "local/beta"
        );
    }

    #[test]
    fn sub_of_json_text_keeps_the_braces() {
        let v = json!({"Fn::Sub": r#"{"testStack": "${ServiceName}-tests", "stage": "beta"}"#});
        assert_eq!(
            svc().resolve_str(&v).unwrap(),
            r#"{"testStack": "TimeService-tests", "stage": "beta"}"#
        );
    }

    #[test]
    fn join_select_and_split_compose() {
        let v = json!({"Fn::Select": [1, {"Fn::Split": [",", {"Fn::Join": [",", ["a", {"Ref": "ServiceName"}]]}]}]});
        assert_eq!(svc().resolve_str(&v).unwrap(), "TimeService");
    }

    #[test]
    fn no_value_removes_keys_and_list_items() {
        let v = json!({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}, 2]});
        assert_eq!(svc().resolve(&v), Some(json!({"B": [1, 2]})));
    }

    #[test]
    fn if_chooses_by_condition_and_no_value_disappears() {
        let r = svc().with_ref("Email", "").with_condition(
            "HasEmail",
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]}),
        );
        let v = json!({"Subscription": {"Fn::If": ["HasEmail", [{"Endpoint": {"Ref": "Email"}}], {"Ref": "AWS::NoValue"}]}});
        assert_eq!(r.resolve(&v), Some(json!({})));
        let r = r.with_ref("Email", "ops@example.com");
        assert_eq!(
            r.resolve(&v),
            Some(json!({"Subscription": [{"Endpoint": "ops@example.com"}]}))
        );
    }

    #[test]
    fn if_with_an_undecidable_condition_is_kept() {
        let r = svc().with_condition("C", json!({"Fn::Equals": [{"Ref": "Unknown"}, "x"]}));
        let v = json!({"Fn::If": ["C", {"Ref": "ServiceName"}, "b"]});
        assert_eq!(
            r.resolve(&v),
            Some(json!({"Fn::If": ["C", "TimeService", "b"]}))
        );
    }

    #[test]
    fn conditions_combine_with_and_or_and_condition_references() {
        let r = Resolver::new()
            .with_ref("A", "1")
            .with_condition("IsOne", json!({"Fn::Equals": [{"Ref": "A"}, 1]}))
            .with_condition("Both", json!({"Fn::And": [{"Condition": "IsOne"}, {"Fn::Or": [false, {"Condition": "IsOne"}]}]}));
        assert_eq!(r.condition("IsOne"), Ok(true));
        assert_eq!(r.condition("Both"), Ok(true));
        assert_eq!(
            r.condition("Nope"),
            Err(ResolveError::UnknownCondition("Nope".into()))
        );
    }

    #[test]
    fn mutually_referencing_conditions_are_a_cycle_error_naming_the_loop() {
        let r = Resolver::new()
            .with_condition("A", json!({"Condition": "B"}))
            .with_condition("B", json!({"Fn::Not": [{"Condition": "A"}]}));
        assert_eq!(
            r.condition("A"),
            Err(ResolveError::ConditionCycle(vec![
                "A".into(),
                "B".into(),
                "A".into()
            ]))
        );
    }

    #[test]
    fn a_self_referencing_condition_is_a_cycle_error_not_a_stack_overflow() {
        let r = Resolver::new()
            .with_condition("Loop", json!({"Fn::And": [true, {"Condition": "Loop"}]}));
        let error = r.condition("Loop").unwrap_err();
        assert_eq!(
            error,
            ResolveError::ConditionCycle(vec!["Loop".into(), "Loop".into()])
        );
        assert!(error.to_string().contains("Loop -> Loop"), "{error}");
    }

    #[test]
    fn a_condition_used_twice_side_by_side_is_not_a_cycle() {
        let r = Resolver::new()
            .with_condition("T", json!(true))
            .with_condition(
                "Both",
                json!({"Fn::And": [{"Condition": "T"}, {"Condition": "T"}]}),
            );
        assert_eq!(r.condition("Both"), Ok(true));
    }

    #[test]
    fn an_if_on_a_cyclic_condition_resolves_to_the_cycle_error() {
        let r = svc().with_condition("A", json!({"Condition": "A"}));
        let v = json!({"Fn::If": ["A", "x", "y"]});
        assert!(matches!(
            r.resolve_str(&v),
            Err(ResolveError::ConditionCycle(_))
        ));
    }

    #[test]
    fn find_in_map_looks_up_mappings() {
        let r = svc().with_mapping("Sizes", json!({"beta": {"Memory": 128}}));
        let v = json!({"Fn::FindInMap": ["Sizes", "beta", "Memory"]});
        assert_eq!(r.resolve_text(&v).unwrap(), "128");
        let missing = json!({"Fn::FindInMap": ["Sizes", "prod", "Memory"]});
        assert!(r.resolve_text(&missing).is_err());
    }

    #[test]
    fn base64_encodes_resolved_text() {
        let v = json!({"Fn::Base64": {"Ref": "ServiceName"}});
        assert_eq!(svc().resolve_str(&v).unwrap(), "VGltZVNlcnZpY2U=");
    }

    #[test]
    fn get_azs_uses_the_region_it_was_given() {
        let r = svc().with_ref("AWS::Region", "eu-west-1");
        assert_eq!(
            r.resolve(&json!({"Fn::Select": [0, {"Fn::GetAZs": ""}]})),
            Some(json!("eu-west-1a"))
        );
    }

    #[test]
    fn resolve_text_stringifies_numbers_and_booleans() {
        assert_eq!(svc().resolve_text(&json!(5)).unwrap(), "5");
        assert_eq!(svc().resolve_text(&json!(true)).unwrap(), "true");
    }

    #[test]
    fn an_unresolved_value_names_the_innermost_unknown_function() {
        let v = json!({"Fn::Join": ["-", [{"Ref": "ServiceName"}, {"Ref": "Nope"}]]});
        assert_eq!(
            svc().resolve_str(&v),
            Err(ResolveError::Unresolved(r#"{"Ref":"Nope"}"#.into()))
        );
    }

    #[test]
    fn to_json_string_renders_resolved_values() {
        let v = json!({"Fn::ToJsonString": {"stage": {"Ref": "ServiceName"}}});
        assert_eq!(svc().resolve_str(&v).unwrap(), r#"{"stage":"TimeService"}"#);
    }

    #[test]
    fn resolve_str_rejects_non_strings() {
        assert_eq!(
            svc().resolve_str(&json!([1])),
            Err(ResolveError::NotAString("[1]".into()))
        );
    }

    #[test]
    fn for_template_uses_defaults_then_overrides_and_splits_lists() {
        let t = Template::from_yaml_str(
            "Parameters:\n  A: {Type: String, Default: x}\n  B: {Type: String, Default: y}\n  L: {Type: CommaDelimitedList, Default: 'p,q'}\n  N: {Type: String}\n",
        )
        .unwrap();
        let r = Resolver::for_template(&t, [("B", "over")]);
        assert_eq!(r.reference("A"), Some(&json!("x")));
        assert_eq!(r.reference("B"), Some(&json!("over")));
        assert_eq!(r.reference("L"), Some(&json!(["p", "q"])));
        assert_eq!(r.reference("N"), None);
    }
}

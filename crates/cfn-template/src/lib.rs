//! Parse CloudFormation and SAM templates (YAML or JSON) into a normalized,
//! typed model.
//!
//! YAML templates may use CloudFormation's short-form intrinsic tags (`!Ref`,
//! `!Sub`, `!GetAtt`, `!If`, `!Join`, ...). Parsing normalizes them to the
//! long JSON form, so `!Ref X` and `{"Ref": "X"}` are the same
//! [`serde_json::Value`], `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`
//! and `!Sub "..."` becomes `{"Fn::Sub": "..."}`.
//!
//! ```
//! use cfn_template::Template;
//!
//! let t = Template::from_yaml_str(r#"
//! Parameters:
//!   ServiceName: {Type: String, Default: TimeService}
//! Resources:
//!   Topic:
//!     Type: AWS::SNS::Topic
//!     Properties:
//!       TopicName: !Sub ${ServiceName}-alerts
//! "#).unwrap();
//!
//! let topic = t.resource("Topic").unwrap();
//! assert_eq!(topic.resource_type(), "AWS::SNS::Topic");
//! assert_eq!(topic.property("TopicName"), Some(&serde_json::json!({"Fn::Sub": "${ServiceName}-alerts"})));
//!
//! // Resolve parameters (defaults, then overrides) in any value.
//! let r = cfn_template::Resolver::for_template(&t, [("ServiceName", "Clock")]);
//! assert_eq!(r.resolve_str(topic.property("TopicName").unwrap()).unwrap(), "Clock-alerts");
//! ```
//!
//! The pieces:
//! - [`Template`]: the whole document, with accessors for its sections
//!   ([`Parameter`], [`Resource`], [`Output`]).
//! - [`Pipeline`]: an `AWS::CodePipeline::Pipeline` resource's stages and
//!   actions in order ([`Stage`], [`Action`]).
//! - [`Resolver`]: evaluates `Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`,
//!   `Fn::Select`, `Fn::Split`, `Fn::If`, `Fn::FindInMap`, `Fn::Base64`,
//!   `Fn::GetAZs`, `Fn::ToJsonString` and the conditions (loops between
//!   them are an error) for the values it knows, leaving everything else
//!   untouched; [`Template::resolved`] applies it to a whole template, and
//!   [`Resolver::resolve_complete`] says what is still unknown. It is the
//!   one evaluator: the local rehearsal resolves its stacks with it.
//! - [`Template::parameter_values`]: defaults, overrides and
//!   `AllowedValues`, checked as CloudFormation checks them
//!   ([`ParameterError`]).

mod normalize;
mod pipeline;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use normalize::yaml_to_json;
pub use pipeline::{Action, ActionCategory, ActionOwner, Pipeline, Stage};
pub use resolve::{ResolveError, Resolver};

/// Everything that can go wrong reading a template.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid YAML (JSON is valid YAML).
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// A `!Tag` that is not a CloudFormation intrinsic function.
    #[error("unknown tag !{0} (not a CloudFormation intrinsic function)")]
    UnknownTag(String),
    /// A YAML mapping key that is not a string, number or boolean.
    #[error("unsupported mapping key {0}")]
    UnsupportedKey(String),
    /// A float that JSON cannot represent (NaN or infinite).
    #[error("unsupported number {0}")]
    UnsupportedNumber(String),
    /// The template, or one of its sections or entries, does not have the
    /// shape CloudFormation requires.
    #[error("{context}: {message}")]
    Shape {
        /// Where (for example `Resources.Pipeline.Properties.Stages[2]`).
        context: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn shape(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Shape {
            context: context.into(),
            message: message.into(),
        }
    }
}

/// Why a template's parameters have no valid set of values, as
/// CloudFormation refuses a deploy for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// An override for a parameter the template does not declare.
    #[error(
        "parameter {0} is not declared in the template's Parameters; remove the override or declare the parameter"
    )]
    Undeclared(String),
    /// A parameter with neither a `Default` nor an override.
    #[error("parameter {0} has no Default and no value was given for it; pass one")]
    Missing(String),
    /// A value outside the parameter's `AllowedValues`.
    #[error("parameter {name} is {value:?}, which is not one of its AllowedValues {allowed:?}")]
    NotAllowed {
        /// The parameter.
        name: String,
        /// The value given (or its default).
        value: String,
        /// Its `AllowedValues`.
        allowed: Vec<String>,
    },
}

/// A parsed CloudFormation or SAM template with intrinsic functions in their
/// long (JSON) form.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Map<String, Value>,
}

impl Template {
    /// Parses a template from YAML (or JSON) text.
    ///
    /// Fails on invalid YAML, on tags that are not intrinsic functions, when
    /// the document is not a mapping, or when `Parameters`, `Resources`,
    /// `Outputs` or `Conditions` is present but not a mapping, or a resource
    /// has no string `Type`.
    pub fn from_yaml_str(text: &str) -> Result<Self, Error> {
        let yaml: serde_norway::Value = serde_norway::from_str(text)?;
        Self::from_json(yaml_to_json(&yaml)?)
    }

    /// Reads and parses a template file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Wraps an already normalized JSON document, checking the same shape
    /// rules as [`Template::from_yaml_str`].
    pub fn from_json(value: Value) -> Result<Self, Error> {
        let Value::Object(root) = value else {
            return Err(Error::shape("template", "the document is not a mapping"));
        };
        for section in [
            "Parameters",
            "Resources",
            "Outputs",
            "Conditions",
            "Mappings",
        ] {
            if let Some(v) = root.get(section)
                && !v.is_object()
            {
                return Err(Error::shape(section, "is not a mapping"));
            }
        }
        let template = Template { root };
        for (id, body) in template.section("Resources") {
            let ok = body
                .as_object()
                .and_then(|b| b.get("Type"))
                .is_some_and(Value::is_string);
            if !ok {
                return Err(Error::shape(
                    format!("Resources.{id}"),
                    "is not a mapping with a string Type",
                ));
            }
        }
        Ok(template)
    }

    /// The whole normalized document.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.root
    }

    /// Consumes the template, returning the normalized document.
    pub fn into_json(self) -> Value {
        Value::Object(self.root)
    }

    /// Renders the normalized template as YAML (long-form intrinsics, which
    /// CloudFormation and SAM accept).
    pub fn to_yaml_string(&self) -> String {
        serde_norway::to_string(&self.root).expect("a JSON value always serializes to YAML")
    }

    /// The `Transform` section as a list (`AWS::Serverless-2016-10-31` for
    /// SAM templates); empty when absent.
    pub fn transforms(&self) -> Vec<&str> {
        match self.root.get("Transform") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the template uses the SAM transform.
    pub fn is_sam(&self) -> bool {
        self.transforms().contains(&"AWS::Serverless-2016-10-31")
    }

    /// The template's `Description`, if it is a plain string.
    pub fn description(&self) -> Option<&str> {
        self.root.get("Description").and_then(Value::as_str)
    }

    /// A top-level section (`Globals`, `Conditions`, `Mappings`, `Metadata`,
    /// ...) as a mapping; an absent or non-mapping section is empty.
    pub fn section(&self, name: &str) -> impl Iterator<Item = (&str, &Value)> {
        self.root
            .get(name)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Every parameter, sorted by name.
    pub fn parameters(&self) -> impl Iterator<Item = Parameter<'_>> {
        self.section("Parameters")
            .map(|(name, body)| Parameter { name, body })
    }

    /// One parameter by name.
    pub fn parameter(&self, name: &str) -> Option<Parameter<'_>> {
        self.parameters().find(|p| p.name == name)
    }

    /// The value of every parameter for a deploy with `overrides`: each
    /// parameter's override, else its `Default` (as text). Fails as
    /// CloudFormation does on an override the template does not declare, a
    /// parameter left without a value, or a value outside `AllowedValues`.
    pub fn parameter_values(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ParameterError> {
        if let Some(unknown) = overrides.keys().find(|k| self.parameter(k).is_none()) {
            return Err(ParameterError::Undeclared(unknown.clone()));
        }
        let mut values = BTreeMap::new();
        for p in self.parameters() {
            let value = overrides
                .get(p.name())
                .cloned()
                .or_else(|| p.default())
                .ok_or_else(|| ParameterError::Missing(p.name().to_string()))?;
            let allowed = p.allowed_values();
            if !allowed.is_empty() && !allowed.contains(&value) {
                return Err(ParameterError::NotAllowed {
                    name: p.name().to_string(),
                    value,
                    allowed,
                });
            }
            values.insert(p.name().to_string(), value);
        }
        Ok(values)
    }

    /// Every resource, sorted by logical id.
    pub fn resources(&self) -> impl Iterator<Item = Resource<'_>> {
        self.section("Resources")
            .map(|(logical_id, body)| Resource { logical_id, body })
    }

    /// One resource by logical id.
    pub fn resource(&self, logical_id: &str) -> Option<Resource<'_>> {
        self.resources().find(|r| r.logical_id == logical_id)
    }

    /// The resources of one type (for example `AWS::Serverless::Function`).
    pub fn resources_of_type<'a>(
        &'a self,
        resource_type: &'a str,
    ) -> impl Iterator<Item = Resource<'a>> + 'a {
        self.resources()
            .filter(move |r| r.resource_type() == resource_type)
    }

    /// Every output, sorted by name.
    pub fn outputs(&self) -> impl Iterator<Item = Output<'_>> {
        self.section("Outputs")
            .map(|(name, body)| Output { name, body })
    }

    /// One output by name.
    pub fn output(&self, name: &str) -> Option<Output<'_>> {
        self.outputs().find(|o| o.name == name)
    }

    /// The `AWS::CodePipeline::Pipeline` resource `logical_id`, parsed.
    ///
    /// The stage list, each stage's `Name` and `Actions`, and each action's
    /// `Name`, `ActionTypeId`, `RunOrder` and artifact names must be literal
    /// (not intrinsic functions); configuration values may be anything. A
    /// template that chooses actions with `Fn::If` parses after
    /// [`Template::resolved`].
    pub fn pipeline(&self, logical_id: &str) -> Result<Pipeline, Error> {
        let resource = self
            .resource(logical_id)
            .ok_or_else(|| Error::shape(format!("Resources.{logical_id}"), "no such resource"))?;
        Pipeline::from_resource(&resource)
    }

    /// The only `AWS::CodePipeline::Pipeline` resource in the template.
    pub fn only_pipeline(&self) -> Result<Pipeline, Error> {
        let ids: Vec<&str> = self
            .resources_of_type(pipeline::PIPELINE_TYPE)
            .map(|r| r.logical_id)
            .collect();
        match ids.as_slice() {
            [id] => self.pipeline(id),
            _ => Err(Error::shape(
                "Resources",
                format!("expected one {}, found {ids:?}", pipeline::PIPELINE_TYPE),
            )),
        }
    }

    /// A copy of the template with every value `resolver` can evaluate
    /// replaced by its result (see [`Resolver::resolve`]). Resources and
    /// outputs whose `Condition` evaluates to false are dropped, as
    /// CloudFormation would not create them.
    pub fn resolved(&self, resolver: &Resolver) -> Template {
        let mut root = Map::new();
        for (key, value) in &self.root {
            let value = match key.as_str() {
                "Resources" | "Outputs" => {
                    let kept = value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(_, body)| {
                            body.get("Condition")
                                .and_then(Value::as_str)
                                .is_none_or(|c| resolver.condition(c) != Ok(false))
                        })
                        .filter_map(|(k, body)| Some((k.clone(), resolver.resolve(body)?)))
                        .collect();
                    Value::Object(kept)
                }
                // Parameters and Conditions describe the inputs: keep them.
                "Parameters" | "Conditions" => value.clone(),
                _ => match resolver.resolve(value) {
                    Some(v) => v,
                    None => continue,
                },
            };
            root.insert(key.clone(), value);
        }
        Template { root }
    }
}

/// A view of one entry of `Parameters`.
#[derive(Debug, Clone, Copy)]
pub struct Parameter<'a> {
    name: &'a str,
    body: &'a Value,
}

impl<'a> Parameter<'a> {
    /// The parameter's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Its `Type` (`String`, `Number`, `CommaDelimitedList`, ...).
    pub fn parameter_type(&self) -> Option<&'a str> {
        self.body.get("Type").and_then(Value::as_str)
    }

    /// Its `Default` as CloudFormation passes it: numbers and booleans as
    /// their text, lists joined with commas.
    pub fn default(&self) -> Option<String> {
        self.body.get("Default").and_then(scalar_text)
    }

    /// Its `AllowedValues`, as text.
    pub fn allowed_values(&self) -> Vec<String> {
        self.body
            .get("AllowedValues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(scalar_text)
            .collect()
    }

    /// Its `Description`.
    pub fn description(&self) -> Option<&'a str> {
        self.body.get("Description").and_then(Value::as_str)
    }

    /// Any other attribute (`AllowedPattern`, `NoEcho`, ...).
    pub fn attribute(&self, name: &str) -> Option<&'a Value> {
        self.body.get(name)
    }
}

/// A view of one entry of `Resources`.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    logical_id: &'a str,
    body: &'a Value,
}

impl<'a> Resource<'a> {
    /// The logical id (the key under `Resources`).
    pub fn logical_id(&self) -> &'a str {
        self.logical_id
    }

    /// The `Type` (checked to be a string when the template was parsed).
    pub fn resource_type(&self) -> &'a str {
        self.body.get("Type").and_then(Value::as_str).unwrap_or("")
    }

    /// The `Properties` mapping (empty when absent).
    pub fn properties(&self) -> &'a Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.body
            .get("Properties")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// One property.
    pub fn property(&self, name: &str) -> Option<&'a Value> {
        self.properties().get(name)
    }

    /// The `Metadata` attribute.
    pub fn metadata(&self) -> Option<&'a Value> {
        self.body.get("Metadata")
    }

    /// `DependsOn` as a list (CloudFormation allows a string or a list).
    pub fn depends_on(&self) -> Vec<&'a str> {
        match self.body.get("DependsOn") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The name of the `Condition` that guards this resource.
    pub fn condition(&self) -> Option<&'a str> {
        self.body.get("Condition").and_then(Value::as_str)
    }

    /// Any other attribute (`DeletionPolicy`, `UpdateReplacePolicy`, ...).
    pub fn attribute(&self, name: &str) -> Option<&'a Value> {
        self.body.get(name)
    }

    /// The whole resource entry.
    pub fn as_json(&self) -> &'a Value {
        self.body
    }
}

/// A view of one entry of `Outputs`.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    name: &'a str,
    body: &'a Value,
}

impl<'a> Output<'a> {
    /// The output's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Its `Value` (often an intrinsic function).
    pub fn value(&self) -> Option<&'a Value> {
        self.body.get("Value")
    }

    /// Its `Description`.
    pub fn description(&self) -> Option<&'a str> {
        self.body.get("Description").and_then(Value::as_str)
    }

    /// Its `Export.Name`.
    pub fn export_name(&self) -> Option<&'a Value> {
        self.body.get("Export").and_then(|e| e.get("Name"))
    }

    /// The name of the `Condition` that guards this output.
    pub fn condition(&self) -> Option<&'a str> {
        self.body.get("Condition").and_then(Value::as_str)
    }
}

/// A scalar as CloudFormation's text form (lists of scalars comma-joined).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => items
            .iter()
            .map(scalar_text)
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.join(",")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SAMPLE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: sample
Parameters:
  ServiceName:
    Type: String
    Default: TimeService
    Description: names everything
  Retries:
    Type: Number
    Default: 2
    AllowedValues: [0, 1, 2]
  Email:
    Type: String
Conditions:
  HasEmail: !Not [!Equals [!Ref Email, ""]]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    DependsOn: Role
    Metadata:
      BuildMethod: rust-cargolambda
    Properties:
      FunctionName: !Sub ${ServiceName}_fn
      Role: !GetAtt Role.Arn
  Role:
    Type: AWS::IAM::Role
    DependsOn: [Topic, Fn2]
  Topic:
    Type: AWS::SNS::Topic
    Condition: HasEmail
Outputs:
  FnName:
    Description: the function
    Value: !Ref Fn
    Export:
      Name: !Sub ${AWS::StackName}-fn
"#;

    fn sample() -> Template {
        Template::from_yaml_str(SAMPLE).unwrap()
    }

    #[test]
    fn reads_transforms_and_description() {
        let t = sample();
        assert_eq!(t.transforms(), vec!["AWS::Serverless-2016-10-31"]);
        assert!(t.is_sam());
        assert_eq!(t.description(), Some("sample"));
    }

    #[test]
    fn parameter_defaults_are_text_like_cloudformation_passes_them() {
        let t = sample();
        assert_eq!(
            t.parameter("ServiceName").unwrap().default().as_deref(),
            Some("TimeService")
        );
        assert_eq!(
            t.parameter("Retries").unwrap().default().as_deref(),
            Some("2")
        );
        assert_eq!(t.parameter("Email").unwrap().default(), None);
        assert_eq!(
            t.parameter("Retries").unwrap().allowed_values(),
            vec!["0", "1", "2"]
        );
        assert_eq!(
            t.parameter("Retries").unwrap().parameter_type(),
            Some("Number")
        );
    }

    #[test]
    fn resources_expose_type_properties_metadata_and_depends_on() {
        let t = sample();
        let f = t.resource("Fn").unwrap();
        assert_eq!(f.resource_type(), "AWS::Serverless::Function");
        assert_eq!(
            f.property("FunctionName"),
            Some(&json!({"Fn::Sub": "${ServiceName}_fn"}))
        );
        assert_eq!(
            f.metadata(),
            Some(&json!({"BuildMethod": "rust-cargolambda"}))
        );
        assert_eq!(f.depends_on(), vec!["Role"]);
        assert_eq!(
            t.resource("Role").unwrap().depends_on(),
            vec!["Topic", "Fn2"]
        );
        assert!(t.resource("Role").unwrap().properties().is_empty());
        assert_eq!(t.resource("Topic").unwrap().condition(), Some("HasEmail"));
    }

    #[test]
    fn resources_of_type_filters_by_type() {
        let t = sample();
        let ids: Vec<_> = t
            .resources_of_type("AWS::IAM::Role")
            .map(|r| r.logical_id())
            .collect();
        assert_eq!(ids, vec!["Role"]);
    }

    #[test]
    fn outputs_expose_value_and_export() {
        let t = sample();
        let o = t.output("FnName").unwrap();
        assert_eq!(o.value(), Some(&json!({"Ref": "Fn"})));
        assert_eq!(o.description(), Some("the function"));
        assert_eq!(
            o.export_name(),
            Some(&json!({"Fn::Sub": "${AWS::StackName}-fn"}))
        );
    }

    #[test]
    fn short_and_long_forms_parse_to_the_same_template() {
        let short = Template::from_yaml_str(
            "Resources:\n  A:\n    Type: X\n    Properties:\n      P: !GetAtt B.Arn\n      Q: !Ref C\n",
        )
        .unwrap();
        let long = Template::from_yaml_str(
            r#"{"Resources": {"A": {"Type": "X", "Properties": {"P": {"Fn::GetAtt": ["B", "Arn"]}, "Q": {"Ref": "C"}}}}}"#,
        )
        .unwrap();
        assert_eq!(short, long);
    }

    #[test]
    fn rejects_a_resource_without_a_type() {
        let err = Template::from_yaml_str("Resources:\n  A:\n    Properties: {}\n").unwrap_err();
        assert!(err.to_string().contains("Resources.A"), "{err}");
    }

    #[test]
    fn rejects_a_document_that_is_not_a_mapping() {
        assert!(matches!(
            Template::from_yaml_str("- a\n- b\n"),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn rejects_a_section_that_is_not_a_mapping() {
        let err = Template::from_yaml_str("Outputs: [a]\n").unwrap_err();
        assert!(err.to_string().starts_with("Outputs"), "{err}");
    }

    #[test]
    fn resolved_drops_resources_whose_condition_is_false() {
        let t = sample();
        let r = Resolver::for_template(&t, [("Email", "")]);
        let resolved = t.resolved(&r);
        assert!(resolved.resource("Topic").is_none());
        assert_eq!(
            resolved.resource("Fn").unwrap().property("FunctionName"),
            Some(&json!("TimeService_fn"))
        );
        let with_email = t.resolved(&Resolver::for_template(&t, [("Email", "a@b.c")]));
        assert!(with_email.resource("Topic").is_some());
    }

    #[test]
    fn yaml_round_trip_keeps_the_template() {
        let t = sample();
        let again = Template::from_yaml_str(&t.to_yaml_string()).unwrap();
        assert_eq!(t, again);
    }

    #[test]
    fn from_path_reports_the_missing_file() {
        let err = Template::from_path("/nonexistent/template.yaml").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/template.yaml"));
    }

    fn two_parameters() -> Template {
        Template::from_yaml_str(
            "Parameters:\n  A: {Type: String, Default: x}\n  Stage: {Type: String, AllowedValues: [beta, prod]}\n",
        )
        .unwrap()
    }

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameter_values_take_defaults_then_overrides() {
        let values = two_parameters()
            .parameter_values(&overrides(&[("Stage", "beta")]))
            .unwrap();
        assert_eq!(values, overrides(&[("A", "x"), ("Stage", "beta")]));
    }

    #[test]
    fn a_parameter_without_default_or_override_is_missing() {
        assert_eq!(
            two_parameters().parameter_values(&BTreeMap::new()),
            Err(ParameterError::Missing("Stage".into()))
        );
    }

    #[test]
    fn an_override_of_an_undeclared_parameter_is_refused() {
        assert_eq!(
            two_parameters().parameter_values(&overrides(&[("Stage", "beta"), ("Z", "1")])),
            Err(ParameterError::Undeclared("Z".into()))
        );
    }

    #[test]
    fn a_value_outside_allowed_values_is_refused() {
        assert!(matches!(
            two_parameters().parameter_values(&overrides(&[("Stage", "dev")])),
            Err(ParameterError::NotAllowed { name, .. }) if name == "Stage"
        ));
    }
}

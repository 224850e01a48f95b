//! A pipeline parameters file (`--parameters-file`, an app directory's
//! `pipeline-parameters.json`): the JSON formats `aws cloudformation deploy
//! --parameter-overrides file://FILE` reads (AWS CLI v2, aws-cli pull
//! request 5443): CloudFormation's
//! `[{"ParameterKey": "K", "ParameterValue": "V"}]`, CodePipeline's
//! template configuration `{"Parameters": {"K": "V"}}`, and `["K=V"]`.
//! So the file a user deploys the pipeline with is the one rehearsed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// The file name an app directory's pipeline parameters have (`--app`).
pub const APP_PARAMETERS_FILE: &str = "pipeline-parameters.json";

/// Reads a parameters file; the error names the file and what is wrong.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read parameters file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("parameters file {}: {e}", path.display()))
}

/// Parses the text of a parameters file.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut parameters = BTreeMap::new();
    let mut insert = |key: &str, value: &Value| -> Result<(), String> {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => return Err(format!("the value of {key} is not a string: {other}")),
        };
        if key.is_empty() {
            return Err("a parameter has an empty name".into());
        }
        if parameters.insert(key.to_string(), value).is_some() {
            return Err(format!("parameter {key} is given twice"));
        }
        Ok(())
    };
    match &value {
        Value::Object(object) => {
            let Some(Value::Object(values)) = object.get("Parameters") else {
                return Err(
                    "an object must hold \"Parameters\": {\"Name\": \"value\"} (CodePipeline's template configuration format)"
                        .into(),
                );
            };
            for (key, value) in values {
                insert(key, value)?;
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(entry) => {
                        let key = entry.get("ParameterKey").and_then(Value::as_str).ok_or(
                            "each entry needs \"ParameterKey\" and \"ParameterValue\" (CloudFormation's format)",
                        )?;
                        let value = entry
                            .get("ParameterValue")
                            .ok_or_else(|| format!("parameter {key} has no \"ParameterValue\""))?;
                        insert(key, value)?;
                    }
                    Value::String(pair) => {
                        let (key, value) = pair
                            .split_once('=')
                            .ok_or_else(|| format!("{pair:?} is not \"Name=value\""))?;
                        insert(key, &Value::from(value))?;
                    }
                    other => return Err(format!("{other} is not a parameter")),
                }
            }
        }
        _ => {
            return Err(
                "expected a list of {\"ParameterKey\", \"ParameterValue\"} or {\"Parameters\": {...}}"
                    .into(),
            );
        }
    }
    Ok(parameters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cloudformation_format_is_read() {
        let text = r#"[{"ParameterKey": "ServiceName", "ParameterValue": "Orders"},
                       {"ParameterKey": "AppDirectory", "ParameterValue": "examples/orders"}]"#;
        assert_eq!(
            parse(text).unwrap(),
            map(&[
                ("ServiceName", "Orders"),
                ("AppDirectory", "examples/orders")
            ])
        );
    }

    #[test]
    fn codepipeline_format_is_read() {
        let text = r#"{"Parameters": {"ServiceName": "Orders", "ProdBakeMinutes": 5}}"#;
        assert_eq!(
            parse(text).unwrap(),
            map(&[("ServiceName", "Orders"), ("ProdBakeMinutes", "5")])
        );
    }

    #[test]
    fn name_value_strings_are_read() {
        assert_eq!(
            parse(r#"["ServiceName=Orders", "ApprovalEmail="]"#).unwrap(),
            map(&[("ServiceName", "Orders"), ("ApprovalEmail", "")])
        );
    }

    #[test]
    fn a_parameter_given_twice_is_an_error_naming_it() {
        let error = parse(r#"["ServiceName=A", "ServiceName=B"]"#).unwrap_err();
        assert!(error.contains("ServiceName is given twice"), "{error}");
    }

    #[test]
    fn an_entry_without_a_value_is_an_error_naming_it() {
        let error = parse(r#"[{"ParameterKey": "ServiceName"}]"#).unwrap_err();
        assert!(
            error.contains("ServiceName has no \"ParameterValue\""),
            "{error}"
        );
    }

    #[test]
    fn other_shapes_are_errors_saying_what_is_expected() {
        assert!(parse("{}").unwrap_err().contains("Parameters"));
        assert!(parse("3").unwrap_err().contains("ParameterKey"));
        assert!(parse("not json").unwrap_err().contains("not JSON"));
        assert!(parse(r#"["nope"]"#).unwrap_err().contains("Name=value"));
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = read(Path::new("/nonexistent/p.json")).unwrap_err();
        assert!(error.contains("/nonexistent/p.json"), "{error}");
    }
}

//! YAML (with CloudFormation short-form tags) to normalized JSON.

use serde_json::{Map, Number, Value};
use serde_norway::Value as Yaml;

use crate::Error;

/// Short-form tags whose long form is `{"Fn::<Tag>": value}`.
const FN_TAGS: &[&str] = &[
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
];

/// Converts a YAML value to JSON, rewriting CloudFormation's short-form
/// intrinsic tags to their long form:
///
/// - `!Ref X` -> `{"Ref": "X"}`, `!Condition C` -> `{"Condition": "C"}`
/// - `!GetAtt A.B.C` -> `{"Fn::GetAtt": ["A", "B.C"]}` (a list stays a list)
/// - `!Sub`, `!Join`, `!If`, ... -> `{"Fn::Sub": ...}`, `{"Fn::Join": ...}`, ...
///
/// Numeric and boolean mapping keys become their text. Unknown tags,
/// other keys, and NaN/infinite floats are errors.
pub fn yaml_to_json(yaml: &Yaml) -> Result<Value, Error> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => number(n)?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => {
            Value::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key(k)?, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = yaml_to_json(&tagged.value)?;
            let (name, value) = match tag {
                "Ref" | "Condition" => (tag.to_string(), inner),
                "GetAtt" => ("Fn::GetAtt".to_string(), get_att(inner)),
                t if FN_TAGS.contains(&t) => (format!("Fn::{t}"), inner),
                other => return Err(Error::UnknownTag(other.to_string())),
            };
            let mut out = Map::new();
            out.insert(name, value);
            Value::Object(out)
        }
    })
}

/// `!GetAtt Res.Attr.Sub` splits at the first dot; the list form is kept.
fn get_att(inner: Value) -> Value {
    match inner {
        Value::String(s) => match s.split_once('.') {
            Some((res, attr)) => Value::Array(vec![res.into(), attr.into()]),
            None => Value::Array(vec![s.into()]),
        },
        other => other,
    }
}

fn number(n: &serde_norway::Number) -> Result<Value, Error> {
    if let Some(i) = n.as_i64() {
        Ok(Value::Number(i.into()))
    } else if let Some(u) = n.as_u64() {
        Ok(Value::Number(u.into()))
    } else {
        n.as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| Error::UnsupportedNumber(n.to_string()))
    }
}

fn key(k: &Yaml) -> Result<String, Error> {
    match k {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        other => Err(Error::UnsupportedKey(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Value, Error> {
        yaml_to_json(&serde_norway::from_str(text).unwrap())
    }

    #[test]
    fn ref_becomes_the_long_form() {
        assert_eq!(parse("!Ref Bucket").unwrap(), json!({"Ref": "Bucket"}));
    }

    #[test]
    fn getatt_string_splits_at_the_first_dot() {
        assert_eq!(
            parse("!GetAtt Stack.Outputs.ApiUrl").unwrap(),
            json!({"Fn::GetAtt": ["Stack", "Outputs.ApiUrl"]})
        );
    }

    #[test]
    fn getatt_list_form_is_kept() {
        assert_eq!(
            parse("!GetAtt [Role, Arn]").unwrap(),
            json!({"Fn::GetAtt": ["Role", "Arn"]})
        );
    }

    #[test]
    fn function_tags_get_the_fn_prefix_and_nest() {
        assert_eq!(
            parse("!If [Cond, !Sub '${A}-b', !Ref AWS::NoValue]").unwrap(),
            json!({"Fn::If": ["Cond", {"Fn::Sub": "${A}-b"}, {"Ref": "AWS::NoValue"}]})
        );
        assert_eq!(
            parse("!Join [',', [a, b]]").unwrap(),
            json!({"Fn::Join": [",", ["a", "b"]]})
        );
    }

    #[test]
    fn condition_tag_stays_a_condition_reference() {
        assert_eq!(
            parse("!And [!Condition A, !Condition B]").unwrap(),
            json!({"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]})
        );
    }

    #[test]
    fn block_mapping_under_a_tag_is_converted() {
        assert_eq!(
            parse("!Sub\n  - '${X}'\n  - X: !Ref Y\n").unwrap(),
            json!({"Fn::Sub": ["${X}", {"X": {"Ref": "Y"}}]})
        );
    }

    #[test]
    fn numbers_booleans_and_numeric_keys_convert() {
        assert_eq!(
            parse("{1: 2, true: 1.5, s: null}").unwrap(),
            json!({"1": 2, "true": 1.5, "s": null})
        );
    }

    #[test]
    fn unknown_tags_are_rejected() {
        assert!(matches!(parse("!Bogus x"), Err(Error::UnknownTag(t)) if t == "Bogus"));
    }

    #[test]
    fn nan_is_rejected() {
        assert!(matches!(parse(".nan"), Err(Error::UnsupportedNumber(_))));
    }
}

//! Typed `UserParameters`.

use serde::de::DeserializeOwned;

use crate::event::json_type;
use crate::report::truncate_chars;

/// The typed form of an action's `UserParameters` JSON string.
pub trait ActionParameters: DeserializeOwned {
    /// A valid example, quoted in every error so the fix is obvious.
    const EXAMPLE: &'static str;
}

/// Why `UserParameters` could not be used. Every variant is a configuration
/// error of the pipeline action (`FailureType::ConfigurationError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error(
        "the action has no UserParameters; set the action's UserParameters to a JSON string like {example}"
    )]
    Missing { example: &'static str },
    #[error("UserParameters is not valid JSON ({detail}); set it to a JSON string like {example}")]
    NotJson {
        detail: String,
        example: &'static str,
    },
    #[error(
        "UserParameters field `{field}`: {detail}; set UserParameters to a JSON string like {example}"
    )]
    Field {
        field: String,
        detail: String,
        example: &'static str,
    },
    #[error("UserParameters: {detail}; set it to a JSON string like {example}")]
    Shape {
        detail: String,
        example: &'static str,
    },
}

/// A parser message (which quotes the value at fault) is cut to this many characters.
const MAX_DETAIL_CHARS: usize = 300;

/// Parses an action's raw `UserParameters` into `T`. Errors name the field at
/// fault (`testStack`, or the missing one) and quote [`ActionParameters::EXAMPLE`].
pub fn parse_user_parameters<T: ActionParameters>(raw: Option<&str>) -> Result<T, ParamsError> {
    let example = T::EXAMPLE;
    let raw = match raw.map(str::trim) {
        None | Some("") => return Err(ParamsError::Missing { example }),
        Some(raw) => raw,
    };
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| ParamsError::NotJson {
        detail: truncate_chars(&e.to_string(), MAX_DETAIL_CHARS).into_owned(),
        example,
    })?;
    if !value.is_object() {
        // serde would accept an array for a struct, filling fields by position.
        return Err(ParamsError::Shape {
            detail: format!("expected a JSON object, found a {}", json_type(&value)),
            example,
        });
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let detail = truncate_chars(&error.into_inner().to_string(), MAX_DETAIL_CHARS).into_owned();
        if path == "." || path.is_empty() {
            ParamsError::Shape { detail, example }
        } else {
            ParamsError::Field {
                field: path,
                detail,
                example,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Params {
        test_stack: String,
        stage: String,
    }

    impl ActionParameters for Params {
        const EXAMPLE: &'static str = r#"{"testStack": "svc-tests", "stage": "beta"}"#;
    }

    fn parse(raw: &str) -> Result<Params, ParamsError> {
        parse_user_parameters(Some(raw))
    }

    #[test]
    fn valid_parameters_parse() {
        assert_eq!(
            parse(r#" {"testStack": "a", "stage": "beta"} "#).unwrap(),
            Params {
                test_stack: "a".into(),
                stage: "beta".into()
            }
        );
    }

    #[test]
    fn absent_parameters_say_what_to_set() {
        let error = parse_user_parameters::<Params>(None).unwrap_err();
        assert!(matches!(error, ParamsError::Missing { .. }));
        assert!(
            error.to_string().contains(r#"{"testStack": "svc-tests""#),
            "{error}"
        );
    }

    #[test]
    fn blank_parameters_count_as_absent() {
        assert!(matches!(
            parse("   ").unwrap_err(),
            ParamsError::Missing { .. }
        ));
    }

    #[test]
    fn non_json_parameters_are_reported_as_not_json() {
        let error = parse("some-input-such-as-a-URL").unwrap_err();
        assert!(matches!(error, ParamsError::NotJson { .. }), "{error:?}");
    }

    #[test]
    fn trailing_text_after_the_object_is_not_json() {
        let error = parse(r#"{"testStack": "a", "stage": "b"} extra"#).unwrap_err();
        assert!(matches!(error, ParamsError::NotJson { .. }), "{error:?}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = parse(r#"{"stage": "beta"}"#).unwrap_err();
        assert!(
            error.to_string().contains("missing field `testStack`"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_typed_field_is_named() {
        let error = parse(r#"{"testStack": 7, "stage": "beta"}"#).unwrap_err();
        match &error {
            ParamsError::Field { field, .. } => assert_eq!(field, "testStack"),
            other => panic!("expected a field error, got {other:?}"),
        }
        assert!(
            error
                .to_string()
                .contains("UserParameters field `testStack`"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        let error = parse(r#"{"testStack": "a", "stage": "b", "stack": "c"}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `stack`"),
            "{error}"
        );
    }

    #[test]
    fn a_json_array_is_the_wrong_shape() {
        let error = parse(r#"["a", "b"]"#).unwrap_err();
        assert!(matches!(error, ParamsError::Shape { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("expected a JSON object, found a array"),
            "{error}"
        );
    }

    #[test]
    fn a_huge_wrong_value_is_not_echoed_in_full() {
        let huge = format!(
            r#"{{"testStack": ["{}"], "stage": "b"}}"#,
            "y".repeat(100_000)
        );
        let error = parse(&huge).unwrap_err();
        assert!(
            error.to_string().len() < 2_000,
            "{} chars",
            error.to_string().len()
        );
    }
}

//! The CodePipeline job event and its job id.

use std::fmt;

use aws_lambda_events::event::codepipeline_job::{
    CodePipelineArtifactCredentials, CodePipelineJobEvent,
};
use serde_json::Value;

/// Job ids CodePipeline issues are UUIDs (36 characters); anything much longer
/// is not a job id and would only flood the logs.
pub const MAX_JOB_ID_CHARS: usize = 128;

/// The id of a CodePipeline job: the handle every report needs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JobId(String);

impl JobId {
    /// Accepts a non-empty id of at most [`MAX_JOB_ID_CHARS`] printable characters.
    pub fn new(id: impl Into<String>) -> Result<Self, &'static str> {
        let id = id.into();
        if id.trim().is_empty() {
            Err("is empty")
        } else if id.chars().count() > MAX_JOB_ID_CHARS {
            Err("is longer than 128 characters")
        } else if id.chars().any(char::is_control) {
            Err("contains control characters")
        } else {
            Ok(Self(id))
        }
    }

    /// Reads and validates a job id field from a JSON object, describing what
    /// is wrong with it when it is unusable.
    /// `path` is how the field is named in the message.
    pub(crate) fn from_field(object: &Value, field: &str, path: &str) -> Result<Self, String> {
        match object.get(field) {
            None | Some(Value::Null) => Err(format!("`{path}` is missing")),
            Some(Value::String(s)) => {
                Self::new(s.as_str()).map_err(|why| format!("`{path}` {why}"))
            }
            Some(other) => Err(format!(
                "`{path}` is a {} instead of a string",
                json_type(other)
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({:?})", self.0)
    }
}

/// A value that must never be printed: `Debug` shows `[redacted]`, there is
/// no `Display`, and [`Secret::expose`] is the only way in.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Never pass it to a log macro or a format string.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A parsed CodePipeline job event.
///
/// `Debug` is safe to print: the temporary artifact credentials sit behind
/// [`Secret`]. The `aws_lambda_events` type it is parsed from derives `Debug`
/// on the credentials, so that type is never kept around.
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub id: JobId,
    pub account_id: Option<String>,
    /// `actionConfiguration.configuration.FunctionName`.
    pub function_name: Option<String>,
    /// `actionConfiguration.configuration.UserParameters`, raw; parse it with
    /// [`crate::parse_user_parameters`].
    pub user_parameters: Option<String>,
    pub continuation_token: Option<String>,
    /// Names of the input artifacts, in order.
    pub input_artifacts: Vec<String>,
    /// Temporary credentials for the pipeline's artifact bucket.
    pub artifact_credentials: Secret<CodePipelineArtifactCredentials>,
}

/// Why an event could not be turned into a [`JobEvent`].
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(
        "the event is not a CodePipeline job event: it has no `CodePipeline.job` object. \
         CodePipeline invokes this function with {{\"CodePipeline.job\": {{\"id\": ..., \"data\": ...}}}}; \
         nothing can be reported for this event"
    )]
    NotAJobEvent,
    #[error(
        "the CodePipeline job event has no usable job id ({problem}); no result can be reported, \
         so the pipeline action will time out. Check what invoked this function with this event"
    )]
    NoJobId { problem: String },
    #[error("the event for job {job_id} does not have the documented shape: {reason}")]
    Malformed { job_id: JobId, reason: String },
}

impl EventError {
    /// The job id, when the event had a usable one (then a failure can be reported).
    pub fn job_id(&self) -> Option<&JobId> {
        match self {
            EventError::Malformed { job_id, .. } => Some(job_id),
            _ => None,
        }
    }
}

impl JobEvent {
    /// Parses a raw Lambda payload. The job id is read first and on its own,
    /// so that an event which is otherwise malformed can still be failed.
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        let job = value
            .get("CodePipeline.job")
            .filter(|job| job.is_object())
            .ok_or(EventError::NotAJobEvent)?;
        let id = JobId::from_field(job, "id", "CodePipeline.job.id")
            .map_err(|problem| EventError::NoJobId { problem })?;

        let event: CodePipelineJobEvent =
            serde_path_to_error::deserialize(value).map_err(|e| EventError::Malformed {
                job_id: id.clone(),
                reason: describe_serde_error(e.path(), e.inner()),
            })?;
        let job = event.code_pipeline_job;
        let data = job.data;
        let configuration = data.action_configuration.configuration;
        Ok(Self {
            id,
            account_id: job.account_id,
            function_name: configuration.function_name,
            user_parameters: configuration.user_parameters,
            continuation_token: data.continuation_token,
            input_artifacts: data
                .input_artifacts
                .into_iter()
                .filter_map(|artifact| artifact.name)
                .collect(),
            artifact_credentials: Secret::new(data.artifact_credentials),
        })
    }

    /// Parses raw payload bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EventError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|_| EventError::NotAJobEvent)?;
        Self::from_value(value)
    }
}

/// Describes a deserialisation error by where it happened, never by the
/// value found there: a wrong-typed credential would otherwise be echoed.
pub(crate) fn describe_serde_error(
    path: &serde_path_to_error::Path,
    error: &serde_json::Error,
) -> String {
    let message = redact_quoted(&error.to_string());
    let path = path.to_string();
    if path == "." || path.is_empty() {
        message
    } else {
        format!("{message} at `{path}`")
    }
}

/// Replaces the content of every double-quoted string in `message` with `…`.
/// serde quotes unexpected string values (`invalid type: string "..."`) and
/// names fields in backticks, so field names survive and values do not.
pub(crate) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(256));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            let mut escaped = false;
            for inner in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if inner == '\\' {
                    escaped = true;
                } else if inner == '"' {
                    break;
                }
            }
            out.push_str("…\"");
        }
    }
    out
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example job event from the AWS documentation ("Example JSON
    /// event" in "Invoke an AWS Lambda function in a pipeline in CodePipeline").
    pub(crate) const DOCUMENTED_EVENT: &str =
        include_str!("../tests/fixtures/documented-job-event.json");

    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SESSION_TOKEN_PREFIX: &str =
        "MIICiTCCAfICCQD6m7oRw0uXOjANBgkqhkiG9w0BAQUFADCBiDELMAkGA1UE";

    fn documented() -> Value {
        serde_json::from_str(DOCUMENTED_EVENT).unwrap()
    }

    #[test]
    fn the_documented_example_event_parses() {
        let event = JobEvent::from_value(documented()).expect("documented event parses");
        assert_eq!(event.id.as_str(), "11111111-abcd-1111-abcd-111111abcdef");
        assert_eq!(event.account_id.as_deref(), Some("111111111111"));
        assert_eq!(
            event.function_name.as_deref(),
            Some("MyLambdaFunctionForAWSCodePipeline")
        );
        assert_eq!(
            event.user_parameters.as_deref(),
            Some("some-input-such-as-a-URL")
        );
        assert_eq!(event.input_artifacts, vec!["ArtifactName".to_string()]);
        assert_eq!(
            event.artifact_credentials.expose().access_key_id.as_deref(),
            Some(ACCESS_KEY)
        );
    }

    #[test]
    fn debug_print_of_a_parsed_event_shows_no_credential() {
        let event = JobEvent::from_value(documented()).unwrap();
        let printed = format!("{event:?} {event:#?}");
        assert!(printed.contains("11111111-abcd-1111-abcd-111111abcdef"));
        assert!(printed.contains("[redacted]"));
        for secret in [SECRET_KEY, ACCESS_KEY, SESSION_TOKEN_PREFIX] {
            assert!(
                !printed.contains(secret),
                "Debug output leaks {secret}: {printed}"
            );
        }
    }

    #[test]
    fn the_upstream_event_type_would_leak_credentials_when_printed() {
        // Why JobEvent exists: the aws_lambda_events type derives Debug on the
        // credentials. If this ever stops being true the wrapper is still harmless.
        let upstream: CodePipelineJobEvent = serde_json::from_value(documented()).unwrap();
        assert!(format!("{upstream:?}").contains(SECRET_KEY));
    }

    #[test]
    fn an_event_without_the_job_object_is_not_a_job_event() {
        let error = JobEvent::from_value(
            json!({"detail-type": "CodePipeline Stage Execution State Change"}),
        )
        .unwrap_err();
        assert!(matches!(error, EventError::NotAJobEvent));
        assert!(error.job_id().is_none());
    }

    #[test]
    fn an_event_without_a_job_id_cannot_be_reported() {
        let mut event = documented();
        event["CodePipeline.job"]
            .as_object_mut()
            .unwrap()
            .remove("id");
        let error = JobEvent::from_value(event).unwrap_err();
        assert!(matches!(error, EventError::NoJobId { .. }));
        assert!(
            error
                .to_string()
                .contains("`CodePipeline.job.id` is missing"),
            "{error}"
        );
    }

    #[test]
    fn a_numeric_job_id_is_named_as_the_problem() {
        let mut event = documented();
        event["CodePipeline.job"]["id"] = json!(42);
        let error = JobEvent::from_value(event).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`CodePipeline.job.id` is a number instead of a string"),
            "{error}"
        );
    }

    #[test]
    fn a_huge_job_id_is_rejected_without_being_echoed() {
        let mut event = documented();
        let huge = "x".repeat(1_000_000);
        event["CodePipeline.job"]["id"] = json!(huge);
        let error = JobEvent::from_value(event).unwrap_err();
        assert!(matches!(error, EventError::NoJobId { .. }));
        assert!(error.to_string().len() < 1_000, "message echoes the id");
    }

    #[test]
    fn an_event_without_data_is_malformed_but_keeps_its_job_id() {
        let mut event = documented();
        event["CodePipeline.job"]
            .as_object_mut()
            .unwrap()
            .remove("data");
        let error = JobEvent::from_value(event).unwrap_err();
        assert_eq!(
            error.job_id().unwrap().as_str(),
            "11111111-abcd-1111-abcd-111111abcdef"
        );
        assert!(
            error.to_string().contains("missing field `data`"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_typed_credential_is_reported_by_path_not_by_value() {
        let mut event = documented();
        event["CodePipeline.job"]["data"]["artifactCredentials"] = json!(SECRET_KEY);
        let error = JobEvent::from_value(event).unwrap_err();
        let message = error.to_string();
        assert!(!message.contains(SECRET_KEY), "{message}");
        assert!(message.contains("artifactCredentials"), "{message}");
    }

    #[test]
    fn an_event_without_user_parameters_parses_with_none() {
        let mut event = documented();
        event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]
            .as_object_mut()
            .unwrap()
            .remove("UserParameters");
        let event = JobEvent::from_value(event).unwrap();
        assert_eq!(event.user_parameters, None);
    }

    #[test]
    fn non_json_bytes_are_not_a_job_event() {
        assert!(matches!(
            JobEvent::from_slice(b"\x00\xffnot json"),
            Err(EventError::NotAJobEvent)
        ));
    }

    #[test]
    fn redact_quoted_keeps_field_names_and_hides_string_values() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "s3cr\"et", expected struct X"#),
            r#"invalid type: string "…", expected struct X"#
        );
        assert_eq!(
            redact_quoted("missing field `data`"),
            "missing field `data`"
        );
    }
}

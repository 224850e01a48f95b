//! The asynchronous hand-off from `start-tests` to `run-tests`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{EventError, JobId, describe_serde_error};

/// Payload `start-tests` sends to `run-tests` with `InvocationType::Event`
/// (`docs/contracts.md`): `{"jobId": ..., "apiUrl": ..., "stage": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRunRequest {
    /// The CodePipeline job `run-tests` reports to.
    pub job_id: String,
    /// The stage's `ApiUrl` stack output (ends with `/`).
    pub api_url: String,
    /// The stage every response's `x-service-stage` must name.
    pub stage: String,
}

impl TestRunRequest {
    /// Parses the payload, reading `jobId` first so that a payload that is
    /// otherwise wrong can still be failed ([`EventError::Malformed`]).
    pub fn from_value(value: Value) -> Result<(JobId, Self), EventError> {
        if !value.is_object() {
            return Err(EventError::NoJobId {
                problem: format!(
                    "the payload is a {} instead of an object",
                    crate::event::json_type(&value)
                ),
            });
        }
        let job_id = JobId::from_field(&value, "jobId", "jobId")
            .map_err(|problem| EventError::NoJobId { problem })?;
        let request: Self =
            serde_path_to_error::deserialize(value).map_err(|e| EventError::Malformed {
                job_id: job_id.clone(),
                reason: describe_serde_error(e.path(), e.inner()),
            })?;
        Ok((job_id, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contract_payload_round_trips() {
        let request = TestRunRequest {
            job_id: "j-1".into(),
            api_url: "https://abc.execute-api.eu-west-1.amazonaws.com/".into(),
            stage: "beta".into(),
        };
        let value = serde_json::to_value(&request).unwrap();
        assert_eq!(
            value,
            json!({"jobId": "j-1", "apiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/", "stage": "beta"})
        );
        let (job_id, parsed) = TestRunRequest::from_value(value).unwrap();
        assert_eq!(job_id.as_str(), "j-1");
        assert_eq!(parsed, request);
    }

    #[test]
    fn a_payload_without_a_job_id_has_nothing_to_report_to() {
        let error = TestRunRequest::from_value(json!({"apiUrl": "http://x/", "stage": "beta"}))
            .unwrap_err();
        assert!(matches!(error, EventError::NoJobId { .. }), "{error:?}");
        assert!(error.to_string().contains("`jobId` is missing"), "{error}");
    }

    #[test]
    fn a_payload_without_the_stage_is_malformed_with_its_job_id() {
        let error =
            TestRunRequest::from_value(json!({"jobId": "j-1", "apiUrl": "http://x/"})).unwrap_err();
        assert_eq!(error.job_id().map(JobId::as_str), Some("j-1"));
        assert!(
            error.to_string().contains("missing field `stage`"),
            "{error}"
        );
    }

    #[test]
    fn a_non_object_payload_has_nothing_to_report_to() {
        let error = TestRunRequest::from_value(json!("jobId")).unwrap_err();
        assert!(matches!(error, EventError::NoJobId { .. }));
    }
}

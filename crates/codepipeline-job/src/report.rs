//! Reporting a job's result to CodePipeline.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_codepipeline::types::{ExecutionDetails, FailureDetails, FailureType};

use crate::event::JobId;

/// `executionDetails.summary` limit of `PutJobSuccessResult`.
pub const MAX_SUMMARY_CHARS: usize = 2048;
/// `failureDetails.message` limit of `PutJobFailureResult`.
pub const MAX_FAILURE_MESSAGE_CHARS: usize = 5000;

const TRUNCATION_MARK: &str = " …[truncated]";

/// Cuts `text` to at most `max` characters, ending in a visible mark when cut.
pub fn truncate_chars(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let mark_chars = TRUNCATION_MARK.chars().count();
            let keep = max.saturating_sub(mark_chars);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            let mut cut = text[..end].to_string();
            if max > mark_chars {
                cut.push_str(TRUNCATION_MARK);
            }
            Cow::Owned(cut)
        }
    }
}

/// How many characters of an outside value (a URL, a stage, a stack output,
/// a field of an answer) any message, summary or log line repeats.
pub const MAX_ECHO_CHARS: usize = 120;

/// An outside value as messages, summaries and logs show it: cut to
/// [`MAX_ECHO_CHARS`] characters, with a visible mark when cut, so that a huge
/// value can never crowd the cause out of a 5000-character failure message
/// or turn a log line into a megabyte.
pub fn echo(value: &str) -> Cow<'_, str> {
    truncate_chars(value, MAX_ECHO_CHARS)
}

/// The combined size of one action's output variables that CodePipeline
/// accepts: "There is a maximum size limit of 122880 bytes for all output
/// variables combined for a particular action" ("Quotas in AWS
/// CodePipeline", Variable quotas, AWS CodePipeline User Guide). Beyond it,
/// `PutJobSuccessResult` answers `OutputVariablesSizeExceededException`.
pub const MAX_OUTPUT_VARIABLES_BYTES: usize = 122_880;

/// The output variables of a successful job (`PutJobSuccessResult`
/// `outputVariables`: "Key-value pairs produced as output by a job worker
/// that can be made available to a downstream action configuration",
/// CodePipeline API Reference). Later actions read them as
/// `#{<namespace>.<name>}`.
///
/// Names are letters, digits, `@`, `-` and `_` (the pattern CodePipeline
/// gives variable names, `PipelineVariableDeclaration`), and all names and
/// values together stay within [`MAX_OUTPUT_VARIABLES_BYTES`]: an insert
/// that would break either is refused, so a report is never rejected for its
/// variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputVariables(BTreeMap<String, String>);

/// Why an output variable was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputVariablesError {
    #[error("output variable name {name:?} is not 1 to 128 letters, digits, '@', '-' or '_'")]
    BadName { name: String },
    #[error(
        "output variable {name} would bring the job's output variables to {bytes} bytes, \
         over CodePipeline's {MAX_OUTPUT_VARIABLES_BYTES}"
    )]
    TooLarge { name: String, bytes: usize },
}

impl OutputVariables {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value` (replacing an earlier value).
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<&mut Self, OutputVariablesError> {
        let name = name.into();
        let value = value.into();
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_'));
        if !valid {
            return Err(OutputVariablesError::BadName { name });
        }
        let without = self.size_bytes() - self.0.get(&name).map_or(0, |v| name.len() + v.len());
        let bytes = without + name.len() + value.len();
        if bytes > MAX_OUTPUT_VARIABLES_BYTES {
            return Err(OutputVariablesError::TooLarge { name, bytes });
        }
        self.0.insert(name, value);
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Names and values together, in bytes (UTF-8).
    pub fn size_bytes(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// A job failure: its CodePipeline type and a message that fits the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureType,
    message: String,
}

impl Failure {
    /// The message is truncated to [`MAX_FAILURE_MESSAGE_CHARS`]; an empty one
    /// (the API needs at least one character) becomes a placeholder.
    pub fn new(kind: FailureType, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = if message.trim().is_empty() {
            "the job failed without a message (this is a bug in the function)".to_string()
        } else {
            truncate_chars(&message, MAX_FAILURE_MESSAGE_CHARS).into_owned()
        };
        Self { kind, message }
    }

    /// The work ran and its checks failed.
    pub fn job_failed(message: impl Into<String>) -> Self {
        Self::new(FailureType::JobFailed, message)
    }

    /// The action is set up wrong: bad parameters, missing stack or output.
    pub fn configuration(message: impl Into<String>) -> Self {
        Self::new(FailureType::ConfigurationError, message)
    }

    /// An AWS call was denied.
    pub fn permission(message: impl Into<String>) -> Self {
        Self::new(FailureType::PermissionError, message)
    }

    /// A dependency did not answer (timeouts, throttling, service errors).
    pub fn system_unavailable(message: impl Into<String>) -> Self {
        Self::new(FailureType::SystemUnavailable, message)
    }

    pub fn kind(&self) -> &FailureType {
        &self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// What CodePipeline made of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The result was recorded.
    Recorded,
    /// The job already had a result (`InvalidJobStateException`): someone
    /// reported first. Harmless, and never retried.
    AlreadyFinished,
}

/// A report CodePipeline did not accept.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "CodePipeline does not know job {job_id} (JobNotFoundException: {message}) while reporting {what}; \
         the event did not come from this pipeline's account and region, or the job id is wrong"
    )]
    JobNotFound {
        job_id: JobId,
        what: &'static str,
        message: String,
    },
    #[error(
        "CodePipeline refused the {what} report for job {job_id} ({code}: {message}); \
         check that the function's role allows codepipeline:PutJobSuccessResult and PutJobFailureResult"
    )]
    Denied {
        job_id: JobId,
        what: &'static str,
        code: String,
        message: String,
    },
    #[error(
        "could not report {what} for job {job_id}: {detail}; the pipeline action will time out \
         unless a later report gets through"
    )]
    Failed {
        job_id: JobId,
        what: &'static str,
        detail: String,
    },
}

/// Reports job results with `PutJobSuccessResult` / `PutJobFailureResult`.
///
/// Uses whatever retry and timeout configuration the client carries (see
/// [`crate::sdk_config_loader`]); an `InvalidJobStateException` (job already
/// finished) is logged and returned as [`Reported::AlreadyFinished`].
#[derive(Clone, Debug)]
pub struct Reporter {
    client: Client,
}

impl Reporter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(config))
    }

    /// Reports success with `summary`, truncated to [`MAX_SUMMARY_CHARS`].
    pub async fn success(&self, job_id: &JobId, summary: &str) -> Result<Reported, ReportError> {
        self.success_with_variables(job_id, summary, &OutputVariables::new())
            .await
    }

    /// Reports success with `summary` (as [`Reporter::success`]) and the
    /// job's output variables; none are sent when `variables` is empty.
    pub async fn success_with_variables(
        &self,
        job_id: &JobId,
        summary: &str,
        variables: &OutputVariables,
    ) -> Result<Reported, ReportError> {
        let summary = if summary.trim().is_empty() {
            "succeeded"
        } else {
            summary
        };
        let summary = truncate_chars(summary, MAX_SUMMARY_CHARS);
        let mut request = self
            .client
            .put_job_success_result()
            .job_id(job_id.as_str())
            .execution_details(
                ExecutionDetails::builder()
                    .summary(summary.as_ref())
                    .build(),
            );
        for (name, value) in variables.iter() {
            request = request.output_variables(name, value);
        }
        let result = request.send().await;
        match result {
            Ok(_) => {
                let names: Vec<&str> = variables.iter().map(|(k, _)| k).collect();
                tracing::info!(
                    job_id = %job_id,
                    summary = %summary,
                    output_variables = %names.join(","),
                    "reported job success to CodePipeline"
                );
                Ok(Reported::Recorded)
            }
            Err(error) => {
                let kind = match error.as_service_error() {
                    Some(e) if e.is_invalid_job_state_exception() => ErrorKind::AlreadyFinished,
                    Some(e) if e.is_job_not_found_exception() => ErrorKind::JobNotFound,
                    _ => ErrorKind::Other,
                };
                classify(job_id, "success", kind, error)
            }
        }
    }

    /// Reports `failure` (already within the API's limits, see [`Failure::new`]).
    pub async fn failure(
        &self,
        job_id: &JobId,
        failure: &Failure,
    ) -> Result<Reported, ReportError> {
        let details = FailureDetails::builder()
            .r#type(failure.kind().clone())
            .message(failure.message())
            .build()
            .expect("type and message are always set");
        let result = self
            .client
            .put_job_failure_result()
            .job_id(job_id.as_str())
            .failure_details(details)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(
                    job_id = %job_id,
                    failure_type = failure.kind().as_str(),
                    message = failure.message(),
                    "reported job failure to CodePipeline"
                );
                Ok(Reported::Recorded)
            }
            Err(error) => {
                let kind = match error.as_service_error() {
                    Some(e) if e.is_invalid_job_state_exception() => ErrorKind::AlreadyFinished,
                    Some(e) if e.is_job_not_found_exception() => ErrorKind::JobNotFound,
                    _ => ErrorKind::Other,
                };
                classify(job_id, "failure", kind, error)
            }
        }
    }
}

/// The modeled errors both report operations share.
enum ErrorKind {
    AlreadyFinished,
    JobNotFound,
    Other,
}

fn classify<E, R>(
    job_id: &JobId,
    what: &'static str,
    kind: ErrorKind,
    error: SdkError<E, R>,
) -> Result<Reported, ReportError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let code = error.code().unwrap_or_default().to_string();
    let message = error.message().unwrap_or_default().to_string();
    let job_id = job_id.clone();
    match (kind, code.as_str()) {
        (ErrorKind::AlreadyFinished, _) => {
            tracing::warn!(
                job_id = %job_id,
                report = what,
                aws_message = %message,
                "job already has a result (InvalidJobStateException); this {what} report was not recorded"
            );
            Ok(Reported::AlreadyFinished)
        }
        (ErrorKind::JobNotFound, _) => Err(ReportError::JobNotFound {
            job_id,
            what,
            message,
        }),
        (
            _,
            "AccessDeniedException"
            | "AccessDenied"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException",
        ) => Err(ReportError::Denied {
            job_id,
            what,
            code,
            message,
        }),
        _ => Err(ReportError::Failed {
            job_id,
            what,
            detail: DisplayErrorContext(&error).to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_codepipeline::operation::put_job_failure_result::{
        PutJobFailureResultError, PutJobFailureResultOutput,
    };
    use aws_sdk_codepipeline::operation::put_job_success_result::{
        PutJobSuccessResultError, PutJobSuccessResultOutput,
    };
    use aws_sdk_codepipeline::types::error::{InvalidJobStateException, JobNotFoundException};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn job() -> JobId {
        JobId::new("11111111-abcd-1111-abcd-111111abcdef").unwrap()
    }

    #[test]
    fn truncation_keeps_short_text() {
        assert_eq!(truncate_chars("abc", 3), "abc");
    }

    #[test]
    fn truncation_cuts_to_the_limit_in_characters_with_a_mark() {
        let text = "é".repeat(6000);
        let cut = truncate_chars(&text, MAX_FAILURE_MESSAGE_CHARS);
        assert_eq!(cut.chars().count(), MAX_FAILURE_MESSAGE_CHARS);
        assert!(cut.ends_with("[truncated]"));
    }

    #[test]
    fn echo_keeps_a_short_value_as_it_is() {
        assert!(matches!(echo("beta"), Cow::Borrowed("beta")));
    }

    #[test]
    fn echo_cuts_a_huge_value_to_the_echo_limit_with_a_mark() {
        let huge = "s".repeat(1_000_000);
        let shown = echo(&huge);
        assert_eq!(shown.chars().count(), MAX_ECHO_CHARS);
        assert!(shown.starts_with("sss") && shown.ends_with("[truncated]"));
    }

    #[test]
    fn a_failure_message_is_cut_to_5000_characters() {
        let failure = Failure::job_failed("x".repeat(20_000));
        assert_eq!(failure.message().chars().count(), 5000);
    }

    #[test]
    fn an_empty_failure_message_gets_a_placeholder() {
        assert!(!Failure::configuration("  ").message().trim().is_empty());
    }

    #[tokio::test]
    async fn success_sends_the_job_id_and_a_summary_within_2048_characters() {
        let rule = mock!(Client::put_job_success_result)
            .match_requests(|req| {
                req.job_id() == Some("11111111-abcd-1111-abcd-111111abcdef")
                    && req
                        .execution_details()
                        .and_then(|d| d.summary())
                        .is_some_and(|s| {
                            s.chars().count() == MAX_SUMMARY_CHARS && s.starts_with("12 checks")
                        })
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let summary = format!("12 checks passed {}", "z".repeat(5000));
        assert_eq!(
            reporter.success(&job(), &summary).await.unwrap(),
            Reported::Recorded
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn success_with_variables_sends_them_and_plain_success_sends_none() {
        let with = mock!(Client::put_job_success_result)
            .match_requests(|req| {
                let vars = req.output_variables();
                vars.is_some_and(|v| {
                    v.len() == 2
                        && v.get("PermissionChanges").map(String::as_str) == Some("true")
                        && v.get("Added").map(String::as_str) == Some("3")
                })
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let without = mock!(Client::put_job_success_result)
            .match_requests(|req| req.output_variables().is_none())
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let reporter = Reporter::new(mock_client!(
            aws_sdk_codepipeline,
            RuleMode::MatchAny,
            [&with, &without]
        ));
        let mut variables = OutputVariables::new();
        variables
            .insert("PermissionChanges", "true")
            .unwrap()
            .insert("Added", "3")
            .unwrap();
        reporter
            .success_with_variables(&job(), "reviewed", &variables)
            .await
            .unwrap();
        reporter.success(&job(), "ok").await.unwrap();
        assert_eq!((with.num_calls(), without.num_calls()), (1, 1));
    }

    #[test]
    fn output_variables_refuse_bad_names_and_stay_within_the_size_limit() {
        let mut variables = OutputVariables::new();
        for bad in ["", "has space", "dot.ted", &"n".repeat(129)] {
            assert!(
                matches!(
                    variables.insert(bad, "v"),
                    Err(OutputVariablesError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        variables.insert("Big", "x".repeat(100_000)).unwrap();
        let error = variables.insert("More", "y".repeat(30_000)).unwrap_err();
        assert!(
            matches!(error, OutputVariablesError::TooLarge { .. }),
            "{error}"
        );
        // Replacing a value counts the new value only.
        variables.insert("Big", "z".repeat(122_877)).unwrap();
        assert_eq!(variables.size_bytes(), MAX_OUTPUT_VARIABLES_BYTES);
        assert_eq!(variables.len(), 1);
    }

    #[tokio::test]
    async fn failure_sends_the_type_and_message() {
        let rule = mock!(Client::put_job_failure_result)
            .match_requests(|req| {
                req.failure_details().is_some_and(|d| {
                    d.r#type() == &FailureType::ConfigurationError
                        && d.message() == "stack x does not exist"
                })
            })
            .then_output(|| PutJobFailureResultOutput::builder().build());
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let failure = Failure::configuration("stack x does not exist");
        assert_eq!(
            reporter.failure(&job(), &failure).await.unwrap(),
            Reported::Recorded
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reporting_a_finished_job_again_is_harmless_and_not_retried() {
        let logs = crate::logging::tests::Captured::default();
        let _guard = logs.install("info");
        let rule = mock!(Client::put_job_success_result).then_error(|| {
            PutJobSuccessResultError::InvalidJobStateException(
                InvalidJobStateException::builder()
                    .message("job is already completed")
                    .build(),
            )
        });
        let reporter = Reporter::new(mock_client!(
            aws_sdk_codepipeline,
            RuleMode::MatchAny,
            [&rule]
        ));
        assert_eq!(
            reporter.success(&job(), "ok").await.unwrap(),
            Reported::AlreadyFinished
        );
        assert_eq!(rule.num_calls(), 1, "not retried");
        let logs = logs.text();
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 1, "logged once: {logs}");
        assert!(
            lines[0].contains("\"level\":\"WARN\"")
                && lines[0].contains("job already has a result")
                && lines[0].contains("11111111-abcd-1111-abcd-111111abcdef"),
            "{logs}"
        );
    }

    #[tokio::test]
    async fn a_failure_report_for_a_finished_job_is_harmless_too() {
        let rule = mock!(Client::put_job_failure_result).then_error(|| {
            PutJobFailureResultError::InvalidJobStateException(
                InvalidJobStateException::builder().build(),
            )
        });
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let outcome = reporter
            .failure(&job(), &Failure::job_failed("x"))
            .await
            .unwrap();
        assert_eq!(outcome, Reported::AlreadyFinished);
    }

    #[tokio::test]
    async fn an_unknown_job_is_an_error_that_names_the_job() {
        let rule = mock!(Client::put_job_failure_result).then_error(|| {
            PutJobFailureResultError::JobNotFoundException(
                JobNotFoundException::builder()
                    .message("no such job")
                    .build(),
            )
        });
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let error = reporter
            .failure(&job(), &Failure::job_failed("x"))
            .await
            .unwrap_err();
        assert!(matches!(error, ReportError::JobNotFound { .. }));
        assert!(
            error
                .to_string()
                .contains("11111111-abcd-1111-abcd-111111abcdef"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_service_error_is_retried_by_the_sdk_then_reported_as_failed() {
        let rule = mock!(Client::put_job_success_result)
            .sequence()
            .http_status(500, None)
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(
                aws_sdk_codepipeline::config::retry::RetryConfig::standard().with_max_attempts(3)
            ));
        let reporter = Reporter::new(client);
        let error = reporter.success(&job(), "ok").await.unwrap_err();
        assert!(matches!(error, ReportError::Failed { .. }), "{error:?}");
        assert_eq!(
            rule.num_calls(),
            3,
            "standard retries: 3 attempts, then give up"
        );
    }

    #[tokio::test]
    async fn an_access_denied_report_says_which_permissions_to_grant() {
        let rule = mock!(Client::put_job_failure_result).then_error(|| {
            PutJobFailureResultError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized")
                    .build(),
            )
        });
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let error = reporter
            .failure(&job(), &Failure::job_failed("x"))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("codepipeline:PutJobSuccessResult"),
            "{error}"
        );
    }
}

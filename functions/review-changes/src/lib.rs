//! `review-changes`: the CodePipeline Lambda action that reviews a
//! CloudFormation change set before a manual approval.
//!
//! CodePipeline invokes it with `UserParameters`
//! `{"stackName": ..., "changeSetName": ...}` (`docs/contracts.md`) after an
//! action created the change set. It reads the change set with
//! `DescribeChangeSet`, every page of it, and reports success with a review:
//! the resources added, modified (replacements flagged) and removed, the
//! permission changes among them (IAM, resource policies such as Lambda
//! permissions, security groups, and properties such as a function's role),
//! and a console link to the change set. The review is the job's summary and
//! its output variables (`PermissionChanges`, `Added`, `Modified`,
//! `Replaced`, `Removed`, `ReviewText`, `ChangeSetUrl`), which the approval
//! and later conditions can reference.
//!
//! A change set CloudFormation marked FAILED because it holds no changes is
//! a review with no changes (success). A missing change set, one that
//! failed for another reason or cannot be executed, and AWS errors are job
//! failures with a message that says what to fix. Every path ends in a
//! report: the work runs under `codepipeline_job`'s guard.

pub mod console;
pub mod review;

use std::time::Duration;

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::types::{ChangeSetStatus, ExecutionStatus};
use codepipeline_job::{
    ActionParameters, Failure, FailureType, JobEvent, Outcome, ParamsError, Reporter, Settlement,
    echo, handle_job_event, parse_user_parameters, work_budget,
};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;

pub use review::{Kind, Replacing, ResourceReview, Review};

/// Name used in logs and failure messages.
pub const COMPONENT: &str = "review-changes";
/// Kept back from the Lambda deadline for the report itself (one report call
/// can take the SDK's whole operation timeout), as in start-tests.
pub const REPORT_RESERVE: Duration = Duration::from_secs(17);
/// The most the work may take even with a generous function timeout.
pub const MAX_WORK: Duration = Duration::from_secs(45);
/// Each AWS call gives up this long before the guard would stop the work,
/// so a call that hangs is reported by name.
pub const STEP_MARGIN: Duration = Duration::from_secs(1);
/// The most `DescribeChangeSet` pages read. A page holds up to 1 MB of
/// changes ("NextToken: If the output exceeds 1 MB, a string that identifies
/// the next page of changes", DescribeChangeSet, AWS CloudFormation API
/// Reference); a stack holds at most 500 resources, so a handful of pages
/// is every change, and more means a service answering the same token
/// forever.
pub const MAX_PAGES: usize = 50;

/// The status reasons of a change set CloudFormation refused to create
/// because it would change nothing. AWS documents neither text; both are what
/// DescribeChangeSet answers for an unchanged stack (the first usually, the
/// second sometimes: ansible-collections/amazon.aws pull request 507, "Fix
/// how CloudFormation stack changes are detected").
pub const NO_CHANGE_REASONS: &[&str] = &[
    "The submitted information didn't contain changes",
    "No updates are to be performed",
];

/// How long the AWS calls may run: until `deadline`, `allowed` after the
/// work started.
#[derive(Debug, Clone, Copy)]
pub struct CallTime {
    pub deadline: tokio::time::Instant,
    pub allowed: Duration,
}

impl CallTime {
    /// The calls' share of the work's `budget`: all of it but the step margin.
    pub fn within(budget: Duration) -> Self {
        let allowed = budget.saturating_sub(STEP_MARGIN.min(budget / 4));
        Self {
            deadline: tokio::time::Instant::now() + allowed,
            allowed,
        }
    }

    fn ran_out(&self) -> String {
        format!(
            "{COMPONENT} ran out of its own time before CloudFormation's DescribeChangeSet answered: \
             its AWS calls had only {:.1} s, what was left of its Lambda time after keeping enough \
             to report this failure. If this repeats, give the function a longer Timeout",
            self.allowed.as_secs_f64()
        )
    }
}

/// The action's `UserParameters`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewParameters {
    /// The stack the change set belongs to (name or ARN).
    pub stack_name: String,
    /// The change set's name (or ARN).
    pub change_set_name: String,
}

impl ActionParameters for ReviewParameters {
    const EXAMPLE: &'static str =
        r#"{"stackName": "TimeService-prod", "changeSetName": "TimeService-prod-review"}"#;
}

impl ReviewParameters {
    /// Parses and validates the raw `UserParameters`.
    pub fn parse(raw: Option<&str>) -> Result<Self, ReviewError> {
        let params: Self = parse_user_parameters(raw)?;
        // CreateChangeSet: StackName "[a-zA-Z][-a-zA-Z0-9]*" (or an ARN),
        // ChangeSetName "[a-zA-Z][-a-zA-Z0-9]*" of at most 128 characters
        // (CreateChangeSet, AWS CloudFormation API Reference).
        let name_ok = |name: &str, max: usize| {
            let mut chars = name.chars();
            name.len() <= max
                && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let arn_ok = |name: &str| {
            name.starts_with("arn:")
                && name.len() <= 1600
                && !name.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if !(name_ok(&params.stack_name, 128) || arn_ok(&params.stack_name)) {
            return Err(ReviewError::InvalidParameter {
                field: "stackName",
                problem: "is not a CloudFormation stack name (a letter, then letters, digits and \
                          hyphens, at most 128 characters) or a stack ARN",
            });
        }
        if !(name_ok(&params.change_set_name, 128) || arn_ok(&params.change_set_name)) {
            return Err(ReviewError::InvalidParameter {
                field: "changeSetName",
                problem: "is not a change set name (a letter, then letters, digits and hyphens, \
                          at most 128 characters) or a change set ARN",
            });
        }
        Ok(params)
    }
}

/// The AWS clients review-changes uses.
#[derive(Clone, Debug)]
pub struct Clients {
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub reporter: Reporter,
}

impl Clients {
    /// Both clients from one configuration (timeouts, standard retries,
    /// `AWS_ENDPOINT_URL`: see [`codepipeline_job::sdk_config_loader`]).
    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Self {
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            reporter: Reporter::from_conf(config),
        }
    }
}

/// Everything that stops a review, each naming the stack, change set or
/// call at fault. [`ReviewError::failure_type`] picks the CodePipeline type.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Parameters(#[from] ParamsError),
    #[error(
        "UserParameters field `{field}` {problem}; set UserParameters to a JSON string like {}",
        ReviewParameters::EXAMPLE
    )]
    InvalidParameter {
        field: &'static str,
        problem: &'static str,
    },
    #[error(
        "change set `{change_set}` of stack `{stack}` does not exist (DescribeChangeSet: {detail}). \
         The action before this review creates it (CloudFormation CHANGE_SET_REPLACE); check that it \
         ran, and that UserParameters names the same stack and change set"
    )]
    ChangeSetNotFound {
        stack: String,
        change_set: String,
        detail: String,
    },
    #[error(
        "DescribeChangeSet rejected change set `{change_set}` of stack `{stack}`: {detail}. Fix \
         `stackName` or `changeSetName` in the action's UserParameters"
    )]
    Rejected {
        stack: String,
        change_set: String,
        detail: String,
    },
    #[error(
        "change set `{change_set}` of stack `{stack}` FAILED: {reason}. Nothing was reviewed; fix \
         the template or its parameters and run the pipeline again"
    )]
    ChangeSetFailed {
        stack: String,
        change_set: String,
        reason: String,
    },
    #[error(
        "change set `{change_set}` of stack `{stack}` is not ready to review (status {status}); \
         the review runs after the change set has been created"
    )]
    NotReady {
        stack: String,
        change_set: String,
        status: String,
    },
    #[error(
        "change set `{change_set}` of stack `{stack}` can no longer be executed (execution status \
         {status}): the stack changed since it was created, or it already ran. Run the pipeline \
         again to review a new one"
    )]
    NotExecutable {
        stack: String,
        change_set: String,
        status: String,
    },
    #[error(
        "DescribeChangeSet for change set `{change_set}` of stack `{stack}` answered more than \
         {MAX_PAGES} pages; the review stops rather than read forever"
    )]
    TooManyPages { stack: String, change_set: String },
    #[error("DescribeChangeSet for change set `{change_set}` of stack `{stack}`: {detail}")]
    OutOfTime {
        stack: String,
        change_set: String,
        detail: String,
    },
    #[error("DescribeChangeSet for change set `{change_set}` of stack `{stack}` failed: {detail}")]
    Describe {
        stack: String,
        change_set: String,
        kind: FailureType,
        detail: String,
    },
    #[error("the review's output variables do not fit CodePipeline's limits: {0}")]
    Variables(#[from] codepipeline_job::OutputVariablesError),
}

impl ReviewError {
    /// The CodePipeline failure this error is reported as.
    pub fn failure_type(&self) -> FailureType {
        match self {
            ReviewError::Parameters(_)
            | ReviewError::InvalidParameter { .. }
            | ReviewError::ChangeSetNotFound { .. }
            | ReviewError::Rejected { .. } => FailureType::ConfigurationError,
            ReviewError::Describe { kind, .. } => kind.clone(),
            ReviewError::ChangeSetFailed { .. }
            | ReviewError::NotReady { .. }
            | ReviewError::NotExecutable { .. }
            | ReviewError::TooManyPages { .. }
            | ReviewError::OutOfTime { .. }
            | ReviewError::Variables(_) => FailureType::JobFailed,
        }
    }

    pub fn failure(&self) -> Failure {
        Failure::new(self.failure_type(), format!("{COMPONENT}: {self}"))
    }
}

/// The Lambda handler: parse the event, review the change set, report.
pub async fn handle(
    clients: &Clients,
    event: LambdaEvent<Value>,
) -> Result<Settlement, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    let budget = work_budget(&context, REPORT_RESERVE, MAX_WORK);
    handle_with_budget(clients, payload, budget).await
}

/// [`handle`] with the work's time budget given.
pub async fn handle_with_budget(
    clients: &Clients,
    payload: Value,
    budget: Duration,
) -> Result<Settlement, lambda_runtime::Error> {
    handle_job_event(&clients.reporter, payload, COMPONENT, budget, |job| {
        run(clients, job, budget)
    })
    .await
}

/// Reviews the change set of `job` within `budget` and says what to report.
pub async fn run(clients: &Clients, job: JobEvent, budget: Duration) -> Outcome {
    let result = async {
        let review = review(clients, &job, CallTime::within(budget)).await?;
        let variables = review.output_variables()?;
        Ok::<_, ReviewError>((review, variables))
    }
    .await;
    match result {
        Ok((review, variables)) => {
            tracing::info!(
                job_id = %job.id,
                stack = %echo(&review.stack),
                change_set = %echo(&review.change_set),
                added = review.added(),
                modified = review.modified(),
                replaced = review.replaced(),
                removed = review.removed(),
                permission_changes = review.permission_changes(),
                "change set reviewed"
            );
            Outcome::SucceededWithVariables {
                summary: review.summary(),
                variables,
            }
        }
        Err(error) => {
            tracing::error!(job_id = %job.id, error = %error, "could not review the change set");
            Outcome::Failed(error.failure())
        }
    }
}

/// The steps, without reporting. Every AWS call gives up at `time.deadline`.
pub async fn review(
    clients: &Clients,
    job: &JobEvent,
    time: CallTime,
) -> Result<Review, ReviewError> {
    let params = ReviewParameters::parse(job.user_parameters.as_deref())?;
    let pages = describe_all(&clients.cloudformation, &params, time).await?;
    let first = &pages[0];
    let stack = first.stack_name().unwrap_or(&params.stack_name).to_string();
    let change_set = first
        .change_set_name()
        .unwrap_or(&params.change_set_name)
        .to_string();
    let url = match (first.stack_id(), first.change_set_id()) {
        (Some(stack_id), Some(change_set_id)) => console::change_set_url(stack_id, change_set_id),
        _ => None,
    };
    let reason = first.status_reason().unwrap_or_default().to_string();
    let status = first.status().cloned();
    match status {
        Some(ChangeSetStatus::CreateComplete) => {}
        Some(ChangeSetStatus::Failed) if NO_CHANGE_REASONS.iter().any(|r| reason.contains(r)) => {
            return Ok(Review {
                stack,
                change_set,
                url,
                resources: Vec::new(),
                no_changes: Some(reason),
            });
        }
        Some(ChangeSetStatus::Failed) => {
            return Err(ReviewError::ChangeSetFailed {
                stack: echo(&stack).into_owned(),
                change_set: echo(&change_set).into_owned(),
                reason: if reason.is_empty() {
                    "CloudFormation gave no reason".to_string()
                } else {
                    // The reason names the resource or parameter at fault:
                    // more room than an echoed value.
                    codepipeline_job::truncate_chars(&reason, 1000).into_owned()
                },
            });
        }
        other => {
            return Err(ReviewError::NotReady {
                stack: echo(&stack).into_owned(),
                change_set: echo(&change_set).into_owned(),
                status: other.map_or("unknown".to_string(), |s| s.as_str().to_string()),
            });
        }
    }
    match first.execution_status() {
        None | Some(ExecutionStatus::Available) => {}
        Some(other) => {
            return Err(ReviewError::NotExecutable {
                stack: echo(&stack).into_owned(),
                change_set: echo(&change_set).into_owned(),
                status: other.as_str().to_string(),
            });
        }
    }
    let resources = pages
        .iter()
        .flat_map(|page| page.changes())
        .filter_map(ResourceReview::from_change)
        .collect();
    Ok(Review {
        stack,
        change_set,
        url,
        resources,
        no_changes: None,
    })
}

/// Every page of `DescribeChangeSet` for the change set, in order.
async fn describe_all(
    cfn: &aws_sdk_cloudformation::Client,
    params: &ReviewParameters,
    time: CallTime,
) -> Result<Vec<DescribeChangeSetOutput>, ReviewError> {
    let stack = || echo(&params.stack_name).into_owned();
    let change_set = || echo(&params.change_set_name).into_owned();
    let mut pages: Vec<DescribeChangeSetOutput> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        if pages.len() == MAX_PAGES {
            return Err(ReviewError::TooManyPages {
                stack: stack(),
                change_set: change_set(),
            });
        }
        let call = cfn
            .describe_change_set()
            .stack_name(&params.stack_name)
            .change_set_name(&params.change_set_name)
            .set_next_token(token.clone())
            .send();
        let Ok(result) = tokio::time::timeout_at(time.deadline, call).await else {
            return Err(ReviewError::OutOfTime {
                stack: stack(),
                change_set: change_set(),
                detail: time.ran_out(),
            });
        };
        let page = match result {
            Ok(page) => page,
            Err(error) => {
                let detail = describe_sdk_error(&error);
                let not_found = error
                    .as_service_error()
                    .is_some_and(|e| e.is_change_set_not_found_exception());
                // DescribeChangeSet names a missing stack in a ValidationError.
                let missing_stack = error.code() == Some("ValidationError")
                    && error
                        .message()
                        .is_some_and(|m| m.contains("does not exist"));
                return Err(if not_found || missing_stack {
                    ReviewError::ChangeSetNotFound {
                        stack: stack(),
                        change_set: change_set(),
                        detail,
                    }
                } else if error.code() == Some("ValidationError") {
                    ReviewError::Rejected {
                        stack: stack(),
                        change_set: change_set(),
                        detail,
                    }
                } else {
                    ReviewError::Describe {
                        stack: stack(),
                        change_set: change_set(),
                        kind: sdk_failure_type(&error),
                        detail,
                    }
                });
            }
        };
        let next = page
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        pages.push(page);
        match next {
            Some(next) if Some(&next) != token.as_ref() => token = Some(next),
            Some(_) => {
                return Err(ReviewError::TooManyPages {
                    stack: stack(),
                    change_set: change_set(),
                });
            }
            None => return Ok(pages),
        }
    }
}

/// Denied calls are permission errors; calls that never got an answer
/// (timeouts, connection failures, throttling, 5xx) mean AWS was
/// unavailable; anything else failed the job.
fn sdk_failure_type<E>(error: &SdkError<E, HttpResponse>) -> FailureType
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureType::SystemUnavailable
        }
        SdkError::ServiceError(service) => match error.code() {
            Some(code) if code.starts_with("AccessDenied") || code == "UnauthorizedOperation" => {
                FailureType::PermissionError
            }
            _ if service.raw().status().is_server_error() => FailureType::SystemUnavailable,
            Some(
                "Throttling" | "ThrottlingException" | "ServiceUnavailable" | "InternalFailure",
            ) => FailureType::SystemUnavailable,
            _ => FailureType::JobFailed,
        },
        _ => FailureType::JobFailed,
    }
}

fn describe_sdk_error<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                // Modeled errors keep their message outside the metadata;
                // their Display reads "Name: message".
                _ => err.to_string(),
            }
        }
        SdkError::TimeoutError(_) => format!(
            "no answer within the SDK's timeouts ({} s per attempt, {} s in all, with standard retries)",
            codepipeline_job::ATTEMPT_TIMEOUT.as_secs(),
            codepipeline_job::OPERATION_TIMEOUT.as_secs()
        ),
        other => DisplayErrorContext(other).to_string(),
    };
    codepipeline_job::truncate_chars(&text, 1000).into_owned()
}

#[cfg(test)]
mod tests;

//! Running a job so that every path ends in a report.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;

use crate::event::{EventError, JobEvent, JobId};
use crate::report::{Failure, OutputVariables, ReportError, Reported, Reporter};

/// What a job's work decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Report success with this execution summary.
    Succeeded { summary: String },
    /// Report success with this execution summary and these output
    /// variables (for later actions' configuration and conditions).
    SucceededWithVariables {
        summary: String,
        variables: OutputVariables,
    },
    /// Report this failure.
    Failed(Failure),
    /// Report nothing: the job was handed to `to`, which reports it.
    HandedOff { to: String },
}

/// What happened to a job, returned as the Lambda function's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settlement {
    pub job_id: String,
    pub result: SettlementKind,
    /// The summary, failure message or hand-off target.
    pub detail: String,
    /// True when CodePipeline already had a result for the job.
    pub already_finished: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettlementKind {
    Succeeded,
    Failed,
    HandedOff,
}

/// How long the work may take: the time left before the Lambda deadline minus
/// `reserve` (kept for the report itself), at most `cap`. When that leaves
/// the work less than half of the time left, the work gets half and the
/// report the other half: a report takes milliseconds unless CodePipeline is
/// slow, so with little time left the work must still be tried rather than
/// failed unstarted. A context without a deadline (tests, local runs) gets
/// `cap`; one already past its deadline gets nothing.
pub fn work_budget(
    context: &lambda_runtime::Context,
    reserve: Duration,
    cap: Duration,
) -> Duration {
    if context.deadline == 0 {
        return cap;
    }
    let left = context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    left.saturating_sub(reserve).max(left / 2).min(cap)
}

/// Test hook, read by [`run_guarded`]: when this environment variable is set
/// to the running component's name (`run-tests`, `start-tests`), the work
/// panics inside the guard before it starts. It exists so that a test can
/// prove that the binary as shipped (release profile, built by cargo-lambda)
/// unwinds and reports a panic instead of aborting. No template sets it, and
/// any other value (`1`, `true`) does nothing.
pub const PANIC_HOOK_ENV: &str = "CODEPIPELINE_JOB_TEST_PANIC";

/// Runs `work` for `job_id` and reports its [`Outcome`]. A panic inside the
/// work, or work still running after `budget`, is reported as a failure too.
///
/// Returns the settlement, or the error of a report CodePipeline did not
/// accept (already logged).
pub async fn run_guarded<W>(
    reporter: &Reporter,
    job_id: &JobId,
    component: &str,
    budget: Duration,
    work: W,
) -> Result<Settlement, ReportError>
where
    W: Future<Output = Outcome>,
{
    let work = async {
        if std::env::var_os(PANIC_HOOK_ENV).is_some_and(|asked| asked == component) {
            panic!("{PANIC_HOOK_ENV}={component} asked for this panic (test hook)");
        }
        work.await
    };
    let outcome = match tokio::time::timeout(budget, AssertUnwindSafe(work).catch_unwind()).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => {
            let why = panic_message(panic.as_ref());
            tracing::error!(job_id = %job_id, panic = %why, "{component} panicked; reporting the job as failed");
            Outcome::Failed(Failure::job_failed(format!(
                "{component} crashed (panic: {why}). This is a bug in {component}; its CloudWatch logs have the details"
            )))
        }
        Err(_elapsed) => {
            tracing::error!(job_id = %job_id, ?budget, "{component} ran out of time; reporting the job as failed");
            Outcome::Failed(Failure::job_failed(format!(
                "{component} did not finish within {:.1} s and was stopped so that this report could be sent",
                budget.as_secs_f64()
            )))
        }
    };
    settle(reporter, job_id, outcome).await
}

async fn settle(
    reporter: &Reporter,
    job_id: &JobId,
    outcome: Outcome,
) -> Result<Settlement, ReportError> {
    let (result, detail, reported) = match outcome {
        Outcome::Succeeded { summary } => {
            let reported = reporter.success(job_id, &summary).await;
            (SettlementKind::Succeeded, summary, reported)
        }
        Outcome::SucceededWithVariables { summary, variables } => {
            let reported = reporter
                .success_with_variables(job_id, &summary, &variables)
                .await;
            (SettlementKind::Succeeded, summary, reported)
        }
        Outcome::Failed(failure) => {
            let reported = reporter.failure(job_id, &failure).await;
            (SettlementKind::Failed, failure.to_string(), reported)
        }
        Outcome::HandedOff { to } => {
            tracing::info!(job_id = %job_id, handed_to = %to, "job handed off; {to} reports its result");
            (SettlementKind::HandedOff, to, Ok(Reported::Recorded))
        }
    };
    match reported {
        Ok(reported) => Ok(Settlement {
            job_id: job_id.to_string(),
            result,
            detail,
            already_finished: reported == Reported::AlreadyFinished,
        }),
        Err(error) => {
            tracing::error!(job_id = %job_id, error = %error, "could not report the job's result");
            Err(error)
        }
    }
}

/// The whole life of a CodePipeline-invoked function's event: parse it,
/// report a malformed event with a known job id as a configuration error, log
/// an event without one, and otherwise run `work` under [`run_guarded`].
pub async fn handle_job_event<F, W>(
    reporter: &Reporter,
    payload: Value,
    component: &str,
    budget: Duration,
    work: F,
) -> Result<Settlement, lambda_runtime::Error>
where
    F: FnOnce(JobEvent) -> W,
    W: Future<Output = Outcome>,
{
    match JobEvent::from_value(payload) {
        Ok(job) => {
            let job_id = job.id.clone();
            tracing::info!(job_id = %job_id, "received CodePipeline job");
            // Call `work` inside the guarded future so that a panic while
            // building the future is caught like one while running it.
            let guarded = async move { work(job).await };
            Ok(run_guarded(reporter, &job_id, component, budget, guarded).await?)
        }
        Err(EventError::Malformed { job_id, reason }) => {
            tracing::error!(job_id = %job_id, reason = %reason, "malformed CodePipeline job event");
            let failure = Failure::configuration(format!(
                "{component} received a CodePipeline job event it cannot read: {reason}"
            ));
            Ok(settle(reporter, &job_id, Outcome::Failed(failure)).await?)
        }
        Err(error) => {
            tracing::error!(error = %error, "event ignored: no CodePipeline job to report to");
            Err(error.into())
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    };
    crate::report::truncate_chars(&text, 1000).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_codepipeline::Client;
    use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
    use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
    use aws_sdk_codepipeline::types::FailureType;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::json;

    const JOB: &str = "11111111-abcd-1111-abcd-111111abcdef";

    fn job() -> JobId {
        JobId::new(JOB).unwrap()
    }

    fn failure_rule(
        expected_type: FailureType,
        message_contains: &'static str,
    ) -> aws_smithy_mocks::Rule {
        mock!(Client::put_job_failure_result)
            .match_requests(move |req| {
                req.job_id() == Some(JOB)
                    && req.failure_details().is_some_and(|d| {
                        d.r#type() == &expected_type && d.message().contains(message_contains)
                    })
            })
            .then_output(|| PutJobFailureResultOutput::builder().build())
    }

    fn documented_event() -> Value {
        serde_json::from_str(include_str!("../tests/fixtures/documented-job-event.json")).unwrap()
    }

    #[tokio::test]
    async fn success_is_reported_with_its_summary() {
        let rule = mock!(Client::put_job_success_result)
            .match_requests(|req| {
                req.execution_details().and_then(|d| d.summary()) == Some("3 checks passed")
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let settled = run_guarded(
            &reporter,
            &job(),
            "run-tests",
            Duration::from_secs(5),
            async {
                Outcome::Succeeded {
                    summary: "3 checks passed".into(),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(settled.result, SettlementKind::Succeeded);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn success_with_variables_is_reported_with_them() {
        let rule = mock!(Client::put_job_success_result)
            .match_requests(|req| {
                req.execution_details().and_then(|d| d.summary()) == Some("2 changes")
                    && req
                        .output_variables()
                        .and_then(|v| v.get("Removed"))
                        .map(String::as_str)
                        == Some("1")
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let mut variables = OutputVariables::new();
        variables.insert("Removed", "1").unwrap();
        let settled = run_guarded(
            &reporter,
            &job(),
            "review-changes",
            Duration::from_secs(5),
            async {
                Outcome::SucceededWithVariables {
                    summary: "2 changes".into(),
                    variables,
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(settled.result, SettlementKind::Succeeded);
        assert_eq!(settled.detail, "2 changes");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_reported_as_a_job_failure() {
        let rule = failure_rule(
            FailureType::JobFailed,
            "run-tests crashed (panic: boom at step 2)",
        );
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let settled = run_guarded(
            &reporter,
            &job(),
            "run-tests",
            Duration::from_secs(5),
            async {
                let step = 2;
                if step == 2 {
                    panic!("boom at step {step}");
                }
                Outcome::Succeeded {
                    summary: "unreachable".into(),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(settled.result, SettlementKind::Failed);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn work_that_outlives_its_budget_is_reported_as_a_job_failure() {
        let rule = failure_rule(FailureType::JobFailed, "did not finish within 0.2 s");
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let started = std::time::Instant::now();
        let settled = run_guarded(
            &reporter,
            &job(),
            "start-tests",
            Duration::from_millis(200),
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Outcome::Succeeded {
                    summary: "too late".into(),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(settled.result, SettlementKind::Failed);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_hand_off_reports_nothing() {
        // No rules: any CodePipeline call would fail the test's expectations.
        let rule = mock!(Client::put_job_success_result)
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let failure = mock!(Client::put_job_failure_result)
            .then_output(|| PutJobFailureResultOutput::builder().build());
        let reporter = Reporter::new(mock_client!(
            aws_sdk_codepipeline,
            RuleMode::MatchAny,
            [&rule, &failure]
        ));
        let settled = run_guarded(
            &reporter,
            &job(),
            "start-tests",
            Duration::from_secs(5),
            async {
                Outcome::HandedOff {
                    to: "svc-tests-RunTests".into(),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(settled.result, SettlementKind::HandedOff);
        assert_eq!(rule.num_calls() + failure.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_malformed_event_with_a_job_id_is_reported_as_a_configuration_error() {
        let rule = failure_rule(
            FailureType::ConfigurationError,
            "missing field `artifactCredentials`",
        );
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let mut event = documented_event();
        event["CodePipeline.job"]["data"]
            .as_object_mut()
            .unwrap()
            .remove("artifactCredentials");
        let settled = handle_job_event(
            &reporter,
            event,
            "start-tests",
            Duration::from_secs(5),
            |_| async {
                Outcome::Succeeded {
                    summary: "must not run".into(),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(settled.result, SettlementKind::Failed);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_event_without_a_job_id_is_an_error_and_reports_nothing() {
        let logs = crate::logging::tests::Captured::default();
        let _guard = logs.install("info");
        let rule = mock!(Client::put_job_failure_result)
            .then_output(|| PutJobFailureResultOutput::builder().build());
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let error = handle_job_event(
            &reporter,
            json!({"CodePipeline.job": {}}),
            "start-tests",
            Duration::from_secs(5),
            |_| async {
                Outcome::Succeeded {
                    summary: "must not run".into(),
                }
            },
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("no usable job id"), "{error}");
        assert_eq!(rule.num_calls(), 0);
        let logs = logs.text();
        assert!(
            logs.contains("\"level\":\"ERROR\"")
                && logs.contains("`CodePipeline.job.id` is missing"),
            "no clear error logged: {logs}"
        );
    }

    #[tokio::test]
    async fn a_panic_while_starting_the_work_is_reported_too() {
        let rule = failure_rule(FailureType::JobFailed, "panic: bad setup");
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let settled = handle_job_event(
            &reporter,
            documented_event(),
            "start-tests",
            Duration::from_secs(5),
            |job| {
                if job.id.as_str() == JOB {
                    panic!("bad setup");
                }
                async {
                    Outcome::Succeeded {
                        summary: "unreachable".into(),
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(settled.result, SettlementKind::Failed);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_report_codepipeline_refuses_is_returned_as_an_error() {
        let rule = mock!(Client::put_job_failure_result).then_error(|| {
            aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultError::JobNotFoundException(
                aws_sdk_codepipeline::types::error::JobNotFoundException::builder().build(),
            )
        });
        let reporter = Reporter::new(mock_client!(aws_sdk_codepipeline, [&rule]));
        let result = run_guarded(
            &reporter,
            &job(),
            "run-tests",
            Duration::from_secs(5),
            async { Outcome::Failed(Failure::job_failed("x")) },
        )
        .await;
        assert!(matches!(result, Err(ReportError::JobNotFound { .. })));
    }

    #[test]
    fn the_budget_without_a_lambda_deadline_is_the_cap() {
        let context = lambda_runtime::Context::default();
        assert_eq!(
            work_budget(&context, Duration::from_secs(5), Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }

    fn context_with(left: Duration) -> lambda_runtime::Context {
        let mut context = lambda_runtime::Context::default();
        context.deadline = (SystemTime::now() + left)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        context
    }

    #[test]
    fn the_budget_leaves_the_reserve_before_the_lambda_deadline() {
        let context = context_with(Duration::from_secs(30));
        let budget = work_budget(&context, Duration::from_secs(5), Duration::from_secs(60));
        assert!(
            budget <= Duration::from_secs(25) && budget > Duration::from_secs(23),
            "{budget:?}"
        );
    }

    #[test]
    fn the_budget_is_capped() {
        let context = context_with(Duration::from_secs(900));
        assert_eq!(
            work_budget(&context, Duration::from_secs(17), Duration::from_secs(45)),
            Duration::from_secs(45)
        );
    }

    #[test]
    fn with_little_time_left_the_work_still_gets_half_of_it() {
        let context = context_with(Duration::from_secs(18));
        let budget = work_budget(&context, Duration::from_secs(17), Duration::from_secs(45));
        assert!(
            budget <= Duration::from_secs(9) && budget > Duration::from_millis(8500),
            "{budget:?}"
        );
    }

    #[test]
    fn a_context_past_its_deadline_leaves_no_time_for_work() {
        let context = context_with(Duration::ZERO);
        assert_eq!(
            work_budget(&context, Duration::from_secs(5), Duration::from_secs(60)),
            Duration::ZERO
        );
    }
}

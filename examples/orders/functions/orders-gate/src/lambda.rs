//! orders-gate on Lambda: run the suite for a CodePipeline job and report.

use std::time::Duration;

use codepipeline_job::{
    EventError, Failure, Outcome, Reporter, Settlement, TestRunRequest, echo, run_guarded,
    work_budget,
};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::suite::{SuiteConfig, SuiteReport, run_suite};

/// Name used in logs and failure messages.
pub const COMPONENT: &str = "orders-gate";
/// Kept back from the Lambda deadline for the report itself (one report call
/// can take the SDK's whole operation timeout, 15 s).
pub const REPORT_RESERVE: Duration = Duration::from_secs(17);
/// The suite's deadline on Lambda: the worker gets up to 20 s of it
/// ([`crate::suite::DEFAULT_PROCESSING_TIMEOUT`]). test-sam.yaml gives the
/// function 90 s, so the suite, the guard (up to 60 s) and the report fit.
pub const LAMBDA_SUITE_DEADLINE: Duration = Duration::from_secs(45);
/// The most the guarded work may take.
pub const MAX_WORK: Duration = Duration::from_secs(60);
/// The suite's deadline is this much shorter than the guard's budget, so the
/// suite's own report (which checks did not finish) wins over the guard's.
const SUITE_MARGIN: Duration = Duration::from_secs(2);

/// The Lambda handler.
pub async fn handle(
    reporter: &Reporter,
    event: LambdaEvent<Value>,
) -> Result<Settlement, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    let budget = work_budget(&context, REPORT_RESERVE, MAX_WORK);
    handle_payload(reporter, payload, budget, |config| config).await
}

/// Parses the hand-off payload, runs the suite within `budget` and reports
/// (every path ends in exactly one report, through `run_guarded`). `tune`
/// adjusts the suite configuration (tests shorten timeouts).
pub async fn handle_payload(
    reporter: &Reporter,
    payload: Value,
    budget: Duration,
    tune: impl FnOnce(SuiteConfig) -> SuiteConfig,
) -> Result<Settlement, lambda_runtime::Error> {
    let (job_id, request) = match TestRunRequest::from_value(payload) {
        Ok(parsed) => parsed,
        Err(EventError::Malformed { job_id, reason }) => {
            tracing::error!(job_id = %job_id, reason = %reason, "malformed orders-gate payload");
            let failure = Failure::configuration(format!(
                "{COMPONENT} received a payload it cannot read: {reason}; start-tests sends \
                 {{\"jobId\", \"apiUrl\", \"stage\"}}"
            ));
            let outcome = async move { Outcome::Failed(failure) };
            return Ok(run_guarded(reporter, &job_id, COMPONENT, budget, outcome).await?);
        }
        Err(error) => {
            tracing::error!(error = %error, "payload ignored: no CodePipeline job to report to");
            return Err(error.into());
        }
    };
    tracing::info!(
        job_id = %job_id,
        api_url = %echo(&request.api_url),
        stage = %echo(&request.stage),
        "running the Orders suite"
    );
    let job = job_id.clone();
    let work = async move {
        let config = match SuiteConfig::new(&request.api_url, &request.stage) {
            Ok(config) => config,
            Err(error) => {
                return Outcome::Failed(Failure::configuration(format!("{COMPONENT}: {error}")));
            }
        };
        let deadline = LAMBDA_SUITE_DEADLINE
            .min(budget.saturating_sub(SUITE_MARGIN))
            .max(Duration::from_millis(500));
        let report = run_suite(&tune(config.with_deadline(deadline))).await;
        for result in &report.results {
            tracing::info!(job_id = %job, passed = result.passed(), "{result}");
        }
        outcome(&report)
    };
    Ok(run_guarded(reporter, &job_id, COMPONENT, budget, work).await?)
}

/// What to report for a suite's results.
pub fn outcome(report: &SuiteReport) -> Outcome {
    if report.passed() {
        Outcome::SucceededWithVariables {
            summary: report.success_summary(),
            variables: report.output_variables(),
        }
    } else {
        Outcome::Failed(Failure::job_failed(report.failure_message()))
    }
}

//! run-tests on Lambda: run the suite for a CodePipeline job and report
//! (the shell is [`codepipeline_job::gate`]'s).

use std::time::Duration;

use codepipeline_job::gate::Gate;
use codepipeline_job::{Reporter, Settlement, TestRunRequest};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::suite::{ConfigError, SuiteConfig, run_suite};

/// This gate: its name and time limits. test-sam.yaml gives the function
/// 90 s, so the suite (30 s), the guard (up to 60 s) and the report all fit.
pub const GATE: Gate = Gate {
    component: "run-tests",
    suite_name: "the suite",
    report_reserve: Duration::from_secs(17),
    suite_deadline: Duration::from_secs(30),
    max_work: Duration::from_secs(60),
};

/// The Lambda handler.
pub async fn handle(
    reporter: &Reporter,
    event: LambdaEvent<Value>,
) -> Result<Settlement, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    handle_payload(reporter, payload, GATE.budget(&context), |config| config).await
}

/// Parses the hand-off payload, runs the suite within `budget` and reports.
/// `tune` adjusts the suite configuration (tests shorten timeouts).
pub async fn handle_payload(
    reporter: &Reporter,
    payload: Value,
    budget: Duration,
    tune: impl FnOnce(SuiteConfig) -> SuiteConfig,
) -> Result<Settlement, lambda_runtime::Error> {
    let suite = async move |request: TestRunRequest, deadline| {
        let config = SuiteConfig::new(&request.api_url, &request.stage)?;
        Ok::<_, ConfigError>(run_suite(&tune(config.with_deadline(deadline))).await)
    };
    GATE.handle_payload(reporter, payload, budget, suite).await
}

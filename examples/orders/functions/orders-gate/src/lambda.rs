//! orders-gate on Lambda: run the suite for a CodePipeline job and report.
//! The shell (payload, budget, guard, report) is the shared
//! [`codepipeline_job::gate`]; this file names the gate and its suite.

use std::time::Duration;

use codepipeline_job::gate::Gate;
use codepipeline_job::{Reporter, Settlement, TestRunRequest};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::suite::{ConfigError, SuiteConfig, run_suite};

/// This gate: its name and time limits. The suite's 45 s give the worker up
/// to 20 s ([`crate::suite::DEFAULT_PROCESSING_TIMEOUT`]); test-sam.yaml
/// gives the function 90 s, so the suite, the guard (up to 60 s) and the
/// report fit.
pub const GATE: Gate = Gate {
    component: "orders-gate",
    suite_name: "the Orders suite",
    report_reserve: Duration::from_secs(17),
    suite_deadline: Duration::from_secs(45),
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

/// Parses the hand-off payload, runs the suite within `budget` and reports
/// (every path ends in exactly one report). `tune` adjusts the suite
/// configuration (tests shorten timeouts).
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

//! run-tests' Lambda handler: the suite's result reaches CodePipeline
//! (mocked) as a success or a failure, and bad payloads are handled.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
use aws_sdk_codepipeline::types::FailureType;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use codepipeline_job::{Reporter, SettlementKind};
use common::*;
use run_tests::lambda::handle_payload;
use serde_json::json;

const JOB: &str = "22222222-abcd-2222-abcd-222222abcdef";
const BUDGET: Duration = Duration::from_secs(8);

fn success_rule(starts_with: &'static str) -> Rule {
    mock!(Client::put_job_success_result)
        .match_requests(move |req| {
            req.job_id() == Some(JOB)
                && req
                    .execution_details()
                    .and_then(|d| d.summary())
                    .is_some_and(|s| s.starts_with(starts_with) && s.chars().count() <= 2048)
        })
        .then_output(|| PutJobSuccessResultOutput::builder().build())
}

fn failure_rule(kind: FailureType, contains: &'static [&'static str]) -> Rule {
    mock!(Client::put_job_failure_result)
        .match_requests(move |req| {
            req.job_id() == Some(JOB)
                && req.failure_details().is_some_and(|d| {
                    d.r#type() == &kind && contains.iter().all(|c| d.message().contains(c))
                })
        })
        .then_output(|| PutJobFailureResultOutput::builder().build())
}

fn reporter(rules: &[&Rule]) -> Reporter {
    Reporter::new(mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        rules
    ))
}

fn fast(config: run_tests::SuiteConfig) -> run_tests::SuiteConfig {
    config.with_request_timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn a_passing_suite_is_reported_as_success_with_a_summary() {
    let url = serve(time_service("beta")).await;
    let success = success_rule("all 10 checks passed against http://127.0.0.1:");
    let reporter = reporter(&[&success]);

    let settled = handle_payload(
        &reporter,
        json!({"jobId": JOB, "apiUrl": url, "stage": "beta"}),
        BUDGET,
        fast,
    )
    .await
    .unwrap();

    assert_eq!(settled.result, SettlementKind::Succeeded);
    assert_eq!(success.num_calls(), 1);
}

#[tokio::test]
async fn a_failing_suite_is_reported_as_job_failed_listing_the_failed_checks() {
    let url = serve(wrong_offsets("beta")).await;
    let failure = failure_rule(
        FailureType::JobFailed,
        &[
            "6 of 10 checks failed",
            "- old link name (GET /time/US/Eastern): time",
            r#"utcOffset is "+13:37", expected "-05:00" for America/New_York"#,
        ],
    );
    let reporter = reporter(&[&failure]);

    let settled = handle_payload(
        &reporter,
        json!({"jobId": JOB, "apiUrl": url, "stage": "beta"}),
        BUDGET,
        fast,
    )
    .await
    .unwrap();

    assert_eq!(settled.result, SettlementKind::Failed);
    assert_eq!(failure.num_calls(), 1);
}

#[tokio::test]
async fn a_hanging_api_is_reported_before_the_budget_runs_out() {
    let url = serve(slow("beta", Duration::from_secs(30))).await;
    let failure = failure_rule(
        FailureType::JobFailed,
        &["did not finish before the suite's"],
    );
    let reporter = reporter(&[&failure]);
    let budget = Duration::from_secs(3);

    let started = Instant::now();
    let payload = json!({"jobId": JOB, "apiUrl": url, "stage": "beta"});
    handle_payload(&reporter, payload, budget, |c| {
        c.with_request_timeout(Duration::from_secs(20))
    })
    .await
    .unwrap();

    assert_eq!(failure.num_calls(), 1);
    assert!(
        started.elapsed() < budget,
        "reported after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_api_url_that_is_not_a_url_is_a_configuration_error() {
    let failure = failure_rule(
        FailureType::ConfigurationError,
        &["API URL `not a url` is not a valid URL"],
    );
    let reporter = reporter(&[&failure]);

    handle_payload(
        &reporter,
        json!({"jobId": JOB, "apiUrl": "not a url", "stage": "beta"}),
        BUDGET,
        fast,
    )
    .await
    .unwrap();

    assert_eq!(failure.num_calls(), 1);
}

#[tokio::test]
async fn a_payload_without_the_stage_is_a_configuration_error() {
    let failure = failure_rule(FailureType::ConfigurationError, &["missing field `stage`"]);
    let reporter = reporter(&[&failure]);

    handle_payload(
        &reporter,
        json!({"jobId": JOB, "apiUrl": "http://127.0.0.1:1/"}),
        BUDGET,
        fast,
    )
    .await
    .unwrap();

    assert_eq!(failure.num_calls(), 1);
}

#[tokio::test]
async fn a_payload_without_a_job_id_is_an_error_and_reports_nothing() {
    let failure = failure_rule(FailureType::ConfigurationError, &[]);
    let success = success_rule("");
    let reporter = reporter(&[&failure, &success]);

    let error = handle_payload(
        &reporter,
        json!({"apiUrl": "http://127.0.0.1:1/", "stage": "beta"}),
        BUDGET,
        fast,
    )
    .await
    .unwrap_err();

    assert!(error.to_string().contains("`jobId` is missing"), "{error}");
    assert_eq!(failure.num_calls() + success.num_calls(), 0);
}

#[tokio::test]
async fn a_second_report_for_a_finished_job_is_harmless() {
    let url = serve(time_service("beta")).await;
    let finished = mock!(Client::put_job_success_result).then_error(|| {
        aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultError::InvalidJobStateException(
            aws_sdk_codepipeline::types::error::InvalidJobStateException::builder().build(),
        )
    });
    let reporter = reporter(&[&finished]);

    let settled = handle_payload(
        &reporter,
        json!({"jobId": JOB, "apiUrl": url, "stage": "beta"}),
        BUDGET,
        fast,
    )
    .await
    .unwrap();

    assert!(settled.already_finished);
    assert_eq!(finished.num_calls(), 1);
}

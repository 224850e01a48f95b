//! run-tests' Lambda handler: the suite's result reaches CodePipeline
//! (mocked) as a success or a failure, and bad payloads are handled.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
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
    let success = success_rule("all 11 checks passed against http://127.0.0.1:");
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
async fn a_passing_suite_reports_what_it_ran_as_output_variables() {
    let url = serve(time_service("beta")).await;
    let expected_url = url.clone();
    let success = mock!(Client::put_job_success_result)
        .match_requests(move |req| {
            let Some(vars) = req.output_variables() else {
                return false;
            };
            let get = |k: &str| vars.get(k).map(String::as_str);
            get("ChecksRun") == Some("11")
                && get("ChecksFailed") == Some("0")
                && get("Stage") == Some("beta")
                && get("ApiUrl") == Some(expected_url.as_str())
                && get("DurationSeconds").is_some_and(|d| d.parse::<f64>().is_ok())
        })
        .then_output(|| PutJobSuccessResultOutput::builder().build());
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
            "6 of 11 checks failed",
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

// ---- huge values in the payload -------------------------------------------

/// Everything written by a JSON log subscriber, filtered like production.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Held while a test's log subscriber is installed: tracing-core computes
/// its global level filter when a subscriber is registered, and two
/// registrations racing on different threads can leave it too low for one of
/// them, which then misses lines.
static ONE_CAPTURE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::{Layer, fmt};
        let writer = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::registry().with(
                fmt::layer()
                    .json()
                    .with_writer(move || writer.clone())
                    .with_filter(codepipeline_job::log_filter(Some("trace"))),
            ),
        )
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A failure report rule that records the message it was sent.
fn recording_failure_rule(seen: Arc<Mutex<Option<String>>>) -> Rule {
    mock!(Client::put_job_failure_result)
        .match_requests(move |req| {
            *seen.lock().unwrap() = req.failure_details().map(|d| d.message().to_string());
            req.job_id() == Some(JOB)
        })
        .then_output(|| PutJobFailureResultOutput::builder().build())
}

/// The longest log line any test here accepts: a failure report's line
/// carries the whole (at most 5000-character) message.
const MAX_LOG_LINE_BYTES: usize = 8 * 1024;

/// Runs the handler on `payload`, capturing the logs; returns the reported
/// failure message and the log lines.
async fn report_and_logs(payload: serde_json::Value) -> (String, Vec<String>) {
    let captured = Captured::default();
    let seen = Arc::new(Mutex::new(None));
    let failure = recording_failure_rule(seen.clone());
    let reporter = reporter(&[&failure]);
    {
        let _serial = ONE_CAPTURE_AT_A_TIME.lock().await;
        let _guard = captured.install();
        // Callsites other tests' threads registered while no subscriber was
        // installed may have cached a "never" interest: recompute them.
        tracing::callsite::rebuild_interest_cache();
        handle_payload(&reporter, payload, BUDGET, fast)
            .await
            .unwrap();
    }
    assert_eq!(failure.num_calls(), 1);
    let message = seen
        .lock()
        .unwrap()
        .clone()
        .expect("a failure was reported");
    (message, captured.lines())
}

/// At TRACE, no log line repeats `value` at length, and every line of ours
/// (run-tests, codepipeline-job) stays within [`MAX_LOG_LINE_BYTES`]. (The
/// AWS SDK's own TRACE lines describe its configuration at length, whatever
/// the payload.)
fn assert_log_lines_bounded(lines: &[String], value: &str) {
    assert!(!lines.is_empty(), "the capture works");
    let long_run: String = value
        .chars()
        .take(2 * codepipeline_job::MAX_ECHO_CHARS)
        .collect();
    for line in lines {
        assert!(
            !line.contains(&long_run),
            "a log line repeats the value at length: {}…",
            &line[..300.min(line.len())]
        );
        let target = serde_json::from_str::<serde_json::Value>(line).unwrap()["target"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if target.starts_with("run_tests") || target.starts_with("codepipeline_job") {
            assert!(
                line.len() <= MAX_LOG_LINE_BYTES,
                "a {}-byte log line: {}…",
                line.len(),
                &line[..300]
            );
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_megabyte_stage_still_reports_every_checks_reason_within_5000_characters() {
    let url = serve(time_service("beta")).await;
    let stage = "s".repeat(1_000_000);

    let (message, logs) =
        report_and_logs(json!({"jobId": JOB, "apiUrl": url, "stage": stage})).await;

    assert!(message.chars().count() <= 5000, "{} chars", message.len());
    assert!(message.starts_with("11 of 11 checks failed"), "{message}");
    for check in run_tests::suite::checks() {
        let line = format!(
            "- {} ({}): x-service-stage is \"beta\", expected \"sss",
            check.name,
            check.request()
        );
        assert!(
            message.contains(&line),
            "no reason for {}: {message}",
            check.name
        );
    }
    assert_log_lines_bounded(&logs, &stage);
}

#[tokio::test(flavor = "current_thread")]
async fn a_megabyte_api_url_still_reports_every_checks_reason_within_5000_characters() {
    let path = "a".repeat(1_000_000);
    let url = format!("{}{path}/", refusing_url().await);

    let (message, logs) =
        report_and_logs(json!({"jobId": JOB, "apiUrl": url, "stage": "beta"})).await;

    assert!(message.chars().count() <= 5000, "{} chars", message.len());
    for check in run_tests::suite::checks() {
        let line = format!(
            "- {} ({}): could not build the request for http://127.0.0.1:",
            check.name,
            check.request()
        );
        assert!(
            message.contains(&line),
            "no reason for {}: {message}",
            check.name
        );
    }
    assert!(message.contains("characters long"), "{message}");
    assert_log_lines_bounded(&logs, &path);
}

#[tokio::test(flavor = "current_thread")]
async fn a_megabyte_api_url_that_is_not_http_is_named_briefly() {
    let url = format!("ftp://{}", "h".repeat(1_000_000));

    let (message, logs) =
        report_and_logs(json!({"jobId": JOB, "apiUrl": url, "stage": "beta"})).await;

    assert!(message.contains("uses scheme `ftp`"), "{message}");
    assert!(message.chars().count() < 1000, "{} chars", message.len());
    assert_log_lines_bounded(&logs, &url[6..]);
}

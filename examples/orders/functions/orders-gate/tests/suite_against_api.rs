//! The suite against the real orders-api router, served on loopback over an
//! in-memory backend whose "worker" can be switched off; and the Lambda
//! path's reports to a mocked CodePipeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
use aws_sdk_codepipeline::types::FailureType;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use codepipeline_job::{Reporter, SettlementKind};
use orders_api::{Backend, BackendError, Order, Status};
use orders_gate::suite::checks;
use orders_gate::{SuiteConfig, SuiteReport, run_suite};
use serde_json::json;

const JOB: &str = "11111111-abcd-1111-abcd-111111abcdef";

/// What the in-memory queue's consumer does with a message.
#[derive(Clone, Copy)]
enum Worker {
    /// Marks the order processed after this long.
    ProcessesAfter(Duration),
    /// Never runs: messages pile up, orders stay `received`.
    Never,
}

/// The table and the queue in memory.
#[derive(Clone)]
struct Memory {
    orders: Arc<Mutex<HashMap<String, Order>>>,
    worker: Worker,
}

impl Memory {
    fn new(worker: Worker) -> Self {
        Self {
            orders: Arc::default(),
            worker,
        }
    }
}

impl Backend for Memory {
    async fn put_new_order(&self, order: &Order) -> Result<(), BackendError> {
        let mut orders = self.orders.lock().unwrap();
        if orders.contains_key(&order.id) {
            return Err(BackendError::new(
                "dynamodb",
                "PutItem",
                "ConditionalCheckFailedException",
                "the id exists",
            ));
        }
        orders.insert(order.id.clone(), order.clone());
        Ok(())
    }

    async fn get_order(&self, id: &str) -> Result<Option<Order>, BackendError> {
        Ok(self.orders.lock().unwrap().get(id).cloned())
    }

    async fn send_order_message(&self, id: &str) -> Result<(), BackendError> {
        if let Worker::ProcessesAfter(delay) = self.worker {
            let (orders, id) = (self.orders.clone(), id.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Some(order) = orders.lock().unwrap().get_mut(&id) {
                    order.status = Status::Processed;
                    order.processed_at = Some("2026-11-30T18:00:01.000Z".into());
                }
            });
        }
        Ok(())
    }
}

/// Serves `router` on a loopback port for the rest of the test; its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn orders_api(worker: Worker) -> String {
    serve(orders_api::app(Memory::new(worker))).await
}

fn quick(config: SuiteConfig) -> SuiteConfig {
    config
        .with_processing_timeout(Duration::from_secs(1))
        .with_poll_interval(Duration::from_millis(50))
        .with_deadline(Duration::from_secs(10))
}

async fn suite(url: &str) -> SuiteReport {
    run_suite(&quick(SuiteConfig::new(url, "beta").unwrap())).await
}

fn failed(report: &SuiteReport) -> Vec<&str> {
    report.failures().map(|r| r.name).collect()
}

// ---- the suite ----------------------------------------------------------------

#[tokio::test]
async fn every_check_passes_against_the_orders_api_whose_worker_processes_orders() {
    let url = orders_api(Worker::ProcessesAfter(Duration::from_millis(200))).await;
    let report = suite(&url).await;
    assert!(report.passed(), "{}", report.failure_message());
    let names: Vec<&str> = report.results.iter().map(|r| r.name).collect();
    assert_eq!(names, checks::ALL);
}

#[tokio::test]
async fn a_worker_that_never_processes_fails_the_processing_check_only() {
    let url = orders_api(Worker::Never).await;
    let report = suite(&url).await;
    assert_eq!(failed(&report), [checks::ORDER_PROCESSED]);
    let message = report.failure_message();
    assert!(
        message.contains("- order processed by the worker (GET /orders/")
            && message.contains("not processed within 1.0 s")
            && message.contains("last seen: status \"received\""),
        "{message}"
    );
}

#[tokio::test]
async fn an_api_that_is_not_the_orders_api_fails_every_check_saying_what_it_answered() {
    let stub = axum::Router::new().fallback(|| async { "hello from another service" });
    let url = serve(stub).await;
    let report = suite(&url).await;
    assert_eq!(failed(&report), checks::ALL);
    let posted = report.result(checks::ORDER_POSTED).unwrap();
    assert_eq!(
        posted.problems,
        ["answered 200 OK, expected 201 Created; body: \"hello from another service\""]
    );
    let read_back = report.result(checks::ORDER_READ_BACK).unwrap();
    assert!(read_back.problems[0].starts_with("not run: no order was created"));
}

#[tokio::test]
async fn a_huge_error_body_is_echoed_short() {
    let stub = axum::Router::new().fallback(|| async { "x".repeat(100_000) });
    let report = suite(&serve(stub).await).await;
    let posted = report.result(checks::ORDER_POSTED).unwrap();
    assert!(
        posted.problems[0].chars().count() < 300,
        "{}",
        posted.problems[0]
    );
}

#[tokio::test]
async fn an_api_that_is_down_fails_every_check_naming_the_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let report = suite(&url).await;
    assert_eq!(failed(&report), checks::ALL);
    let unknown = report.result(checks::UNKNOWN_ORDER).unwrap();
    assert!(
        unknown.problems[0].starts_with("could not connect to 127.0.0.1:"),
        "{unknown}"
    );
}

// ---- on Lambda: the job's report ------------------------------------------------

fn reporter(rules: &[&Rule]) -> Reporter {
    Reporter::new(mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        rules
    ))
}

fn payload(url: &str) -> serde_json::Value {
    json!({"jobId": JOB, "apiUrl": url, "stage": "beta"})
}

#[tokio::test]
async fn a_passing_run_reports_success_with_the_output_variables() {
    let url = orders_api(Worker::ProcessesAfter(Duration::from_millis(100))).await;
    let success = mock!(aws_sdk_codepipeline::Client::put_job_success_result)
        .match_requests(move |req| {
            let vars = req.output_variables().unwrap();
            let var = |name: &str| vars.get(name).map(String::as_str);
            req.job_id() == Some(JOB)
                && var("ChecksRun") == Some("5")
                && var("ChecksFailed") == Some("0")
                && var("Stage") == Some("beta")
                && var("ApiUrl").is_some_and(|u| u.starts_with("http://127.0.0.1:"))
                && var("DurationSeconds").is_some_and(|d| d.parse::<f64>().is_ok())
        })
        .then_output(|| PutJobSuccessResultOutput::builder().build());
    let failure = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .then_output(|| PutJobFailureResultOutput::builder().build());
    let settled = orders_gate::lambda::handle_payload(
        &reporter(&[&success, &failure]),
        payload(&url),
        Duration::from_secs(30),
        quick,
    )
    .await
    .unwrap();
    assert_eq!(
        settled.result,
        SettlementKind::Succeeded,
        "{}",
        settled.detail
    );
    assert_eq!((success.num_calls(), failure.num_calls()), (1, 0));
}

#[tokio::test]
async fn a_failing_run_reports_one_job_failure_naming_the_check() {
    let url = orders_api(Worker::Never).await;
    let failure = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .match_requests(|req| {
            req.job_id() == Some(JOB)
                && req.failure_details().is_some_and(|d| {
                    d.r#type() == &FailureType::JobFailed
                        && d.message().starts_with("1 of 5 checks failed")
                        && d.message().contains("- order processed by the worker")
                })
        })
        .then_output(|| PutJobFailureResultOutput::builder().build());
    let success = mock!(aws_sdk_codepipeline::Client::put_job_success_result)
        .then_output(|| PutJobSuccessResultOutput::builder().build());
    let settled = orders_gate::lambda::handle_payload(
        &reporter(&[&failure, &success]),
        payload(&url),
        Duration::from_secs(30),
        quick,
    )
    .await
    .unwrap();
    assert_eq!(settled.result, SettlementKind::Failed);
    assert_eq!((failure.num_calls(), success.num_calls()), (1, 0));
}

#[tokio::test]
async fn an_unusable_api_url_is_reported_as_a_configuration_error() {
    let failure = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .match_requests(|req| {
            req.failure_details().is_some_and(|d| {
                d.r#type() == &FailureType::ConfigurationError
                    && d.message().contains("orders-gate: API URL `not a url`")
            })
        })
        .then_output(|| PutJobFailureResultOutput::builder().build());
    orders_gate::lambda::handle_payload(
        &reporter(&[&failure]),
        payload("not a url"),
        Duration::from_secs(5),
        quick,
    )
    .await
    .unwrap();
    assert_eq!(failure.num_calls(), 1);
}

// ---- the command line -------------------------------------------------------------

fn args(url: &str) -> orders_gate::cli::Args {
    orders_gate::cli::Args {
        api_url: url.into(),
        stage: "local".into(),
        request_timeout: 5.0,
        processing_timeout: 1.0,
        deadline: 10.0,
    }
}

#[tokio::test]
async fn the_cli_prints_every_check_and_exits_zero_when_all_pass() {
    let url = orders_api(Worker::ProcessesAfter(Duration::from_millis(100))).await;
    let mut out = Vec::new();
    let code = orders_gate::cli::run(&args(&url), &mut out).await;
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, orders_gate::cli::EXIT_PASSED, "{out}");
    for name in checks::ALL {
        assert!(out.contains(&format!("PASS {name} (")), "{name}:\n{out}");
    }
    assert!(out.contains("all 5 checks passed"), "{out}");
}

#[tokio::test]
async fn the_cli_exits_one_when_a_check_fails() {
    let url = orders_api(Worker::Never).await;
    let mut out = Vec::new();
    let code = orders_gate::cli::run(&args(&url), &mut out).await;
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, orders_gate::cli::EXIT_FAILED, "{out}");
    assert!(out.contains("FAIL order processed by the worker"), "{out}");
}

#[tokio::test]
async fn the_cli_exits_two_on_an_unusable_url() {
    let mut out = Vec::new();
    let code = orders_gate::cli::run(&args("ftp://x/"), &mut out).await;
    assert_eq!(code, orders_gate::cli::EXIT_USAGE);
    assert!(String::from_utf8(out).unwrap().contains("scheme `ftp`"));
}

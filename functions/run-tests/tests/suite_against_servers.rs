//! The suite against the real time-service (passes) and against
//! deliberately broken servers (each fails with the right message, in time).

mod common;

use std::time::{Duration, Instant};

use common::*;
use run_tests::{SuiteReport, run_suite};

fn assert_every_check_fails_with(report: &SuiteReport, expected: &str) {
    assert!(!report.passed());
    for result in &report.results {
        assert!(
            result.problems.iter().any(|p| p.contains(expected)),
            "{} should fail with {expected:?}: {:?}",
            result.name,
            result.problems
        );
    }
}

fn result<'a>(report: &'a SuiteReport, name: &str) -> &'a run_tests::CheckResult {
    report.results.iter().find(|r| r.name == name).unwrap()
}

#[tokio::test]
async fn the_real_time_service_passes_every_check() {
    let url = serve(time_service("beta")).await;
    let report = run_suite(&config(&url, "beta")).await;
    assert!(report.passed(), "{}", report.failure_message());
    assert_eq!(report.results.len(), 11);
    assert!(
        report
            .success_summary()
            .starts_with("all 11 checks passed against http://127.0.0.1:")
    );
}

#[tokio::test]
async fn a_service_of_another_stage_fails_every_check_on_its_stage_header() {
    let url = serve(time_service("local")).await;
    let report = run_suite(&config(&url, "beta")).await;
    assert_every_check_fails_with(&report, r#"x-service-stage is "local", expected "beta""#);
}

#[tokio::test]
async fn wrong_zone_offsets_fail_every_zone_check_and_only_those() {
    let url = serve(wrong_offsets("beta")).await;
    let report = run_suite(&config(&url, "beta")).await;
    for name in [
        "slashed zone",
        "three-part zone",
        "percent-encoded zone",
        "lower-case zone",
        "old link name",
        "renamed zone",
    ] {
        let check = result(&report, name);
        assert!(
            check
                .problems
                .iter()
                .any(|p| p.contains(r#"utcOffset is "+13:37""#)
                    && p.contains("computed by the runner")),
            "{name}: {:?}",
            check.problems
        );
    }
    for name in [
        "current time",
        "unknown zone",
        "root path",
        "unknown path",
        "wrong method",
    ] {
        assert!(
            result(&report, name).passed(),
            "{name}: {:?}",
            result(&report, name).problems
        );
    }
}

#[tokio::test]
async fn a_late_clock_fails_the_current_time_check() {
    let url = serve(late_clock("beta")).await;
    let report = run_suite(&config(&url, "beta")).await;
    let check = result(&report, "current time");
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("s behind the runner's clock (tolerance 5 s)")),
        "{:?}",
        check.problems
    );
}

#[tokio::test]
async fn server_errors_fail_every_check_with_the_status_and_body() {
    let url = serve(internal_errors("beta")).await;
    let report = run_suite(&config(&url, "beta")).await;
    assert_every_check_fails_with(&report, "answered 500 Internal Server Error");
    assert_every_check_fails_with(&report, "database on fire");
}

#[tokio::test]
async fn slow_responses_fail_on_the_per_request_timeout() {
    let url = serve(slow("beta", Duration::from_secs(5))).await;
    let config = config(&url, "beta")
        .with_request_timeout(Duration::from_millis(300))
        .with_deadline(Duration::from_secs(3));
    let started = Instant::now();
    let report = run_suite(&config).await;
    assert_every_check_fails_with(
        &report,
        "no complete answer within 0.3 s (the per-request timeout)",
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn checks_still_running_at_the_deadline_fail_on_it() {
    let url = serve(slow("beta", Duration::from_secs(5))).await;
    let config = config(&url, "beta")
        .with_request_timeout(Duration::from_secs(10))
        .with_deadline(Duration::from_millis(500));
    let started = Instant::now();
    let report = run_suite(&config).await;
    assert_every_check_fails_with(&report, "did not finish before the suite's 0.5 s deadline");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_checks_run_concurrently() {
    // Eleven checks, each answered after 400 ms: one after the other would take 4.4 s.
    let url = serve(slow("beta", Duration::from_millis(400))).await;
    let started = Instant::now();
    let report = run_suite(&config(&url, "beta")).await;
    assert!(report.passed(), "{}", report.failure_message());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_connection_fails_every_check_naming_the_address() {
    let url = refusing_url().await;
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let started = Instant::now();
    let report = run_suite(&config(&url, "beta")).await;
    assert_every_check_fails_with(&report, &format!("could not connect to {address}"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_root_path_passes_on_the_services_own_json_404() {
    let url = serve(time_service("beta")).await;
    let report = run_suite(&config(&url, "beta")).await;
    let check = result(&report, "root path");
    assert_eq!(check.request, "GET /");
    assert!(check.passed(), "{:?}", check.problems);
}

#[tokio::test]
async fn api_gateways_own_404_at_the_root_fails_the_root_path_check_and_says_so() {
    let url = serve(gateway_404_at_root("beta")).await;
    let report = run_suite(&config(&url, "beta")).await;
    let check = result(&report, "root path");
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("the 404 came from API Gateway, not the service")),
        "{:?}",
        check.problems
    );
    assert!(result(&report, "unknown path").passed());
}

#[tokio::test]
async fn a_root_404_that_does_not_name_the_routes_fails() {
    let url = serve(foreign_json_404_at_root("beta")).await;
    let report = run_suite(&config(&url, "beta")).await;
    let check = result(&report, "root path");
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("does not name the API's routes")),
        "{:?}",
        check.problems
    );
}

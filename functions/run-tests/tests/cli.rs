//! The `run-tests` binary from the command line.

mod common;

use std::process::Output;

use common::*;

async fn run_cli(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_run-tests"));
    command
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("API_URL")
        .env_remove("STAGE");
    command.output().await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_healthy_api_prints_each_check_and_exits_zero() {
    let url = serve(time_service("local")).await;
    let output = run_cli(&["--api-url", &url, "--stage", "local"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS current time (GET /time)"), "{text}");
    assert!(
        text.contains("PASS old link name (GET /time/US/Eastern)"),
        "{text}"
    );
    assert_eq!(text.matches("PASS ").count(), 11, "{text}");
    assert!(text.contains("all 11 checks passed"), "{text}");
}

#[tokio::test]
async fn a_failing_api_prints_why_and_exits_one() {
    let url = serve(time_service("beta")).await;
    let output = run_cli(&["--api-url", &url, "--stage", "local"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(r#"FAIL current time (GET /time)"#), "{text}");
    assert!(
        text.contains(r#"x-service-stage is "beta", expected "local""#),
        "{text}"
    );
    assert!(text.contains("11 of 11 checks failed"), "{text}");
}

#[tokio::test]
async fn an_unusable_url_exits_two_with_the_reason() {
    let output = run_cli(&["--api-url", "127.0.0.1:3000", "--stage", "local"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stdout(&output).contains("not a valid URL") || stdout(&output).contains("uses scheme"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test]
async fn a_missing_api_url_is_a_usage_error() {
    let output = run_cli(&["--stage", "local"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--api-url"));
}

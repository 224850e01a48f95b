//! orders-gate from the command line.

use std::io::Write;
use std::time::Duration;

use clap::Parser;

use crate::suite::{
    DEFAULT_DEADLINE, DEFAULT_PROCESSING_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, SuiteConfig, run_suite,
};

/// Runs the Orders integration suite against an API and prints each check.
#[derive(Debug, Parser)]
#[command(name = "orders-gate", version, about)]
pub struct Args {
    /// Base URL of the API (a stage's ApiUrl output), e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/
    #[arg(long, env = "API_URL")]
    pub api_url: String,
    /// The stage under test (named in the report and in the test order's item).
    #[arg(long, env = "STAGE", default_value = "local")]
    pub stage: String,
    /// Seconds one request may take.
    #[arg(long, default_value_t = DEFAULT_REQUEST_TIMEOUT.as_secs_f64())]
    pub request_timeout: f64,
    /// Seconds the worker may take to mark the test order processed.
    #[arg(long, default_value_t = DEFAULT_PROCESSING_TIMEOUT.as_secs_f64())]
    pub processing_timeout: f64,
    /// Seconds the whole suite may take.
    #[arg(long, default_value_t = DEFAULT_DEADLINE.as_secs_f64())]
    pub deadline: f64,
}

/// Exit code: all checks passed.
pub const EXIT_PASSED: u8 = 0;
/// Exit code: at least one check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the arguments are unusable.
pub const EXIT_USAGE: u8 = 2;

/// Runs the suite, printing each check and a summary to `out`; returns the
/// exit code.
pub async fn run(args: &Args, out: &mut impl Write) -> u8 {
    let seconds = |name: &str, value: f64| {
        if value.is_finite() && value > 0.0 && value < 86_400.0 {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(format!(
                "--{name} must be a positive number of seconds, got {value}"
            ))
        }
    };
    let config = SuiteConfig::new(&args.api_url, &args.stage)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            Ok(config
                .with_request_timeout(seconds("request-timeout", args.request_timeout)?)
                .with_processing_timeout(seconds("processing-timeout", args.processing_timeout)?)
                .with_deadline(seconds("deadline", args.deadline)?))
        });
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            let _ = writeln!(out, "orders-gate: {error}");
            return EXIT_USAGE;
        }
    };
    let _ = writeln!(
        out,
        "orders-gate: checking {} (stage {})",
        codepipeline_job::echo(config.api_url.as_str()),
        codepipeline_job::echo(&config.stage)
    );
    let report = run_suite(&config).await;
    for result in &report.results {
        let _ = writeln!(out, "{result}");
    }
    let _ = writeln!(out, "{}", report.headline());
    if report.passed() {
        EXIT_PASSED
    } else {
        EXIT_FAILED
    }
}

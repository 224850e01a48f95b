//! run-tests from the command line.

use std::io::Write;
use std::time::Duration;

use clap::Parser;

use crate::suite::{
    DEFAULT_CLOCK_TOLERANCE, DEFAULT_DEADLINE, DEFAULT_REQUEST_TIMEOUT, SuiteConfig, run_suite,
};

/// Runs the TimeService acceptance suite against an API and prints each check.
#[derive(Debug, Parser)]
#[command(name = "run-tests", version, about)]
pub struct Args {
    /// Base URL of the API (a stage's ApiUrl output), e.g. http://127.0.0.1:3000
    #[arg(long, env = "API_URL")]
    pub api_url: String,
    /// The stage the API must name in every response's x-service-stage header.
    #[arg(long, env = "STAGE", default_value = "local")]
    pub stage: String,
    /// Seconds one request may take.
    #[arg(long, default_value_t = DEFAULT_REQUEST_TIMEOUT.as_secs_f64())]
    pub request_timeout: f64,
    /// Seconds the whole suite may take.
    #[arg(long, default_value_t = DEFAULT_DEADLINE.as_secs_f64())]
    pub deadline: f64,
    /// Seconds the API's clock may differ from this machine's.
    #[arg(long, default_value_t = DEFAULT_CLOCK_TOLERANCE.as_secs_f64())]
    pub clock_tolerance: f64,
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
                .with_deadline(seconds("deadline", args.deadline)?)
                .with_clock_tolerance(seconds("clock-tolerance", args.clock_tolerance)?))
        });
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            let _ = writeln!(out, "run-tests: {error}");
            return EXIT_USAGE;
        }
    };
    let _ = writeln!(
        out,
        "run-tests: checking {} (stage {})",
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

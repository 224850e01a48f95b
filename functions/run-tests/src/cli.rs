//! run-tests from the command line (the printing is [`codepipeline_job::gate`]'s).

use std::io::Write;

use clap::Parser;
use codepipeline_job::gate::seconds;
pub use codepipeline_job::gate::{EXIT_FAILED, EXIT_PASSED, EXIT_USAGE};

use crate::lambda::GATE;
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

/// Runs the suite, printing each check and a summary to `out`; returns the
/// exit code.
pub async fn run(args: &Args, out: &mut impl Write) -> u8 {
    match config(args) {
        Ok(config) => {
            let (api_url, stage) = (config.api_url.as_str(), &config.stage);
            GATE.run_cli(out, api_url, stage, run_suite(&config)).await
        }
        Err(error) => GATE.usage_error(out, error),
    }
}

fn config(args: &Args) -> Result<SuiteConfig, String> {
    let config = SuiteConfig::new(&args.api_url, &args.stage).map_err(|e| e.to_string())?;
    Ok(config
        .with_request_timeout(seconds("request-timeout", args.request_timeout)?)
        .with_deadline(seconds("deadline", args.deadline)?)
        .with_clock_tolerance(seconds("clock-tolerance", args.clock_tolerance)?))
}

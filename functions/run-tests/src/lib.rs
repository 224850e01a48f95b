//! `run-tests`: the TimeService acceptance suite.
//!
//! - On Lambda, invoked asynchronously by `start-tests` with
//!   `{"jobId", "apiUrl", "stage"}`: runs the suite and reports the result to
//!   CodePipeline ([`lambda::handle`]).
//! - From the command line: `run-tests --api-url http://127.0.0.1:3000 --stage local`
//!   prints each check and exits non-zero on failure ([`cli`]).

pub mod cli;
pub mod lambda;
pub mod suite;

pub use codepipeline_job::gate::{CheckResult, SuiteReport};
pub use suite::{ConfigError, SuiteConfig, run_suite};

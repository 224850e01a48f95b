//! `orders-gate`: the Orders service's integration suite, the pipeline's
//! gate for each stage.
//!
//! - On Lambda, invoked asynchronously by the pipeline's `start-tests` with
//!   `{"jobId", "apiUrl", "stage"}` ([`codepipeline_job::TestRunRequest`]):
//!   runs the suite and reports the job to CodePipeline through
//!   [`codepipeline_job::run_guarded`] ([`lambda::handle`]).
//! - From the command line: `orders-gate --api-url URL --stage S` prints
//!   each check and exits non-zero on failure ([`cli`]).
//!
//! The checks ([`suite`]) follow one order through the whole service: posted
//! (201), read back (the same order), processed by the worker (so the queue
//! message was consumed), and two error answers (unknown order, invalid
//! order). Everything around them (the check results and the report, its
//! failure message and output variables, the Lambda handler's shell, the
//! command line's printing) is [`codepipeline_job::gate`]: a gate of your
//! own needs its checks, a [`codepipeline_job::gate::Gate`] and this small
//! wiring.

pub mod cli;
pub mod lambda;
pub mod suite;

pub use codepipeline_job::gate::{CheckResult, SuiteReport};
pub use suite::{ConfigError, SuiteConfig, run_suite};

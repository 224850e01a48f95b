//! Everything a Lambda function needs to take part in a CodePipeline action.
//!
//! CodePipeline invokes a Lambda action with a job event
//! (`{"CodePipeline.job": {...}}`) and then waits, for up to 20 minutes of
//! silence, for the function to call `PutJobSuccessResult` or
//! `PutJobFailureResult`. This crate turns that protocol into a few pieces:
//!
//! - [`JobEvent`]: the parsed event, built on `aws_lambda_events`' types, with
//!   the artifact credentials kept behind [`Secret`] so they never reach a log
//!   line or a `Debug` print.
//! - [`parse_user_parameters`]: the action's `UserParameters` JSON string as a
//!   typed struct, with errors that name the missing or wrong field.
//! - [`Reporter`]: success and failure reports within the API's limits,
//!   success optionally with [`OutputVariables`]; a second report of a
//!   finished job is logged, not retried.
//! - [`run_guarded`] / [`handle_job_event`]: run the job's work so that every
//!   path (error, panic, running out of time) ends in a report.
//! - [`TestRunRequest`]: the asynchronous hand-off from `start-tests` to
//!   `run-tests` (see `docs/contracts.md`).
//! - [`gate`]: what every gate shares around its own checks: check results,
//!   the suite report (headline, summary, failure message, output
//!   variables), the Lambda handler shell and the command line's printing.

mod event;
pub mod gate;
mod guard;
mod handoff;
mod logging;
mod params;
mod report;
mod sdk;
#[cfg(feature = "testing")]
pub mod testing;

pub use event::{EventError, JobEvent, JobId, MAX_JOB_ID_CHARS, Secret};
pub use guard::{
    Outcome, PANIC_HOOK_ENV, Settlement, SettlementKind, handle_job_event, run_guarded, work_budget,
};
pub use handoff::TestRunRequest;
pub use logging::{init_tracing, log_filter};
pub use params::{ActionParameters, ParamsError, parse_user_parameters};
pub use report::{
    Failure, MAX_ECHO_CHARS, MAX_FAILURE_MESSAGE_CHARS, MAX_OUTPUT_VARIABLES_BYTES,
    MAX_SUMMARY_CHARS, OutputVariables, OutputVariablesError, ReportError, Reported, Reporter,
    echo, truncate_chars,
};
pub use sdk::{
    ATTEMPT_TIMEOUT, CONNECT_TIMEOUT, MAX_ATTEMPTS, OPERATION_TIMEOUT, load_sdk_config,
    sdk_config_loader,
};

/// Re-exported so callers can name failure types without depending on the SDK crate.
pub use aws_sdk_codepipeline::types::FailureType;

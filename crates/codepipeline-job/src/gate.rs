//! The scaffolding every gate shares: a function `start-tests` invokes
//! asynchronously with a [`TestRunRequest`], that runs a suite of checks
//! against a stage's API and reports the job (`docs/contracts.md`, "Gate
//! reports"), and that runs from the command line too.
//!
//! A gate brings its checks (a suite that produces a [`SuiteReport`]) and its
//! [`Gate`]: its name and time limits. This module does the rest:
//!
//! - [`CheckResult`] and [`SuiteReport`]: the results, their one-line
//!   headline, the success summary, the failure message (every failed check
//!   gets an equal share of CodePipeline's 5000 characters) and the output
//!   variables ([`variables`]).
//! - [`Gate::handle_payload`]: the Lambda side. Parses the payload (a
//!   malformed one with a job id is reported as a configuration error), runs
//!   the suite within a deadline under [`run_guarded`] and reports the
//!   [`SuiteReport::outcome`]. [`serve`] runs the Lambda runtime around a
//!   handler.
//! - [`Gate::run_cli`], [`Gate::usage_error`], [`seconds`] and the exit
//!   codes: the command line's printing (each check, then the headline).

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use crate::event::EventError;
use crate::guard::{Outcome, Settlement, run_guarded, work_budget};
use crate::handoff::TestRunRequest;
use crate::report::{
    Failure, MAX_FAILURE_MESSAGE_CHARS, OutputVariables, Reporter, echo, truncate_chars,
};

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    /// The request the check made, as messages show it (`GET /time`,
    /// `POST /orders`).
    pub request: String,
    /// Empty when the check passed.
    pub problems: Vec<String>,
    pub elapsed: Duration,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        write!(
            f,
            "{verdict} {} ({}) in {} ms",
            self.name,
            self.request,
            self.elapsed.as_millis()
        )?;
        if !self.passed() {
            write!(f, ": {}", self.problems.join("; "))?;
        }
        Ok(())
    }
}

/// The names of the gate's output variables (`docs/contracts.md`).
pub mod variables {
    pub const CHECKS_RUN: &str = "ChecksRun";
    pub const CHECKS_FAILED: &str = "ChecksFailed";
    pub const DURATION_SECONDS: &str = "DurationSeconds";
    pub const API_URL: &str = "ApiUrl";
    pub const STAGE: &str = "Stage";
}

/// The whole suite's results.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    pub api_url: String,
    pub stage: String,
    pub results: Vec<CheckResult>,
    pub elapsed: Duration,
}

impl SuiteReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(CheckResult::passed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| !r.passed())
    }

    /// The result of the check named `name`.
    pub fn result(&self, name: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// One line: how many checks passed, against what, how long it took.
    pub fn headline(&self) -> String {
        let failed = self.failures().count();
        let total = self.results.len();
        let verdict = if failed == 0 {
            format!("all {total} checks passed")
        } else {
            format!("{failed} of {total} checks failed")
        };
        format!(
            "{verdict} against {} (stage {}) in {:.2} s",
            echo(&self.api_url),
            echo(&self.stage),
            self.elapsed.as_secs_f64()
        )
    }

    /// The success summary: the headline and the checks run.
    pub fn success_summary(&self) -> String {
        let names: Vec<&str> = self.results.iter().map(|r| r.name).collect();
        format!("{}: {}", self.headline(), names.join(", "))
    }

    /// The gate's output variables (`docs/contracts.md`): what a later
    /// action or condition, and the console's action details, can read as
    /// `#{<namespace>.<name>}`. The URL and stage are echoed (capped) as in
    /// the headline; a handful of short values is far inside CodePipeline's
    /// limit, so an insert can fail only on a name, which these are not.
    pub fn output_variables(&self) -> OutputVariables {
        let mut variables = OutputVariables::new();
        let values = [
            (variables::CHECKS_RUN, self.results.len().to_string()),
            (
                variables::CHECKS_FAILED,
                self.failures().count().to_string(),
            ),
            (
                variables::DURATION_SECONDS,
                format!("{:.2}", self.elapsed.as_secs_f64()),
            ),
            (variables::API_URL, echo(&self.api_url).into_owned()),
            (variables::STAGE, echo(&self.stage).into_owned()),
        ];
        for (name, value) in values {
            if let Err(error) = variables.insert(name, value) {
                tracing::warn!(%error, "output variable left out");
            }
        }
        variables
    }

    /// The failure message: the headline, then each failed check and why,
    /// within CodePipeline's 5000 characters. Every failed check gets an
    /// equal share of the room after the headline, so a long reason is cut
    /// short rather than crowding out the checks after it.
    pub fn failure_message(&self) -> String {
        let mut message = self.headline();
        let failed = self.failures().count().max(1);
        let room = MAX_FAILURE_MESSAGE_CHARS.saturating_sub(message.chars().count());
        let share = room / failed;
        for failure in self.failures() {
            let line = format!(
                "\n- {} ({}): {}",
                failure.name,
                failure.request,
                failure.problems.join("; ")
            );
            message.push_str(&truncate_chars(&line, share));
        }
        message
    }

    /// What to report: success with the summary and the output variables
    /// when every check passed, otherwise a job failure with the failure
    /// message.
    pub fn outcome(&self) -> Outcome {
        if self.passed() {
            Outcome::SucceededWithVariables {
                summary: self.success_summary(),
                variables: self.output_variables(),
            }
        } else {
            Outcome::Failed(Failure::job_failed(self.failure_message()))
        }
    }
}

/// A gate: its name and its time limits on Lambda.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    /// Name used in logs, failure messages and the command line's output
    /// (`run-tests`, `orders-gate`).
    pub component: &'static str,
    /// What the log line `running …` calls the suite (`the suite`).
    pub suite_name: &'static str,
    /// Kept back from the Lambda deadline for the report itself (one report
    /// call can take the SDK's whole operation timeout, 15 s). With less
    /// than twice this left, the work and the report get half each
    /// ([`work_budget`]): the work is still tried, and a report normally
    /// takes milliseconds.
    pub report_reserve: Duration,
    /// The suite's deadline on Lambda (shortened to fit the budget).
    pub suite_deadline: Duration,
    /// The most the guarded work may take.
    pub max_work: Duration,
}

/// The suite's deadline is this much shorter than the guard's budget, so the
/// suite's own report (which checks did not finish) wins over the guard's.
const SUITE_MARGIN: Duration = Duration::from_secs(2);

impl Gate {
    /// How long the work may take in this invocation ([`work_budget`]).
    pub fn budget(&self, context: &lambda_runtime::Context) -> Duration {
        work_budget(context, self.report_reserve, self.max_work)
    }

    /// The suite's deadline within `budget`: [`Gate::suite_deadline`], cut
    /// to leave the guard a 2 s margin of the budget, at least half a second.
    pub fn deadline_within(&self, budget: Duration) -> Duration {
        self.suite_deadline
            .min(budget.saturating_sub(SUITE_MARGIN))
            .max(Duration::from_millis(500))
    }

    /// Parses the hand-off payload, runs the suite within `budget` and
    /// reports (every path ends in exactly one report, through
    /// [`run_guarded`]). `suite` gets the request and the suite's deadline;
    /// its error (the request is unusable: a bad URL, an empty stage) is
    /// reported as a configuration error. A payload without a job id reports
    /// nothing and is the invocation's error.
    pub async fn handle_payload<S, E>(
        &self,
        reporter: &Reporter,
        payload: Value,
        budget: Duration,
        suite: S,
    ) -> Result<Settlement, lambda_runtime::Error>
    where
        S: AsyncFnOnce(TestRunRequest, Duration) -> Result<SuiteReport, E>,
        E: fmt::Display,
    {
        let component = self.component;
        let (job_id, request) = match TestRunRequest::from_value(payload) {
            Ok(parsed) => parsed,
            Err(EventError::Malformed { job_id, reason }) => {
                tracing::error!(job_id = %job_id, reason = %reason, "malformed {component} payload");
                let failure = Failure::configuration(format!(
                    "{component} received a payload it cannot read: {reason}; start-tests sends \
                     {{\"jobId\", \"apiUrl\", \"stage\"}}"
                ));
                let outcome = async move { Outcome::Failed(failure) };
                return Ok(run_guarded(reporter, &job_id, component, budget, outcome).await?);
            }
            Err(error) => {
                tracing::error!(error = %error, "payload ignored: no CodePipeline job to report to");
                return Err(error.into());
            }
        };
        tracing::info!(
            job_id = %job_id,
            api_url = %echo(&request.api_url),
            stage = %echo(&request.stage),
            "running {}",
            self.suite_name
        );
        let job = job_id.clone();
        let deadline = self.deadline_within(budget);
        let work = async move {
            let report = match suite(request, deadline).await {
                Ok(report) => report,
                Err(error) => {
                    return Outcome::Failed(Failure::configuration(format!(
                        "{component}: {error}"
                    )));
                }
            };
            for result in &report.results {
                tracing::info!(job_id = %job, passed = result.passed(), "{result}");
            }
            report.outcome()
        };
        Ok(run_guarded(reporter, &job_id, component, budget, work).await?)
    }

    /// The command line's run: prints what it checks, runs `suite`, prints
    /// each check and the headline to `out`; returns the exit code
    /// ([`EXIT_PASSED`] or [`EXIT_FAILED`]). `api_url` and `stage` are the
    /// suite's (as it will report them).
    pub async fn run_cli(
        &self,
        out: &mut impl Write,
        api_url: &str,
        stage: &str,
        suite: impl Future<Output = SuiteReport>,
    ) -> u8 {
        let _ = writeln!(
            out,
            "{}: checking {} (stage {})",
            self.component,
            echo(api_url),
            echo(stage)
        );
        let report = suite.await;
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

    /// Prints why the arguments are unusable; returns [`EXIT_USAGE`].
    pub fn usage_error(&self, out: &mut impl Write, error: impl fmt::Display) -> u8 {
        let _ = writeln!(out, "{}: {error}", self.component);
        EXIT_USAGE
    }
}

/// Exit code: all checks passed.
pub const EXIT_PASSED: u8 = 0;
/// Exit code: at least one check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the arguments are unusable.
pub const EXIT_USAGE: u8 = 2;

/// A command-line option's seconds (`--name`), or why they are unusable.
pub fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    if value.is_finite() && value > 0.0 && value < 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!(
            "--{name} must be a positive number of seconds, got {value}"
        ))
    }
}

/// True on Lambda (`AWS_LAMBDA_RUNTIME_API` set): `main` serves the runtime
/// ([`serve`]) instead of the command line.
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Runs the Lambda runtime until it stops: logging set up, one [`Reporter`]
/// from the SDK configuration, every event to `handle`. Returns the process'
/// exit code (failure when the runtime stopped with an error, logged).
pub async fn serve<H>(handle: H) -> ExitCode
where
    H: AsyncFn(&Reporter, LambdaEvent<Value>) -> Result<Settlement, lambda_runtime::Error>,
{
    crate::init_tracing();
    let reporter = Reporter::from_conf(&crate::load_sdk_config().await);
    let (reporter, handle) = (&reporter, &handle);
    // Boxed: keeps the runtime's future shallow enough for rustc's layout query.
    let result = lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        Box::pin(handle(reporter, event))
    }))
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_codepipeline::Client;
    use aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput;
    use aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::json;

    use super::*;

    fn report(problems: &[&[&str]]) -> SuiteReport {
        SuiteReport {
            api_url: "http://h/".into(),
            stage: "beta".into(),
            results: problems
                .iter()
                .enumerate()
                .map(|(i, p)| CheckResult {
                    name: ["a", "b", "c"][i],
                    request: format!("GET /{i}"),
                    problems: p.iter().map(|s| s.to_string()).collect(),
                    elapsed: Duration::from_millis(5),
                })
                .collect(),
            elapsed: Duration::from_millis(1234),
        }
    }

    #[test]
    fn the_output_variables_say_what_ran_what_failed_how_long_and_against_what() {
        let variables = report(&[&[], &["x"], &[]]).output_variables();
        assert_eq!(variables.get("ChecksRun"), Some("3"));
        assert_eq!(variables.get("ChecksFailed"), Some("1"));
        assert_eq!(variables.get("DurationSeconds"), Some("1.23"));
        assert_eq!(variables.get("ApiUrl"), Some("http://h/"));
        assert_eq!(variables.get("Stage"), Some("beta"));
        let mut huge = report(&[&[]]);
        huge.api_url = format!("http://h/{}", "u".repeat(1_000_000));
        assert!(huge.output_variables().get("ApiUrl").unwrap().len() < 1_000);
    }

    #[test]
    fn the_headline_counts_checks_and_time() {
        assert_eq!(
            report(&[&[], &[]]).headline(),
            "all 2 checks passed against http://h/ (stage beta) in 1.23 s"
        );
    }

    #[test]
    fn a_huge_stage_and_url_are_echoed_short_in_the_headline() {
        let mut report = report(&[&["x"]]);
        report.api_url = format!("http://h/{}", "u".repeat(1_000_000));
        report.stage = "s".repeat(1_000_000);
        let headline = report.headline();
        assert!(headline.chars().count() < 400, "{} chars", headline.len());
        assert!(headline.starts_with("1 of 1 checks failed against http://h/uuu"));
    }

    #[test]
    fn every_failed_check_keeps_its_reason_when_the_reasons_are_huge() {
        let huge = format!("answered 404 Not Found; body: {}", "b".repeat(100_000));
        let problems: Vec<String> = (0..11).map(|i| format!("reason-{i}: {huge}")).collect();
        let report = SuiteReport {
            api_url: "http://h/".into(),
            stage: "beta".into(),
            results: problems
                .iter()
                .map(|p| CheckResult {
                    name: "check",
                    request: "GET /x".into(),
                    problems: vec![p.clone()],
                    elapsed: Duration::ZERO,
                })
                .collect(),
            elapsed: Duration::ZERO,
        };
        let message = report.failure_message();
        assert!(message.chars().count() <= MAX_FAILURE_MESSAGE_CHARS);
        for i in 0..11 {
            assert!(
                message.contains(&format!("- check (GET /x): reason-{i}: answered 404")),
                "reason {i} was crowded out"
            );
        }
    }

    #[test]
    fn the_failure_message_lists_each_failed_check_and_why() {
        let message = report(&[&[], &["x is wrong", "y is wrong"], &["z"]]).failure_message();
        assert!(message.starts_with("2 of 3 checks failed"), "{message}");
        assert!(
            message.contains("\n- b (GET /1): x is wrong; y is wrong"),
            "{message}"
        );
        assert!(message.contains("\n- c (GET /2): z"), "{message}");
        assert!(!message.contains("- a "), "{message}");
    }

    #[test]
    fn a_check_prints_its_verdict_request_time_and_problems() {
        let report = report(&[&[], &["x is wrong", "y is wrong"]]);
        assert_eq!(report.results[0].to_string(), "PASS a (GET /0) in 5 ms");
        assert_eq!(
            report.results[1].to_string(),
            "FAIL b (GET /1) in 5 ms: x is wrong; y is wrong"
        );
        assert_eq!(
            report.result("b").map(|r| r.request.as_str()),
            Some("GET /1")
        );
    }

    const GATE: Gate = Gate {
        component: "some-gate",
        suite_name: "the suite",
        report_reserve: Duration::from_secs(17),
        suite_deadline: Duration::from_secs(30),
        max_work: Duration::from_secs(60),
    };
    const JOB: &str = "33333333-abcd-3333-abcd-333333abcdef";

    /// Runs [`Gate::handle_payload`] against a mocked CodePipeline; returns
    /// its result and each report as `<kind>: <summary or message>`.
    async fn handled(
        payload: Value,
        suite: impl AsyncFnOnce(TestRunRequest, Duration) -> Result<SuiteReport, String>,
    ) -> (Result<Settlement, lambda_runtime::Error>, Vec<String>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (on_success, on_failure) = (seen.clone(), seen.clone());
        let success = mock!(Client::put_job_success_result)
            .match_requests(move |req| {
                let summary = req.execution_details().and_then(|d| d.summary());
                let run = req.output_variables().and_then(|v| v.get("ChecksRun"));
                let line = format!("success: {} (ChecksRun {run:?})", summary.unwrap_or(""));
                on_success.lock().unwrap().push(line);
                req.job_id() == Some(JOB)
            })
            .then_output(|| PutJobSuccessResultOutput::builder().build());
        let failure = mock!(Client::put_job_failure_result)
            .match_requests(move |req| {
                let details = req.failure_details().unwrap();
                let line = format!("{}: {}", details.r#type().as_str(), details.message());
                on_failure.lock().unwrap().push(line);
                req.job_id() == Some(JOB)
            })
            .then_output(|| PutJobFailureResultOutput::builder().build());
        let client = mock_client!(
            aws_sdk_codepipeline,
            RuleMode::MatchAny,
            [&success, &failure]
        );
        let settled = GATE
            .handle_payload(
                &Reporter::new(client),
                payload,
                Duration::from_secs(5),
                suite,
            )
            .await;
        let seen = seen.lock().unwrap().clone();
        (settled, seen)
    }

    fn request(api_url: &str) -> Value {
        json!({"jobId": JOB, "apiUrl": api_url, "stage": "beta"})
    }

    #[tokio::test]
    async fn a_passing_suite_is_reported_as_success_with_the_output_variables() {
        let (settled, reports) = handled(request("http://h/"), async |request, deadline| {
            assert_eq!(
                (request.api_url.as_str(), request.stage.as_str()),
                ("http://h/", "beta")
            );
            assert_eq!(
                deadline,
                Duration::from_secs(3),
                "the budget less the margin"
            );
            Ok(report(&[&[], &[]]))
        })
        .await;
        assert_eq!(
            reports,
            [
                "success: all 2 checks passed against http://h/ (stage beta) in 1.23 s: a, b \
              (ChecksRun Some(\"2\"))"
            ]
        );
        assert_eq!(settled.unwrap().result, crate::SettlementKind::Succeeded);
    }

    #[tokio::test]
    async fn a_failing_suite_is_reported_as_a_job_failure_listing_the_failed_checks() {
        let (_, reports) = handled(request("http://h/"), async |_, _| {
            Ok(report(&[&[], &["x is wrong"]]))
        })
        .await;
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(
            reports[0].starts_with("JobFailed: 1 of 2 checks failed against http://h/"),
            "{reports:?}"
        );
        assert!(
            reports[0].ends_with("\n- b (GET /1): x is wrong"),
            "{reports:?}"
        );
    }

    #[tokio::test]
    async fn an_unusable_request_is_a_configuration_error_named_by_the_gate() {
        let (_, reports) = handled(request("not a url"), async |request, _| {
            Err(format!("API URL `{}` is not a valid URL", request.api_url))
        })
        .await;
        assert_eq!(
            reports,
            ["ConfigurationError: some-gate: API URL `not a url` is not a valid URL"]
        );
    }

    #[tokio::test]
    async fn a_malformed_payload_is_a_configuration_error_and_runs_no_suite() {
        for (payload, missing) in [
            (
                json!({"jobId": JOB, "stage": "beta"}),
                "missing field `apiUrl`",
            ),
            (
                json!({"jobId": JOB, "apiUrl": "http://h/"}),
                "missing field `stage`",
            ),
        ] {
            let (settled, reports) = handled(payload, async |_, _| -> Result<_, String> {
                panic!("the suite ran")
            })
            .await;
            assert_eq!(settled.unwrap().result, crate::SettlementKind::Failed);
            assert_eq!(reports.len(), 1, "{reports:?}");
            assert!(
                reports[0]
                    .starts_with("ConfigurationError: some-gate received a payload it cannot read")
                    && reports[0].contains(missing)
                    && reports[0].ends_with(r#"start-tests sends {"jobId", "apiUrl", "stage"}"#),
                "{reports:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_payload_without_a_job_id_is_an_error_and_reports_nothing() {
        let payload = json!({"apiUrl": "http://h/", "stage": "beta"});
        let (settled, reports) = handled(payload, async |_, _| -> Result<_, String> {
            panic!("the suite ran")
        })
        .await;
        let error = settled.unwrap_err();
        assert!(error.to_string().contains("`jobId` is missing"), "{error}");
        assert!(reports.is_empty(), "{reports:?}");
    }

    #[test]
    fn the_suite_deadline_leaves_a_margin_of_the_budget_and_at_least_half_a_second() {
        assert_eq!(
            GATE.deadline_within(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            GATE.deadline_within(Duration::from_secs(10)),
            Duration::from_secs(8)
        );
        assert_eq!(
            GATE.deadline_within(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(seconds("deadline", 1.5), Ok(Duration::from_millis(1500)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 86_400.0] {
            let error = seconds("deadline", bad).unwrap_err();
            assert!(
                error.starts_with("--deadline must be a positive number of seconds, got "),
                "{error}"
            );
        }
    }

    #[tokio::test]
    async fn the_command_line_prints_each_check_and_the_headline_and_exits_by_the_verdict() {
        for (problems, code) in [
            (&[] as &[&str], EXIT_PASSED),
            (&["x is wrong"], EXIT_FAILED),
        ] {
            let mut out = Vec::new();
            let exit = GATE
                .run_cli(&mut out, "http://h/", "beta", async {
                    report(&[&[], problems])
                })
                .await;
            let out = String::from_utf8(out).unwrap();
            assert_eq!(exit, code, "{out}");
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines[0], "some-gate: checking http://h/ (stage beta)");
            assert_eq!(lines[1], "PASS a (GET /0) in 5 ms");
            assert!(
                lines[2].starts_with(["PASS b", "FAIL b"][usize::from(code)]),
                "{out}"
            );
            assert_eq!(lines[3], report(&[&[], problems]).headline());
        }
        let mut out = Vec::new();
        assert_eq!(GATE.usage_error(&mut out, "no URL"), EXIT_USAGE);
        assert_eq!(String::from_utf8(out).unwrap(), "some-gate: no URL\n");
    }
}

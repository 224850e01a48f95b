//! review-changes against recorded `DescribeChangeSet` answers (the XML
//! CloudFormation sends, in `tests/fixtures/`, parsed by the real SDK) and a
//! mocked CodePipeline: every case ends in a report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codepipeline::operation::put_job_failure_result::{
    PutJobFailureResultInput, PutJobFailureResultOutput,
};
use aws_sdk_codepipeline::operation::put_job_success_result::{
    PutJobSuccessResultInput, PutJobSuccessResultOutput,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::json;

use super::*;
use crate::review::variables;

const JOB: &str = "11111111-abcd-1111-abcd-111111abcdef";
const PARAMS: &str =
    r#"{"stackName": "TimeService-prod", "changeSetName": "TimeService-prod-review"}"#;
const URL: &str = "https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1#/stacks/changesets/changes?stackId=arn%3Aaws%3Acloudformation%3Aeu-west-1%3A123456789012%3Astack%2FTimeService-prod%2F0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d&changeSetId=arn%3Aaws%3Acloudformation%3Aeu-west-1%3A123456789012%3AchangeSet%2FTimeService-prod-review%2F9f8e7d6c-5b4a-4321-8765-0123456789ab";

fn fixture(name: &str) -> &'static str {
    match name {
        "add" => include_str!("../tests/fixtures/add.xml"),
        "modify-replace" => include_str!("../tests/fixtures/modify-replace.xml"),
        "remove" => include_str!("../tests/fixtures/remove.xml"),
        "iam" => include_str!("../tests/fixtures/iam.xml"),
        "no-change" => include_str!("../tests/fixtures/no-change.xml"),
        "failed" => include_str!("../tests/fixtures/failed.xml"),
        "obsolete" => include_str!("../tests/fixtures/obsolete.xml"),
        "in-progress" => include_str!("../tests/fixtures/in-progress.xml"),
        "page-1" => include_str!("../tests/fixtures/page-1.xml"),
        "page-2" => include_str!("../tests/fixtures/page-2.xml"),
        "missing" => include_str!("../tests/fixtures/missing.xml"),
        "access-denied" => include_str!("../tests/fixtures/access-denied.xml"),
        "throttled" => include_str!("../tests/fixtures/throttled.xml"),
        other => panic!("no fixture {other}"),
    }
}

fn event(params: Option<&str>) -> Value {
    let mut event: Value = serde_json::from_str(include_str!(
        "../../../crates/codepipeline-job/tests/fixtures/documented-job-event.json"
    ))
    .unwrap();
    let configuration =
        &mut event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"];
    match params {
        Some(params) => configuration["UserParameters"] = json!(params),
        None => {
            configuration
                .as_object_mut()
                .unwrap()
                .remove("UserParameters");
        }
    }
    event
}

/// DescribeChangeSet answering `fixture` with HTTP `status` (every time:
/// retries see the same answer), for the request's stack and change set.
fn describe(fixture_name: &'static str, status: u16) -> Rule {
    mock!(aws_sdk_cloudformation::Client::describe_change_set)
        .match_requests(|req| {
            req.stack_name() == Some("TimeService-prod")
                && req.change_set_name() == Some("TimeService-prod-review")
        })
        .sequence()
        .http_status(status, Some(fixture(fixture_name).to_string()))
        .repeatedly()
        .build()
}

/// One page of a paged answer, for the request carrying `token`.
fn describe_page(fixture_name: &'static str, token: Option<&'static str>) -> Rule {
    mock!(aws_sdk_cloudformation::Client::describe_change_set)
        .match_requests(move |req| req.next_token() == token)
        .then_http_response(move || {
            HttpResponse::new(
                StatusCode::try_from(200u16).unwrap(),
                SdkBody::from(fixture(fixture_name)),
            )
        })
}

/// What the function reported.
#[derive(Default, Clone)]
struct Reports {
    success: Arc<Mutex<Vec<PutJobSuccessResultInput>>>,
    failure: Arc<Mutex<Vec<PutJobFailureResultInput>>>,
}

impl Reports {
    fn rules(&self) -> (Rule, Rule) {
        let success = self.success.clone();
        let failure = self.failure.clone();
        (
            mock!(aws_sdk_codepipeline::Client::put_job_success_result)
                .match_requests(move |req| {
                    success.lock().unwrap().push(req.clone());
                    true
                })
                .then_output(|| PutJobSuccessResultOutput::builder().build()),
            mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
                .match_requests(move |req| {
                    failure.lock().unwrap().push(req.clone());
                    true
                })
                .then_output(|| PutJobFailureResultOutput::builder().build()),
        )
    }

    /// The one success report: its summary and output variables.
    fn succeeded(&self) -> (String, HashMap<String, String>) {
        assert!(
            self.failure.lock().unwrap().is_empty(),
            "no failure report: {:?}",
            self.failure.lock().unwrap()
        );
        let success = self.success.lock().unwrap();
        assert_eq!(success.len(), 1, "one success report");
        let report = &success[0];
        assert_eq!(report.job_id(), Some(JOB));
        let summary = report
            .execution_details()
            .and_then(|d| d.summary())
            .unwrap()
            .to_string();
        assert!(summary.chars().count() <= 2048, "{summary}");
        (
            summary,
            report.output_variables().cloned().unwrap_or_default(),
        )
    }

    /// The one failure report: its type and message.
    fn failed(&self) -> (FailureType, String) {
        assert!(self.success.lock().unwrap().is_empty(), "no success report");
        let failure = self.failure.lock().unwrap();
        assert_eq!(failure.len(), 1, "one failure report");
        let details = failure[0].failure_details().unwrap();
        assert!(details.message().chars().count() <= 5000);
        (details.r#type().clone(), details.message().to_string())
    }
}

/// Runs the handler with CloudFormation answering by `cfn`.
async fn run_with(cfn: &[&Rule], params: Option<&str>) -> (Reports, Settlement) {
    let reports = Reports::default();
    let (success, failure) = reports.rules();
    let cloudformation = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, cfn, |c| c
        .retry_config(
            aws_sdk_cloudformation::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    let codepipeline = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        [&success, &failure]
    );
    let clients = Clients {
        cloudformation,
        reporter: Reporter::new(codepipeline),
    };
    let settled = handle_with_budget(&clients, event(params), Duration::from_secs(20))
        .await
        .unwrap();
    (reports, settled)
}

fn var<'a>(vars: &'a HashMap<String, String>, name: &str) -> &'a str {
    vars.get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no variable {name}: {vars:?}"))
}

fn assert_counts(vars: &HashMap<String, String>, expected: [(&str, &str); 5]) {
    for (name, value) in expected {
        assert_eq!(var(vars, name), value, "{name}: {vars:?}");
    }
}

// ---- reviews ----------------------------------------------------------------

#[tokio::test]
async fn an_added_resource_is_reviewed_with_counts_and_the_console_link() {
    let rule = describe("add", 200);
    let (reports, settled) = run_with(&[&rule], Some(PARAMS)).await;
    assert_eq!(settled.result, codepipeline_job::SettlementKind::Succeeded);
    let (summary, vars) = reports.succeeded();
    assert!(
        summary.starts_with(
            "Stack TimeService-prod, change set TimeService-prod-review: 2 added, 0 modified \
             (0 replaced), 0 removed; no permission changes."
        ),
        "{summary}"
    );
    assert!(
        summary.contains("\n+ added AlertsTopic (AWS::SNS::Topic)"),
        "{summary}"
    );
    assert!(
        summary.contains("\n+ added AuditLogs (AWS::Logs::LogGroup)"),
        "{summary}"
    );
    assert!(
        summary.ends_with(&format!("\nChange set: {URL}")),
        "{summary}"
    );
    assert_counts(
        &vars,
        [
            (variables::ADDED, "2"),
            (variables::MODIFIED, "0"),
            (variables::REPLACED, "0"),
            (variables::REMOVED, "0"),
            (variables::PERMISSION_CHANGES, "false"),
        ],
    );
    assert_eq!(var(&vars, variables::CHANGE_SET_URL), URL);
    assert_eq!(
        var(&vars, variables::REVIEW_TEXT),
        summary,
        "short: the same text"
    );
    assert_eq!(vars.len(), 7, "{vars:?}");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_modification_flags_replacement_true_and_conditional() {
    let rule = describe("modify-replace", 200);
    let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
    let (summary, vars) = reports.succeeded();
    assert_counts(
        &vars,
        [
            (variables::ADDED, "0"),
            (variables::MODIFIED, "3"),
            (variables::REPLACED, "2"),
            (variables::REMOVED, "0"),
            (variables::PERMISSION_CHANGES, "false"),
        ],
    );
    assert!(
        summary.contains(
            "~ modified TimeFunction (AWS::Lambda::Function): Code, FunctionName [REPLACED]"
        ),
        "{summary}"
    );
    assert!(
        summary.contains(
            "~ modified TimeApi (AWS::ApiGatewayV2::Api): ProtocolType [MAY BE REPLACED]"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("~ modified TimeFunctionLogs (AWS::Logs::LogGroup): RetentionInDays\n"),
        "{summary}"
    );
    // Replacements are listed before plain modifications.
    assert!(summary.find("TimeFunction (").unwrap() < summary.find("TimeFunctionLogs").unwrap());
}

#[tokio::test]
async fn a_removed_resource_is_counted_and_listed() {
    let rule = describe("remove", 200);
    let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
    let (summary, vars) = reports.succeeded();
    assert_counts(
        &vars,
        [
            (variables::ADDED, "0"),
            (variables::MODIFIED, "0"),
            (variables::REPLACED, "0"),
            (variables::REMOVED, "1"),
            (variables::PERMISSION_CHANGES, "false"),
        ],
    );
    assert!(
        summary.contains("\n- removed LatencyAlarm (AWS::CloudWatch::Alarm)"),
        "{summary}"
    );
}

#[tokio::test]
async fn iam_lambda_permissions_roles_and_security_groups_are_permission_changes() {
    let rule = describe("iam", 200);
    let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
    let (summary, vars) = reports.succeeded();
    assert_eq!(var(&vars, variables::PERMISSION_CHANGES), "true");
    assert_eq!(var(&vars, variables::ADDED), "3");
    assert_eq!(var(&vars, variables::MODIFIED), "3");
    assert!(
        summary.contains("; PERMISSION CHANGES in 5."),
        "the role, its policies, the Lambda permission, the function's role and the \
         ingress rule; not the log group's tags: {summary}"
    );
    for flagged in [
        "+ added ReportingRole (AWS::IAM::Role) [PERMISSIONS]",
        "~ modified TimeFunctionRole (AWS::IAM::Role): Policies [PERMISSIONS]",
        "+ added TimeFunctionUrlPermission (AWS::Lambda::Permission) [PERMISSIONS]",
        "~ modified TimeFunction (AWS::Lambda::Function): Role [PERMISSIONS]",
        "+ added AdminIngress (AWS::EC2::SecurityGroupIngress) [PERMISSIONS]",
    ] {
        assert!(summary.contains(flagged), "{flagged}:\n{summary}");
    }
    assert!(
        summary.contains("~ modified ApiAccessLogs (AWS::Logs::LogGroup): Tags\n"),
        "{summary}"
    );
    // Permission changes are listed first.
    let first = summary.lines().nth(1).unwrap();
    assert!(first.ends_with("[PERMISSIONS]"), "{summary}");
    assert!(
        var(&vars, variables::REVIEW_TEXT).contains("PERMISSION CHANGES"),
        "{vars:?}"
    );
}

#[tokio::test]
async fn every_page_of_a_long_change_set_is_read() {
    let first = describe_page("page-1", None);
    let second = describe_page("page-2", Some("page-2-token"));
    let (reports, _) = run_with(&[&first, &second], Some(PARAMS)).await;
    let (_, vars) = reports.succeeded();
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(var(&vars, variables::ADDED), "2");
    assert_eq!(var(&vars, variables::REMOVED), "1");
}

#[tokio::test]
async fn a_change_set_without_changes_is_a_review_with_no_changes() {
    let rule = describe("no-change", 200);
    let (reports, settled) = run_with(&[&rule], Some(PARAMS)).await;
    assert_eq!(settled.result, codepipeline_job::SettlementKind::Succeeded);
    let (summary, vars) = reports.succeeded();
    assert!(
        summary.starts_with(
            "Stack TimeService-prod, change set TimeService-prod-review: no changes \
             (CloudFormation: The submitted information didn't contain changes."
        ),
        "{summary}"
    );
    assert_counts(
        &vars,
        [
            (variables::ADDED, "0"),
            (variables::MODIFIED, "0"),
            (variables::REPLACED, "0"),
            (variables::REMOVED, "0"),
            (variables::PERMISSION_CHANGES, "false"),
        ],
    );
    assert_eq!(var(&vars, variables::CHANGE_SET_URL), URL);
}

// ---- failures ---------------------------------------------------------------

#[tokio::test]
async fn a_missing_change_set_is_a_configuration_error_naming_it() {
    let rule = describe("missing", 404);
    let (reports, settled) = run_with(&[&rule], Some(PARAMS)).await;
    assert_eq!(settled.result, codepipeline_job::SettlementKind::Failed);
    let (kind, message) = reports.failed();
    assert_eq!(kind, FailureType::ConfigurationError);
    for part in [
        "review-changes: change set `TimeService-prod-review` of stack `TimeService-prod` does not exist",
        "ChangeSetNotFound",
        "CHANGE_SET_REPLACE",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert_eq!(rule.num_calls(), 1, "not retried");
}

#[tokio::test]
async fn a_failed_change_set_fails_the_job_with_cloudformations_reason() {
    let rule = describe("failed", 200);
    let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
    let (kind, message) = reports.failed();
    assert_eq!(kind, FailureType::JobFailed);
    assert!(
        message.contains(
            "change set `TimeService-prod-review` of stack `TimeService-prod` FAILED: \
             Parameters: [PermissionsBoundaryArn] must have values"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_change_set_that_can_no_longer_run_or_is_still_being_created_fails_the_job() {
    for (name, status) in [
        ("obsolete", "execution status OBSOLETE"),
        ("in-progress", "status CREATE_IN_PROGRESS"),
    ] {
        let rule = describe(name, 200);
        let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
        let (kind, message) = reports.failed();
        assert_eq!(kind, FailureType::JobFailed, "{name}");
        assert!(message.contains(status), "{name}: {message}");
    }
}

#[tokio::test]
async fn a_denied_describe_is_a_permission_error_that_names_the_action() {
    let rule = describe("access-denied", 403);
    let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
    let (kind, message) = reports.failed();
    assert_eq!(kind, FailureType::PermissionError);
    assert!(
        message.contains("AccessDenied") && message.contains("cloudformation:DescribeChangeSet"),
        "{message}"
    );
    assert_eq!(rule.num_calls(), 1, "a denial is not retried");
}

#[tokio::test]
async fn throttling_is_retried_then_reported_as_unavailable() {
    let rule = describe("throttled", 400);
    let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
    let (kind, message) = reports.failed();
    assert_eq!(kind, FailureType::SystemUnavailable);
    assert!(message.contains("Throttling: Rate exceeded"), "{message}");
    assert_eq!(rule.num_calls(), 3, "standard retries: 3 attempts");
}

#[tokio::test]
async fn a_server_error_is_retried_then_reported_as_unavailable() {
    let rule = mock!(aws_sdk_cloudformation::Client::describe_change_set)
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let (reports, _) = run_with(&[&rule], Some(PARAMS)).await;
    let (kind, _) = reports.failed();
    assert_eq!(kind, FailureType::SystemUnavailable);
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn bad_user_parameters_are_a_configuration_error_without_calling_cloudformation() {
    for (params, part) in [
        (None, "has no UserParameters"),
        (
            Some(r#"{"stackName": "TimeService-prod"}"#),
            "missing field `changeSetName`",
        ),
        (
            Some(r#"{"stackName": "TimeService-prod", "changeSetName": "no spaces allowed"}"#),
            "UserParameters field `changeSetName` is not a change set name",
        ),
        (
            Some(r#"{"stackName": "1bad", "changeSetName": "review"}"#),
            "UserParameters field `stackName`",
        ),
    ] {
        let rule = describe("add", 200);
        let (reports, _) = run_with(&[&rule], params).await;
        let (kind, message) = reports.failed();
        assert_eq!(kind, FailureType::ConfigurationError, "{params:?}");
        assert!(message.contains(part), "{part}: {message}");
        assert_eq!(rule.num_calls(), 0);
    }
}

#[test]
fn the_parameters_accept_names_and_arns() {
    let p = ReviewParameters::parse(Some(PARAMS)).unwrap();
    assert_eq!(p.stack_name, "TimeService-prod");
    let arns = r#"{"stackName": "arn:aws:cloudformation:eu-west-1:123456789012:stack/TimeService-prod/0a1b", "changeSetName": "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/review/9f8e"}"#;
    assert!(ReviewParameters::parse(Some(arns)).is_ok());
}

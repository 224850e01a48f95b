//! The pipeline executor on a small repository made by each test: a
//! pipeline.yaml with Source, Build, a Beta stage (deploy + gate) and a Prod
//! stage (approval + gate), a build script that "builds" the fake function
//! (this test binary, see `common`), and templates that deploy it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rehearse::report::Printer;
use rehearse::{ActionError, Options, Rehearsal, RehearsalError, RunReport, Status};
use serde_json::Value;

mod common;

/// Entry point of the fake function processes (see `common`).
#[test]
#[ignore = "entry point of the fake function process, started by the other tests"]
fn fake_function_main() {
    common::fake_function_main();
}

const PIPELINE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  ServiceName: {Type: String, Default: Svc}
  BranchName: {Type: String, Default: main}
  Behaviour: {Type: String, Default: report}
Resources:
  GateFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${ServiceName}_gate"
      CodeUri: fn
      Handler: bootstrap
      Runtime: provided.al2023
      Timeout: 10
      Environment:
        Variables:
          REHEARSE_FAKE_FUNCTION: !Ref Behaviour
  Pipeline:
    Type: AWS::CodePipeline::Pipeline
    Properties:
      Stages:
        - Name: Source
          Actions:
            - Name: Source
              ActionTypeId: {Category: Source, Owner: AWS, Provider: CodeCommit, Version: "1"}
              Configuration:
                RepositoryName: repo
                BranchName: !Ref BranchName
              OutputArtifacts: [{Name: SourceCode}]
        - Name: Build
          Actions:
            - Name: Build
              ActionTypeId: {Category: Build, Owner: AWS, Provider: CodeBuild, Version: "1"}
              InputArtifacts: [{Name: SourceCode}]
              OutputArtifacts: [{Name: BuildOutput}]
        - Name: Beta
          Actions:
            - Name: Deploy
              RunOrder: 1
              ActionTypeId: {Category: Deploy, Owner: AWS, Provider: CloudFormation, Version: "1"}
              Configuration:
                ActionMode: CREATE_UPDATE
                StackName: !Sub "${ServiceName}-beta"
                TemplatePath: BuildOutput::packaged-app.yaml
                ParameterOverrides: '{"Stage": "beta"}'
              InputArtifacts: [{Name: BuildOutput}]
            - Name: Gate
              RunOrder: 2
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration:
                FunctionName: !Ref GateFunction
                UserParameters: '{"stage": "beta"}'
        - Name: Prod
          Actions:
            - Name: Approve
              RunOrder: 1
              ActionTypeId: {Category: Approval, Owner: AWS, Provider: Manual, Version: "1"}
            - Name: Gate
              RunOrder: 2
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration:
                FunctionName: !Ref GateFunction
"#;

const APP: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  AppFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: bootstrap
      Runtime: provided.al2023
      Environment:
        Variables:
          REHEARSE_FAKE_FUNCTION: http
          STAGE: !Ref Stage
      Events:
        Any:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Path: "/{proxy+}", Method: ANY}
Outputs:
  ApiUrl:
    Value: !Sub "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"
"#;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository whose build "compiles" the fake function into BuildOutput.
fn repository(pipeline: &str) -> tempfile::TempDir {
    repository_with(pipeline, APP)
}

/// The same with another app template.
fn repository_with(pipeline: &str, app: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::write(root.join("pipeline.yaml"), pipeline).unwrap();
    std::fs::write(root.join("app.yaml"), app).unwrap();
    let exe = std::env::current_exe().unwrap();
    let bootstrap = format!(
        "#!/bin/sh\nexec '{}' {}\n",
        exe.display(),
        common::FAKE_ARGS.join(" ")
    );
    let build = format!(
        "#!/bin/sh\nset -e\n[ \"$1 $2 $3\" = \"--arch {} --out\" ]\nOUT=$4\nmkdir -p \"$OUT/fn\"\ncat > \"$OUT/fn/bootstrap\" <<'EOF'\n{bootstrap}EOF\nchmod +x \"$OUT/fn/bootstrap\"\ncp pipeline.yaml \"$OUT/packaged-pipeline.yaml\"\ncp app.yaml \"$OUT/packaged-app.yaml\"\n",
        rehearse::executor::host_arch()
    );
    std::fs::write(root.join("scripts/build.sh"), build).unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.email", "test@example.com"]);
    git(root, &["config", "user.name", "test"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "pipeline under test"]);
    dir
}

fn options(repo: &Path) -> Options {
    let mut options = Options::for_repo(repo);
    options.job_timeout = Duration::from_secs(5);
    options.printer = Printer::quiet();
    options.approve = true;
    options
}

async fn rehearse(options: Options) -> (Rehearsal, RunReport) {
    let rehearsal = Rehearsal::start(options).await.unwrap();
    let commit = rehearsal.source_commit().unwrap();
    let report = rehearsal.run(&commit).await.unwrap();
    (rehearsal, report)
}

fn statuses(report: &RunReport) -> Vec<(String, Status)> {
    report
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.status))
        .collect()
}

fn failure(report: &RunReport) -> String {
    let failed = report.failed_action.as_ref().expect("the run failed");
    format!("{}/{}: {}", failed.stage, failed.action, failed.reason)
}

/// The typed error of the failed action, with where it failed.
fn failed_with(report: &RunReport) -> (String, &ActionError) {
    let failed = report.failed_action.as_ref().expect("the run failed");
    let error = failed
        .error
        .as_deref()
        .expect("a failed action carries its error");
    (format!("{}/{}", failed.stage, failed.action), error)
}

#[tokio::test]
async fn every_stage_runs_in_order_and_the_gates_report_success() {
    let repo = repository(PIPELINE);
    let (rehearsal, report) = rehearse(options(repo.path())).await;
    assert!(report.succeeded(), "{report:#?}");
    let names: Vec<String> = statuses(&report).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Source", "Build", "Beta", "Prod"]);
    let beta_gate = &report.stage("Beta").unwrap().actions[1];
    assert!(
        beta_gate
            .summary
            .as_deref()
            .unwrap()
            .contains("3 checks passed"),
        "{beta_gate:?}"
    );
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_deployed_stack_serves_its_api_and_answers_describe_stacks() {
    let repo = repository(PIPELINE);
    let (rehearsal, report) = rehearse(options(repo.path())).await;
    assert!(report.succeeded(), "{report:#?}");
    let stack = rehearsal
        .world()
        .stack("Svc-beta")
        .expect("Svc-beta deployed");
    let api_url = &stack.outputs["ApiUrl"];
    assert_eq!(Some(api_url), report.urls.get("Svc-beta"));
    assert!(
        api_url.starts_with("http://127.0.0.1:") && api_url.ends_with('/'),
        "{api_url}"
    );
    let response = reqwest::get(format!("{api_url}time")).await.unwrap();
    assert_eq!(response.status(), 201);
    let event: Value = response.json().await.unwrap();
    assert_eq!(event["rawPath"], "/time");
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_gate_that_never_reports_fails_at_the_deadline_saying_so() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options
        .parameters
        .insert("Behaviour".into(), "never".into());
    options.job_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let (rehearsal, report) = rehearse(options).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    let (at, error) = failed_with(&report);
    assert_eq!(at, "Beta/Gate");
    assert!(
        matches!(error, ActionError::NoJobResult { function, waited, .. }
            if function == "Svc_gate" && *waited == Duration::from_secs(2)),
        "{error:?}"
    );
    let message = failure(&report);
    assert!(message.contains("within 2 s"), "{message}");
    assert_eq!(report.stage("Prod").unwrap().status, Status::NotRun);
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_crashing_gate_fails_at_once_saying_it_crashed() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options
        .parameters
        .insert("Behaviour".into(), "crash".into());
    options.job_timeout = Duration::from_secs(30);
    let started = Instant::now();
    let (rehearsal, report) = rehearse(options).await;
    let (_, error) = failed_with(&report);
    // No EventInvokeConfig in the template: Lambda's default two retries.
    assert!(
        matches!(error, ActionError::FunctionFailed { function, attempts: 3, error, .. }
            if function == "Svc_gate" && error.contains("Runtime exited with error: exit status: 3")),
        "{error:?}"
    );
    let message = failure(&report);
    assert!(
        message.contains("(3 attempts, as EventInvokeConfig.MaximumRetryAttempts is 2)"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_failure_report_fails_the_action_with_its_type_and_message() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options
        .parameters
        .insert("Behaviour".into(), "report_failure".into());
    let (rehearsal, report) = rehearse(options).await;
    let (at, error) = failed_with(&report);
    assert_eq!(at, "Beta/Gate");
    assert!(
        matches!(error, ActionError::JobReportedFailure { failure_type, message }
            if failure_type == "ConfigurationError" && message == "UserParameters: missing field appStack"),
        "{error:?}"
    );
    assert_eq!(
        failure(&report),
        "Beta/Gate: ConfigurationError: UserParameters: missing field appStack"
    );
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_gate_whose_handler_errors_fails_with_the_error() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options
        .parameters
        .insert("Behaviour".into(), "error".into());
    let (rehearsal, report) = rehearse(options).await;
    let (_, error) = failed_with(&report);
    assert!(
        matches!(error, ActionError::FunctionFailed { error, .. }
            if error.contains("the handler refused the event")),
        "{error:?}"
    );
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_stack_whose_conditions_loop_fails_its_deploy_naming_the_loop() {
    let app = APP.replace(
        "Resources:\n  Api:\n    Type: AWS::Serverless::HttpApi\n",
        "Conditions:\n  Loop: !Not [!Condition Loop]\nResources:\n  Api:\n    Type: AWS::Serverless::HttpApi\n    Condition: Loop\n",
    );
    assert_ne!(app, APP);
    let repo = repository_with(PIPELINE, &app);
    let (rehearsal, report) = rehearse(options(repo.path())).await;
    let (at, error) = failed_with(&report);
    assert_eq!(at, "Beta/Deploy");
    assert!(
        matches!(
            error,
            ActionError::Deploy(rehearse::stack::DeployError::Resolve {
                source: cfn_template::ResolveError::ConditionCycle(names),
                ..
            }) if names == &["Loop", "Loop"]
        ),
        "{error:?}"
    );
    let message = failure(&report);
    assert!(message.contains("Loop -> Loop"), "{message}");
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_replace_on_failure_deploy_creates_the_stack_as_create_update_does() {
    let pipeline = PIPELINE.replace(
        "ActionMode: CREATE_UPDATE",
        "ActionMode: REPLACE_ON_FAILURE",
    );
    assert_ne!(pipeline, PIPELINE);
    let repo = repository(&pipeline);
    let (rehearsal, report) = rehearse(options(repo.path())).await;
    assert!(report.succeeded(), "{report:#?}");
    assert!(rehearsal.world().stack("Svc-beta").is_some());
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn until_stops_before_the_named_stage() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options.until = Some("Prod".into());
    let (rehearsal, report) = rehearse(options).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(report.stopped_before.as_deref(), Some("Prod"));
    assert_eq!(report.stage("Prod").unwrap().status, Status::NotRun);
    assert_eq!(report.stage("Beta").unwrap().status, Status::Succeeded);
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn an_approval_without_approve_or_terminal_fails_asking_for_approve() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options.approve = false;
    let (rehearsal, report) = rehearse(options).await;
    let (at, error) = failed_with(&report);
    assert_eq!(at, "Prod/Approve");
    assert!(matches!(error, ActionError::ApprovalNeeded), "{error:?}");
    let message = failure(&report);
    assert!(message.contains("--approve"), "{message}");
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn an_action_type_it_cannot_rehearse_is_an_error_naming_the_action() {
    let pipeline = PIPELINE.replace(
        "            - Name: Approve\n              RunOrder: 1\n              ActionTypeId: {Category: Approval, Owner: AWS, Provider: Manual, Version: \"1\"}",
        "            - Name: Approve\n              RunOrder: 1\n              ActionTypeId: {Category: Deploy, Owner: AWS, Provider: ElasticBeanstalk, Version: \"1\"}",
    );
    assert_ne!(pipeline, PIPELINE);
    let repo = repository(&pipeline);
    let (rehearsal, report) = rehearse(options(repo.path())).await;
    let (at, error) = failed_with(&report);
    assert_eq!(at, "Prod/Approve");
    assert!(
        matches!(error, ActionError::Unsupported { category, provider, .. }
            if category == "Deploy" && provider == "ElasticBeanstalk"),
        "{error:?}"
    );
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn uncommitted_changes_are_not_rehearsed() {
    let repo = repository(PIPELINE);
    // An uncommitted edit that would break the build if it were used.
    std::fs::write(repo.path().join("scripts/build.sh"), "#!/bin/sh\nexit 1\n").unwrap();
    let (rehearsal, report) = rehearse(options(repo.path())).await;
    assert!(report.succeeded(), "{report:#?}");
    rehearsal.shutdown().await;
}

/// What a rehearsal must leave as it was in the user's repository.
#[derive(Debug, PartialEq)]
struct UserState {
    branch: String,
    head: String,
    main: String,
    index_tree: String,
    staged: String,
    stash: String,
    status: String,
}

fn git_output(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn user_state(repo: &Path) -> UserState {
    UserState {
        branch: git_output(repo, &["symbolic-ref", "HEAD"]),
        head: git_output(repo, &["rev-parse", "HEAD"]),
        main: git_output(repo, &["rev-parse", "refs/heads/main"]),
        index_tree: git_output(repo, &["write-tree"]),
        staged: git_output(repo, &["diff", "--cached"]),
        stash: git_output(repo, &["stash", "list"]),
        // The work directory (.rehearsal) is the rehearsal's own.
        status: git_output(
            repo,
            &[
                "status",
                "--porcelain",
                "--untracked-files=all",
                "--",
                ".",
                ":(exclude).rehearsal",
            ],
        ),
    }
}

/// An uncommitted build script that fails the Build when it is rehearsed.
const FAILING_BUILD: &str = "#!/bin/sh\necho 'the uncommitted build ran'\nexit 1\n";

#[tokio::test]
async fn with_working_tree_an_uncommitted_change_is_rehearsed() {
    let repo = repository(PIPELINE);
    std::fs::write(repo.path().join("scripts/build.sh"), FAILING_BUILD).unwrap();
    let mut options = options(repo.path());
    options.working_tree = true;
    let (rehearsal, report) = rehearse(options).await;
    let (action, error) = failed_with(&report);
    assert_eq!(action, "Build/Build");
    assert!(
        matches!(error, ActionError::Build { tail, .. } if tail.contains("the uncommitted build ran")),
        "{error:?}"
    );
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn with_working_tree_a_new_untracked_file_is_rehearsed() {
    let repo = repository(PIPELINE);
    let build = std::fs::read_to_string(repo.path().join("scripts/build.sh")).unwrap();
    std::fs::write(
        repo.path().join("scripts/build.sh"),
        build.replace("set -e\n", "set -e\n. scripts/extra.sh\n"),
    )
    .unwrap();
    std::fs::write(repo.path().join("scripts/extra.sh"), "exit 3\n").unwrap();
    let mut options = options(repo.path());
    options.working_tree = true;
    let (rehearsal, report) = rehearse(options).await;
    assert!(
        failure(&report).starts_with("Build/Build: build failed (exit status: 3)"),
        "{}",
        failure(&report)
    );
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn rehearsing_the_working_tree_leaves_branch_head_index_stash_and_files_alone() {
    let repo = repository(PIPELINE);
    let root = repo.path();
    std::fs::write(root.join("stashed.txt"), "stashed").unwrap();
    git(root, &["add", "stashed.txt"]);
    git(root, &["stash", "push", "-q", "-m", "the user's stash"]);
    std::fs::write(root.join("staged.txt"), "staged").unwrap();
    git(root, &["add", "staged.txt"]);
    std::fs::write(root.join("app.yaml"), format!("{APP}# unstaged\n")).unwrap();
    std::fs::write(root.join("untracked.txt"), "new").unwrap();
    let before = user_state(root);
    let mut options = options(root);
    options.working_tree = true;
    let (rehearsal, report) = rehearse(options).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_ne!(
        report.commit,
        before.head.trim(),
        "a snapshot was rehearsed"
    );
    rehearsal.shutdown().await;
    assert_eq!(user_state(root), before);
    assert_eq!(
        std::fs::read_to_string(root.join("app.yaml")).unwrap(),
        format!("{APP}# unstaged\n")
    );
}

#[tokio::test]
async fn the_working_tree_snapshot_holds_the_changes_and_not_the_work_dir() {
    let repo = repository(PIPELINE);
    let root = repo.path();
    std::fs::write(root.join("untracked.txt"), "new").unwrap();
    let mut options = options(root);
    options.working_tree = true;
    let rehearsal = Rehearsal::start(options).await.unwrap();
    let commit = rehearsal.source_commit().unwrap();
    let files = git_output(root, &["ls-tree", "-r", "--name-only", &commit]);
    assert!(files.lines().any(|f| f == "untracked.txt"), "{files}");
    assert!(!files.contains(".rehearsal"), "{files}");
    let parent = git_output(root, &["rev-parse", &format!("{commit}^")]);
    assert_eq!(parent, git_output(root, &["rev-parse", "HEAD"]));
}

#[tokio::test]
async fn with_working_tree_and_nothing_changed_head_is_rehearsed() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options.working_tree = true;
    let (rehearsal, report) = rehearse(options).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(
        report.commit,
        git_output(repo.path(), &["rev-parse", "HEAD"]).trim()
    );
    assert_eq!(report.rehearsed, rehearse::report::Rehearsed::Commit);
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_missing_branch_is_an_error_suggesting_rev() {
    let repo = repository(PIPELINE);
    let mut options = options(repo.path());
    options
        .parameters
        .insert("BranchName".into(), "release".into());
    let rehearsal = Rehearsal::start(options).await.unwrap();
    let error = rehearsal.source_commit().unwrap_err();
    assert!(
        matches!(&error, RehearsalError::NoSuchBranch { branch, .. } if branch == "release"),
        "{error:?}"
    );
    assert!(error.to_string().contains("--rev"), "{error}");
}

#[tokio::test]
async fn a_second_rehearsal_of_the_same_work_dir_waits_for_the_first() {
    let repo = repository(PIPELINE);
    let first = Rehearsal::start(options(repo.path())).await.unwrap();
    let second = tokio::spawn(Rehearsal::start(options(repo.path())));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !second.is_finished(),
        "the second rehearsal must wait for the lock"
    );
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), second).await;
    assert!(
        matches!(second, Ok(Ok(Ok(_)))),
        "the second rehearsal starts once the first is gone"
    );
}

#[tokio::test]
async fn a_second_run_replaces_the_functions_and_keeps_the_stage_url() {
    let repo = repository(PIPELINE);
    let (rehearsal, first) = rehearse(options(repo.path())).await;
    assert!(first.succeeded(), "{first:#?}");
    let old_gate = rehearsal.world().function("Svc_gate").unwrap();
    let commit = rehearsal.source_commit().unwrap();
    let second = rehearsal.run(&commit).await.unwrap();
    assert!(second.succeeded(), "{second:#?}");
    let new_gate = rehearsal.world().function("Svc_gate").unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&old_gate, &new_gate),
        "the redeploy starts new processes"
    );
    assert_eq!(first.urls["Svc-beta"], second.urls["Svc-beta"]);
    rehearsal.shutdown().await;
}

fn cli(repo: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rehearse"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn the_cli_exits_zero_prints_the_table_and_writes_json_when_every_stage_passes() {
    let repo = repository(PIPELINE);
    let json = repo.path().join("result.json");
    let (code, output) = cli(
        repo.path(),
        &["--approve", "--json", json.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("▶ Beta/Gate (Lambda) started"), "{output}");
    assert!(output.contains("✔ Beta/Gate succeeded"), "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("Total") && l.contains("Succeeded")),
        "{output}"
    );
    assert!(
        output.contains("Svc-beta"),
        "the running stage's URL is printed: {output}"
    );
    let result: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(result["status"], "Succeeded");
    assert_eq!(result["stages"].as_array().unwrap().len(), 4);
}

#[test]
fn the_cli_exits_non_zero_naming_the_failed_action_and_reason() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(
        repo.path(),
        &[
            "--approve",
            "--job-timeout",
            "2",
            "--parameter",
            "Behaviour=never",
        ],
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("FAILED: Beta/Gate: no result reported for job"),
        "{output}"
    );
}

#[test]
fn the_cli_exits_2_when_there_is_nothing_to_rehearse() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(repo.path(), &["--rev", "no-such-branch"]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("no-such-branch is not a commit"),
        "{output}"
    );
}

/// Beta rolls back on failure (`OnFailure: ROLLBACK`); the app's function
/// publishes a version per deploy behind the alias `live`.
fn rollback_pipeline() -> String {
    let pipeline = PIPELINE.replace(
        "                UserParameters: '{\"stage\": \"beta\"}'\n",
        "                UserParameters: '{\"stage\": \"beta\"}'\n          OnFailure:\n            Result: ROLLBACK\n",
    );
    assert_ne!(pipeline, PIPELINE);
    pipeline
}

fn aliased_app() -> String {
    let app = APP.replace(
        "      Runtime: provided.al2023\n",
        "      Runtime: provided.al2023\n      AutoPublishAlias: live\n      DeploymentPreference: {Type: AllAtOnce}\n",
    );
    assert_ne!(app, APP);
    app
}

#[test]
fn a_first_failure_of_a_stage_with_rollback_says_there_is_nothing_to_roll_back_to() {
    let repo = repository_with(&rollback_pipeline(), &aliased_app());
    let (code, output) = cli(
        repo.path(),
        &["--approve", "--parameter", "Behaviour=report_failure"],
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("Beta: nothing to roll back to: the stage has not succeeded before"),
        "{output}"
    );
    assert!(!output.contains("rolled back to"), "{output}");
    assert!(!output.contains("not emulated"), "{output}");
}

#[tokio::test]
async fn a_stage_failing_after_a_success_rolls_back_to_that_commit_in_the_table_and_json() {
    let repo = repository_with(&rollback_pipeline(), &aliased_app());
    let rehearsal = Rehearsal::start(options(repo.path())).await.unwrap();
    let good = rehearsal.source_commit().unwrap();
    let first = rehearsal.run(&good).await.unwrap();
    assert!(first.succeeded(), "{first:#?}");
    let versions = |v: std::collections::BTreeMap<String, u32>| v.into_values().collect::<Vec<_>>();
    assert_eq!(versions(rehearsal.alias_versions("Svc-beta").await), [1]);
    // The next commit's gate reports a failure.
    let path = repo.path().join("pipeline.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "Behaviour: {Type: String, Default: report}",
            "Behaviour: {Type: String, Default: report_failure}",
        ),
    )
    .unwrap();
    git(repo.path(), &["commit", "-qam", "a gate that fails"]);
    let bad = rehearsal.source_commit().unwrap();
    assert_ne!(bad, good);
    let second = rehearsal.run(&bad).await.unwrap();
    let (at, _) = failed_with(&second);
    assert_eq!(at, "Beta/Gate");
    let beta = second.stage("Beta").unwrap();
    assert_eq!(beta.status, Status::Failed);
    let rollback = beta.rolled_back.as_ref().expect("Beta rolled back");
    assert_eq!(rollback.to_commit, good);
    assert!(
        rollback.reason.contains("Gate failed"),
        "{}",
        rollback.reason
    );
    // Version 2 (the bad commit) was replaced by version 3 (the good one again).
    assert_eq!(versions(rehearsal.alias_versions("Svc-beta").await), [3]);
    let table = rehearse::report::summary_text(&second, rehearse::report::StagesStayUp::No);
    assert!(
        table.contains(&format!("Failed, rolled back to {}", &good[..8])),
        "{table}"
    );
    let json = serde_json::to_value(&second).unwrap();
    let beta_json = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Beta")
        .unwrap();
    assert_eq!(beta_json["rolledBack"]["toCommit"], good.as_str());
    rehearsal.shutdown().await;
}

/// An app whose function shifts gradually (the type a stack parameter),
/// watched by an errors alarm of the template.
const CANARY_APP: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String}
  DeploymentType: {Type: String, Default: Canary10Percent5Minutes}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  AppFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "app-${Stage}"
      CodeUri: fn
      Handler: bootstrap
      Runtime: provided.al2023
      AutoPublishAlias: live
      DeploymentPreference:
        Type: !Ref DeploymentType
        Alarms: [!Ref ErrorsAlarm]
      Environment:
        Variables:
          REHEARSE_FAKE_FUNCTION: http
      Events:
        Any:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Path: "/{proxy+}", Method: ANY}
  ErrorsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub "app-${Stage}-errors"
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - {Name: FunctionName, Value: !Ref AppFunction}
        - {Name: Resource, Value: !Sub "${AppFunction}:live"}
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
"#;

#[tokio::test]
async fn a_canary_whose_new_version_errors_is_rolled_back_by_the_templates_alarm() {
    let repo = repository_with(&rollback_pipeline(), CANARY_APP);
    let mut options = options(repo.path());
    // 1 AWS minute = 50 ms: the canary lasts 250 ms, alarm periods 50 ms.
    options.time_scale = rehearse::traffic::TimeScale::millis_per_minute(50);
    options.load = rehearse::shift::LoadSettings {
        rate_per_second: 100,
        max_requests: 500,
    };
    let rehearsal = Rehearsal::start(options).await.unwrap();
    let good = rehearsal.source_commit().unwrap();
    let first = rehearsal.run(&good).await.unwrap();
    assert!(first.succeeded(), "{first:#?}");
    // A commit whose function fails every request.
    let path = repo.path().join("app.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "REHEARSE_FAKE_FUNCTION: http",
            "REHEARSE_FAKE_FUNCTION: error",
        ),
    )
    .unwrap();
    git(repo.path(), &["commit", "-qam", "a function that fails"]);
    let bad = rehearsal.source_commit().unwrap();
    let second = rehearsal.run(&bad).await.unwrap();
    let (at, error) = failed_with(&second);
    assert_eq!(at, "Beta/Deploy");
    match error {
        ActionError::AlarmDuringShift {
            alarms,
            resource,
            old,
            new,
            new_weight,
        } => {
            assert_eq!(alarms, &["app-beta-errors"]);
            assert_eq!(resource, "app-beta:live");
            assert_eq!((*old, *new), (1, 2));
            assert_eq!(*new_weight, 0.1, "caught during the canary's 10%");
        }
        other => panic!("not an alarm during the shift: {other:?}"),
    }
    assert_eq!(
        rehearsal.alias_versions("Svc-beta").await["app-beta:live"],
        1
    );
    let url = &second.urls["Svc-beta"];
    for _ in 0..20 {
        let response = reqwest::get(format!("{url}x")).await.unwrap();
        // The fake function answers 201; the faulty version 500.
        assert!(response.status().is_success(), "every request on version 1");
    }
    let beta = second.stage("Beta").unwrap();
    assert_eq!(beta.rolled_back.as_ref().unwrap().to_commit, good);
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn an_alarm_during_the_bake_fails_the_stage_and_rolls_it_back() {
    // Beta bakes for 2 AWS minutes on the app's errors alarm after its gate.
    let pipeline = rollback_pipeline().replace(
        "          OnFailure:\n            Result: ROLLBACK\n",
        "          OnFailure:\n            Result: ROLLBACK\n          OnSuccess:\n            Conditions:\n              - Result: ROLLBACK\n                Rules:\n                  - Name: BetaErrors\n                    RuleTypeId: {Category: Rule, Owner: AWS, Provider: CloudWatchAlarm, Version: '1'}\n                    Configuration: {AlarmName: app-beta-errors, AlarmStates: ALARM, WaitTime: '2'}\n",
    );
    // All at once: only the bake can catch the faulty version.
    let app = CANARY_APP.replace("Default: Canary10Percent5Minutes", "Default: AllAtOnce");
    let repo = repository_with(&pipeline, &app);
    let mut options = options(repo.path());
    options.time_scale = rehearse::traffic::TimeScale::millis_per_minute(100);
    options.load = rehearse::shift::LoadSettings {
        rate_per_second: 100,
        max_requests: 500,
    };
    let rehearsal = Rehearsal::start(options).await.unwrap();
    let good = rehearsal.source_commit().unwrap();
    let first = rehearsal.run(&good).await.unwrap();
    assert!(first.succeeded(), "the bake passes: {first:#?}");
    let path = repo.path().join("app.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "REHEARSE_FAKE_FUNCTION: http",
            "REHEARSE_FAKE_FUNCTION: error",
        ),
    )
    .unwrap();
    git(repo.path(), &["commit", "-qam", "a function that fails"]);
    let bad = rehearsal.source_commit().unwrap();
    let second = rehearsal.run(&bad).await.unwrap();
    let (at, error) = failed_with(&second);
    assert_eq!(at, "Beta/OnSuccess");
    assert!(
        matches!(error, ActionError::AlarmDuringBake { rule, alarm, state, .. }
            if rule == "BetaErrors" && alarm == "app-beta-errors" && state == "ALARM"),
        "{error:?}"
    );
    let beta = second.stage("Beta").unwrap();
    assert_eq!(beta.status, Status::Failed);
    assert!(
        beta.actions.iter().all(|a| a.status == Status::Succeeded),
        "every action passed; the bake failed the stage"
    );
    assert_eq!(beta.rolled_back.as_ref().unwrap().to_commit, good);
    assert_eq!(second.stage("Prod").unwrap().status, Status::NotRun);
    // Version 2 (bad) replaced by version 3 (the good commit again).
    assert_eq!(
        rehearsal.alias_versions("Svc-beta").await["app-beta:live"],
        3
    );
    let url = &second.urls["Svc-beta"];
    for _ in 0..20 {
        let response = reqwest::get(format!("{url}x")).await.unwrap();
        assert!(response.status().is_success(), "the good version answers");
    }
    rehearsal.shutdown().await;
}

#[test]
fn the_cli_says_the_stages_stop_with_it_and_how_to_keep_them() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(repo.path(), &["--approve"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("Running stages"), "{output}");
    assert!(
        output.contains("Stages deployed (Svc-beta) stop when this command exits; pass --keep"),
        "{output}"
    );
}

#[test]
fn the_cli_says_how_many_files_are_uncommitted_and_rehearses_the_commit() {
    let repo = repository(PIPELINE);
    std::fs::write(repo.path().join("scripts/build.sh"), FAILING_BUILD).unwrap();
    std::fs::write(repo.path().join("notes.txt"), "new").unwrap();
    let (code, output) = cli(repo.path(), &["--approve"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains("2 files in ")
            && output.contains(" have uncommitted changes; not rehearsed"),
        "{output}"
    );
    assert!(output.contains("--working-tree"), "{output}");
}

#[test]
fn the_cli_says_nothing_of_uncommitted_files_when_there_are_none() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(repo.path(), &["--approve"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("uncommitted"), "{output}");
}

#[test]
fn the_cli_names_the_working_tree_snapshot_in_its_header_and_json() {
    let repo = repository(PIPELINE);
    std::fs::write(repo.path().join("notes.txt"), "new").unwrap();
    let head = git_output(repo.path(), &["rev-parse", "HEAD"]);
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("result.json");
    let (code, output) = cli(
        repo.path(),
        &[
            "--approve",
            "--working-tree",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{output}");
    assert!(
        output.contains(&format!(
            "at working tree snapshot of {} + 1 changed file (pipeline under test)",
            &head[..12]
        )),
        "{output}"
    );
    assert!(!output.contains("not rehearsed"), "{output}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(result["rehearsed"]["kind"], "workingTree");
    assert_eq!(result["rehearsed"]["head"], head.trim());
    assert_eq!(result["rehearsed"]["changedFiles"], 1);
    assert_ne!(result["commit"], head.trim());
}

#[test]
fn the_cli_refuses_working_tree_with_watch() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(repo.path(), &["--working-tree", "--watch"]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("'--working-tree' cannot be used with '--watch'"),
        "{output}"
    );
}

#[test]
fn a_long_build_prints_progress_with_the_elapsed_time_and_the_last_compiled_crate() {
    let repo = repository(PIPELINE);
    let build = std::fs::read_to_string(repo.path().join("scripts/build.sh")).unwrap();
    let slow = build.replace(
        "OUT=$4\n",
        "OUT=$4\necho 'build.sh: building function fake (1 of 1)'\necho '   Compiling fake-crate v0.1.0 (/src/fake)'\nsleep 1.5\n",
    );
    assert_ne!(slow, build);
    std::fs::write(repo.path().join("scripts/build.sh"), slow).unwrap();
    git(repo.path(), &["commit", "-qam", "a slow build"]);
    let (code, output) = cli(repo.path(), &["--approve", "--progress-interval", "0.5"]);
    assert_eq!(code, Some(0), "{output}");
    let progress = output
        .lines()
        .find(|l| l.contains("Build/Build: building for "))
        .unwrap_or_else(|| panic!("no progress line: {output}"));
    assert!(
        progress.contains(
            " s; build.sh: building function fake (1 of 1); cargo: Compiling fake-crate v0.1.0"
        ),
        "{progress}"
    );
}

#[test]
fn a_quick_build_prints_no_progress_line() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(repo.path(), &["--approve"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("building for"), "{output}");
}

#[test]
fn a_gate_waiting_longer_than_the_interval_prints_progress() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(
        repo.path(),
        &[
            "--approve",
            "--job-timeout",
            "2",
            "--progress-interval",
            "0.5",
            "--parameter",
            "Behaviour=never",
        ],
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.contains("Beta/Gate: waiting for job ")
                && l.contains("'s result from Svc_gate for ")
                && l.ends_with("(deadline 2.0 s)")),
        "{output}"
    );
}

/// The test pipeline with Prod's deployment window as pipeline.yaml has
/// it: a parameter, and a BeforeEntry DeploymentWindow rule only when it is
/// set.
fn windowed_pipeline() -> String {
    let pipeline = PIPELINE
        .replace(
            "  BranchName: {Type: String, Default: main}\n",
            "  BranchName: {Type: String, Default: main}\n  Window: {Type: String, Default: '0 * 9-16 ? * MON-FRI *'}\n",
        )
        .replacen(
            "\nResources:\n",
            "\nConditions:\n  HasWindow: !Not [!Equals [!Ref Window, '']]\nResources:\n",
            1,
        )
        .replace(
            "        - Name: Prod\n          Actions:\n",
            "        - Name: Prod\n          BeforeEntry: !If\n            - HasWindow\n            - Conditions:\n                - Result: FAIL\n                  Rules:\n                    - Name: ProdWindow\n                      RuleTypeId: {Category: Rule, Owner: AWS, Provider: DeploymentWindow, Version: '1'}\n                      Configuration: {Cron: !Ref Window, TimeZone: America/New_York}\n            - !Ref AWS::NoValue\n          Actions:\n",
        );
    assert!(pipeline.contains("HasWindow") && pipeline.contains("ProdWindow"));
    pipeline
}

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[tokio::test]
async fn a_run_outside_the_deployment_window_stops_at_prods_entry_saying_when_it_opens() {
    let repo = repository(&windowed_pipeline());
    let mut options = options(repo.path());
    // Saturday 2026-12-05 noon in New York; the window opens on Monday at
    // 09:00 there (14:00 UTC).
    options.now = Some(at("2026-12-05T17:00:00Z"));
    let (rehearsal, report) = rehearse(options).await;
    let (at_, error) = failed_with(&report);
    assert_eq!(at_, "Prod/BeforeEntry");
    assert!(
        matches!(error, ActionError::OutsideDeploymentWindow { .. }),
        "{error:?}"
    );
    assert!(
        failure(&report).contains("opens next at 2026-12-07T14:00:00Z"),
        "{}",
        failure(&report)
    );
    assert_eq!(report.stage("Beta").unwrap().status, Status::Succeeded);
    let prod = report.stage("Prod").unwrap();
    assert_eq!(prod.status, Status::Failed);
    assert!(prod.actions.is_empty(), "Prod was entered: {prod:?}");
    assert!(rehearsal.world().stack("Svc-prod").is_none());
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_run_inside_the_deployment_window_enters_prod() {
    let repo = repository(&windowed_pipeline());
    let mut options = options(repo.path());
    options.now = Some(at("2026-12-07T14:00:00Z"));
    let (rehearsal, report) = rehearse(options).await;
    assert!(report.succeeded(), "{}", failure(&report));
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn an_empty_deployment_window_leaves_prod_without_an_entry_condition() {
    let repo = repository(&windowed_pipeline());
    let mut options = options(repo.path());
    options.parameters.insert("Window".into(), String::new());
    options.now = Some(at("2026-12-05T17:00:00Z"));
    let (rehearsal, report) = rehearse(options).await;
    assert!(report.succeeded(), "{report:#?}");
    rehearsal.shutdown().await;
}

#[test]
fn the_cli_with_now_outside_the_window_fails_at_prods_entry_saying_when_it_opens() {
    let repo = repository(&windowed_pipeline());
    let (code, output) = cli(
        repo.path(),
        &["--approve", "--now", "2026-12-05T12:00:00-05:00"],
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("FAILED: Prod/BeforeEntry: outside the deployment window")
            && output.contains("opens next at 2026-12-07T14:00:00Z"),
        "{output}"
    );
}

#[test]
fn the_cli_refuses_a_now_that_is_not_rfc3339() {
    let repo = repository(PIPELINE);
    let (code, output) = cli(repo.path(), &["--now", "tomorrow"]);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("RFC 3339"), "{output}");
}

// --- The self-update: a pipeline that deploys its own template ------------

/// A pipeline that updates its own stack through a reviewed change set, an
/// approval skipped unless the review found a permission change, and the
/// execute, before Beta (pipeline.yaml's shape, small).
const SELF_UPDATING: &str = r##"
Transform: AWS::Serverless-2016-10-31
Parameters:
  ServiceName: {Type: String, Default: Svc}
  BranchName: {Type: String, Default: main}
Resources:
  GateFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${ServiceName}_gate"
      CodeUri: fn
      Handler: bootstrap
      Runtime: provided.al2023
      Timeout: 10
      Environment:
        Variables:
          REHEARSE_FAKE_FUNCTION: report
  ReviewFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${ServiceName}_review"
      CodeUri: fn
      Handler: bootstrap
      Runtime: provided.al2023
      Timeout: 10
      Environment:
        Variables:
          REHEARSE_FAKE_FUNCTION: review
  Pipeline:
    Type: AWS::CodePipeline::Pipeline
    Properties:
      RestartExecutionOnUpdate: true
      Stages:
        - Name: Source
          Actions:
            - Name: Source
              ActionTypeId: {Category: Source, Owner: AWS, Provider: CodeCommit, Version: "1"}
              Configuration:
                RepositoryName: repo
                BranchName: !Ref BranchName
              OutputArtifacts: [{Name: SourceCode}]
        - Name: Build
          Actions:
            - Name: Build
              ActionTypeId: {Category: Build, Owner: AWS, Provider: CodeBuild, Version: "1"}
              InputArtifacts: [{Name: SourceCode}]
              OutputArtifacts: [{Name: BuildOutput}]
        - Name: UpdatePipeline
          Actions:
            - Name: CreateChangeSet
              RunOrder: 1
              ActionTypeId: {Category: Deploy, Owner: AWS, Provider: CloudFormation, Version: "1"}
              Configuration:
                ActionMode: CHANGE_SET_REPLACE
                StackName: !Ref AWS::StackName
                ChangeSetName: self-update
                TemplatePath: BuildOutput::packaged-pipeline.yaml
                ParameterOverrides: !Sub '{"ServiceName": "${ServiceName}", "BranchName": "${BranchName}"}'
              InputArtifacts: [{Name: BuildOutput}]
            - Name: ReviewChanges
              RunOrder: 2
              Namespace: PipelineReview
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration:
                FunctionName: !Ref ReviewFunction
                UserParameters: !Sub '{"stackName": "${AWS::StackName}", "changeSetName": "self-update"}'
        - Name: ApprovePipelineUpdate
          BeforeEntry:
            Conditions:
              - Result: SKIP
                Rules:
                  - Name: PermissionChanges
                    RuleTypeId: {Category: Rule, Owner: AWS, Provider: VariableCheck, Version: "1"}
                    Configuration:
                      Variable: "#{PipelineReview.PermissionChanges}"
                      Value: "true"
                      Operator: EQ
          Actions:
            - Name: Approve
              ActionTypeId: {Category: Approval, Owner: AWS, Provider: Manual, Version: "1"}
        - Name: ExecutePipelineUpdate
          Actions:
            - Name: Deploy
              ActionTypeId: {Category: Deploy, Owner: AWS, Provider: CloudFormation, Version: "1"}
              Configuration:
                ActionMode: CHANGE_SET_EXECUTE
                StackName: !Ref AWS::StackName
                ChangeSetName: self-update
        - Name: Beta
          Actions:
            - Name: Gate
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration:
                FunctionName: !Ref GateFunction
"##;

/// SELF_UPDATING with one more stage after Beta.
fn self_updating_with_gamma() -> String {
    format!(
        "{SELF_UPDATING}        - Name: Gamma\n          Actions:\n            - Name: Gate\n              ActionTypeId: {{Category: Invoke, Owner: AWS, Provider: Lambda, Version: \"1\"}}\n              Configuration:\n                FunctionName: !Ref GateFunction\n"
    )
}

/// SELF_UPDATING with one more role in the pipeline stack.
fn self_updating_with_a_role() -> String {
    SELF_UPDATING.replace(
        "  Pipeline:\n",
        "  ExtraRole:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n        Version: \"2012-10-17\"\n        Statement:\n          - {Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}\n  Pipeline:\n",
    )
}

/// Commits `pipeline` as pipeline.yaml; returns the new commit.
fn commit_pipeline(repo: &Path, pipeline: &str) -> String {
    std::fs::write(repo.join("pipeline.yaml"), pipeline).unwrap();
    git(repo, &["commit", "-qam", "change the pipeline"]);
    git_output(repo, &["rev-parse", "HEAD"]).trim().to_string()
}

/// Options without --approve: an approval that is reached fails.
fn without_approve(repo: &Path) -> Options {
    let mut options = options(repo);
    options.approve = false;
    options
}

#[tokio::test]
async fn an_unchanged_pipeline_skips_the_update_approval_and_executes_nothing() {
    let repo = repository(SELF_UPDATING);
    let (_rehearsal, report) = rehearse(without_approve(repo.path())).await;
    assert!(report.succeeded(), "{}", failure(&report));
    assert_eq!(
        statuses(&report),
        [
            ("Source".to_string(), Status::Succeeded),
            ("Build".to_string(), Status::Succeeded),
            ("UpdatePipeline".to_string(), Status::Succeeded),
            ("ApprovePipelineUpdate".to_string(), Status::Skipped),
            ("ExecutePipelineUpdate".to_string(), Status::Succeeded),
            ("Beta".to_string(), Status::Succeeded),
        ]
    );
    let execute = &report.stage("ExecutePipelineUpdate").unwrap().actions[0];
    let summary = execute.summary.as_deref().unwrap_or_default();
    assert!(summary.contains("has no changes"), "{summary}");
}

#[tokio::test]
async fn a_commit_that_adds_a_stage_runs_under_the_new_definition_in_the_same_run() {
    let repo = repository(SELF_UPDATING);
    let (rehearsal, first) = rehearse(without_approve(repo.path())).await;
    assert!(first.succeeded(), "{}", failure(&first));
    let commit = commit_pipeline(repo.path(), &self_updating_with_gamma());
    let mut events = rehearsal.options().printer.subscribe();
    let report = rehearsal.run(&commit).await.unwrap();
    assert!(report.succeeded(), "{}", failure(&report));
    let (mut planned, mut switches) = (Vec::new(), 0);
    while let Ok(event) = events.try_recv() {
        match event {
            rehearse::report::Event::RunStarted { stages, .. } => {
                planned = stages.into_iter().map(|s| s.name).collect();
            }
            rehearse::report::Event::Note { text }
                if text.starts_with(
                    "pipeline definition changed: continuing under the new definition",
                ) =>
            {
                switches += 1;
            }
            _ => {}
        }
    }
    assert!(
        !planned.contains(&"Gamma".to_string()),
        "the run starts under the definition the pipeline stack runs: {planned:?}"
    );
    assert_eq!(switches, 1, "switched once");
    let names: Vec<String> = statuses(&report).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Source",
            "Build",
            "UpdatePipeline",
            "ApprovePipelineUpdate",
            "ExecutePipelineUpdate",
            "Beta",
            "Gamma"
        ],
        "the stage the new definition added ran"
    );
    assert_eq!(
        report.stage("ApprovePipelineUpdate").unwrap().status,
        Status::Skipped,
        "a new stage is no permission change"
    );
    // The new definition is now the pipeline stack's: the next run starts
    // under it and its self-update changes nothing.
    let again = rehearsal.run(&commit).await.unwrap();
    assert!(again.succeeded(), "{}", failure(&again));
    assert_eq!(again.stages.len(), 7);
    let execute = &again.stage("ExecutePipelineUpdate").unwrap().actions[0];
    assert!(
        execute
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("has no changes"),
        "{execute:?}"
    );
}

#[tokio::test]
async fn a_pipeline_change_that_touches_iam_stops_at_the_approval_without_approve() {
    let repo = repository(SELF_UPDATING);
    let (rehearsal, first) = rehearse(without_approve(repo.path())).await;
    assert!(first.succeeded(), "{}", failure(&first));
    let commit = commit_pipeline(repo.path(), &self_updating_with_a_role());
    let report = rehearsal.run(&commit).await.unwrap();
    let failed = report.failed_action.as_ref().expect("the run stops");
    assert_eq!(
        (failed.stage.as_str(), failed.action.as_str()),
        ("ApprovePipelineUpdate", "Approve"),
        "{}",
        failed.reason
    );
    assert!(failed.reason.contains("--approve"), "{}", failed.reason);
    assert_eq!(
        report.stage("ExecutePipelineUpdate").unwrap().status,
        Status::NotRun,
        "nothing executes before the approval"
    );
}

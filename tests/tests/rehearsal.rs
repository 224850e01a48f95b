//! `cargo rehearse` on this repository: the whole pipeline of pipeline.yaml
//! run locally with the real function binaries, and scratch copies of the
//! repository with one deliberate fault (or addition) each.
//!
//! What is rehearsed is the tree under test, whatever the branch: HEAD, or,
//! when files have uncommitted changes, a snapshot commit of the working
//! tree (see [`commit_under_test`]). Scratch copies start from that commit.
//!
//! The rehearsals run one at a time (they share the checkout under
//! `.rehearsal/`, which keeps cargo's release build warm) and need the tools
//! of `scripts/setup-tools.sh`. The first run on a machine builds every
//! function in release mode and takes minutes; later runs take seconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rehearse::{ActionError, Options, Rehearsal, RunReport, Status};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const JOB_TIMEOUT: Duration = Duration::from_secs(60);

fn options(repo: &Path) -> Options {
    let main = e2e::repo_root();
    e2e::tool("cargo-lambda");
    let mut options = Options::for_repo(repo);
    options.approve = true;
    options.job_timeout = JOB_TIMEOUT;
    options.target_dir = main.join("target");
    options.work_dir = main.join(".rehearsal");
    options.tools_dir = Some(main.join(".tools"));
    // Prod's bake (ProdBakeMinutes, 30 AWS minutes by default) in 200 ms:
    // these tests are not about it (tests/tests/prod_safety.rs is).
    options.time_scale = rehearse::traffic::TimeScale::millis_per_minute(200);
    options
        .parameters
        .insert("ProdBakeMinutes".into(), "1".into());
    options
}

async fn rehearse(options: Options) -> (Rehearsal, RunReport) {
    let rehearsal = Rehearsal::start(options).await.expect("rehearsal starts");
    let commit = rehearsal.source_commit().expect("a commit to rehearse");
    let report = rehearsal
        .run(&commit)
        .await
        .expect("the pipeline can be read");
    (rehearsal, report)
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?} failed: {out:?}");
}

const AUTHOR: [&str; 4] = ["-c", "user.email=test@example.com", "-c", "user.name=test"];

/// The commit that holds exactly the files under test: HEAD when nothing
/// is changed, otherwise a snapshot of the working tree (tracked files with
/// their uncommitted changes, and new files that are not ignored) on top of
/// HEAD, made as `cargo rehearse --working-tree` makes it: it touches no
/// branch, index, stash or file.
fn commit_under_test() -> String {
    rehearse::source::snapshot_working_tree(&e2e::repo_root(), None)
        .expect("a snapshot of the working tree")
        .commit
}

/// Options that rehearse this repository's commit under test.
fn options_for_this_tree() -> Options {
    let mut options = options(&e2e::repo_root());
    options.rev = Some(commit_under_test());
    options
}

/// A repository holding the commit under test as the tip of `main`, with
/// `file` edited by replacing `from` with `to`, committed.
fn scratch_copy(file: &str, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("git -C \"$1\" archive --format=tar \"$2\" | tar -x -C \"$3\"")
        .arg("sh")
        .arg(e2e::repo_root())
        .arg(commit_under_test())
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "--all", "."]);
    let mut commit = AUTHOR.to_vec();
    commit.extend(["commit", "-qm", "the commit under test"]);
    git(&repo, &commit);
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(from),
        "{file} no longer contains {from:?}: update this test"
    );
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let mut commit = AUTHOR.to_vec();
    commit.extend(["commit", "-qam", "deliberate change"]);
    git(&repo, &commit);
    (dir, repo)
}

/// Where the run failed (`Stage/Action`) and the action's typed error.
fn failed(report: &RunReport) -> (String, &ActionError) {
    let f = report
        .failed_action
        .as_ref()
        .unwrap_or_else(|| panic!("the run did not fail: {report:#?}"));
    let error = f
        .error
        .as_deref()
        .expect("a failed action carries its error");
    (format!("{}/{}", f.stage, f.action), error)
}

fn action_duration(report: &RunReport, stage: &str, action: &str) -> Duration {
    let stage = report.stage(stage).unwrap();
    let action = stage.actions.iter().find(|a| a.name == action).unwrap();
    Duration::from_millis(action.duration_ms)
}

#[tokio::test]
async fn a_full_rehearsal_passes_every_stage_and_prod_answers_london() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (rehearsal, report) = rehearse(options_for_this_tree()).await;
    assert!(report.succeeded(), "{report:#?}");
    let stages: Vec<(&str, Status)> = report
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        stages,
        [
            ("Source", Status::Succeeded),
            ("Build", Status::Succeeded),
            // The first run: the pipeline stack already holds this
            // definition, so the self-update finds no change, skips its
            // approval and executes nothing.
            ("UpdatePipeline", Status::Succeeded),
            ("ApprovePipelineUpdate", Status::Skipped),
            ("ExecutePipelineUpdate", Status::Succeeded),
            ("DeployTests", Status::Succeeded),
            ("Beta", Status::Succeeded),
            ("Gamma", Status::Succeeded),
            ("Prod", Status::Succeeded),
        ]
    );
    let execute = &report.stage("ExecutePipelineUpdate").unwrap().actions[0];
    assert!(
        execute
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("has no changes"),
        "{execute:?}"
    );
    let prod = report
        .urls
        .get("TimeService-prod")
        .expect("the prod stack serves an API");
    let response = reqwest::get(format!("{prod}time/Europe/London"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-service-stage"], "prod");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["timeZone"], "Europe/London");
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_commit_that_breaks_the_api_fails_at_betas_gate_and_goes_no_further() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The API then reports the wrong stage in x-service-stage.
    let (_dir, repo) = scratch_copy(
        "app-sam.yaml",
        "STAGE: !Ref Stage",
        "STAGE: !Sub \"${Stage}-broken\"",
    );
    let (rehearsal, report) = rehearse(options(&repo)).await;
    let (at, error) = failed(&report);
    assert_eq!(at, "Beta/IntegrationTests", "{error}");
    assert!(
        matches!(error, ActionError::JobReportedFailure { failure_type, message }
            if failure_type == "JobFailed" && message.contains("x-service-stage")),
        "the gate reports a failed job naming the check: {error:?}"
    );
    assert_eq!(report.stage("Gamma").unwrap().status, Status::NotRun);
    assert_eq!(report.stage("Prod").unwrap().status, Status::NotRun);
    assert!(rehearsal.world().stack("TimeService-gamma").is_none());
    assert!(rehearsal.world().stack("TimeService-prod").is_none());
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn bad_user_parameters_fail_the_gate_with_a_configuration_error_not_a_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy(
        "pipeline.yaml",
        r#""appStack": "${ServiceName}-beta", "stage": "beta"}"#,
        r#""appStack": "${ServiceName}-beta", "stage": "beta", "retries": 3}"#,
    );
    let (rehearsal, report) = rehearse(options(&repo)).await;
    let (at, error) = failed(&report);
    assert_eq!(at, "Beta/IntegrationTests", "{error}");
    assert!(
        matches!(error, ActionError::JobReportedFailure { failure_type, message }
            if failure_type == "ConfigurationError" && message.contains("retries")),
        "the failure is a configuration error naming the field: {error:?}"
    );
    assert!(action_duration(&report, "Beta", "IntegrationTests") < Duration::from_secs(10));
    rehearsal.shutdown().await;
}

#[tokio::test]
async fn a_gate_function_that_crashes_fails_its_action_within_the_deadline_saying_so() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Beta's gate invokes the TimeService function itself, which cannot read
    // a CodePipeline job event: the invocation fails and nothing reports.
    let (_dir, repo) = scratch_copy(
        "pipeline.yaml",
        "FunctionName: !Ref StartTestsFunction",
        "FunctionName: !Sub \"${ServiceName}-beta-time\"",
    );
    let started = Instant::now();
    let (rehearsal, report) = rehearse(options(&repo)).await;
    let (at, error) = failed(&report);
    assert_eq!(at, "Beta/IntegrationTests", "{error}");
    assert!(
        matches!(error, ActionError::FunctionFailed { function, .. }
            if function == "TimeService-beta-time"),
        "{error:?}"
    );
    assert!(action_duration(&report, "Beta", "IntegrationTests") < JOB_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(600));
    rehearsal.shutdown().await;
}

/// A second function in app-sam.yaml, for the same package's binary, with
/// its own route.
const SECOND_FUNCTION: &str = r#"  UtcFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: time-service
    Properties:
      FunctionName: !Sub "${ServiceName}-${Stage}-utc"
      CodeUri: functions/time-service
      Handler: bootstrap
      Runtime: provided.al2023
      Architectures: [arm64]
      PermissionsBoundary: !Ref PermissionsBoundaryArn
      Environment:
        Variables:
          STAGE: !Ref Stage
          RUST_LOG: info
      Events:
        EtcUtc:
          Type: HttpApi
          Properties:
            ApiId: !Ref TimeApi
            Method: GET
            Path: /time/Etc/UTC

  TimeFunctionLogs:
"#;

#[tokio::test]
async fn a_second_function_added_to_the_app_template_is_built_deployed_and_served() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy("app-sam.yaml", "  TimeFunctionLogs:\n", SECOND_FUNCTION);
    let options = options(&repo);
    let work_dir = options.work_dir.clone();
    // Function logs append across runs: start this one's afresh.
    let log = work_dir.join("logs/TimeService-prod/TimeService-prod-utc.log");
    let _ = std::fs::remove_file(&log);
    let (rehearsal, report) = rehearse(options).await;
    assert!(report.succeeded(), "{report:#?}");

    // Built by scripts/build.sh: the packaged template points the new
    // function at a bootstrap in the run's artifacts.
    let run = std::fs::read_dir(work_dir.join("runs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(&report.commit[..8]))
        })
        .max()
        .expect("the run's directory");
    let build_output = run.join("artifacts/BuildOutput");
    let packaged =
        cfn_template::Template::from_path(build_output.join("packaged-app.yaml")).unwrap();
    let code_uri = packaged
        .resource("UtcFunction")
        .and_then(|f| f.property("CodeUri"))
        .and_then(|c| c.as_str())
        .expect("the packaged template has the new function with a local CodeUri")
        .to_string();
    assert!(
        build_output.join(&code_uri).join("bootstrap").is_file(),
        "no bootstrap under {code_uri}"
    );

    // Deployed: its process runs in every stage, and the stage's route
    // reaches it.
    for stage in ["beta", "gamma", "prod"] {
        assert!(
            rehearsal
                .world()
                .function(&format!("TimeService-{stage}-utc"))
                .is_some(),
            "TimeService-{stage}-utc is not deployed"
        );
    }
    let prod = &report.urls["TimeService-prod"];
    let response = reqwest::get(format!("{prod}time/Etc/UTC")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-service-stage"], "prod");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("/time/Etc/UTC"),
        "the new function's own log shows it served the request: {}",
        log.display()
    );
    rehearsal.shutdown().await;
}

/// A commit that adds a function (and, through SAM, its role) to the app:
/// Prod's approval shows it before anything changes Prod. The review-changes
/// binary reads the change set the rehearsal computed from the running Prod
/// stack through the local DescribeChangeSet; its output variables reach the
/// approval through `#{ProdReview.*}`; the gates publish theirs.
#[tokio::test]
async fn a_commit_that_adds_a_function_shows_it_and_its_new_role_at_the_prod_approval() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy("app-sam.yaml", "  TimeFunctionLogs:\n", SECOND_FUNCTION);
    let started = Instant::now();
    let rehearsal = Rehearsal::start(options(&repo))
        .await
        .expect("rehearsal starts");
    let base = rehearse::source::resolve_commit(&repo, "HEAD~1").unwrap();
    let first = rehearsal.run(&base).await.unwrap();
    assert!(first.succeeded(), "{first:#?}");
    let action = |report: &RunReport, name: &str| {
        report
            .stage("Prod")
            .unwrap()
            .actions
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no Prod/{name}"))
            .clone()
    };
    let created = action(&first, "CreateChangeSet");
    assert!(
        created
            .summary
            .as_deref()
            .unwrap()
            .contains("(a new stack)"),
        "{created:?}"
    );

    let tip = rehearse::source::resolve_commit(&repo, "HEAD").unwrap();
    let report = rehearsal.run(&tip).await.unwrap();
    assert!(report.succeeded(), "{report:#?}");
    let review = action(&report, "ReviewChanges");
    let variables = &review.output_variables;
    assert_eq!(variables["Added"], "2", "{variables:?}");
    assert_eq!(variables["Removed"], "0", "{variables:?}");
    assert_eq!(variables["PermissionChanges"], "true", "{variables:?}");
    let text = &variables["ReviewText"];
    assert!(
        text.contains("+ added UtcFunction (AWS::Serverless::Function)"),
        "{text}"
    );
    assert!(
        text.contains("+ added UtcFunctionRole (AWS::IAM::Role) [PERMISSIONS]"),
        "{text}"
    );
    assert!(
        variables["ChangeSetUrl"].starts_with("https://"),
        "{variables:?}"
    );
    // The approval shows the review (CustomData) and the change set's link.
    let approve = action(&report, "Approve");
    let summary = approve.summary.as_deref().unwrap();
    assert!(summary.starts_with("approved (--approve): "), "{summary}");
    assert!(summary.contains("+ added UtcFunction ("), "{summary}");
    assert!(summary.contains(&variables["ChangeSetUrl"]), "{summary}");
    // Then the change set ran: the new function serves in Prod.
    assert!(rehearsal.world().function("TimeService-prod-utc").is_some());

    // The gates' findings, on the action and in the JSON result.
    let json = serde_json::to_value(&report).unwrap();
    let prod = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Prod")
        .unwrap();
    let gate = prod["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "IntegrationTests")
        .unwrap();
    let gate_variables = &gate["outputVariables"];
    assert_eq!(gate_variables["Stage"], "prod", "{gate}");
    assert_eq!(gate_variables["ChecksFailed"], "0", "{gate}");
    assert!(
        gate_variables["ChecksRun"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            > 0
    );
    assert_eq!(
        gate_variables["ApiUrl"].as_str(),
        Some(report.urls["TimeService-prod"].as_str())
    );
    assert!(gate_variables["DurationSeconds"].is_string());
    // An action without variables has no outputVariables key.
    let approve_json = prod["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Approve")
        .unwrap();
    assert!(approve_json.get("outputVariables").is_none());
    assert!(started.elapsed() < Duration::from_secs(300));
    rehearsal.shutdown().await;
}

/// Bounded permissions (issue 11, section 4): a commit whose function loses
/// its permissions boundary fails at its first deploy, before anything of
/// the stack starts, naming the role SAM would generate for it. The test
/// stack (unchanged) deploys.
#[tokio::test]
async fn a_function_without_the_permissions_boundary_fails_betas_deploy_naming_its_role() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy(
        "app-sam.yaml",
        "      PermissionsBoundary: !Ref PermissionsBoundaryArn\n",
        "",
    );
    let started = Instant::now();
    let (rehearsal, report) = rehearse(options(&repo)).await;
    let (at, error) = failed(&report);
    assert_eq!(at, "Beta/Deploy", "{error}");
    assert!(matches!(error, ActionError::DeployPolicy(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "DeployRole may not iam:CreateRole for role TimeFunctionRole (AWS::IAM::Role, from AWS::Serverless::Function TimeFunction) without the permissions boundary arn:aws:iam::123456789012:policy/TimeService_stack_role_boundary (denied by statement NoRoleWithoutTheBoundary): add PermissionsBoundary: !Ref PermissionsBoundaryArn"
        ),
        "{message}"
    );
    assert_eq!(
        report.stage("DeployTests").unwrap().status,
        Status::Succeeded
    );
    assert!(rehearsal.world().stack("TimeService-beta").is_none());
    assert_eq!(report.stage("Gamma").unwrap().status, Status::NotRun);
    assert!(started.elapsed() < Duration::from_secs(600));
    rehearsal.shutdown().await;
}

/// A role added to pipeline.yaml is a permission change of the pipeline's
/// own stack: the self-update's review flags it and the run stops at the
/// pipeline-update approval (no --approve), before the change set executes.
#[tokio::test]
async fn a_pipeline_change_that_adds_a_role_stops_at_the_pipeline_update_approval() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy(
        "pipeline.yaml",
        "  PipelineRole:\n",
        "  ExtraRole:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: !Sub \"${ServiceName}_extra\"\n      AssumeRolePolicyDocument:\n        Version: \"2012-10-17\"\n        Statement:\n          - Effect: Allow\n            Principal:\n              Service: lambda.amazonaws.com\n            Action: sts:AssumeRole\n\n  PipelineRole:\n",
    );
    let mut options = options(&repo);
    options.approve = false;
    // The self-update runs before DeployTests: nothing after it matters here.
    options.until = Some("DeployTests".into());
    let rehearsal = Rehearsal::start(options).await.expect("rehearsal starts");
    let base = rehearse::source::resolve_commit(&repo, "HEAD~1").unwrap();
    let first = rehearsal.run(&base).await.unwrap();
    assert!(first.failed_action.is_none(), "{first:#?}");

    let tip = rehearse::source::resolve_commit(&repo, "HEAD").unwrap();
    let report = rehearsal.run(&tip).await.unwrap();
    let review = &report.stage("UpdatePipeline").unwrap().actions[1];
    assert_eq!(
        review
            .output_variables
            .get("PermissionChanges")
            .map(String::as_str),
        Some("true"),
        "{review:?}"
    );
    let (at, _) = failed(&report);
    assert_eq!(at, "ApprovePipelineUpdate/Approve");
    assert_eq!(
        report.stage("ExecutePipelineUpdate").unwrap().status,
        Status::NotRun
    );
    rehearsal.shutdown().await;
}

// ---------------------------------------------------------------------------
// The example app (examples/orders): an API writing a DynamoDB table and
// sending to an SQS queue, a worker consuming the queue, its own gate suite;
// rehearsed as `cargo rehearse --app examples/orders` does, its table and
// queue in moto, each function running as its own role.
// ---------------------------------------------------------------------------

/// The example's directory and its pipeline parameters file.
const EXAMPLE: &str = "examples/orders";

/// Options that rehearse the example app of `repo` with the pipeline
/// parameters it ships (ServiceName Orders, AppDirectory examples/orders).
fn example_options(repo: &Path) -> Options {
    let mut options = options(repo);
    let file = e2e::repo_root()
        .join(EXAMPLE)
        .join(rehearse::parameters_file::APP_PARAMETERS_FILE);
    let parameters = rehearse::parameters_file::read(&file).expect("the example's parameters");
    assert_eq!(
        parameters.get("AppDirectory").map(String::as_str),
        Some(EXAMPLE)
    );
    options.parameters.extend(parameters);
    options
}

/// An order posted to `api` (a stage's base URL): its id.
async fn post_order(api: &str, item: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{api}orders"))
        .json(&serde_json::json!({"item": item, "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let body: serde_json::Value = response.json().await.unwrap();
    body["id"].as_str().expect("the order's id").to_string()
}

/// The order `id` as the API answers it, once its status is `status`
/// (within 20 s).
async fn order_with_status(api: &str, id: &str, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = reqwest::get(format!("{api}orders/{id}")).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        if body["status"] == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} never became {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_example_app_passes_every_stage_writing_its_table_and_processing_its_queue() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut options = example_options(&e2e::repo_root());
    options.rev = Some(commit_under_test());
    let (rehearsal, report) = rehearse(options).await;
    assert!(report.succeeded(), "{report:#?}");
    for stage in ["Beta", "Gamma", "Prod"] {
        let gate = report
            .stage(stage)
            .unwrap()
            .actions
            .iter()
            .find(|a| a.name == "IntegrationTests")
            .unwrap();
        assert_eq!(
            gate.output_variables
                .get("ChecksFailed")
                .map(String::as_str),
            Some("0"),
            "{stage}: {gate:?}"
        );
    }
    let prod = report
        .urls
        .get("Orders-prod")
        .expect("the prod stack serves the example's API");
    // Written through the API, read back from the table...
    let id = post_order(prod, "rehearsed widget").await;
    let order = order_with_status(prod, &id, "processed").await;
    // ...and processed by the worker from the queue.
    assert_eq!(order["item"], "rehearsed widget");
    assert_eq!(order["quantity"], 2);
    assert!(order["processedAt"].is_string(), "{order}");
    rehearsal.shutdown().await;
}

/// The API function without its table permission: its PutItem is denied
/// by moto's IAM as AWS would deny it, the API answers 502, Beta's gate
/// fails naming the check, and the function's log names the denied action
/// and the table.
#[tokio::test]
async fn an_example_commit_dropping_the_table_permission_fails_betas_gate_naming_the_denied_call() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy(
        &format!("{EXAMPLE}/app-sam.yaml"),
        "        - DynamoDBCrudPolicy:\n            TableName: !Ref OrdersTable\n",
        "",
    );
    let (rehearsal, report) = rehearse(example_options(&repo)).await;
    let (at, error) = failed(&report);
    assert_eq!(at, "Beta/IntegrationTests", "{error}");
    // The API saw DynamoDB's own AccessDeniedException (as on AWS) and said
    // so in its 502; the gate's failure quotes it.
    assert!(
        matches!(error, ActionError::JobReportedFailure { failure_type, message }
            if failure_type == "JobFailed"
                && message.contains("dynamodb PutItem failed: AccessDeniedException")),
        "{error:?}"
    );
    assert_eq!(report.stage("Gamma").unwrap().status, Status::NotRun);
    let log = e2e::repo_root().join(".rehearsal/logs/Orders-beta/Orders-beta-api.log");
    let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let denials: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("[rehearsal] AccessDenied:"))
        .collect();
    assert!(
        denials.iter().any(|l| l.contains(
            "may not dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/Orders-beta-orders"
        )),
        "the denied PutItem and its table are named: {denials:#?}\n{log}"
    );
    rehearsal.shutdown().await;
}

/// The same for the queue: without SQSSendMessagePolicy the API's
/// SendMessage is denied with SQS's own AccessDeniedException, and the log
/// names the action and the queue.
#[tokio::test]
async fn an_example_commit_dropping_the_queue_permission_fails_betas_gate_naming_the_denied_call() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_dir, repo) = scratch_copy(
        &format!("{EXAMPLE}/app-sam.yaml"),
        "        - SQSSendMessagePolicy:\n            QueueName: !GetAtt OrdersQueue.QueueName\n",
        "",
    );
    let (rehearsal, report) = rehearse(example_options(&repo)).await;
    let (at, error) = failed(&report);
    assert_eq!(at, "Beta/IntegrationTests", "{error}");
    assert!(
        matches!(error, ActionError::JobReportedFailure { message, .. }
            if message.contains("sqs SendMessage failed: AccessDeniedException")),
        "{error:?}"
    );
    let log = e2e::repo_root().join(".rehearsal/logs/Orders-beta/Orders-beta-api.log");
    let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(
        log.lines().any(|l| {
            l.starts_with("[rehearsal] AccessDenied:")
            && l.contains(
                "may not sqs:SendMessage on arn:aws:sqs:us-east-1:123456789012:Orders-beta-orders;"
            )
        }),
        "{log}"
    );
    rehearsal.shutdown().await;
}

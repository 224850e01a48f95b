//! The local console page: its JSON endpoint, the logs it serves, and the
//! page itself in a real browser (headless Chromium, Debian's `chromium`)
//! during a rehearsal of a small pipeline of fake functions (see `common`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rehearse::console::{Console, ConsoleOptions};
use rehearse::report::{
    ActionReport, PlannedAction, PlannedStage, Printer, Rehearsed, RunReport, StageReport, Status,
};
use serde_json::Value;

mod common;

/// Entry point of the fake function processes (see `common`).
#[test]
#[ignore = "entry point of the fake function process, started by the other tests"]
fn fake_function_main() {
    common::fake_function_main();
}

async fn console(work_dir: &Path, printer: &Printer) -> Console {
    Console::start(
        ConsoleOptions {
            port: 0,
            work_dir: work_dir.to_path_buf(),
        },
        printer.subscribe(),
    )
    .await
    .unwrap()
}

async fn get_json(console: &Console, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{}{}", console.url(), path.trim_start_matches('/')))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The state once `ready` holds (the console applies events as they come).
async fn state_when(console: &Console, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, state) = get_json(console, "/api/state").await;
        assert_eq!(status, 200);
        if ready(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "never ready: {state:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn plan() -> Vec<PlannedStage> {
    let stage = |name: &str, actions: &[(&str, &str, u32)]| PlannedStage {
        name: name.into(),
        actions: actions
            .iter()
            .map(|(name, provider, run_order)| PlannedAction {
                name: (*name).into(),
                provider: (*provider).into(),
                run_order: *run_order,
            })
            .collect(),
    };
    vec![
        stage("Source", &[("Source", "CodeCommit", 1)]),
        stage("Build", &[("Build", "CodeBuild", 1)]),
        stage(
            "Beta",
            &[("Deploy", "CloudFormation", 1), ("Gate", "Lambda", 2)],
        ),
    ]
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn start_run(printer: &Printer) {
    printer.run_start("Pipeline", COMMIT, &Rehearsed::Commit, "a change", plan());
}

fn report(status: Status) -> RunReport {
    let stage = |name: &str| StageReport {
        name: name.into(),
        status,
        duration_ms: 100,
        actions: Vec::new(),
        rolled_back: None,
    };
    RunReport {
        pipeline: "Pipeline".into(),
        commit: COMMIT.into(),
        rehearsed: Rehearsed::Commit,
        subject: "a change".into(),
        status,
        duration_ms: 1234,
        stages: vec![stage("Source"), stage("Build"), stage("Beta")],
        failed_action: None,
        stopped_before: None,
        urls: Default::default(),
    }
}

fn stage_names(state: &Value) -> Vec<&str> {
    state["current"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_state_endpoint_shows_the_running_action_with_its_progress_and_the_rest_pending() {
    let work = tempfile::tempdir().unwrap();
    let printer = Printer::quiet();
    let console = console(work.path(), &printer).await;
    start_run(&printer);
    printer.action_start("Build", "Build", "CodeBuild");
    printer.progress("Build", "Build", "building for 10 s");
    let state = state_when(&console, |s| {
        s["current"]["stages"][1]["actions"][0]["progress"] == "building for 10 s"
    })
    .await;
    assert_eq!(stage_names(&state), ["Source", "Build", "Beta"]);
    let build = &state["current"]["stages"][1];
    assert_eq!(build["state"], "running");
    assert_eq!(build["actions"][0]["state"], "running");
    assert!(build["actions"][0]["durationMs"].is_u64(), "{build:#}");
    assert_eq!(state["current"]["stages"][2]["state"], "pending");
    assert_eq!(state["current"]["stages"][2]["actions"][1]["name"], "Gate");
    assert_eq!(state["current"]["commit"], COMMIT);
    assert_eq!(state["runs"], Value::Array(vec![]));
}

#[tokio::test]
async fn a_finished_action_carries_its_duration_and_summary() {
    let work = tempfile::tempdir().unwrap();
    let printer = Printer::quiet();
    let console = console(work.path(), &printer).await;
    start_run(&printer);
    printer.action_start("Beta", "Gate", "Lambda");
    printer.action_end(
        "Beta",
        &ActionReport {
            name: "Gate".into(),
            category: "Invoke".into(),
            provider: "Lambda".into(),
            status: Status::Succeeded,
            duration_ms: 321,
            summary: Some("10 of 10 checks passed".into()),
            error: None,
            failure: None,
            output_variables: Default::default(),
        },
    );
    let state = state_when(&console, |s| {
        s["current"]["stages"][2]["actions"][1]["state"] == "succeeded"
    })
    .await;
    let gate = &state["current"]["stages"][2]["actions"][1];
    assert_eq!(gate["durationMs"], 321);
    assert_eq!(gate["summary"], "10 of 10 checks passed");
}

#[tokio::test]
async fn a_finished_run_is_listed_with_its_commit_and_result_and_after_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let printer = Printer::quiet();
    let first = console(work.path(), &printer).await;
    start_run(&printer);
    printer.run_end(&report(Status::Succeeded));
    let state = state_when(&first, |s| !s["runs"].as_array().unwrap().is_empty()).await;
    let run = &state["runs"][0];
    assert_eq!(run["commit"], COMMIT);
    assert_eq!(run["status"], "Succeeded");
    assert_eq!(run["durationMs"], 1234);
    assert_eq!(state["current"]["state"], "succeeded");
    drop(first);

    let again = console(work.path(), &Printer::quiet()).await;
    let (_, state) = get_json(&again, "/api/state").await;
    assert_eq!(state["runs"][0]["commit"], COMMIT, "{state:#}");
    let url = state["runs"][0]["url"].as_str().unwrap();
    let (status, kept) = get_json(&again, url).await;
    assert_eq!(status, 200);
    assert_eq!(kept["report"]["commit"], COMMIT);
    assert_eq!(kept["report"]["stages"][2]["name"], "Beta");
}

#[tokio::test]
async fn a_function_log_is_listed_and_served_as_text() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("logs/Svc-beta");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Svc-beta-fn.log"), "START RequestId: 1\nhello\n").unwrap();
    let console = console(work.path(), &Printer::quiet()).await;
    let (_, state) = get_json(&console, "/api/state").await;
    assert_eq!(state["logs"][0]["stack"], "Svc-beta");
    assert_eq!(state["logs"][0]["function"], "Svc-beta-fn");
    assert_eq!(state["logs"][0]["url"], "/logs/Svc-beta/Svc-beta-fn.log");
    let response = reqwest::get(format!("{}logs/Svc-beta/Svc-beta-fn.log", console.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        response.text().await.unwrap(),
        "START RequestId: 1\nhello\n"
    );
}

/// A request sent as written (a client library would resolve the dots).
fn raw_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

#[tokio::test]
async fn no_log_path_reaches_outside_the_logs_directory() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("logs/Svc-beta")).unwrap();
    std::fs::write(work.path().join("secret.log"), "secret").unwrap();
    std::os::unix::fs::symlink(
        work.path().join("secret.log"),
        work.path().join("logs/Svc-beta/link.log"),
    )
    .unwrap();
    let console = console(work.path(), &Printer::quiet()).await;
    let addr = console.addr();
    for path in [
        "/logs/Svc-beta/../../secret.log",
        "/logs/..%2F..%2Fsecret.log/x.log",
        "/logs/%2E%2E/secret.log",
        "/logs/Svc-beta/%2E%2E%2F%2E%2E%2Fsecret.log",
        "/logs/Svc-beta/link.log",
        "/logs/Svc-beta/missing.log",
        "/logs/Svc-beta/not-a-log.txt",
    ] {
        let (status, body) = tokio::task::spawn_blocking(move || raw_get(addr, path))
            .await
            .unwrap();
        assert!((400..500).contains(&status), "{path}: {status} {body}");
        assert!(
            !body.contains("secret\n") && body != "secret",
            "{path}: {body}"
        );
        if status != 404 || body.starts_with('{') {
            let error: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
            assert!(error["error"].is_string(), "{path}: {body}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_runs_and_methods_answer_json_errors() {
    let work = tempfile::tempdir().unwrap();
    let console = console(work.path(), &Printer::quiet()).await;
    let (status, body) = get_json(&console, "/api/nothing").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = get_json(&console, "/api/runs/no-such-run").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("no-such-run"),
        "{body}"
    );
    let response = reqwest::Client::new()
        .post(format!("{}api/state", console.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn a_request_for_another_host_name_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let console = console(work.path(), &Printer::quiet()).await;
    let addr = console.addr();
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /api/state HTTP/1.1\r\nHost: rebound.example:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, text)
    })
    .await
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"error\""), "{body}");
}

#[tokio::test]
async fn the_page_needs_nothing_from_outside_and_holds_the_state_it_first_draws() {
    let work = tempfile::tempdir().unwrap();
    let printer = Printer::quiet();
    let console = console(work.path(), &printer).await;
    printer.run_start(
        "Pipeline",
        COMMIT,
        &Rehearsed::Commit,
        "a </script><b>subject</b>",
        plan(),
    );
    state_when(&console, |s| !s["current"].is_null()).await;
    let response = reqwest::get(console.url()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = response.text().await.unwrap();
    for outside in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
        assert!(!page.contains(outside), "the page loads {outside}…");
    }
    assert!(
        page.contains(r#""subject":"a \u003c/script>\u003cb>subject\u003c/b>""#),
        "the first state is in the page, unable to end its script element"
    );
}

// --- In a browser, during a rehearsal ---------------------------------------

/// Source, Build, Beta (deploy, gate) and Prod (approval, deploy, gate).
const PIPELINE: &str = r#"
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
  Pipeline:
    Type: AWS::CodePipeline::Pipeline
    Properties:
      Stages:
        - Name: Source
          Actions:
            - Name: Source
              ActionTypeId: {Category: Source, Owner: AWS, Provider: CodeCommit, Version: "1"}
              Configuration: {RepositoryName: repo, BranchName: !Ref BranchName}
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
              Configuration: {FunctionName: !Ref GateFunction}
        - Name: Prod
          Actions:
            - Name: Approve
              RunOrder: 1
              ActionTypeId: {Category: Approval, Owner: AWS, Provider: Manual, Version: "1"}
            - Name: Deploy
              RunOrder: 2
              ActionTypeId: {Category: Deploy, Owner: AWS, Provider: CloudFormation, Version: "1"}
              Configuration:
                ActionMode: CREATE_UPDATE
                StackName: !Sub "${ServiceName}-prod"
                TemplatePath: BuildOutput::packaged-app.yaml
                ParameterOverrides: '{"Stage": "prod"}'
              InputArtifacts: [{Name: BuildOutput}]
            - Name: Gate
              RunOrder: 3
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration: {FunctionName: !Ref GateFunction}
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

/// `cargo rehearse --approve --keep` running in the background: its
/// console's URL, and its stdout so far.
struct KeptRehearsal {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    console_url: String,
    output: String,
}

impl KeptRehearsal {
    /// Starts the rehearsal with `args`; returns once it has printed its
    /// console's address.
    fn start(repo: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rehearse"))
            .arg("--repo")
            .arg(repo)
            .args(["--approve", "--keep", "--console-port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let mut rehearsal = Self {
            child,
            lines,
            console_url: String::new(),
            output: String::new(),
        };
        let line = rehearsal.wait_for("Console: ");
        rehearsal.console_url = line["Console: ".len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        rehearsal
    }

    /// Waits (a minute at most) for a line of its output that starts with `prefix`.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no line {prefix:?} ({e}): {}", self.output));
            self.output += &line;
            self.output.push('\n');
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Ctrl-C, as a person stops it; its exit code.
    fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the rehearsal did not stop on Ctrl-C: {}", self.output);
    }
}

impl Drop for KeptRehearsal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Debian's headless Chromium; a browser test never skips silently.
fn chromium() -> PathBuf {
    let candidates = [
        std::env::var_os("CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the console's browser test needs Chromium: install Debian's package \
                 (apt-get update && apt-get install -y --no-install-recommends chromium; \
                 scripts/test.sh does so when run as root), or set CHROMIUM to a chromium binary"
            )
        })
}

/// Runs headless Chromium on `url` with `args`, its virtual clock given
/// time for the page's script; its stdout.
fn browse(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The part of the DOM that is stage `name`'s box.
fn stage_box<'a>(dom: &'a str, name: &str) -> &'a str {
    let marker = format!("data-stage=\"{name}\"");
    let start = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no stage {name} in the page: {dom}"));
    let rest = &dom[start..];
    let end = rest[marker.len()..]
        .find("data-stage=\"")
        .map_or(rest.len(), |at| at + marker.len());
    &rest[..end]
}

/// The value of the first `attribute="…"` in `html` after `after`.
fn attribute<'a>(html: &'a str, after: &str, attribute: &str) -> Option<&'a str> {
    let rest = &html[html.find(after)?..];
    let marker = format!("{attribute}=\"");
    let rest = &rest[rest.find(&marker)? + marker.len()..];
    Some(&rest[..rest.find('"')?])
}

fn page_state(status: &str) -> &'static str {
    match status {
        "Succeeded" => "succeeded",
        "Failed" => "failed",
        "NotRun" => "notRun",
        _ => "unknown",
    }
}

/// Where the tests leave what a person would look at.
fn test_output() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fake repository, its build slowed down to `seconds` and saying
/// what it builds, as a real one does.
fn slow_build_repository(seconds: u32) -> tempfile::TempDir {
    let repo = common::fake_repository(PIPELINE, APP);
    let script = repo.path().join("scripts/build.sh");
    let build = std::fs::read_to_string(&script).unwrap();
    let slow = build.replace(
        "OUT=$4\n",
        &format!(
            "OUT=$4\necho 'build.sh: building function fake (1 of 1)'\necho '   Compiling fake-crate v0.1.0 (/src/fake)'\nsleep {seconds}\n"
        ),
    );
    assert_ne!(slow, build);
    std::fs::write(&script, slow).unwrap();
    common::git(repo.path(), &["commit", "-qam", "a slow build"]);
    repo
}

#[test]
fn in_a_browser_the_console_shows_the_run_as_it_goes_and_every_stage_as_it_ended() {
    let browser = chromium();
    let repo = slow_build_repository(10);
    let json = repo.path().join("result.json");
    let mut rehearsal = KeptRehearsal::start(
        repo.path(),
        &[
            "--progress-interval",
            "0.5",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let output = test_output();

    // During the build.
    let deadline = Instant::now() + Duration::from_secs(30);
    while
        !json_of(&format!("{}api/state", rehearsal.console_url))["current"]["stages"][1]["actions"]
            [0]["progress"]
            .as_str()
            .is_some_and(|p| p.contains("building for"))
    {
        assert!(
            Instant::now() < deadline,
            "no build progress: {}",
            rehearsal.output
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let dom = browse(&rehearsal.console_url, &["--dump-dom"]);
    let dom_took = started.elapsed();
    let state = |stage: &str| attribute(stage_box(&dom, stage), "data-stage", "data-state");
    assert_eq!(state("Source"), Some("succeeded"), "{dom}");
    assert_eq!(state("Build"), Some("running"), "{dom}");
    assert_eq!(state("Beta"), Some("pending"), "{dom}");
    assert_eq!(state("Prod"), Some("pending"), "{dom}");
    assert!(
        stage_box(&dom, "Build").contains("cargo: Compiling fake-crate v0.1.0"),
        "the build's progress: {dom}"
    );
    assert!(
        dom.contains("id=\"connection\">live, updated"),
        "the page's script read /api/state itself: {dom}"
    );
    browse(
        &rehearsal.console_url,
        &[
            &format!(
                "--screenshot={}",
                output.join("console-running.png").display()
            ),
            "--window-size=1280,1000",
        ],
    );

    // Once the run has ended, its stages kept.
    rehearsal.wait_for("Stages stay up until Ctrl-C");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(result["status"], "Succeeded", "{}", rehearsal.output);
    let dom = browse(&rehearsal.console_url, &["--dump-dom"]);
    let stages = result["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    for stage in stages {
        let name = stage["name"].as_str().unwrap();
        let html = stage_box(&dom, name);
        let expected = page_state(stage["status"].as_str().unwrap());
        assert_eq!(
            attribute(html, "data-stage", "data-state"),
            Some(expected),
            "{name}: {html}"
        );
        for action in stage["actions"].as_array().unwrap() {
            let action_name = action["name"].as_str().unwrap();
            assert_eq!(
                attribute(
                    html,
                    &format!("data-action=\"{action_name}\""),
                    "data-state"
                ),
                Some(page_state(action["status"].as_str().unwrap())),
                "{name}/{action_name}: {html}"
            );
        }
    }
    assert!(
        dom.contains("3 checks passed"),
        "the gate's summary is shown: {dom}"
    );

    let prod = stage_box(&dom, "Prod");
    let api = attribute(prod, "class=\"api\"", "href")
        .unwrap_or_else(|| panic!("no API link on Prod: {prod}"));
    assert_eq!(Some(api), result["urls"]["Svc-prod"].as_str());
    assert_eq!(
        status_of(&format!("{api}time")),
        201,
        "Prod's API answers through its link"
    );
    let log = attribute(prod, "class=\"log\"", "href")
        .unwrap_or_else(|| panic!("no function log link on Prod: {prod}"));
    let log_url = format!("{}{}", rehearsal.console_url, log.trim_start_matches('/'));
    assert_eq!(status_of(&log_url), 200, "{log_url}");
    assert!(
        dom.contains("class=\"past-run\" data-status=\"Succeeded\""),
        "the run is listed: {dom}"
    );

    let screenshot = output.join("console.png");
    let _ = std::fs::remove_file(&screenshot);
    browse(
        &rehearsal.console_url,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,1000",
        ],
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    eprintln!(
        "console page: DOM in {dom_took:?} ({}), screenshots in {}",
        browser.display(),
        output.display()
    );
    assert_eq!(rehearsal.stop(), Some(0));
}

fn blocking<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The JSON of a GET of `url` (from a test without a runtime).
fn json_of(url: &str) -> Value {
    blocking(async {
        reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    })
}

/// The status of a GET of `url` (from a test without a runtime).
fn status_of(url: &str) -> u16 {
    blocking(async {
        reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .status()
            .as_u16()
    })
}

//! `cargo rehearse` on a terminal: the live pipeline view instead of a line
//! per action (run under a pseudo-terminal made by util-linux `script`),
//! and `--no-live` to keep the lines.

use std::path::Path;
use std::process::{Command, Stdio};

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
              Configuration: {RepositoryName: repo, BranchName: main}
              OutputArtifacts: [{Name: SourceCode}]
        - Name: Build
          Actions:
            - Name: Build
              ActionTypeId: {Category: Build, Owner: AWS, Provider: CodeBuild, Version: "1"}
              InputArtifacts: [{Name: SourceCode}]
              OutputArtifacts: [{Name: BuildOutput}]
        - Name: Beta
          Actions:
            - Name: Gate
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration: {FunctionName: !Ref GateFunction}
"#;

const APP: &str = "Resources: {}\n";

/// The CLI's output on a pseudo-terminal (escape sequences included).
fn on_a_terminal(repo: &Path, args: &str) -> (bool, String) {
    let command = format!(
        "'{}' --repo '{}' {args}",
        env!("CARGO_BIN_EXE_rehearse"),
        repo.display()
    );
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("COLUMNS", "100")
        .env("LINES", "40")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` runs the CLI on a pseudo-terminal");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_the_cli_draws_the_pipeline_in_place_of_action_lines() {
    let repo = common::fake_repository(PIPELINE, APP);
    let (ok, output) = on_a_terminal(repo.path(), "--approve");
    assert!(ok, "{output}");
    assert!(
        !output.contains("▶ Beta/Gate (Lambda) started"),
        "no action lines: {output}"
    );
    assert!(
        output.contains("  ✔ Beta ") && output.contains("    ✔ Gate (Lambda) "),
        "the picture's stage and action lines: {output}"
    );
    assert!(
        output.contains("        job reported success"),
        "the gate's summary on an indented line: {output}"
    );
    assert!(
        output.contains("\x1b[") || output.contains('\r'),
        "redrawn in place: {output:?}"
    );
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("Total") && l.contains("Succeeded")),
        "the final table follows the picture: {output}"
    );
}

#[test]
fn with_no_live_the_cli_prints_a_line_per_action_on_a_terminal() {
    let repo = common::fake_repository(PIPELINE, APP);
    let (ok, output) = on_a_terminal(repo.path(), "--approve --no-live");
    assert!(ok, "{output}");
    assert!(output.contains("▶ Beta/Gate (Lambda) started"), "{output}");
    assert!(!output.contains("    ✔ Gate (Lambda) "), "{output}");
}

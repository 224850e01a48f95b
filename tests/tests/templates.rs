//! The deployable templates pass the real AWS checkers: cfn-lint (zero errors
//! and warnings), checkov (zero failed checks; every suppression in the
//! template's Metadata with a reason), cfn-guard (our policy rules), and
//! `sam build` of the application template.

use e2e::{repo_root, run, tool_command};

const TEMPLATES: [&str; 3] = ["app-sam.yaml", "test-sam.yaml", "pipeline.yaml"];

fn cfn_lint(template: &str) {
    let (ok, out) = run(tool_command("cfn-lint").current_dir(repo_root()).args([
        "--format",
        "parseable",
        template,
    ]));
    assert!(
        ok,
        "cfn-lint reported errors, warnings or notes in {template}:\n{out}"
    );
}

fn checkov(template: &str) {
    let (ok, out) = run(tool_command("checkov").current_dir(repo_root()).args([
        "-f",
        template,
        "--framework",
        "cloudformation",
        "--skip-download",
        "--compact",
        "--quiet",
        "-o",
        "json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("checkov output for {template} is not JSON ({e}):\n{out}"));
    let summary = &report["summary"];
    assert_eq!(
        summary["failed"], 0,
        "checkov failed checks in {template}:\n{out}"
    );
    assert_eq!(
        summary["parsing_errors"], 0,
        "checkov could not parse {template}"
    );
    assert!(
        summary["passed"].as_u64().unwrap_or(0) > 0,
        "checkov ran no check on {template}"
    );
    assert!(ok, "checkov exited non-zero on {template}:\n{out}");
    for skipped in report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let reason = skipped["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or("");
        assert!(
            reason.len() >= 40,
            "{template}: checkov suppression {} on {} needs a written reason, got {reason:?}",
            skipped["check_id"],
            skipped["resource"]
        );
    }
}

fn cfn_guard(template: &str) {
    let rules = repo_root().join("guard");
    let (ok, out) = run(tool_command("cfn-guard").current_dir(repo_root()).args([
        "validate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        template,
        "--show-summary",
        "fail",
    ]));
    assert!(ok, "cfn-guard rules in guard/ fail on {template}:\n{out}");
}

#[test]
fn app_template_passes_cfn_lint() {
    cfn_lint(TEMPLATES[0]);
}

#[test]
fn test_template_passes_cfn_lint() {
    cfn_lint(TEMPLATES[1]);
}

#[test]
fn pipeline_template_passes_cfn_lint() {
    cfn_lint(TEMPLATES[2]);
}

#[test]
fn app_template_passes_checkov() {
    checkov(TEMPLATES[0]);
}

#[test]
fn test_template_passes_checkov() {
    checkov(TEMPLATES[1]);
}

#[test]
fn pipeline_template_passes_checkov() {
    checkov(TEMPLATES[2]);
}

#[test]
fn app_template_passes_cfn_guard_rules() {
    cfn_guard(TEMPLATES[0]);
}

#[test]
fn test_template_passes_cfn_guard_rules() {
    cfn_guard(TEMPLATES[1]);
}

#[test]
fn pipeline_template_passes_cfn_guard_rules() {
    cfn_guard(TEMPLATES[2]);
}

/// The guard rules are not vacuous: a template breaking each rule fails.
#[test]
fn cfn_guard_rules_reject_a_template_that_breaks_them() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Handler: bootstrap
      Runtime: python3.9
      Architectures: [x86_64]
      Policies:
        - Statement:
            - Effect: Allow
              Action: "*"
              Resource: "*"
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: forever
"#,
    )
    .unwrap();
    let rules = repo_root().join("guard");
    let (ok, out) = run(tool_command("cfn-guard").args([
        "validate",
        "--rules",
        rules.to_str().unwrap(),
        "--data",
        bad.to_str().unwrap(),
        "--show-summary",
        "fail",
    ]));
    assert!(
        !ok,
        "cfn-guard accepted a template breaking every rule:\n{out}"
    );
    for rule in [
        "lambda_functions_run_rust_on_arm64",
        "log_groups_expire",
        "no_wildcard_actions",
    ] {
        assert!(out.contains(rule), "rule {rule} did not fire:\n{out}");
    }
}

/// `sam build -t <template>` builds the template's functions here, without
/// Docker, through cargo-lambda, into arm64 `bootstrap`s.
fn sam_build(template: &str, functions: &[&str]) {
    let build_dir = tempfile::tempdir().unwrap();
    let (ok, out) = run(tool_command("sam")
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", repo_root().join("target"))
        .env("SAM_CLI_TELEMETRY", "0")
        .args(["build", "-t", template, "--build-dir"])
        .arg(build_dir.path()));
    assert!(ok, "sam build -t {template} failed:\n{out}");
    for function in functions {
        let bootstrap = build_dir.path().join(function).join("bootstrap");
        let bytes = std::fs::read(&bootstrap)
            .unwrap_or_else(|e| panic!("{} missing ({e}):\n{out}", bootstrap.display()));
        assert_eq!(&bytes[..4], b"\x7fELF", "{function}: not an ELF file");
        // e_machine at offset 18, little-endian: 183 is EM_AARCH64.
        assert_eq!(
            u16::from_le_bytes([bytes[18], bytes[19]]),
            183,
            "{function}: not an arm64 binary"
        );
    }
}

#[test]
fn app_template_builds_with_sam() {
    sam_build(TEMPLATES[0], &["TimeFunction"]);
}

#[test]
fn test_template_builds_with_sam() {
    sam_build(TEMPLATES[1], &["RunTestsFunction"]);
}

#[test]
fn pipeline_template_builds_with_sam() {
    sam_build(TEMPLATES[2], &["StartTestsFunction"]);
}

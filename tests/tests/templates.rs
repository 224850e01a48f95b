//! The deployable templates pass the real AWS checkers: cfn-lint (zero errors
//! and warnings), checkov (zero failed checks; every suppression in the
//! template's Metadata with a reason), cfn-guard (our policy rules), and
//! `sam build` of the application template. And services stay apart: no
//! policy in one service's pipeline stack reaches what another service's
//! stacks create (checked on the templates after the SAM transform).

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

// The example app's two templates (examples/orders, rehearsed with
// `cargo rehearse --app examples/orders`) pass the same checkers: they are
// what a user copies. Their functions' arm64 release build (`sam build`)
// is left out: the rehearsal tests build them from the same Metadata.
const EXAMPLE_TEMPLATES: [&str; 2] = [
    "examples/orders/app-sam.yaml",
    "examples/orders/test-sam.yaml",
];

#[test]
fn example_templates_pass_cfn_lint() {
    for template in EXAMPLE_TEMPLATES {
        cfn_lint(template);
    }
}

#[test]
fn example_templates_pass_checkov() {
    for template in EXAMPLE_TEMPLATES {
        checkov(template);
    }
}

#[test]
fn example_templates_pass_cfn_guard_rules() {
    for template in EXAMPLE_TEMPLATES {
        cfn_guard(template);
    }
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
    sam_build(
        TEMPLATES[2],
        &["StartTestsFunction", "ReviewChangesFunction"],
    );
}

// ---------------------------------------------------------------------------
// Service isolation: several services share an account, each with its own
// pipeline stack. No scoping pattern in one service's pipeline.yaml may
// reach a resource another service's stacks create, whatever the names.
// ---------------------------------------------------------------------------

mod sam;

use cfn_template::{Resolver, Template};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

/// The stacks a service's pipeline deploys: (stack suffix, template, Stage).
const SERVICE_STACKS: [(&str, &str, Option<&str>); 4] = [
    ("tests", "test-sam.yaml", None),
    ("beta", "app-sam.yaml", Some("beta")),
    ("gamma", "app-sam.yaml", Some("gamma")),
    ("prod", "app-sam.yaml", Some("prod")),
];

/// The ARN CloudFormation gives a resource of `stack`, from its (resolved)
/// name, or the name CloudFormation generates (`<stack>-<logical id>-<suffix>`
/// for roles, lower case for buckets). `None` for types no pattern scopes.
fn arn_of(resource: &cfn_template::Resource<'_>, stack: &str) -> Option<String> {
    let name = |prop: &str| resource.property(prop).and_then(Value::as_str);
    let generated = format!("{stack}-{}-1A2B3C4D5E6F", resource.logical_id());
    let arn = match resource.resource_type() {
        "AWS::Lambda::Function" | "AWS::Serverless::Function" => {
            format!(
                "arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}",
                name("FunctionName")?
            )
        }
        "AWS::IAM::Role" => format!(
            "arn:aws:iam::{ACCOUNT}:role/{}",
            name("RoleName").map_or(generated, str::to_string)
        ),
        "AWS::Logs::LogGroup" => format!(
            "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{}",
            name("LogGroupName")?
        ),
        "AWS::CodeBuild::Project" => {
            format!(
                "arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{}",
                name("Name")?
            )
        }
        "AWS::CodeBuild::ReportGroup" => format!(
            "arn:aws:codebuild:{REGION}:{ACCOUNT}:report-group/{}",
            name("Name")?
        ),
        "AWS::CodeCommit::Repository" => {
            format!(
                "arn:aws:codecommit:{REGION}:{ACCOUNT}:{}",
                name("RepositoryName")?
            )
        }
        "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{}", name("TopicName")?),
        "AWS::Events::Rule" => format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{}", name("Name")?),
        "AWS::CodePipeline::Pipeline" => {
            format!("arn:aws:codepipeline:{REGION}:{ACCOUNT}:{}", name("Name")?)
        }
        "AWS::CloudWatch::Alarm" => format!(
            "arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{}",
            name("AlarmName")?
        ),
        "AWS::CodeDeploy::Application" => format!(
            "arn:aws:codedeploy:{REGION}:{ACCOUNT}:application:{}",
            name("ApplicationName").map_or(generated, str::to_string)
        ),
        "AWS::IAM::ManagedPolicy" => format!(
            "arn:aws:iam::{ACCOUNT}:policy/{}",
            name("ManagedPolicyName")?
        ),
        "AWS::S3::Bucket" => format!("arn:aws:s3:::{}", generated.to_ascii_lowercase()),
        "AWS::KMS::Key" => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{generated}"),
        _ => return None,
    };
    Some(arn)
}

fn pseudo(r: Resolver) -> Resolver {
    r.with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", REGION)
        .with_ref("AWS::AccountId", ACCOUNT)
        .with_ref("AWS::URLSuffix", "amazonaws.com")
        .with_ref("AWS::StackName", "unused")
}

/// pipeline.yaml resolved for `service` (CodeCommit source), every
/// resource's `Ref` and `Arn` attribute set from its name as CloudFormation
/// would, plus those ARNs.
fn pipeline_stack(service: &str) -> (Template, Vec<String>) {
    let t = Template::from_path(e2e::repo_root().join("pipeline.yaml")).unwrap();
    let stack = format!("{service}-pipeline");
    let names = t.resolved(&pseudo(Resolver::for_template(
        &t,
        [("ServiceName", service)],
    )));
    let mut r = pseudo(Resolver::for_template(&t, [("ServiceName", service)]));
    let mut arns = Vec::new();
    for resource in names.resources() {
        let Some(arn) = arn_of(&resource, &stack) else {
            continue;
        };
        let id = resource.logical_id();
        let reference = match resource.resource_type() {
            "AWS::SNS::Topic" | "AWS::IAM::ManagedPolicy" => arn.clone(),
            "AWS::Logs::LogGroup" => resource
                .property("LogGroupName")
                .unwrap()
                .as_str()
                .unwrap()
                .to_string(),
            _ => arn.rsplit([':', '/']).next().unwrap().to_string(),
        };
        r.set_ref(id, reference);
        let attribute = match resource.resource_type() {
            "AWS::Logs::LogGroup" => format!("{arn}:*"),
            _ => arn.clone(),
        };
        r = r.with_attribute(id, "Arn", attribute);
        arns.push(arn);
    }
    arns.extend(SERVICE_STACKS.iter().map(|(suffix, _, _)| {
        format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{service}-{suffix}/0a1b2c3d")
    }));
    (t.resolved(&r), arns)
}

/// The ARNs of what `service`'s four stacks create, from the app and test
/// templates after the SAM transform, resolved for each stack.
fn service_stack_arns(service: &str) -> Vec<String> {
    let mut arns = Vec::new();
    for (suffix, template, stage) in SERVICE_STACKS {
        let stack = format!("{service}-{suffix}");
        let t = Template::from_json(sam::translate(template, "us-east-1")).unwrap();
        let mut parameters = vec![("ServiceName", service)];
        parameters.extend(stage.map(|s| ("Stage", s)));
        let r = pseudo(Resolver::for_template(&t, parameters))
            .with_ref("AWS::StackName", stack.clone());
        for resource in t.resolved(&r).resources() {
            arns.extend(arn_of(&resource, &stack));
        }
    }
    arns
}

/// Every ARN `service` names after itself: its pipeline stack's resources,
/// its four stacks and what they create.
fn service_arns(service: &str) -> Vec<String> {
    let (_, mut arns) = pipeline_stack(service);
    arns.extend(service_stack_arns(service));
    arns
}

/// Whether every action of a statement only describes or lists (names and
/// settings, never contents), like the deploy role's DescribeLogGroups on
/// the region's `log-group:*`: reads that cannot change another service.
fn lists_only(statement: &Value) -> bool {
    sam::strings(&statement["Action"]).iter().all(|a| {
        let verb = a
            .as_str()
            .and_then(|a| a.split_once(':'))
            .map_or("", |(_, v)| v);
        verb.starts_with("Describe") || verb.starts_with("List")
    })
}

/// Every `Resource` of an Allow statement in the inline policies of
/// `service`'s pipeline roles, resolved; left out: `"*"` (actions AWS scopes
/// no further) and statements that only describe or list.
fn scoping_patterns(service: &str) -> Vec<String> {
    let (resolved, _) = pipeline_stack(service);
    let mut patterns = Vec::new();
    for role in resolved.resources_of_type("AWS::IAM::Role") {
        for policy in role
            .property("Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                if statement["Effect"] != "Allow" || lists_only(statement) {
                    continue;
                }
                for resource in sam::strings(&statement["Resource"]) {
                    let pattern = resource.as_str().unwrap_or_else(|| {
                        panic!("{}: unresolved Resource {resource}", role.logical_id())
                    });
                    if pattern != "*" {
                        patterns.push(pattern.to_string());
                    }
                }
            }
        }
    }
    patterns
}

fn overlaps(patterns: &[String], arns: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for p in patterns {
        for a in arns {
            if e2e::iam_matches(p, a) {
                found.push(format!("{p} matches {a}"));
            }
        }
    }
    found
}

/// A service whose name extends another's ("Time" and "Time-Zones",
/// "TimeZones") gets none of the other's resources, and neither reaches the
/// other's. (A name that continues with a stack name, "Time-beta", would
/// collide with "Time"'s beta stack: the templates refuse hyphens in
/// ServiceName for that, see the next test but one.)
#[test]
fn no_pipeline_policy_of_one_service_reaches_another_services_resources() {
    for (one, other) in [("Time", "Time-Zones"), ("Time", "TimeZones")] {
        let found = overlaps(&scoping_patterns(one), &service_arns(other));
        assert!(
            found.is_empty(),
            "{one}'s policies reach {other}'s resources:\n  {}",
            found.join("\n  ")
        );
        let found = overlaps(&scoping_patterns(other), &service_arns(one));
        assert!(
            found.is_empty(),
            "{other}'s policies reach {one}'s resources:\n  {}",
            found.join("\n  ")
        );
    }
}

/// The patterns are not vacuous: every function, role, log group, alarm and
/// CodeDeploy application the service's own four stacks create is within
/// the deploy role's reach.
#[test]
fn the_deploy_role_reaches_every_function_role_log_group_alarm_and_application_of_its_stacks() {
    let (resolved, _) = pipeline_stack("Time");
    let deploy = resolved.resource("DeployRole").unwrap();
    let patterns: Vec<String> =
        deploy.property("Policies").unwrap()[0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| {
                sam::strings(&s["Resource"])
                    .into_iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|p| p != "*")
            .collect();
    let arns = service_stack_arns("Time");
    assert!(
        arns.len() >= 4 * 2,
        "functions, roles and log groups found: {arns:?}"
    );
    for arn in arns {
        assert!(
            patterns.iter().any(|p| e2e::iam_matches(p, &arn)),
            "DeployRole cannot manage {arn}"
        );
    }
}

/// Hyphens would make the name prefix ambiguous ("Time" + "-beta-..." is
/// also "Time-beta" + "-..."): every template refuses them in ServiceName.
#[test]
fn every_template_refuses_a_service_name_with_a_hyphen() {
    for template in TEMPLATES.into_iter().chain(EXAMPLE_TEMPLATES) {
        let t = Template::from_path(e2e::repo_root().join(template)).unwrap();
        let pattern = t
            .parameter("ServiceName")
            .and_then(|p| p.attribute("AllowedPattern"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{template}: ServiceName has an AllowedPattern"))
            .to_string();
        let check = |name: &str| {
            let (ok, out) = run(std::process::Command::new(e2e::tool("python")).args([
                "-c",
                "import re, sys; sys.exit(0 if re.fullmatch(sys.argv[1], sys.argv[2]) else 1)",
                &pattern,
                name,
            ]));
            assert!(out.trim().is_empty(), "{out}");
            ok
        };
        assert!(
            check("TimeService"),
            "{template}: {pattern} accepts TimeService"
        );
        assert!(check("Time2"), "{template}: {pattern} accepts digits");
        for bad in ["Time-Zones", "Time-beta", "Time_Zones", "2Time"] {
            assert!(!check(bad), "{template}: {pattern} refuses {bad}");
        }
    }
}

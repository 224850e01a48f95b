//! The pipeline that pipeline.yaml defines has the shape the service relies
//! on: Source -> Build -> the self-update (UpdatePipeline,
//! ApprovePipelineUpdate, ExecutePipelineUpdate) -> DeployTests -> Beta ->
//! Gamma -> Prod, every
//! deployment from the build's packaged templates, a test gate after every
//! stage deployment that names the right stacks, and before prod a change
//! set, its review and a manual approval showing that review (the review's
//! output variables wired to the approval), then the change set executed.
//!
//! The template is parsed with cfn-template (short-form tags kept) and
//! resolved for a service name other than the default, so a name that is
//! hard-coded instead of derived from `ServiceName` fails these tests.

use cfn_template::{Action, ActionCategory, Pipeline, Resolver, Stage, Template};
use serde_json::{Value, json};

const SERVICE: &str = "Clock";

fn template() -> Template {
    Template::from_path(e2e::repo_root().join("pipeline.yaml")).expect("pipeline.yaml parses")
}

/// The resolver for `parameters`, also knowing the start-tests function's
/// physical name (what `!Ref StartTestsFunction` returns).
fn resolver(t: &Template, parameters: &[(&str, &str)]) -> Resolver {
    let mut r = Resolver::for_template(t, parameters.iter().copied());
    let function = t
        .resource("StartTestsFunction")
        .expect("a StartTestsFunction resource");
    let name = r
        .resolve_str(
            function
                .property("FunctionName")
                .expect("an explicit FunctionName"),
        )
        .expect("FunctionName resolves from the parameters");
    r.set_ref("StartTestsFunction", name);
    let review = t
        .resource("ReviewChangesFunction")
        .expect("a ReviewChangesFunction resource");
    let name = r
        .resolve_str(
            review
                .property("FunctionName")
                .expect("an explicit FunctionName"),
        )
        .expect("FunctionName resolves from the parameters");
    r.set_ref("ReviewChangesFunction", name);
    // What `!Ref` of the boundary policy returns: its ARN.
    r.set_ref("StackRoleBoundary", BOUNDARY_ARN);
    // The pipeline stack's own name (`sam deploy --stack-name`).
    r.set_ref("AWS::StackName", PIPELINE_STACK);
    r
}

/// The name the pipeline stack of service `Clock` is deployed under.
const PIPELINE_STACK: &str = "Clock-pipeline";

/// The ARN of the permissions boundary of service `Clock`'s stack roles.
const BOUNDARY_ARN: &str = "arn:aws:iam::123456789012:policy/Clock_stack_role_boundary";

fn pipeline_with(parameters: &[(&str, &str)]) -> Pipeline {
    let t = template();
    let r = resolver(&t, parameters);
    t.resolved(&r)
        .pipeline("Pipeline")
        .expect("the Pipeline resource parses")
}

/// The pipeline for service `Clock` with the default (CodeCommit) source.
fn pipeline() -> Pipeline {
    pipeline_with(&[("ServiceName", SERVICE)])
}

fn stage<'a>(p: &'a Pipeline, name: &str) -> &'a Stage {
    p.stage(name).unwrap_or_else(|| panic!("no stage {name}"))
}

/// The single CloudFormation deploy action of a stage that names the
/// stack's template and parameters (Prod's CHANGE_SET_REPLACE; the deploy
/// itself elsewhere).
fn deploy(stage: &Stage) -> &Action {
    let deploys: Vec<&Action> = stage
        .actions_of(ActionCategory::Deploy)
        .filter(|a| a.template_path().is_some())
        .collect();
    assert_eq!(
        deploys.len(),
        1,
        "stage {} has one deploy action with a template",
        stage.name
    );
    assert_eq!(deploys[0].provider, "CloudFormation");
    deploys[0]
}

/// The single CloudFormation action of a stage that changes its stack
/// (Prod's CHANGE_SET_EXECUTE; the deploy itself elsewhere).
fn stack_change(stage: &Stage) -> &Action {
    let changes: Vec<&Action> = stage
        .actions_of(ActionCategory::Deploy)
        .filter(|a| a.config_str("ActionMode") != Some("CHANGE_SET_REPLACE"))
        .collect();
    assert_eq!(
        changes.len(),
        1,
        "stage {} has one action that changes its stack",
        stage.name
    );
    assert_eq!(changes[0].provider, "CloudFormation");
    changes[0]
}

/// The single test gate of a stage: the Lambda invoke of start-tests.
fn test_gate(stage: &Stage) -> &Action {
    let invokes: Vec<&Action> = stage
        .actions_of(ActionCategory::Invoke)
        .filter(|a| a.config_str("FunctionName") == Some("Clock_start_tests"))
        .collect();
    assert_eq!(
        invokes.len(),
        1,
        "stage {} has one start-tests invoke action",
        stage.name
    );
    assert_eq!(invokes[0].provider, "Lambda");
    invokes[0]
}

/// The `Namespace` of an action, if it has one.
fn namespace(action: &Action) -> Option<&str> {
    action.other.get("Namespace").and_then(Value::as_str)
}

fn user_parameters(action: &Action) -> Value {
    let text = action
        .config_str("UserParameters")
        .expect("UserParameters is a resolved string");
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("UserParameters {text:?} is not JSON: {e}"))
}

fn parameter_overrides(action: &Action) -> Value {
    let text = action
        .config_str("ParameterOverrides")
        .expect("ParameterOverrides is a resolved string");
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("ParameterOverrides {text:?} is not JSON: {e}"))
}

#[test]
fn stages_run_source_build_the_self_update_deploytests_beta_gamma_prod() {
    assert_eq!(
        pipeline().stage_names(),
        [
            "Source",
            "Build",
            "UpdatePipeline",
            "ApprovePipelineUpdate",
            "ExecutePipelineUpdate",
            "DeployTests",
            "Beta",
            "Gamma",
            "Prod"
        ]
    );
}

#[test]
fn build_output_comes_from_the_codebuild_action_of_the_build_stage() {
    let p = pipeline();
    let (stage, action) = p
        .producer_of("BuildOutput")
        .expect("something outputs BuildOutput");
    assert_eq!(stage.name, "Build");
    assert_eq!(action.provider, "CodeBuild");
    assert_eq!(action.input_artifacts, ["SourceCode"]);
}

#[test]
fn every_deploy_takes_its_template_from_the_build_output() {
    let p = pipeline();
    let deploys: Vec<(&Stage, &Action)> = p
        .actions()
        .filter(|(_, a)| {
            a.category == ActionCategory::Deploy
                && a.config_str("ActionMode") != Some("CHANGE_SET_EXECUTE")
        })
        .collect();
    assert_eq!(
        deploys.len(),
        5,
        "the pipeline itself, tests, beta, gamma and prod are deployed"
    );
    for (stage, action) in deploys {
        let (artifact, _) = action
            .template_path()
            .unwrap_or_else(|| panic!("{} deploy has a TemplatePath", stage.name));
        assert_eq!(
            artifact, "BuildOutput",
            "{} deploys from the build",
            stage.name
        );
        assert_eq!(action.input_artifacts, ["BuildOutput"], "{}", stage.name);
    }
}

#[test]
fn deploy_tests_deploys_the_packaged_test_template_as_the_test_stack() {
    let p = pipeline();
    let action = deploy(stage(&p, "DeployTests"));
    assert_eq!(
        action.template_path(),
        Some(("BuildOutput", "packaged-test.yaml"))
    );
    assert_eq!(action.config_str("StackName"), Some("Clock-tests"));
}

#[test]
fn the_test_stack_is_deployed_before_beta() {
    let p = pipeline();
    assert!(p.stage_index("DeployTests").unwrap() < p.stage_index("Beta").unwrap());
}

#[test]
fn beta_gamma_and_prod_deploy_the_packaged_app_to_their_own_stack_with_their_stage() {
    let p = pipeline();
    for (name, stage_param) in [("Beta", "beta"), ("Gamma", "gamma"), ("Prod", "prod")] {
        let action = deploy(stage(&p, name));
        assert_eq!(
            action.template_path(),
            Some(("BuildOutput", "packaged-app.yaml")),
            "{name}"
        );
        assert_eq!(
            action.config_str("StackName"),
            Some(format!("{SERVICE}-{stage_param}").as_str())
        );
        let overrides = parameter_overrides(action);
        assert_eq!(overrides["Stage"], stage_param, "{name}");
        assert_eq!(overrides["ServiceName"], SERVICE, "{name}");
    }
}

/// Every stack the pipeline deploys gets the pipeline's boundary for its
/// roles (a required parameter of both templates).
#[test]
fn every_deploy_passes_the_stack_role_boundary() {
    let p = pipeline();
    let deploys: Vec<_> = p
        .actions()
        .filter(|(_, a)| {
            a.category == ActionCategory::Deploy
                && matches!(
                    a.template_path(),
                    Some((_, "packaged-app.yaml" | "packaged-test.yaml"))
                )
        })
        .collect();
    assert!(deploys.len() >= 4, "tests, beta, gamma, prod");
    for (stage, action) in deploys {
        assert_eq!(
            parameter_overrides(action)["PermissionsBoundaryArn"],
            BOUNDARY_ARN,
            "{}",
            stage.name
        );
    }
}

#[test]
fn every_service_stack_deploy_acknowledges_iam_and_auto_expand_without_spaces() {
    let p = pipeline();
    for (stage, action) in p.actions().filter(|(_, a)| {
        // CHANGE_SET_EXECUTE runs the change set as it was created,
        // capabilities and role included.
        a.category == ActionCategory::Deploy
            && a.config_str("ActionMode") != Some("CHANGE_SET_EXECUTE")
            && a.config_str("StackName") != Some(PIPELINE_STACK)
    }) {
        assert_eq!(
            action.config_str("Capabilities"),
            Some("CAPABILITY_IAM,CAPABILITY_AUTO_EXPAND"),
            "{}",
            stage.name
        );
    }
}

#[test]
fn every_service_stack_deploy_runs_as_the_deployment_role() {
    let p = pipeline();
    for (stage, action) in p.actions().filter(|(_, a)| {
        // CHANGE_SET_EXECUTE runs the change set as it was created,
        // capabilities and role included.
        a.category == ActionCategory::Deploy
            && a.config_str("ActionMode") != Some("CHANGE_SET_EXECUTE")
            && a.config_str("StackName") != Some(PIPELINE_STACK)
    }) {
        assert_eq!(
            action.config("RoleArn"),
            Some(&json!({"Fn::GetAtt": ["DeployRole", "Arn"]})),
            "{}",
            stage.name
        );
    }
}

#[test]
fn the_test_gate_runs_after_the_deploy_in_beta_gamma_and_prod() {
    let p = pipeline();
    for name in ["Beta", "Gamma", "Prod"] {
        let s = stage(&p, name);
        assert!(
            test_gate(s).run_order > stack_change(s).run_order,
            "{name}: tests run after the deployment"
        );
    }
}

#[test]
fn the_test_gate_invokes_the_start_tests_function() {
    let p = pipeline();
    for name in ["Beta", "Gamma", "Prod"] {
        assert_eq!(
            test_gate(stage(&p, name)).config_str("FunctionName"),
            Some("Clock_start_tests"),
            "{name}"
        );
    }
}

#[test]
fn the_test_gate_names_the_test_stack_and_the_stage_stack() {
    let p = pipeline();
    for (name, stage_param) in [("Beta", "beta"), ("Gamma", "gamma"), ("Prod", "prod")] {
        assert_eq!(
            user_parameters(test_gate(stage(&p, name))),
            json!({
                "testStack": "Clock-tests",
                "appStack": format!("Clock-{stage_param}"),
                "stage": stage_param,
            }),
            "{name}"
        );
    }
}

#[test]
fn the_test_gate_stack_is_the_stack_its_stage_deploys() {
    let p = pipeline();
    for name in ["Beta", "Gamma", "Prod"] {
        let s = stage(&p, name);
        assert_eq!(
            user_parameters(test_gate(s))["appStack"].as_str(),
            deploy(s).config_str("StackName"),
            "{name}"
        );
    }
    let test_stack = deploy(stage(&p, "DeployTests")).config_str("StackName");
    assert_eq!(
        user_parameters(test_gate(stage(&p, "Beta")))["testStack"].as_str(),
        test_stack
    );
}

#[test]
fn prod_approval_comes_before_the_prod_deploy() {
    let p = pipeline();
    let prod = stage(&p, "Prod");
    let approvals: Vec<&Action> = prod.actions_of(ActionCategory::Approval).collect();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].provider, "Manual");
    assert!(approvals[0].run_order < stack_change(prod).run_order);
}

#[test]
fn only_prod_and_the_pipeline_update_wait_for_an_approval() {
    let p = pipeline();
    let stages: Vec<&str> = p
        .actions()
        .filter(|(_, a)| a.category == ActionCategory::Approval)
        .map(|(s, _)| s.name.as_str())
        .collect();
    assert_eq!(stages, ["ApprovePipelineUpdate", "Prod"]);
}

#[test]
fn the_prod_approval_notifies_the_pipeline_topic() {
    let p = pipeline();
    let approval = stage(&p, "Prod")
        .actions_of(ActionCategory::Approval)
        .next()
        .unwrap();
    assert_eq!(
        approval.config("NotificationArn"),
        Some(&json!({"Ref": "PipelineTopic"}))
    );
}

#[test]
fn failed_executions_of_this_pipeline_notify_the_same_topic() {
    let t = template();
    let rule = t.resource("PipelineFailedRule").expect("a failure rule");
    assert_eq!(rule.resource_type(), "AWS::Events::Rule");
    let pattern = rule.property("EventPattern").unwrap();
    assert_eq!(pattern["detail"]["state"], json!(["FAILED"]));
    assert_eq!(pattern["detail"]["pipeline"], json!([{"Ref": "Pipeline"}]));
    let targets = rule.property("Targets").unwrap().as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], json!({"Ref": "PipelineTopic"}));
}

#[test]
fn the_default_source_is_a_codecommit_repository_started_by_pushes_not_polling() {
    let p = pipeline();
    let source = &stage(&p, "Source").actions[0];
    assert_eq!(source.provider, "CodeCommit");
    assert_eq!(source.config("PollForSourceChanges"), Some(&json!(false)));
    assert_eq!(source.output_artifacts, ["SourceCode"]);

    let t = template();
    let resolved = t.resolved(&resolver(&t, &[("ServiceName", SERVICE)]));
    let repo = resolved
        .resource("Repository")
        .expect("the stack creates the repository");
    assert_eq!(repo.property("RepositoryName"), Some(&json!(SERVICE)));
    let rule = resolved.resource("SourceChangedRule").expect("a push rule");
    assert_eq!(
        rule.property("EventPattern").unwrap()["detail"]["referenceName"],
        json!(["main"])
    );
}

#[test]
fn a_connection_source_builds_the_named_repository_and_detects_pushes_itself() {
    let arn = "arn:aws:codeconnections:eu-west-1:123456789012:connection/0a1b2c3d-aaaa-bbbb-cccc-123456789012";
    let parameters = [
        ("ServiceName", SERVICE),
        ("SourceConnectionArn", arn),
        ("SourceRepositoryId", "acme/clock"),
        ("BranchName", "release"),
    ];
    let p = pipeline_with(&parameters);
    let source = &stage(&p, "Source").actions[0];
    assert_eq!(source.provider, "CodeStarSourceConnection");
    assert_eq!(source.config_str("ConnectionArn"), Some(arn));
    assert_eq!(source.config_str("FullRepositoryId"), Some("acme/clock"));
    assert_eq!(source.config_str("BranchName"), Some("release"));
    assert_eq!(source.config("DetectChanges"), Some(&json!(true)));
    assert_eq!(source.output_artifacts, ["SourceCode"]);

    let t = template();
    let resolved = t.resolved(&resolver(&t, &parameters));
    assert!(
        resolved.resource("Repository").is_none(),
        "no CodeCommit repository"
    );
    assert!(
        resolved.resource("SourceChangedRule").is_none(),
        "no CodeCommit rule"
    );
}

#[test]
fn start_tests_is_built_from_this_repository_for_arm64() {
    let t = template();
    let f = t.resource("StartTestsFunction").unwrap();
    assert_eq!(f.resource_type(), "AWS::Serverless::Function");
    let meta = f.metadata().unwrap();
    assert_eq!(meta["BuildMethod"], "rust-cargolambda");
    assert_eq!(meta["BuildProperties"]["Binary"], "start-tests");
    assert_eq!(f.property("Runtime"), Some(&json!("provided.al2023")));
    assert_eq!(f.property("Handler"), Some(&json!("bootstrap")));
    assert_eq!(f.property("Architectures"), Some(&json!(["arm64"])));
}

#[test]
fn the_artifact_bucket_rejects_requests_without_tls() {
    let t = template();
    let policy = t.resource("ArtifactBucketPolicy").unwrap();
    assert_eq!(
        policy.property("Bucket"),
        Some(&json!({"Ref": "ArtifactBucket"}))
    );
    let statements = policy.property("PolicyDocument").unwrap()["Statement"]
        .as_array()
        .unwrap();
    assert!(statements.iter().any(|s| s["Effect"] == "Deny"
        && s["Action"] == "s3:*"
        && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"));
}

#[test]
fn old_artifacts_expire() {
    let t = template();
    let bucket = t.resource("ArtifactBucket").unwrap();
    let rules = bucket.property("LifecycleConfiguration").unwrap()["Rules"]
        .as_array()
        .unwrap();
    assert!(rules.iter().any(|r| r["Status"] == "Enabled"
        && r["ExpirationInDays"] == json!({"Ref": "ArtifactRetentionDays"})
        && r["NoncurrentVersionExpiration"]["NoncurrentDays"].is_u64()));
}

/// Whether every action of a statement only reads (Describe*, Get*, List*).
fn read_only(actions: &Value) -> bool {
    let actions: Vec<&str> = match actions {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return false,
    };
    actions.iter().all(|a| {
        let verb = a.split_once(':').map_or("", |(_, v)| v);
        ["Describe", "Get", "List"]
            .iter()
            .any(|p| verb.starts_with(p))
    })
}

#[test]
fn deployments_cannot_touch_the_pipeline_stacks_own_roles_function_or_logs() {
    let t = template();
    let r = resolver(&t, &[("ServiceName", SERVICE)])
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "eu-west-1")
        .with_ref("AWS::AccountId", "123456789012")
        .with_attribute("ArtifactBucket", "Arn", "arn:aws:s3:::clock-artifacts")
        .with_attribute(
            "PipelineKey",
            "Arn",
            "arn:aws:kms:eu-west-1:123456789012:key/k",
        );
    let resolved = t.resolved(&r);
    let mut own = Vec::new();
    for role in resolved.resources_of_type("AWS::IAM::Role") {
        let name = role.property("RoleName").and_then(Value::as_str);
        let name = name.unwrap_or_else(|| panic!("{} has an explicit RoleName", role.logical_id()));
        own.push(format!("arn:aws:iam::123456789012:role/{name}"));
    }
    own.push("arn:aws:lambda:eu-west-1:123456789012:function:Clock_start_tests".into());
    own.push("arn:aws:lambda:eu-west-1:123456789012:function:Clock_review_changes".into());
    for group in resolved.resources_of_type("AWS::Logs::LogGroup") {
        let name = group
            .property("LogGroupName")
            .and_then(Value::as_str)
            .unwrap();
        own.push(format!(
            "arn:aws:logs:eu-west-1:123456789012:log-group:{name}"
        ));
    }
    assert_eq!(
        own.len(),
        7 + 2 + 3,
        "seven roles, two functions, three log groups"
    );

    let deploy_role = resolved.resource("DeployRole").unwrap();
    let statements = deploy_role.property("Policies").unwrap()[0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let resources: Vec<&str> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow" && !read_only(&s["Action"]))
        .flat_map(|s| match &s["Resource"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            other => panic!("unresolved Resource {other}"),
        })
        .collect();
    assert!(
        resources.iter().any(|p| e2e::iam_matches(
            p,
            "arn:aws:iam::123456789012:role/Clock-beta-TimeFunctionRole-ABC"
        )),
        "the deploy role manages the service's function roles"
    );
    for arn in &own {
        // "*" grants (log deliveries) name no resource a deployment could change.
        for pattern in resources.iter().filter(|p| **p != "*") {
            assert!(
                !e2e::iam_matches(pattern, arn),
                "DeployRole's {pattern} covers {arn}"
            );
        }
    }
}

#[test]
fn the_pipeline_and_its_pieces_are_named_after_the_service() {
    let t = template();
    let resolved = t.resolved(&resolver(&t, &[("ServiceName", SERVICE)]));
    let name = |id: &str, prop: &str| {
        resolved
            .resource(id)
            .and_then(|r| r.property(prop))
            .cloned()
            .unwrap_or_else(|| panic!("{id}.{prop}"))
    };
    assert_eq!(name("Pipeline", "Name"), json!("Clock"));
    assert_eq!(name("BuildProject", "Name"), json!("Clock-build"));
    assert_eq!(name("PipelineTopic", "TopicName"), json!("Clock-pipeline"));
    assert_eq!(
        name("StartTestsFunction", "FunctionName"),
        json!("Clock_start_tests")
    );
}

#[test]
fn a_failed_test_beta_or_gamma_stack_is_replaced_but_prod_never_is() {
    let p = pipeline();
    for (name, mode) in [
        ("DeployTests", "REPLACE_ON_FAILURE"),
        ("Beta", "REPLACE_ON_FAILURE"),
        ("Gamma", "REPLACE_ON_FAILURE"),
        ("Prod", "CHANGE_SET_REPLACE"),
    ] {
        assert_eq!(
            deploy(stage(&p, name)).config_str("ActionMode"),
            Some(mode),
            "{name}"
        );
    }
    assert_eq!(
        stack_change(stage(&p, "Prod")).config_str("ActionMode"),
        Some("CHANGE_SET_EXECUTE")
    );
}

/// The resolved inline-policy statements of a role in pipeline.yaml (for
/// service `Clock`, with the attributes the statements refer to).
fn role_statements(role: &str) -> Vec<Value> {
    let t = template();
    let arn = |service: &str, resource: &str| {
        format!("arn:aws:{service}:eu-west-1:123456789012:{resource}")
    };
    let r = resolver(&t, &[("ServiceName", SERVICE)])
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "eu-west-1")
        .with_ref("AWS::AccountId", "123456789012")
        .with_ref("PipelineTopic", arn("sns", "Clock-pipeline"))
        .with_ref("Pipeline", "Clock")
        .with_attribute("ArtifactBucket", "Arn", "arn:aws:s3:::clock-artifacts")
        .with_attribute("PipelineKey", "Arn", arn("kms", "key/k"))
        .with_attribute("Repository", "Arn", arn("codecommit", "Clock"))
        .with_attribute(
            "BuildProject",
            "Arn",
            arn("codebuild", "project/Clock-build"),
        )
        .with_attribute(
            "DeployRole",
            "Arn",
            "arn:aws:iam::123456789012:role/Clock_deploy",
        )
        .with_attribute(
            "PipelineDeployRole",
            "Arn",
            "arn:aws:iam::123456789012:role/Clock_pipeline_deploy",
        )
        .with_attribute(
            "StartTestsFunction",
            "Arn",
            arn("lambda", "function:Clock_start_tests"),
        )
        .with_attribute(
            "BuildLogGroup",
            "Arn",
            arn("logs", "log-group:/aws/codebuild/Clock-build:*"),
        )
        .with_attribute(
            "StartTestsLogGroup",
            "Arn",
            arn("logs", "log-group:/aws/lambda/Clock_start_tests:*"),
        )
        .with_attribute(
            "ReviewChangesFunction",
            "Arn",
            arn("lambda", "function:Clock_review_changes"),
        )
        .with_attribute(
            "ReviewChangesLogGroup",
            "Arn",
            arn("logs", "log-group:/aws/lambda/Clock_review_changes:*"),
        )
        .with_attribute(
            "UnitTestReports",
            "Arn",
            arn("codebuild", "report-group/Clock-build-unit-tests"),
        )
        .with_attribute(
            "TemplateCheckReports",
            "Arn",
            arn("codebuild", "report-group/Clock-build-cfn-lint"),
        )
        .with_attribute(
            "CheckovReports",
            "Arn",
            arn("codebuild", "report-group/Clock-build-checkov"),
        )
        .with_attribute(
            "GuardReports",
            "Arn",
            arn("codebuild", "report-group/Clock-build-cfn-guard"),
        );
    let resolved = t.resolved(&r);
    resolved
        .resource(role)
        .unwrap_or_else(|| panic!("no {role}"))
        .property("Policies")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .collect()
}

fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(many) => many
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        Value::String(one) => vec![one.clone()],
        other => panic!("unresolved {other}"),
    }
}

/// Whether some Allow statement of `role` grants `action` on `resource`.
fn grants(role: &str, action: &str, resource: &str) -> bool {
    role_statements(role).iter().any(|s| {
        s["Effect"] == "Allow"
            && as_list(&s["Action"])
                .iter()
                .any(|a| e2e::iam_matches(a, action))
            && as_list(&s["Resource"])
                .iter()
                .any(|p| e2e::iam_matches(p, resource))
    })
}

#[test]
fn the_pipeline_may_delete_the_test_beta_and_gamma_stacks_but_not_prod() {
    let stack =
        |s: &str| format!("arn:aws:cloudformation:eu-west-1:123456789012:stack/Clock-{s}/0a1b");
    for s in ["tests", "beta", "gamma"] {
        assert!(
            grants("PipelineRole", "cloudformation:DeleteStack", &stack(s)),
            "{s}"
        );
    }
    assert!(!grants(
        "PipelineRole",
        "cloudformation:DeleteStack",
        &stack("prod")
    ));
}

/// AWS's minimum CodePipeline service-role policy ("Manage the CodePipeline
/// service role") for the artifact store, on this stack's bucket only.
#[test]
fn the_pipeline_role_has_the_documented_artifact_store_permissions() {
    for action in [
        "s3:GetBucketVersioning",
        "s3:GetBucketAcl",
        "s3:GetBucketLocation",
    ] {
        assert!(
            grants("PipelineRole", action, "arn:aws:s3:::clock-artifacts"),
            "{action}"
        );
    }
    for action in [
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:PutObjectAcl",
    ] {
        assert!(
            grants("PipelineRole", action, "arn:aws:s3:::clock-artifacts/x"),
            "{action}"
        );
        assert!(
            !grants("PipelineRole", action, "arn:aws:s3:::other-bucket/x"),
            "{action}"
        );
    }
}

#[test]
fn the_build_may_create_its_own_log_group_and_no_other() {
    let own = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/codebuild/Clock-build:*";
    assert!(grants("BuildRole", "logs:CreateLogGroup", own));
    let other = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/codebuild/Other-build:*";
    assert!(!grants("BuildRole", "logs:CreateLogGroup", other));
}

/// The condition keys each service role's trust policy checks.
fn trust_conditions(role: &str) -> Value {
    let t = template();
    let r = t.resource(role).unwrap_or_else(|| panic!("no {role}"));
    let statements = r.property("AssumeRolePolicyDocument").unwrap()["Statement"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(statements.len(), 1, "{role}");
    statements[0]["Condition"].clone()
}

/// CloudFormation, CodePipeline and CodeBuild document no aws:SourceAccount
/// when they assume a service role (a condition on it would deny them);
/// EventBridge documents both source keys for rule targets.
#[test]
fn only_the_eventbridge_role_checks_the_caller_source_and_names_its_own_rule() {
    for role in ["DeployRole", "PipelineRole", "BuildRole"] {
        assert!(
            trust_conditions(role).is_null(),
            "{role}: no trust condition"
        );
    }
    let events = trust_conditions("SourceChangedRuleRole");
    assert_eq!(
        events["StringEquals"]["aws:SourceAccount"],
        json!({"Ref": "AWS::AccountId"})
    );
    let t = template();
    let resolved = t.resolved(&resolver(&t, &[("ServiceName", SERVICE)]));
    let rule_name = resolved
        .resource("SourceChangedRule")
        .unwrap()
        .property("Name")
        .cloned();
    assert_eq!(rule_name, Some(json!("Clock-source-changed")));
    let r = resolver(&t, &[("ServiceName", SERVICE)])
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "eu-west-1")
        .with_ref("AWS::AccountId", "123456789012");
    assert_eq!(
        r.resolve_str(&events["ArnEquals"]["aws:SourceArn"])
            .unwrap(),
        "arn:aws:events:eu-west-1:123456789012:rule/Clock-source-changed"
    );
}

// ---------------------------------------------------------------------------
// buildspec.yml, as CodeBuild runs it for the BuildProject above.
// ---------------------------------------------------------------------------

fn buildspec() -> Value {
    let text = std::fs::read_to_string(e2e::repo_root().join("buildspec.yml")).unwrap();
    serde_norway::from_str(&text).expect("buildspec.yml parses")
}

/// Every command of every phase, folded onto one line each.
fn buildspec_commands() -> Vec<String> {
    let spec = buildspec();
    ["install", "pre_build", "build", "post_build"]
        .iter()
        .flat_map(|phase| {
            spec["phases"][*phase]["commands"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| {
            c.as_str()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn command_running(program: &str) -> String {
    let found: Vec<String> = buildspec_commands()
        .into_iter()
        .filter(|c| c.contains(program))
        .collect();
    assert_eq!(found.len(), 1, "one command runs {program}: {found:?}");
    found[0].clone()
}

#[test]
fn the_build_packages_with_the_pipeline_key_through_bash() {
    let build = command_running("scripts/build.sh");
    assert!(build.starts_with("bash scripts/build.sh "), "{build}");
    assert!(
        build.contains("--kms-key-id \"$PIPELINE_KEY_ARN\""),
        "{build}"
    );
    assert!(build.contains("--arch arm64"), "{build}");

    let t = template();
    let project = t.resource("BuildProject").unwrap();
    let variables = project.property("Environment").unwrap()["EnvironmentVariables"]
        .as_array()
        .unwrap();
    assert!(variables.iter().any(|v| v["Name"] == "PIPELINE_KEY_ARN"
        && v["Value"] == json!({"Fn::GetAtt": ["PipelineKey", "Arn"]})));
}

/// The app's templates are those of the AppDirectory parameter: CodeBuild
/// gets it as APP_DIR, and every template checker and build.sh read the
/// app's two templates from there ("." by default: the repository's root).
#[test]
fn the_app_directory_reaches_the_build_and_every_checker_as_app_dir() {
    let t = template();
    assert_eq!(
        t.parameter("AppDirectory").unwrap().default().as_deref(),
        Some(".")
    );
    let variables = t
        .resource("BuildProject")
        .unwrap()
        .property("Environment")
        .unwrap()["EnvironmentVariables"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        variables
            .iter()
            .any(|v| v["Name"] == "APP_DIR" && v["Value"] == json!({"Ref": "AppDirectory"})),
        "{variables:?}"
    );
    for program in ["cfn-lint --format", "checkov -f", "cfn-guard validate"] {
        let command = command_running(program);
        for template in ["app-sam.yaml", "test-sam.yaml"] {
            assert!(
                command.contains(&format!("\"${{APP_DIR:-.}}/{template}\"")),
                "{program} checks {template} of APP_DIR: {command}"
            );
        }
    }
    let script = std::fs::read_to_string(e2e::repo_root().join("scripts/build.sh")).unwrap();
    assert!(
        script.contains("APP_DIR=${APP_DIR:-.}"),
        "build.sh reads APP_DIR"
    );
}

/// AppDirectory admits paths inside the repository only.
#[test]
fn the_app_directory_pattern_admits_only_paths_inside_the_repository() {
    let t = template();
    let pattern = t
        .parameter("AppDirectory")
        .unwrap()
        .attribute("AllowedPattern")
        .and_then(|p| p.as_str())
        .unwrap()
        .to_string();
    let re = regex_lite::Regex::new(&pattern).unwrap();
    for ok in [".", "examples/orders", "apps/my_app-2", "a.b/c"] {
        assert!(re.is_match(ok), "{ok} is allowed");
    }
    for bad in [
        "", "/etc", "../x", "a/../b", "a//b", "a/", "a b", "./a", "..", "a;b",
    ] {
        assert!(!re.is_match(bad), "{bad:?} is refused");
    }
}

#[test]
fn the_build_installs_exactly_the_build_tools() {
    let setup = command_running("scripts/setup-tools.sh");
    assert_eq!(setup, "PYTHON=python3 bash scripts/setup-tools.sh build");
    let text = std::fs::read_to_string(e2e::repo_root().join("buildspec.yml")).unwrap();
    assert!(!text.contains("SETUP_TOOLS_BUILD_ONLY"));
}

/// cfn-lint, checkov and cfn-guard check all three templates, each with the
/// arguments the test suite uses (tests/tests/templates.rs).
#[test]
fn the_build_runs_every_template_checker_on_every_template() {
    let checkov = command_running("checkov -f");
    for arg in [
        "--framework cloudformation",
        "--skip-download",
        "-o junitxml",
    ] {
        assert!(checkov.contains(arg), "{checkov}");
    }
    let guard = command_running("cfn-guard validate");
    for arg in ["--rules guard", "--output-format junit"] {
        assert!(guard.contains(arg), "{guard}");
    }
    let lint = command_running("cfn-lint --format");
    for command in [&checkov, &guard, &lint] {
        for template in ["app-sam.yaml", "test-sam.yaml", "pipeline.yaml"] {
            assert!(command.contains(template), "{template} in {command}");
        }
    }
}

/// Each report buildspec.yml writes goes to a report group this stack
/// creates (<project>-<report>) and the build role may fill.
#[test]
fn every_buildspec_report_has_its_report_group_and_permission() {
    let spec = buildspec();
    let reports: Vec<String> = spec["reports"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(reports.len(), 4, "{reports:?}");
    let t = template();
    let resolved = t.resolved(&resolver(&t, &[("ServiceName", SERVICE)]));
    for report in reports {
        let name = format!("Clock-build-{report}");
        let group = resolved
            .resources_of_type("AWS::CodeBuild::ReportGroup")
            .find(|g| g.property("Name") == Some(&json!(name)))
            .unwrap_or_else(|| panic!("no report group {name}"));
        let arn = format!("arn:aws:codebuild:eu-west-1:123456789012:report-group/{name}");
        assert!(
            grants("BuildRole", "codebuild:BatchPutTestCases", &arn),
            "{}",
            group.logical_id()
        );
    }
}

/// The build cache holds downloads and installed tools, never the multi-GB
/// target directory; pipeline.yaml gives it an S3 location.
#[test]
fn the_build_cache_skips_the_target_directory() {
    let spec = buildspec();
    let paths = as_list(&spec["cache"]["paths"]);
    assert!(!paths.is_empty());
    assert!(paths.iter().all(|p| !p.starts_with("target")), "{paths:?}");
    assert!(
        paths.iter().any(|p| p.starts_with("/root/.cargo/registry")),
        "{paths:?}"
    );
    let t = template();
    let cache = t
        .resource("BuildProject")
        .unwrap()
        .property("Cache")
        .unwrap()
        .clone();
    assert_eq!(cache["Type"], "S3");
}

// ---------------------------------------------------------------------------
// Prod safety: stages roll back on failure; Prod shifts traffic gradually and
// bakes, watching its alarms, before the release counts as done.
// ---------------------------------------------------------------------------

/// A stage's declaration as written (its `OnFailure`, `OnSuccess`, ...).
fn stage_declaration(p: &Pipeline, name: &str) -> Value {
    p.property("Stages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|s| s["Name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
        .clone()
}

/// The names app-sam.yaml gives the alarms of the `stage` stack of `SERVICE`.
fn app_alarm_names(stage: &str) -> Vec<String> {
    let t = Template::from_path(e2e::repo_root().join("app-sam.yaml")).unwrap();
    let r = Resolver::for_template(&t, [("ServiceName", SERVICE), ("Stage", stage)]);
    let mut names: Vec<String> = t
        .resources_of_type("AWS::CloudWatch::Alarm")
        .map(|a| r.resolve_str(a.property("AlarmName").unwrap()).unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn beta_gamma_and_prod_roll_back_when_they_fail() {
    let p = pipeline();
    for name in ["Beta", "Gamma", "Prod"] {
        assert_eq!(
            stage_declaration(&p, name)["OnFailure"]["Result"],
            "ROLLBACK",
            "{name}"
        );
    }
}

/// After Prod's gate passes, one condition holds a CloudWatchAlarm rule for
/// each of Prod's alarms, each watching for ALARM during ProdBakeMinutes;
/// any of them failing rolls Prod back.
#[test]
fn prod_bakes_watching_each_of_its_alarms_and_rolls_back_on_alarm() {
    let p = pipeline_with(&[("ServiceName", SERVICE), ("ProdBakeMinutes", "45")]);
    let conditions = stage_declaration(&p, "Prod")["OnSuccess"]["Conditions"].clone();
    let conditions = conditions.as_array().expect("OnSuccess conditions");
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    assert_eq!(conditions[0]["Result"], "ROLLBACK");
    let rules = conditions[0]["Rules"].as_array().unwrap();
    let mut watched = Vec::new();
    for rule in rules {
        assert_eq!(
            rule["RuleTypeId"],
            json!({"Category": "Rule", "Owner": "AWS", "Provider": "CloudWatchAlarm", "Version": "1"}),
            "{rule}"
        );
        let config = &rule["Configuration"];
        assert_eq!(config["AlarmStates"], "ALARM", "{rule}");
        assert_eq!(config["WaitTime"].to_string().trim_matches('"'), "45");
        watched.push(config["AlarmName"].as_str().unwrap().to_string());
    }
    watched.sort();
    assert_eq!(watched, app_alarm_names("prod"));
}

#[test]
fn only_prod_bakes() {
    let p = pipeline();
    for name in p.stage_names() {
        if name != "Prod" {
            assert!(
                stage_declaration(&p, name).get("OnSuccess").is_none(),
                "{name}"
            );
        }
    }
}

#[test]
fn prod_shifts_traffic_gradually_and_beta_and_gamma_all_at_once() {
    let p = pipeline_with(&[
        ("ServiceName", SERVICE),
        ("ProdDeploymentType", "Linear10PercentEvery2Minutes"),
    ]);
    for name in ["Beta", "Gamma"] {
        assert_eq!(
            parameter_overrides(deploy(stage(&p, name)))["DeploymentType"],
            "AllAtOnce",
            "{name}"
        );
    }
    assert_eq!(
        parameter_overrides(deploy(stage(&p, "Prod")))["DeploymentType"],
        "Linear10PercentEvery2Minutes"
    );
}

/// Every value ProdDeploymentType allows is gradual, and one app-sam.yaml
/// accepts as its DeploymentType.
#[test]
fn every_prod_deployment_type_is_gradual_and_accepted_by_the_app() {
    let pipeline = template();
    let prod = pipeline
        .parameter("ProdDeploymentType")
        .unwrap()
        .allowed_values();
    let app = Template::from_path(e2e::repo_root().join("app-sam.yaml")).unwrap();
    let accepted = app.parameter("DeploymentType").unwrap().allowed_values();
    assert!(!prod.is_empty());
    for value in prod {
        assert!(
            value.starts_with("Canary") || value.starts_with("Linear"),
            "{value} is gradual"
        );
        assert!(accepted.contains(&value), "app-sam.yaml accepts {value}");
    }
}

#[test]
fn the_pipeline_may_read_prods_alarms_and_no_others() {
    let alarm = |name: &str| format!("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}");
    for name in app_alarm_names("prod") {
        assert!(
            grants("PipelineRole", "cloudwatch:DescribeAlarms", &alarm(&name)),
            "{name}"
        );
    }
    for name in app_alarm_names("gamma") {
        assert!(
            !grants("PipelineRole", "cloudwatch:DescribeAlarms", &alarm(&name)),
            "{name}"
        );
    }
}

// ------------------------------------------------------------ the Prod review

/// Prod's actions, in order, with their run orders: nothing changes Prod
/// before a person approved the change set the review described.
#[test]
fn prod_creates_a_change_set_reviews_it_asks_for_approval_executes_it_then_tests() {
    let p = pipeline();
    let prod = stage(&p, "Prod");
    let actions: Vec<(&str, u32, &str, Option<&str>)> = prod
        .actions
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.run_order,
                a.provider.as_str(),
                a.config_str("ActionMode"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (
                "CreateChangeSet",
                1,
                "CloudFormation",
                Some("CHANGE_SET_REPLACE")
            ),
            ("ReviewChanges", 2, "Lambda", None),
            ("Approve", 3, "Manual", None),
            ("Deploy", 4, "CloudFormation", Some("CHANGE_SET_EXECUTE")),
            ("IntegrationTests", 5, "Lambda", None),
        ]
    );
    let create = deploy(prod);
    let execute = stack_change(prod);
    assert_eq!(create.config_str("StackName"), Some("Clock-prod"));
    assert_eq!(execute.config_str("StackName"), Some("Clock-prod"));
    assert_eq!(
        create.config_str("ChangeSetName"),
        Some("Clock-prod-review")
    );
    assert_eq!(
        execute.config_str("ChangeSetName"),
        create.config_str("ChangeSetName"),
        "the change set executed is the one created and reviewed"
    );
}

/// The review invokes review-changes on the change set the stage created,
/// in namespace ProdReview.
#[test]
fn the_prod_review_describes_the_change_set_the_stage_created() {
    let p = pipeline();
    let prod = stage(&p, "Prod");
    let review = prod
        .actions
        .iter()
        .find(|a| a.name == "ReviewChanges")
        .unwrap();
    assert_eq!(namespace(review), Some("ProdReview"));
    assert_eq!(
        review.config_str("FunctionName"),
        Some("Clock_review_changes")
    );
    let create = deploy(prod);
    assert_eq!(
        user_parameters(review),
        json!({
            "stackName": create.config_str("StackName").unwrap(),
            "changeSetName": create.config_str("ChangeSetName").unwrap(),
        })
    );
}

/// The variables review-changes publishes (docs/contracts.md).
const REVIEW_VARIABLES: [&str; 7] = [
    "PermissionChanges",
    "Added",
    "Modified",
    "Replaced",
    "Removed",
    "ReviewText",
    "ChangeSetUrl",
];
/// The variables run-tests publishes for a gate (docs/contracts.md).
const GATE_VARIABLES: [&str; 5] = [
    "ChecksRun",
    "ChecksFailed",
    "DurationSeconds",
    "ApiUrl",
    "Stage",
];

/// `#{Namespace.Variable}` references in a text.
fn variable_references(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("a closed reference");
        let (ns, name) = after[..end].split_once('.').expect("Namespace.Variable");
        out.push((ns.to_string(), name.to_string()));
        rest = &after[end + 1..];
    }
    out
}

#[test]
fn the_prod_approval_shows_the_review_text_and_links_the_change_set() {
    let p = pipeline();
    let approval = stage(&p, "Prod")
        .actions_of(ActionCategory::Approval)
        .next()
        .unwrap();
    let custom = approval.config_str("CustomData").unwrap();
    assert!(custom.contains("#{ProdReview.ReviewText}"), "{custom}");
    assert_eq!(
        approval.config_str("ExternalEntityLink"),
        Some("#{ProdReview.ChangeSetUrl}")
    );
}

/// Every variable reference in the pipeline names the namespace of an
/// action that runs before it (an earlier stage, or a lower run order in
/// the same stage) and a variable that action's function publishes.
#[test]
fn every_variable_reference_names_an_earlier_action_and_a_variable_it_publishes() {
    let p = pipeline();
    let mut references = 0;
    for (stage_index, stage) in p.stages().iter().enumerate() {
        for action in &stage.actions {
            for value in action.configuration.values().filter_map(Value::as_str) {
                for (ns, name) in variable_references(value) {
                    references += 1;
                    let producer = p
                        .stages()
                        .iter()
                        .enumerate()
                        .flat_map(|(i, s)| s.actions.iter().map(move |a| (i, a)))
                        .find(|(_, a)| namespace(a) == Some(ns.as_str()))
                        .unwrap_or_else(|| panic!("no action has Namespace {ns}"));
                    assert!(
                        producer.0 < stage_index
                            || (producer.0 == stage_index
                                && producer.1.run_order < action.run_order),
                        "{}/{} refers to {ns}, which runs later",
                        stage.name,
                        action.name
                    );
                    let published: &[&str] = match producer.1.config_str("FunctionName") {
                        Some("Clock_review_changes") => &REVIEW_VARIABLES,
                        Some("Clock_start_tests") => &GATE_VARIABLES,
                        other => panic!("{ns} is produced by {other:?}"),
                    };
                    assert!(published.contains(&name.as_str()), "#{{{ns}.{name}}}");
                }
            }
        }
    }
    assert!(references >= 2, "the approval refers to the review");
}

/// Each gate publishes its findings under its own namespace.
#[test]
fn every_gate_has_its_own_namespace_and_namespaces_are_unique() {
    let p = pipeline();
    for (name, expected) in [
        ("Beta", "BetaGate"),
        ("Gamma", "GammaGate"),
        ("Prod", "ProdGate"),
    ] {
        assert_eq!(
            namespace(test_gate(stage(&p, name))),
            Some(expected),
            "{name}"
        );
    }
    let mut all: Vec<&str> = p.actions().filter_map(|(_, a)| namespace(a)).collect();
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "namespaces are unique: {all:?}");
}

#[test]
fn review_changes_is_built_from_this_repository_for_arm64_and_never_retried() {
    let t = template();
    let f = t.resource("ReviewChangesFunction").unwrap();
    assert_eq!(f.resource_type(), "AWS::Serverless::Function");
    let meta = f.metadata().unwrap();
    assert_eq!(meta["BuildMethod"], "rust-cargolambda");
    assert_eq!(meta["BuildProperties"]["Binary"], "review-changes");
    assert_eq!(
        f.property("CodeUri"),
        Some(&json!("functions/review-changes"))
    );
    assert_eq!(f.property("Architectures"), Some(&json!(["arm64"])));
    assert_eq!(
        f.property("EventInvokeConfig"),
        Some(&json!({"MaximumRetryAttempts": 0}))
    );
}

/// The review may read Prod's and the pipeline stack's change sets and
/// report its job, nothing else.
#[test]
fn the_review_role_reads_only_prods_and_the_pipeline_stacks_change_sets() {
    let stack =
        |s: &str| format!("arn:aws:cloudformation:eu-west-1:123456789012:stack/Clock-{s}/0a1b");
    for s in ["prod", "pipeline"] {
        assert!(
            grants(
                "ReviewChangesRole",
                "cloudformation:DescribeChangeSet",
                &stack(s)
            ),
            "{s}"
        );
    }
    for s in ["tests", "beta", "gamma"] {
        assert!(
            !grants(
                "ReviewChangesRole",
                "cloudformation:DescribeChangeSet",
                &stack(s)
            ),
            "{s}"
        );
    }
    for action in [
        "cloudformation:ExecuteChangeSet",
        "cloudformation:CreateChangeSet",
        "cloudformation:UpdateStack",
        "iam:PassRole",
        "lambda:InvokeFunction",
    ] {
        assert!(!grants("ReviewChangesRole", action, "*"), "{action}");
        assert!(
            !grants("ReviewChangesRole", action, &stack("prod")),
            "{action}"
        );
    }
    assert!(grants(
        "ReviewChangesRole",
        "codepipeline:PutJobSuccessResult",
        "*"
    ));
}

/// The pipeline runs Prod's change set actions on Prod's stack, invokes the
/// review, and may still never delete Prod.
#[test]
fn the_pipeline_may_create_execute_and_delete_prods_change_sets_and_invoke_the_review() {
    let prod = "arn:aws:cloudformation:eu-west-1:123456789012:stack/Clock-prod/0a1b";
    for action in [
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:DeleteChangeSet",
    ] {
        assert!(grants("PipelineRole", action, prod), "{action}");
        assert!(
            !grants(
                "PipelineRole",
                action,
                "arn:aws:cloudformation:eu-west-1:123456789012:stack/Other-prod/0a1b"
            ),
            "{action}"
        );
    }
    assert!(grants(
        "PipelineRole",
        "lambda:InvokeFunction",
        "arn:aws:lambda:eu-west-1:123456789012:function:Clock_review_changes"
    ));
    assert!(!grants("PipelineRole", "cloudformation:DeleteStack", prod));
}

/// Prod's `BeforeEntry` declaration as resolved for `parameters`.
fn prod_before_entry(parameters: &[(&str, &str)]) -> Option<Value> {
    let p = pipeline_with(parameters);
    let stages = p.property("Stages").and_then(Value::as_array).cloned();
    stages
        .into_iter()
        .flatten()
        .find(|s| s["Name"] == "Prod")
        .expect("a Prod stage")
        .get("BeforeEntry")
        .cloned()
}

#[test]
fn without_a_deployment_window_prod_has_no_entry_condition() {
    assert_eq!(prod_before_entry(&[("ServiceName", SERVICE)]), None);
}

#[test]
fn a_deployment_window_is_a_deployment_window_rule_failing_prods_entry() {
    let before_entry = prod_before_entry(&[
        ("ServiceName", SERVICE),
        ("ProdDeploymentWindow", "0 * 9-16 ? * MON-FRI *"),
        ("ProdDeploymentWindowTimeZone", "Europe/Berlin"),
    ])
    .expect("Prod has a BeforeEntry condition");
    // One condition ("BeforeEntryConditions": a fixed number of 1 item,
    // CodePipeline API Reference), FAIL (SKIP takes only LambdaInvoke and
    // VariableCheck rules), one DeploymentWindow rule.
    assert_eq!(
        before_entry,
        json!({"Conditions": [{
            "Result": "FAIL",
            "Rules": [{
                "Name": "ProdDeploymentWindow",
                "RuleTypeId": {"Category": "Rule", "Owner": "AWS", "Provider": "DeploymentWindow", "Version": "1"},
                "Configuration": {"Cron": "0 * 9-16 ? * MON-FRI *", "TimeZone": "Europe/Berlin"}
            }]
        }]})
    );
}

#[test]
fn the_deployment_window_time_zone_defaults_to_utc() {
    let before_entry = prod_before_entry(&[
        ("ServiceName", SERVICE),
        ("ProdDeploymentWindow", "0 * 9-16 ? * MON-FRI *"),
    ])
    .expect("Prod has a BeforeEntry condition");
    assert_eq!(
        before_entry["Conditions"][0]["Rules"][0]["Configuration"]["TimeZone"],
        "UTC"
    );
}

#[test]
fn only_prod_and_the_pipeline_update_approval_have_an_entry_condition() {
    let p = pipeline_with(&[
        ("ServiceName", SERVICE),
        ("ProdDeploymentWindow", "0 * 9-16 ? * MON-FRI *"),
    ]);
    let with_entry: Vec<&str> = p
        .property("Stages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("BeforeEntry").is_some())
        .filter_map(|s| s["Name"].as_str())
        .collect();
    assert_eq!(with_entry, ["ApprovePipelineUpdate", "Prod"]);
}

// --- The self-update (stages UpdatePipeline, ApprovePipelineUpdate,
// ExecutePipelineUpdate) ---------------------------------------------------

const SELF_UPDATE_CHANGE_SET: &str = "Clock-pipeline-self-update";

#[test]
fn the_self_update_creates_a_change_set_of_its_own_stack_from_the_packaged_pipeline() {
    let p = pipeline();
    let create = deploy(stage(&p, "UpdatePipeline"));
    assert_eq!(create.config_str("ActionMode"), Some("CHANGE_SET_REPLACE"));
    assert_eq!(create.config_str("StackName"), Some(PIPELINE_STACK));
    assert_eq!(
        create.config_str("ChangeSetName"),
        Some(SELF_UPDATE_CHANGE_SET)
    );
    assert_eq!(
        create.template_path(),
        Some(("BuildOutput", "packaged-pipeline.yaml"))
    );
    assert_eq!(create.input_artifacts, ["BuildOutput"]);
}

#[test]
fn the_self_update_runs_as_its_own_role_with_named_iam() {
    let p = pipeline();
    let create = deploy(stage(&p, "UpdatePipeline"));
    assert_eq!(
        create.config("RoleArn"),
        Some(&json!({"Fn::GetAtt": ["PipelineDeployRole", "Arn"]}))
    );
    // The pipeline's roles are named (RoleName): CAPABILITY_NAMED_IAM.
    assert_eq!(
        create.config_str("Capabilities"),
        Some("CAPABILITY_NAMED_IAM,CAPABILITY_AUTO_EXPAND")
    );
}

#[test]
fn the_self_update_passes_every_parameter_its_current_value() {
    let t = template();
    let p = pipeline_with(&[
        ("ServiceName", SERVICE),
        ("BranchName", "trunk"),
        ("ProdDeploymentWindow", "0 * 9-16 ? * MON-FRI *"),
    ]);
    let overrides = parameter_overrides(deploy(stage(&p, "UpdatePipeline")));
    let names: Vec<&str> = t.parameters().map(|p| p.name()).collect();
    let mut passed: Vec<&str> = overrides
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    passed.sort_unstable();
    let mut expected = names.clone();
    expected.sort_unstable();
    assert_eq!(passed, expected, "every parameter, nothing else");
    assert_eq!(overrides["ServiceName"], SERVICE);
    assert_eq!(overrides["BranchName"], "trunk");
    assert_eq!(overrides["ProdDeploymentWindow"], "0 * 9-16 ? * MON-FRI *");
}

#[test]
fn the_self_update_is_reviewed_by_review_changes_in_namespace_pipeline_review() {
    let p = pipeline();
    let update = stage(&p, "UpdatePipeline");
    let review = update
        .actions_of(ActionCategory::Invoke)
        .next()
        .expect("a review action");
    assert_eq!(
        review.config_str("FunctionName"),
        Some("Clock_review_changes")
    );
    assert_eq!(namespace(review), Some("PipelineReview"));
    assert!(review.run_order > deploy(update).run_order);
    assert_eq!(
        user_parameters(review),
        json!({"stackName": PIPELINE_STACK, "changeSetName": SELF_UPDATE_CHANGE_SET})
    );
}

#[test]
fn the_pipeline_update_approval_is_skipped_unless_the_review_found_permission_changes() {
    let declaration = stage_declaration(&pipeline(), "ApprovePipelineUpdate");
    // The condition's SKIP applies when its rule is not met: when
    // PermissionChanges is not "true".
    assert_eq!(
        declaration["BeforeEntry"],
        json!({"Conditions": [{
            "Result": "SKIP",
            "Rules": [{
                "Name": "PermissionChanges",
                "RuleTypeId": {"Category": "Rule", "Owner": "AWS", "Provider": "VariableCheck", "Version": "1"},
                "Configuration": {
                    "Variable": "#{PipelineReview.PermissionChanges}",
                    "Value": "true",
                    "Operator": "EQ"
                }
            }]
        }]})
    );
}

#[test]
fn the_pipeline_update_approval_is_alone_in_its_stage_and_shows_the_review() {
    let p = pipeline();
    let approve = stage(&p, "ApprovePipelineUpdate");
    assert_eq!(approve.actions.len(), 1, "a skip skips the whole stage");
    let approval = &approve.actions[0];
    assert_eq!(approval.category, ActionCategory::Approval);
    assert_eq!(approval.provider, "Manual");
    assert_eq!(
        approval.config_str("CustomData"),
        Some("#{PipelineReview.ReviewText}")
    );
    assert_eq!(
        approval.config_str("ExternalEntityLink"),
        Some("#{PipelineReview.ChangeSetUrl}")
    );
}

#[test]
fn the_pipeline_update_executes_the_reviewed_change_set_after_the_approval() {
    let p = pipeline();
    let execute = stack_change(stage(&p, "ExecutePipelineUpdate"));
    assert_eq!(execute.config_str("ActionMode"), Some("CHANGE_SET_EXECUTE"));
    assert_eq!(execute.config_str("StackName"), Some(PIPELINE_STACK));
    assert_eq!(
        execute.config_str("ChangeSetName"),
        Some(SELF_UPDATE_CHANGE_SET)
    );
    assert_eq!(
        p.stage_index("ApprovePipelineUpdate").unwrap() + 1,
        p.stage_index("ExecutePipelineUpdate").unwrap()
    );
}

#[test]
fn an_updated_pipeline_restarts_its_execution_under_the_new_definition() {
    let t = template();
    assert_eq!(
        t.resource("Pipeline")
            .unwrap()
            .property("RestartExecutionOnUpdate"),
        Some(&json!(true))
    );
}

/// The pipeline role runs the change-set calls of the self-update on its
/// own stack, hands it PipelineDeployRole, and can never delete or directly
/// update it.
#[test]
fn the_pipeline_may_change_set_its_own_stack_but_never_delete_or_update_it_directly() {
    let own = "arn:aws:cloudformation:eu-west-1:123456789012:stack/Clock-pipeline/0a1b";
    for action in [
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:ExecuteChangeSet",
        "cloudformation:DeleteChangeSet",
    ] {
        assert!(grants("PipelineRole", action, own), "{action}");
    }
    for action in ["cloudformation:DeleteStack", "cloudformation:UpdateStack"] {
        assert!(!grants("PipelineRole", action, own), "{action}");
    }
    assert!(grants(
        "PipelineRole",
        "iam:PassRole",
        "arn:aws:iam::123456789012:role/Clock_pipeline_deploy"
    ));
}

/// The app deploy role cannot touch the pipeline stack, and the pipeline's
/// deploy role cannot touch the app stacks' roles.
#[test]
fn the_pipeline_deploy_role_reaches_the_pipelines_roles_and_not_the_service_stacks() {
    assert!(grants(
        "PipelineDeployRole",
        "iam:PutRolePolicy",
        "arn:aws:iam::123456789012:role/Clock_build"
    ));
    assert!(!grants(
        "PipelineDeployRole",
        "iam:PutRolePolicy",
        "arn:aws:iam::123456789012:role/Clock-prod-TimeFunctionRole-ABC"
    ));
    assert!(!grants(
        "DeployRole",
        "iam:PutRolePolicy",
        "arn:aws:iam::123456789012:role/Clock_pipeline"
    ));
}

/// Whether some Deny statement of `role` denies `action` on `resource`.
fn denies(role: &str, action: &str, resource: &str) -> bool {
    role_statements(role).iter().any(|s| {
        s["Effect"] == "Deny"
            && as_list(&s["Action"])
                .iter()
                .any(|a| e2e::iam_matches(a, action))
            && as_list(&s["Resource"])
                .iter()
                .any(|p| e2e::iam_matches(p, resource))
    })
}

/// The lock-out guard: whatever a pushed pipeline.yaml says, the self-update
/// can neither change its own role nor take from the pipeline role what the
/// running execution needs, nor delete the pipeline.
#[test]
fn the_pipeline_deploy_role_can_never_change_itself_or_strip_the_pipeline_role() {
    let own = "arn:aws:iam::123456789012:role/Clock_pipeline_deploy";
    for action in [
        "iam:DeleteRole",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:UpdateAssumeRolePolicy",
    ] {
        assert!(denies("PipelineDeployRole", action, own), "{action}");
    }
    let pipeline_role = "arn:aws:iam::123456789012:role/Clock_pipeline";
    for action in [
        "iam:DeleteRole",
        "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy",
        "iam:UpdateAssumeRolePolicy",
    ] {
        assert!(
            denies("PipelineDeployRole", action, pipeline_role),
            "{action}"
        );
    }
    assert!(denies(
        "PipelineDeployRole",
        "codepipeline:DeletePipeline",
        "arn:aws:codepipeline:eu-west-1:123456789012:Clock"
    ));
}

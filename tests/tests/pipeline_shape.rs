//! The pipeline that pipeline.yaml defines has the shape the service relies
//! on: Source -> Build -> DeployTests -> Beta -> Gamma -> Prod, every
//! deployment from the build's packaged templates, a test gate after every
//! stage deployment that names the right stacks, and a manual approval before
//! prod.
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
    r
}

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

/// The single CloudFormation deploy action of a stage.
fn deploy(stage: &Stage) -> &Action {
    let deploys: Vec<&Action> = stage.actions_of(ActionCategory::Deploy).collect();
    assert_eq!(
        deploys.len(),
        1,
        "stage {} has one deploy action",
        stage.name
    );
    assert_eq!(deploys[0].provider, "CloudFormation");
    deploys[0]
}

/// The single Lambda invoke action of a stage.
fn test_gate(stage: &Stage) -> &Action {
    let invokes: Vec<&Action> = stage.actions_of(ActionCategory::Invoke).collect();
    assert_eq!(
        invokes.len(),
        1,
        "stage {} has one invoke action",
        stage.name
    );
    assert_eq!(invokes[0].provider, "Lambda");
    invokes[0]
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
fn stages_run_source_build_deploytests_beta_gamma_prod() {
    assert_eq!(
        pipeline().stage_names(),
        ["Source", "Build", "DeployTests", "Beta", "Gamma", "Prod"]
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
        .filter(|(_, a)| a.category == ActionCategory::Deploy)
        .collect();
    assert_eq!(deploys.len(), 4, "tests, beta, gamma and prod are deployed");
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

#[test]
fn every_deploy_acknowledges_iam_and_auto_expand_without_spaces() {
    let p = pipeline();
    for (stage, action) in p
        .actions()
        .filter(|(_, a)| a.category == ActionCategory::Deploy)
    {
        assert_eq!(
            action.config_str("Capabilities"),
            Some("CAPABILITY_IAM,CAPABILITY_AUTO_EXPAND"),
            "{}",
            stage.name
        );
    }
}

#[test]
fn every_deploy_runs_as_the_deployment_role() {
    let p = pipeline();
    for (stage, action) in p
        .actions()
        .filter(|(_, a)| a.category == ActionCategory::Deploy)
    {
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
            test_gate(s).run_order > deploy(s).run_order,
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
    assert!(approvals[0].run_order < deploy(prod).run_order);
}

#[test]
fn only_prod_waits_for_an_approval() {
    let p = pipeline();
    let stages: Vec<&str> = p
        .actions()
        .filter(|(_, a)| a.category == ActionCategory::Approval)
        .map(|(s, _)| s.name.as_str())
        .collect();
    assert_eq!(stages, ["Prod"]);
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

/// IAM-style match: `*` any run of characters, `?` one character.
fn iam_matches(pattern: &str, arn: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), arn.as_bytes())
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
        5 + 1 + 2,
        "five roles, one function, two log groups"
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
        resources.iter().any(|p| iam_matches(
            p,
            "arn:aws:iam::123456789012:role/Clock-beta-TimeFunctionRole-ABC"
        )),
        "the deploy role manages the service's function roles"
    );
    for arn in &own {
        // "*" grants (log deliveries) name no resource a deployment could change.
        for pattern in resources.iter().filter(|p| **p != "*") {
            assert!(
                !iam_matches(pattern, arn),
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

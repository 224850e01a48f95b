//! A stage stack protects itself: app-sam.yaml publishes every deployment as
//! a version behind the alias `live`, the API invokes that alias, and
//! CodeDeploy shifts the alias's traffic the way the `DeploymentType`
//! parameter says, rolling back when the deployment fails or one of the
//! stack's three alarms (function errors, API 5xx, p99 latency) fires.
//!
//! Checked on the template as CloudFormation receives it: after the SAM
//! transform (samtranslator from `.tools/venv`, see `sam/mod.rs`).

mod sam;

use cfn_template::{Resolver, Template};
use sam::{translate, translate_with};
use serde_json::{Value, json};

const TEMPLATE: &str = "app-sam.yaml";
const REGION: &str = "us-east-1";

/// The logical ids of the three alarms, in app-sam.yaml.
const ALARMS: [&str; 3] = ["ErrorsAlarm", "Api5xxAlarm", "LatencyAlarm"];

fn transformed() -> Value {
    translate(TEMPLATE, REGION)
}

/// The one resource of `resource_type`, with its logical id.
fn only<'a>(t: &'a Value, resource_type: &str) -> (&'a str, &'a Value) {
    let found: Vec<(&str, &Value)> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == resource_type)
        .map(|(id, r)| (id.as_str(), r))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {resource_type} in the transformed {TEMPLATE}: {:?}",
        found.iter().map(|(id, _)| id).collect::<Vec<_>>()
    );
    found[0]
}

fn deployment_group(t: &Value) -> &Value {
    &only(t, "AWS::CodeDeploy::DeploymentGroup").1["Properties"]
}

/// The deployment configuration CodeDeploy uses, as SAM writes it:
/// `CodeDeployDefault.Lambda${ConfigName}` with the type as `ConfigName`.
fn deployment_config(t: &Value) -> String {
    let name = &deployment_group(t)["DeploymentConfigName"];
    let sub = name["Fn::Sub"]
        .as_array()
        .unwrap_or_else(|| panic!("DeploymentConfigName is a predefined Lambda type: {name}"));
    let config = sub[1]["ConfigName"]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigName is resolved: {name}"));
    sub[0].as_str().unwrap().replace("${ConfigName}", config)
}

fn alarm(t: &Value, logical_id: &str) -> Value {
    let r = &t["Resources"][logical_id];
    assert_eq!(r["Type"], "AWS::CloudWatch::Alarm", "{logical_id}");
    r["Properties"].clone()
}

fn dimension<'a>(alarm: &'a Value, name: &str) -> &'a Value {
    alarm["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["Name"] == name)
        .map(|d| &d["Value"])
        .unwrap_or_else(|| panic!("no {name} dimension: {alarm}"))
}

#[test]
fn the_api_invokes_the_live_alias_that_codedeploy_updates() {
    let t = transformed();
    let (alias_id, alias) = only(&t, "AWS::Lambda::Alias");
    assert_eq!(alias["Properties"]["Name"], "live");
    let update = &alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"];
    let (group_id, _) = only(&t, "AWS::CodeDeploy::DeploymentGroup");
    assert_eq!(update["DeploymentGroupName"], json!({"Ref": group_id}));

    let (_, api) = only(&t, "AWS::ApiGatewayV2::Api");
    let paths = api["Properties"]["Body"]["paths"].as_object().unwrap();
    assert!(paths.len() >= 4, "every route: {:?}", paths.keys());
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().unwrap() {
            let uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: integration uri {operation}"));
            assert!(
                uri.contains(&format!("${{{alias_id}}}/invocations")),
                "{method} {path} invokes the alias {alias_id}, not $LATEST: {uri}"
            );
        }
    }
}

#[test]
fn api_gateway_may_invoke_the_alias_only() {
    let t = transformed();
    let (alias_id, _) = only(&t, "AWS::Lambda::Alias");
    let permissions: Vec<&Value> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::Permission")
        .collect();
    assert!(!permissions.is_empty());
    for p in permissions {
        assert_eq!(
            p["Properties"]["FunctionName"],
            json!({"Ref": alias_id}),
            "{p}"
        );
    }
}

#[test]
fn a_failed_or_alarmed_deployment_rolls_back() {
    let t = transformed();
    let rollback = &deployment_group(&t)["AutoRollbackConfiguration"];
    assert_eq!(rollback["Enabled"], true);
    let events = rollback["Events"].as_array().unwrap();
    for event in ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"] {
        assert!(events.contains(&json!(event)), "{event} in {rollback}");
    }
}

#[test]
fn the_deployment_watches_the_errors_5xx_and_latency_alarms() {
    let t = transformed();
    let alarms = &deployment_group(&t)["AlarmConfiguration"];
    assert_eq!(alarms["Enabled"], true);
    let mut names: Vec<&Value> = alarms["Alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["Name"])
        .collect();
    names.sort_by_key(|n| n.to_string());
    let mut expected: Vec<Value> = ALARMS.iter().map(|id| json!({"Ref": id})).collect();
    expected.sort_by_key(|n| n.to_string());
    assert_eq!(names, expected.iter().collect::<Vec<_>>());
}

#[test]
fn the_deployment_type_defaults_to_all_at_once() {
    let t = transformed();
    assert_eq!(deployment_config(&t), "CodeDeployDefault.LambdaAllAtOnce");
}

/// The type is the stack's `DeploymentType` parameter, and every value it
/// allows is one SAM turns into a predefined Lambda configuration (SAM
/// passes unknown names through, which CodeDeploy would then reject).
#[test]
fn every_allowed_deployment_type_becomes_that_codedeploy_configuration() {
    let t = Template::from_path(e2e::repo_root().join(TEMPLATE)).unwrap();
    let preference = t
        .resource("TimeFunction")
        .and_then(|f| f.property("DeploymentPreference"))
        .expect("TimeFunction has a DeploymentPreference");
    assert_eq!(preference["Type"], json!({"Ref": "DeploymentType"}));
    let allowed = t.parameter("DeploymentType").unwrap().allowed_values();
    for gradual in ["Canary10Percent5Minutes", "Linear10PercentEvery1Minute"] {
        assert!(allowed.iter().any(|a| a == gradual), "{gradual} allowed");
    }
    for value in allowed {
        let t = translate_with(TEMPLATE, REGION, &[("DeploymentType", &value)]);
        assert_eq!(
            deployment_config(&t),
            format!("CodeDeployDefault.Lambda{value}")
        );
    }
}

#[test]
fn the_errors_alarm_counts_function_errors_through_the_live_alias() {
    let t = transformed();
    let a = alarm(&t, "ErrorsAlarm");
    assert_eq!(a["Namespace"], "AWS/Lambda");
    assert_eq!(a["MetricName"], "Errors");
    assert_eq!(a["Statistic"], "Sum");
    assert_eq!(
        dimension(&a, "FunctionName"),
        &json!({"Ref": "TimeFunction"})
    );
    assert_eq!(
        dimension(&a, "Resource"),
        &json!({"Fn::Sub": "${TimeFunction}:live"})
    );
}

#[test]
fn the_5xx_alarm_counts_the_http_apis_5xx_answers() {
    let t = transformed();
    let (api_id, _) = only(&t, "AWS::ApiGatewayV2::Api");
    let a = alarm(&t, "Api5xxAlarm");
    assert_eq!(a["Namespace"], "AWS/ApiGateway");
    assert_eq!(a["MetricName"], "5xx");
    assert_eq!(a["Statistic"], "Sum");
    assert_eq!(dimension(&a, "ApiId"), &json!({"Ref": api_id}));
    assert_eq!(dimension(&a, "Stage"), "$default");
}

#[test]
fn the_latency_alarm_watches_p99_duration_through_the_live_alias() {
    let t = transformed();
    let a = alarm(&t, "LatencyAlarm");
    assert_eq!(a["Namespace"], "AWS/Lambda");
    assert_eq!(a["MetricName"], "Duration");
    assert_eq!(a["ExtendedStatistic"], "p99");
    assert!(a.get("Statistic").is_none(), "p99, not a plain statistic");
    assert_eq!(
        dimension(&a, "Resource"),
        &json!({"Fn::Sub": "${TimeFunction}:live"})
    );
}

#[test]
fn every_alarm_threshold_is_a_parameter_and_no_traffic_is_not_a_breach() {
    let t = transformed();
    for id in ALARMS {
        let a = alarm(&t, id);
        let threshold = a["Threshold"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Threshold is a parameter, got {}", a["Threshold"]));
        assert!(
            t["Parameters"].get(threshold).is_some(),
            "{id}: {threshold} is a template parameter"
        );
        assert_eq!(a["TreatMissingData"], "notBreaching", "{id}");
    }
}

/// pipeline.yaml names Prod's alarms without reading the stack's outputs,
/// so the names follow from ServiceName and Stage alone; the stack exports
/// them too.
#[test]
fn the_alarms_are_named_after_service_and_stage_and_exported() {
    let t = Template::from_path(e2e::repo_root().join(TEMPLATE)).unwrap();
    let r = Resolver::for_template(&t, [("ServiceName", "Clock"), ("Stage", "prod")]);
    let mut names: Vec<String> = ALARMS
        .iter()
        .map(|id| {
            let name = t.resource(id).unwrap().property("AlarmName").unwrap();
            r.resolve_str(name)
                .unwrap_or_else(|e| panic!("{id}: AlarmName from parameters only: {e}"))
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Clock-prod-5xx",
            "Clock-prod-errors",
            "Clock-prod-latency-p99"
        ]
    );
    for id in ALARMS {
        assert!(
            t.outputs().any(|o| o.value() == Some(&json!({"Ref": id}))),
            "an output gives {id}'s name"
        );
    }
}

/// CodeDeploy shifts the alias with app-sam.yaml's own role, which carries
/// the pipeline's permissions boundary: with no `Role`, SAM would generate
/// one without it, which the deploy role may not create.
#[test]
fn codedeploy_uses_the_stacks_own_bounded_role() {
    let t = transformed();
    assert_eq!(
        deployment_group(&t)["ServiceRoleArn"],
        json!({"Fn::GetAtt": ["CodeDeployServiceRole", "Arn"]})
    );
    let role = &t["Resources"]["CodeDeployServiceRole"];
    assert_eq!(role["Type"], "AWS::IAM::Role");
    assert_eq!(
        role["Properties"]["PermissionsBoundary"],
        json!({"Ref": "PermissionsBoundaryArn"})
    );
    assert_eq!(
        role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "codedeploy.amazonaws.com"
    );
}

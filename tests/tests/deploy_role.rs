//! DeployRole, the role CloudFormation deploys the service's stacks with
//! (pipeline.yaml), allows what CloudFormation needs for them: every
//! permission the resource handlers of every resource type in those stacks
//! declare (create, read, update, delete; from the resource provider schemas
//! cfn-lint bundles), after the SAM transform, less a short list of
//! permissions for features the templates do not use, each with its reason.
//! And the managed policies SAM attaches to function roles are the ones the
//! role may attach, in every partition.

mod sam;

use cfn_template::{Resolver, Template};
use sam::{
    STACK_TEMPLATES, action_allowed, handler_permissions, resource_types, strings, translate,
};
use serde_json::Value;

/// Handler permissions DeployRole deliberately lacks, by the feature they
/// serve: the handlers declare them for properties the app and test
/// templates do not set, so no operation on these stacks calls them.
const NOT_USED: &[(&[&str], &str)] = &[
    (
        &[
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeVpcs",
            "ec2:DescribeNetworkInterfaces",
        ],
        "Lambda VpcConfig: the functions run outside any VPC",
    ),
    (
        &[
            "elasticfilesystem:DescribeMountTargets",
            "s3files:ListMountTargets",
        ],
        "Lambda FileSystemConfigs: no file system is mounted",
    ),
    (
        &[
            "kms:CreateGrant",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey",
        ],
        "Lambda KmsKeyArn: environment variables use Lambda's AWS-managed key \
         (kms:Decrypt, also declared, is granted for the packaged code)",
    ),
    (
        &[
            "lambda:GetCodeSigningConfig",
            "lambda:PutFunctionCodeSigningConfig",
            "lambda:DeleteFunctionCodeSigningConfig",
        ],
        "Lambda CodeSigningConfigArn: code signing is not configured",
    ),
    (
        &["lambda:GetLayerVersion"],
        "Lambda Layers: the functions use none",
    ),
    (
        &[
            "lambda:PutFunctionScalingConfig",
            "lambda:PassCapacityProvider",
            "lambda:AssociateRuntimeAlias",
        ],
        "Lambda CapacityProviderConfig and FunctionScalingConfig (Lambda Managed \
         Instances): the functions and their versions use the default compute",
    ),
    (
        &[
            "lambda:PutProvisionedConcurrencyConfig",
            "lambda:GetProvisionedConcurrencyConfig",
            "lambda:DeleteProvisionedConcurrencyConfig",
        ],
        "Lambda Version and Alias ProvisionedConcurrencyConfig: the live alias \
         has no provisioned concurrency",
    ),
    (
        &["codedeploy:RegisterOnPremisesInstance"],
        "CodeDeploy DeploymentGroup OnPremisesInstanceTagFilters: a Lambda \
         deployment group has no on-premises instances",
    ),
    (
        &["logs:PutDataProtectionPolicy"],
        "LogGroup DataProtectionPolicy: none set",
    ),
    (
        &["logs:PutIndexPolicy", "logs:DeleteIndexPolicy"],
        "LogGroup FieldIndexPolicies: none set",
    ),
    (
        &["logs:AssociateKmsKey", "logs:DisassociateKmsKey"],
        "LogGroup KmsKeyId: the service's log groups use CloudWatch Logs' own encryption",
    ),
    (
        &["logs:DeleteResourcePolicy"],
        "LogGroup ResourcePolicyDocument: none set",
    ),
    (
        &["logs:PutLogGroupDeletionProtection"],
        "LogGroup DeletionProtectionEnabled: not set",
    ),
    (
        &["logs:PutBearerTokenAuthentication"],
        "LogGroup BearerTokenAuthenticationEnabled: not set",
    ),
    (
        &["s3:REST.PUT.OBJECT", "firehose:TagDeliveryStream"],
        "LogGroup deliveries to S3 or Firehose: the groups deliver nowhere",
    ),
    (
        &["iam:DeleteRolePermissionsBoundary"],
        "Role PermissionsBoundary removed: every role of the stacks keeps the \
         pipeline's StackRoleBoundary, and DeployRole may never take it off \
         (tests/tests/permissions_boundary.rs)",
    ),
];

fn pipeline() -> Template {
    Template::from_path(e2e::repo_root().join("pipeline.yaml")).expect("pipeline.yaml parses")
}

/// The statements of DeployRole's inline policy (unresolved: actions need
/// no resolution).
fn deploy_role_statements(t: &Template) -> Vec<Value> {
    let role = t.resource("DeployRole").expect("a DeployRole");
    let policies = role.property("Policies").expect("inline policies");
    policies
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .collect()
}

/// Every action an Allow statement of DeployRole names.
fn deploy_role_actions() -> Vec<String> {
    deploy_role_statements(&pipeline())
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| {
            strings(&s["Action"])
                .into_iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// (resource type, handler, permission) for every resource type of the
/// transformed app and test templates.
fn required_permissions() -> Vec<(String, String, String)> {
    let mut types: Vec<String> = STACK_TEMPLATES
        .iter()
        .flat_map(|t| resource_types(&translate(t, "us-east-1")))
        .collect();
    types.sort();
    types.dedup();
    assert!(
        types.iter().any(|t| t == "AWS::Lambda::Function"),
        "the transform produced functions: {types:?}"
    );
    let mut required = Vec::new();
    for ty in types {
        for (handler, permissions) in handler_permissions(&ty) {
            for p in permissions {
                required.push((ty.clone(), handler.clone(), p));
            }
        }
    }
    required
}

fn allowed(actions: &[String], permission: &str) -> bool {
    actions.iter().any(|a| action_allowed(a, permission))
}

fn exempt(permission: &str) -> bool {
    NOT_USED
        .iter()
        .flat_map(|(permissions, _)| permissions.iter())
        .any(|p| p.eq_ignore_ascii_case(permission))
}

#[test]
fn deploy_role_allows_every_handler_permission_of_the_service_stacks() {
    let actions = deploy_role_actions();
    let missing: Vec<String> = required_permissions()
        .into_iter()
        .filter(|(_, _, p)| !allowed(&actions, p) && !exempt(p))
        .map(|(ty, handler, p)| format!("{p} ({ty} {handler})"))
        .collect();
    assert!(
        missing.is_empty(),
        "DeployRole lacks handler permissions (add them, scoped to the service's \
         resources, or list them in NOT_USED with the reason):\n  {}",
        missing.join("\n  ")
    );
}

/// The exception list stays honest: each entry is a permission some handler
/// of these stacks declares, and one DeployRole does not grant anyway.
#[test]
fn every_unused_permission_is_declared_by_a_handler_and_not_granted() {
    let required = required_permissions();
    let actions = deploy_role_actions();
    for (permission, reason) in NOT_USED
        .iter()
        .flat_map(|(permissions, reason)| permissions.iter().map(move |p| (p, reason)))
    {
        assert!(
            reason.len() >= 20,
            "{permission}: the exception needs its reason"
        );
        assert!(
            required
                .iter()
                .any(|(_, _, p)| p.eq_ignore_ascii_case(permission)),
            "{permission} is listed as not used, but no handler of the stacks' resources declares it"
        );
        assert!(
            !allowed(&actions, permission),
            "{permission} is listed as not used, but DeployRole grants it"
        );
    }
}

/// The managed-policy ARNs DeployRole may attach to function roles, for a
/// partition.
fn attachable_policies(partition: &str) -> Vec<String> {
    let t = pipeline();
    let r = Resolver::for_template(&t, [("ServiceName", "Time")])
        .with_ref("AWS::Partition", partition)
        .with_ref("AWS::Region", "r")
        .with_ref("AWS::AccountId", "123456789012");
    let statement = deploy_role_statements(&t)
        .into_iter()
        .find(|s| s["Sid"] == "ServiceFunctionRolesManagedPolicies")
        .expect("a statement limiting the managed policies");
    strings(&statement["Condition"]["ArnEquals"]["iam:PolicyARN"])
        .into_iter()
        .map(|v| r.resolve_str(v).expect("policy ARN resolves"))
        .collect()
}

/// A managed-policy ARN as CloudFormation gets it in `partition`: a literal
/// (what SAM writes for the roles it generates) or a `Fn::Sub` of the
/// partition alone (app-sam.yaml's own CodeDeploy role).
fn managed_policy_arn(template: &str, arn: &Value, partition: &str) -> String {
    if let Some(literal) = arn.as_str() {
        return literal.to_string();
    }
    let sub = arn["Fn::Sub"].as_str().unwrap_or_else(|| {
        panic!("{template}: managed policy {arn} is neither a literal ARN nor a Fn::Sub")
    });
    let resolved = sub.replace("${AWS::Partition}", partition);
    assert!(
        !resolved.contains("${"),
        "{template}: managed policy {arn} uses more than the partition"
    );
    resolved
}

/// SAM names the X-Ray policy after the partition (AWSXrayWriteOnlyAccess in
/// `aws`, AWSXRayDaemonWriteAccess elsewhere) and gives the CodeDeploy
/// service role of a gradual deployment AWSCodeDeployRoleForLambda; a
/// deployment in any partition may attach whatever SAM attaches.
#[test]
fn the_managed_policies_sam_attaches_are_attachable_in_every_partition() {
    for (region, partition) in [
        ("us-east-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
    ] {
        let allowed = attachable_policies(partition);
        let mut attached = Vec::new();
        for template in STACK_TEMPLATES {
            let t = translate(template, region);
            for resource in t["Resources"].as_object().unwrap().values() {
                if resource["Type"] != "AWS::IAM::Role" {
                    continue;
                }
                for arn in strings(&resource["Properties"]["ManagedPolicyArns"]) {
                    attached.push(managed_policy_arn(template, arn, partition));
                }
            }
        }
        assert!(
            attached
                .iter()
                .any(|a| a.contains("XRay") || a.contains("Xray")),
            "{partition}: the traced function's role gets an X-Ray policy: {attached:?}"
        );
        assert!(
            attached
                .iter()
                .any(|a| a.ends_with(":policy/service-role/AWSCodeDeployRoleForLambda")),
            "{partition}: the CodeDeploy service role gets AWSCodeDeployRoleForLambda: {attached:?}"
        );
        for arn in &attached {
            assert!(
                arn.starts_with(&format!("arn:{partition}:")),
                "{region}: {arn} is in partition {partition}"
            );
            assert!(
                allowed.contains(arn),
                "{partition}: SAM attaches {arn}, which DeployRole may not attach (it may: {allowed:?})"
            );
        }
    }
}

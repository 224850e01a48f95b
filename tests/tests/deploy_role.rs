//! DeployRole, the role CloudFormation deploys the service's stacks with
//! (pipeline.yaml), allows what CloudFormation needs for them: every
//! permission the resource handlers of every resource type in those stacks
//! declare (create, read, update, delete; from the resource provider schemas
//! cfn-lint bundles), after the SAM transform, less a short list of
//! permissions for features the templates do not use, each with its reason.
//! The stacks are app-sam.yaml and test-sam.yaml and every example's
//! (examples/*/); the role's policies are its inline one and the managed
//! policies it attaches (DeployAppResources). The app resources (tables,
//! queues, event source mappings) are reached by name in every stage and in
//! no other service. And the managed policies SAM attaches to function roles
//! are the ones the role may attach, in every partition.

mod sam;

use cfn_template::{Resolver, Template};
use sam::{
    action_allowed, handler_permissions, policy_allows, resource_types, role_statements,
    stack_templates, strings, translate, translate_with,
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
            "kms:ListAliases",
            "kms:RevokeGrant",
        ],
        "customer managed KMS keys: Lambda KmsKeyArn (environment variables use \
         Lambda's AWS-managed key), DynamoDB Table SSESpecification KMSMasterKeyId \
         and EventSourceMapping KmsKeyArn are not set (kms:Decrypt, also \
         declared, is granted for the packaged code)",
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
        &[
            "dynamodb:ImportTable",
            "dynamodb:DescribeImport",
            "s3:GetObjectMetadata",
            "s3:ListBucket",
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        ],
        "DynamoDB Table ImportSourceSpecification: no table is created from an \
         S3 import (which reads the bucket and logs to CloudWatch Logs)",
    ),
    (
        &[
            "dynamodb:EnableKinesisStreamingDestination",
            "dynamodb:DisableKinesisStreamingDestination",
            "dynamodb:UpdateKinesisStreamingDestination",
            "kinesis:DescribeStream",
            "kinesis:PutRecords",
        ],
        "DynamoDB Table KinesisStreamSpecification: no table streams to Kinesis \
         (the read handler's DescribeKinesisStreamingDestination is granted)",
    ),
    (
        &[
            "dynamodb:PutResourcePolicy",
            "dynamodb:DeleteResourcePolicy",
        ],
        "DynamoDB Table ResourcePolicy: none set (GetResourcePolicy, read, is granted)",
    ),
    (
        &[
            "dynamodb:CreateTableReplica",
            "dynamodb:AssociateTableReplica",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "iam:CreateServiceLinkedRole",
        ],
        "DynamoDB replicas: creating a replica takes these item actions and \
         replication's service-linked role (\"DynamoDB global tables security\", \
         Amazon DynamoDB Developer Guide); the tables are single-Region, and \
         CloudFormation never reads or writes their items",
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

/// The statements of DeployRole's policies, inline and managed
/// (unresolved: actions need no resolution).
fn deploy_role_statements(t: &Template) -> Vec<Value> {
    role_statements(t, "DeployRole")
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
    let mut types: Vec<String> = stack_templates()
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
        for template in stack_templates() {
            let template = template.as_str();
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

/// The examples hold the app resources DeployRole's managed policy is for,
/// so the checks above cover those types' handlers too.
#[test]
fn the_checked_stacks_hold_tables_queues_and_event_source_mappings() {
    let types: Vec<String> = required_permissions()
        .into_iter()
        .map(|(ty, _, _)| ty)
        .collect();
    for ty in [
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Lambda::EventSourceMapping",
    ] {
        assert!(
            types.iter().any(|t| t == ty),
            "no example stack holds a {ty} (examples/*/app-sam.yaml): {:?}",
            stack_templates()
        );
    }
}

/// The app resource types DeployAppResources is for, and the prefix of
/// the actions their handlers take on the resource itself (the others,
/// KMS, S3, Logs, Kinesis and IAM, serve features listed in NOT_USED).
const APP_RESOURCE_TYPES: [(&str, &str); 4] = [
    ("AWS::DynamoDB::Table", "dynamodb:"),
    ("AWS::SQS::Queue", "sqs:"),
    ("AWS::SQS::QueuePolicy", "sqs:"),
    ("AWS::Lambda::EventSourceMapping", "lambda:"),
];

/// Handler permissions on a mapping DeployRole has only for the service's
/// functions, not for mappings (whose ARNs carry no name, and which take
/// no lambda:FunctionArn key for tags).
const UNTAGGED_MAPPINGS: (&[&str], &str) = (
    &["lambda:TagResource", "lambda:UntagResource"],
    "EventSourceMapping Tags: SAM tags none of the mappings it generates (not \
     even with PropagateTags) and the templates declare no mapping of their own",
);

const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

/// DeployRole's statements, inline and managed, resolved for `service`.
fn resolved_deploy_role(service: &str) -> Vec<Value> {
    let t = pipeline();
    let r = Resolver::for_template(&t, [("ServiceName", service)])
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", REGION)
        .with_ref("AWS::AccountId", ACCOUNT)
        .with_ref(
            "StackRoleBoundary",
            format!("arn:aws:iam::{ACCOUNT}:policy/{service}_stack_role_boundary"),
        )
        .with_ref(
            "DeployAppResources",
            format!("arn:aws:iam::{ACCOUNT}:policy/{service}_deploy_app_resources"),
        )
        .with_attribute("ArtifactBucket", "Arn", "arn:aws:s3:::artifacts")
        .with_attribute(
            "PipelineKey",
            "Arn",
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/k"),
        );
    role_statements(&t.resolved(&r), "DeployRole")
}

/// One app resource of a stack, as the handlers' calls see it: the ARN
/// they act on and the request's `lambda:FunctionArn` for a mapping.
#[derive(Debug)]
struct AppResource {
    template: String,
    id: String,
    ty: String,
    arns: Vec<String>,
    function_arn: Option<String>,
}

/// The app resources of a transformed template deployed as stack `stack`
/// of service `service`: names from their properties, or the name
/// CloudFormation generates (<stack>-<logical id>-<suffix>).
fn app_resources(template: &str, service: &str, stack: &str) -> Vec<AppResource> {
    let stage = stack.rsplit('-').next().unwrap();
    let mut parameters = vec![("ServiceName", service)];
    let raw = Template::from_path(e2e::repo_root().join(template)).unwrap();
    if raw.parameter("Stage").is_some() {
        parameters.push(("Stage", stage));
    }
    let t = Template::from_json(translate_with(template, "us-east-1", &parameters)).unwrap();
    let r = Resolver::for_template(&t, parameters.iter().copied())
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", REGION)
        .with_ref("AWS::AccountId", ACCOUNT)
        .with_ref("AWS::StackName", stack);
    let name = |id: &str, property: &str| -> String {
        let resource = t.resource(id).unwrap();
        match resource.property(property) {
            Some(v) => r
                .resolve_str(v)
                .unwrap_or_else(|e| panic!("{template}: {id}.{property}: {e}")),
            None => format!("{stack}-{id}-SUFFIX"),
        }
    };
    let arn = |service: &str, rest: String| format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}");
    let queue_arn = |id: &str| arn("sqs", name(id, "QueueName"));
    // A mapping's function: a function, or an alias of one (SAM's
    // AutoPublishAlias).
    let function_arn = |target: &Value| -> String {
        let id = target["Ref"].as_str().unwrap_or_else(|| {
            panic!("{template}: a mapping's FunctionName is {target}, not a Ref")
        });
        let resource = t.resource(id).unwrap();
        match resource.resource_type() {
            "AWS::Lambda::Function" => {
                arn("lambda", format!("function:{}", name(id, "FunctionName")))
            }
            "AWS::Lambda::Alias" => {
                let function = resource.property("FunctionName").unwrap()["Ref"]
                    .as_str()
                    .unwrap();
                let alias = r.resolve_str(resource.property("Name").unwrap()).unwrap();
                arn(
                    "lambda",
                    format!("function:{}:{alias}", name(function, "FunctionName")),
                )
            }
            other => panic!("{template}: a mapping's function is a {other}"),
        }
    };
    let mut found = Vec::new();
    for resource in t.resources() {
        let id = resource.logical_id();
        let ty = resource.resource_type();
        let (arns, function) = match ty {
            "AWS::DynamoDB::Table" => (
                vec![arn("dynamodb", format!("table/{}", name(id, "TableName")))],
                None,
            ),
            "AWS::SQS::Queue" => (vec![queue_arn(id)], None),
            "AWS::SQS::QueuePolicy" => (
                strings(resource.property("Queues").unwrap())
                    .iter()
                    .map(|q| {
                        let queue = q["Ref"].as_str().unwrap_or_else(|| {
                            panic!("{template}: {id} names queue {q}, not a Ref")
                        });
                        queue_arn(queue)
                    })
                    .collect(),
                None,
            ),
            "AWS::Lambda::EventSourceMapping" => (
                vec![arn(
                    "lambda",
                    "event-source-mapping:0a1b2c3d-uuid".to_string(),
                )],
                Some(function_arn(resource.property("FunctionName").unwrap())),
            ),
            _ => continue,
        };
        found.push(AppResource {
            template: template.to_string(),
            id: id.to_string(),
            ty: ty.to_string(),
            arns,
            function_arn: function,
        });
    }
    found
}

/// The handler permissions a type's calls on the resource itself take
/// (its own service's, less the features not used).
fn own_permissions(ty: &str) -> Vec<String> {
    let prefix = APP_RESOURCE_TYPES
        .iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, p)| *p)
        .unwrap();
    let mut permissions: Vec<String> = handler_permissions(ty)
        .into_values()
        .flatten()
        .filter(|p| p.starts_with(prefix))
        .filter(|p| !exempt(p))
        .filter(|p| !UNTAGGED_MAPPINGS.0.contains(&p.as_str()))
        .collect();
    permissions.sort();
    permissions.dedup();
    permissions
}

/// Whether DeployRole's `statements` allow `permission` on `resource` (a
/// mapping's calls carry `lambda:FunctionArn`; CreateEventSourceMapping
/// acts on "*").
fn deploy_role_allows(statements: &[Value], resource: &AppResource, permission: &str) -> bool {
    let context: Vec<(&str, &str)> = resource
        .function_arn
        .iter()
        .map(|f| ("lambda:FunctionArn", f.as_str()))
        .collect();
    resource.arns.iter().all(|arn| {
        let target = if permission.eq_ignore_ascii_case("lambda:CreateEventSourceMapping") {
            "*"
        } else {
            arn.as_str()
        };
        policy_allows(statements, permission, target, &context)
    })
}

/// Every table, queue, queue policy and event source mapping of every
/// stack template (the examples'), deployed in beta, gamma and prod: DeployRole
/// allows each handler permission on it, by its name (or its function's, for
/// a mapping). Deployed for another service, or as the test stack (which
/// holds no app resources, pipeline.yaml's DeployAppResources), none is
/// allowed, except listing a mapping's tags (no name to scope it by).
#[test]
fn deploy_role_reaches_the_app_resources_in_every_stage_and_no_other() {
    let own = resolved_deploy_role("Time");
    let mut checked = 0;
    for template in stack_templates()
        .into_iter()
        .filter(|t| t.ends_with("app-sam.yaml"))
    {
        for stage in ["beta", "gamma", "prod"] {
            for resource in app_resources(&template, "Time", &format!("Time-{stage}")) {
                for permission in own_permissions(&resource.ty) {
                    assert!(
                        deploy_role_allows(&own, &resource, &permission),
                        "{}: DeployRole may not {permission} on {} {} ({:?}, function {:?})",
                        resource.template,
                        resource.ty,
                        resource.id,
                        resource.arns,
                        resource.function_arn
                    );
                    checked += 1;
                }
            }
        }
        for stack in ["Other-prod", "Time-tests"] {
            let service = stack.split('-').next().unwrap();
            for resource in app_resources(&template, service, stack) {
                for permission in own_permissions(&resource.ty) {
                    if permission.eq_ignore_ascii_case("lambda:ListTags") {
                        continue;
                    }
                    assert!(
                        !deploy_role_allows(&own, &resource, &permission),
                        "{}: DeployRole allows {permission} on {} {} of stack {stack} ({:?}, function {:?})",
                        resource.template,
                        resource.ty,
                        resource.id,
                        resource.arns,
                        resource.function_arn
                    );
                }
            }
        }
    }
    assert!(checked > 0, "some app resource was checked");
    eprintln!("{checked} handler permissions checked on the examples' app resources");
}

/// The exception for mappings' tags stays honest: the mapping handler
/// declares those permissions.
#[test]
fn the_untagged_mappings_exception_is_declared_by_the_mapping_handler() {
    let declared: Vec<String> = handler_permissions("AWS::Lambda::EventSourceMapping")
        .into_values()
        .flatten()
        .collect();
    for permission in UNTAGGED_MAPPINGS.0 {
        assert!(declared.iter().any(|p| p == permission), "{permission}");
    }
    assert!(UNTAGGED_MAPPINGS.1.len() >= 20);
}

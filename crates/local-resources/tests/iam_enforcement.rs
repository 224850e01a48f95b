//! moto holds a function's role to its policies: PutItem is allowed with
//! the permission, denied without it, and the denial names the action and
//! the resource.

mod common;

use std::collections::BTreeMap;

use cfn_template::{Resolver, Template};
use local_resources::iam::{Denial, RoleSpec, sam_function_policies};
use local_resources::{LocalValues, moto_template};
use serde_json::json;

#[tokio::test]
async fn put_item_allowed_with_the_permission_and_denied_without_it() {
    let template = Template::from_yaml_str(
        r#"
Resources:
  Table:
    Type: AWS::Serverless::SimpleTable
    Properties: {TableName: items}
"#,
    )
    .unwrap();
    let moto = common::moto().await;
    let sub = moto_template(&template, &BTreeMap::new(), &LocalValues::new()).unwrap();
    let created = moto.create_stack("app", &sub).await.unwrap();
    moto.enforce_iam().await.unwrap();

    // The writer's role: SAM's DynamoDBCrudPolicy on the table, resolved as
    // the rehearsal resolves a stack (pseudo parameters and moto's names).
    let policies = json!([{"DynamoDBCrudPolicy": {"TableName": {"Ref": "Table"}}}]);
    let role = sam_function_policies("app", "Writer", Some(&policies)).unwrap();
    let mut resolver = Resolver::new()
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "us-east-1")
        .with_ref("AWS::AccountId", "123456789012");
    created.add_to(&mut resolver);
    let resolved = RoleSpec {
        inline_policies: role
            .inline_policies
            .iter()
            .map(|(n, d)| (n.clone(), resolver.resolve_complete(d).unwrap()))
            .collect(),
        ..role
    };
    let writer = moto.role_credentials(&resolved).await.unwrap();

    // A reader's role: no DynamoDB write permission.
    let reader = moto
        .role_credentials(&RoleSpec {
            name: "app-ReaderRole".into(),
            inline_policies: vec![(
                "read".into(),
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Action": ["dynamodb:GetItem"], "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/items"}]}),
            )],
            managed_policy_arns: vec![],
        })
        .await
        .unwrap();

    let put = json!({"TableName": "items", "Item": {"id": {"S": "1"}}});
    let (status, body) = moto
        .json_raw(&writer, "dynamodb", "DynamoDB_20120810", "PutItem", &put)
        .await
        .unwrap();
    assert_eq!(status, 200, "allowed PutItem: {body}");
    let got = moto
        .json(
            Some(&writer),
            "dynamodb",
            "DynamoDB_20120810",
            "GetItem",
            &json!({"TableName": "items", "Key": {"id": {"S": "1"}}}),
        )
        .await
        .unwrap();
    assert_eq!(got["Item"]["id"]["S"], "1");

    let (status, body) = moto
        .json_raw(&reader, "dynamodb", "DynamoDB_20120810", "PutItem", &put)
        .await
        .unwrap();
    assert_eq!(status, 403, "denied PutItem: {body}");
    let denial = Denial::from_body(&body)
        .unwrap_or_else(|| panic!("no denial in {body}"))
        .with_request(&put);
    assert_eq!(denial.action, "dynamodb:PutItem");
    assert_eq!(denial.role(), Some("app-ReaderRole"));
    assert_eq!(
        denial.resource.as_deref(),
        Some("arn:aws:dynamodb:us-east-1:123456789012:table/items")
    );
    println!("log line: {denial}");

    // Unsigned or unknown credentials are refused outright once enforced.
    let stranger = local_resources::Credentials {
        access_key_id: "AKIAUNKNOWN".into(),
        secret_access_key: "x".into(),
        session_token: None,
    };
    let (status, _) = moto
        .json_raw(&stranger, "dynamodb", "DynamoDB_20120810", "PutItem", &put)
        .await
        .unwrap();
    assert_eq!(status, 403);
}

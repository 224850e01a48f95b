//! A stack's table, SimpleTable and queue are created in moto, with their
//! Ref and GetAtt values, and really exist there.

mod common;

use std::collections::BTreeMap;

use cfn_template::{Resolver, Template};
use local_resources::{LocalValues, moto_template, needs_moto};
use serde_json::json;

const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
Resources:
  Items:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "items-${Stage}"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Simple:
    Type: AWS::Serverless::SimpleTable
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 45
  Api:
    Type: AWS::Serverless::Function
    Properties:
      Handler: bootstrap
      Environment:
        Variables:
          TABLE: !Ref Items
          SIMPLE_ARN: !GetAtt Simple.Arn
          QUEUE_URL: !Ref Jobs
          QUEUE_ARN: !GetAtt Jobs.Arn
"#;

#[tokio::test]
async fn table_simple_table_and_queue_are_created_in_moto_with_their_values() {
    let template = Template::from_yaml_str(TEMPLATE).unwrap();
    assert!(needs_moto(&template));
    let params = BTreeMap::from([("Stage".to_string(), "beta".to_string())]);
    let sub = moto_template(&template, &params, &LocalValues::new()).unwrap();
    assert_eq!(sub.resources, ["Items", "Jobs", "Simple"]);

    let moto = common::moto().await;
    let got = moto.create_stack("app-beta", &sub).await.unwrap();

    let items = &got.resources["Items"];
    assert_eq!(items.resource_type, "AWS::DynamoDB::Table");
    assert_eq!(items.reference, "items-beta");
    assert_eq!(
        items.attributes["Arn"],
        "arn:aws:dynamodb:us-east-1:123456789012:table/items-beta"
    );
    let simple = &got.resources["Simple"];
    assert_eq!(simple.resource_type, "AWS::DynamoDB::Table");
    assert!(
        simple.reference.starts_with("app-beta-Simple-"),
        "{simple:?}"
    );
    let jobs = &got.resources["Jobs"];
    assert!(
        jobs.reference
            .starts_with("https://sqs.us-east-1.amazonaws.com/123456789012/app-beta-Jobs-"),
        "{jobs:?}"
    );
    assert_eq!(jobs.attributes["QueueUrl"], jobs.reference);
    let queue_name = jobs.reference.rsplit('/').next().unwrap();
    assert_eq!(jobs.attributes["QueueName"], queue_name);
    assert_eq!(
        jobs.attributes["Arn"],
        format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}")
    );

    // The functions' environment resolves to moto's names.
    let mut resolver = Resolver::for_template(&template, [("Stage", "beta")]);
    got.add_to(&mut resolver);
    let env = resolver
        .resolve_complete(
            template
                .resource("Api")
                .unwrap()
                .property("Environment")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(env["Variables"]["TABLE"], "items-beta");
    assert_eq!(
        env["Variables"]["SIMPLE_ARN"],
        simple.attributes["Arn"].as_str()
    );

    // They really exist: DynamoDB DescribeTable, SQS GetQueueAttributes.
    for table in [&items.reference, &simple.reference] {
        let d = moto
            .json(
                None,
                "dynamodb",
                "DynamoDB_20120810",
                "DescribeTable",
                &json!({"TableName": table}),
            )
            .await
            .unwrap();
        assert_eq!(d["Table"]["TableStatus"], "ACTIVE", "{d}");
    }
    let simple_table = moto
        .json(
            None,
            "dynamodb",
            "DynamoDB_20120810",
            "DescribeTable",
            &json!({"TableName": simple.reference}),
        )
        .await
        .unwrap();
    assert_eq!(
        simple_table["Table"]["KeySchema"],
        json!([{"AttributeName": "id", "KeyType": "HASH"}])
    );
    assert_eq!(
        simple_table["Table"]["BillingModeSummary"]["BillingMode"],
        "PAY_PER_REQUEST"
    );
    let attrs = moto
        .query(
            None,
            "sqs",
            "2012-11-05",
            "GetQueueAttributes",
            &[("QueueUrl", &jobs.reference), ("AttributeName.1", "All")],
        )
        .await
        .unwrap();
    assert!(
        attrs.contains("<Name>VisibilityTimeout</Name><Value>45</Value>"),
        "{attrs}"
    );
}

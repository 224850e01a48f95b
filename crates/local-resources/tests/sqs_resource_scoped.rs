//! For SQS moto checks a statement's Resource too: SQSPollerPolicy on one
//! queue lets the role receive from it and not from another queue.

mod common;

use std::collections::BTreeMap;

use cfn_template::{Resolver, Template};
use local_resources::iam::{Denial, RoleSpec, sam_function_policies};
use local_resources::{Error, LocalValues, moto_template};
use serde_json::json;

#[tokio::test]
async fn sqs_poller_policy_allows_its_queue_and_not_another() {
    let template = Template::from_yaml_str(
        "Resources:\n  Jobs: {Type: AWS::SQS::Queue}\n  Other: {Type: AWS::SQS::Queue}\n",
    )
    .unwrap();
    let moto = common::moto().await;
    let sub = moto_template(&template, &BTreeMap::new(), &LocalValues::new()).unwrap();
    let created = moto.create_stack("app", &sub).await.unwrap();
    moto.enforce_iam().await.unwrap();

    let policies =
        json!([{"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["Jobs", "QueueName"]}}}]);
    let role = sam_function_policies("app", "Worker", Some(&policies)).unwrap();
    let mut resolver = Resolver::new()
        .with_ref("AWS::Partition", "aws")
        .with_ref("AWS::Region", "us-east-1")
        .with_ref("AWS::AccountId", "123456789012");
    created.add_to(&mut resolver);
    let role = RoleSpec {
        inline_policies: role
            .inline_policies
            .iter()
            .map(|(n, d)| (n.clone(), resolver.resolve_complete(d).unwrap()))
            .collect(),
        ..role
    };
    let worker = moto.role_credentials(&role).await.unwrap();

    let receive = |url: String| {
        let moto = &moto;
        let worker = worker.clone();
        async move {
            moto.query(
                Some(&worker),
                "sqs",
                "2012-11-05",
                "ReceiveMessage",
                &[("QueueUrl", &url)],
            )
            .await
        }
    };
    receive(created.resources["Jobs"].reference.clone())
        .await
        .expect("its own queue");
    let other = created.resources["Other"].reference.clone();
    let err = receive(other.clone()).await.unwrap_err();
    let Error::Aws { code, message, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(code, "AccessDenied", "{err}");
    let denial = Denial::from_body(&format!("<Message>{message}</Message>"))
        .unwrap()
        .with_request(&json!({"QueueUrl": other}));
    assert_eq!(denial.action, "sqs:ReceiveMessage");
    assert_eq!(denial.role(), Some("app-WorkerRole"));
    assert_eq!(
        denial.resource.as_deref(),
        Some(
            format!(
                "arn:aws:sqs:us-east-1:123456789012:{}",
                other.rsplit('/').next().unwrap()
            )
            .as_str()
        )
    );
}

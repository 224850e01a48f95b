//! A template with a type moto cannot create fails before anything is
//! created, naming the type and the logical id.

mod common;

use std::collections::BTreeMap;

use cfn_template::Template;
use local_resources::{Error, LocalValues, moto_template};

#[tokio::test]
async fn unsupported_type_fails_before_anything_is_created_naming_type_and_id() {
    let template = Template::from_yaml_str(
        r#"
Resources:
  Jobs: {Type: AWS::SQS::Queue}
  ApiKey: {Type: AWS::SecretsManager::Secret, Properties: {Name: api-key}}
"#,
    )
    .unwrap();
    let moto = common::moto().await;
    let err = moto_template(&template, &BTreeMap::new(), &LocalValues::new()).unwrap_err();
    let Error::Unsupported {
        resources,
        moto: version,
    } = &err
    else {
        panic!("expected Unsupported, got {err}");
    };
    assert_eq!(*version, "5.2.5");
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].logical_id, "ApiKey");
    assert_eq!(resources[0].resource_type, "AWS::SecretsManager::Secret");
    let message = err.to_string();
    assert!(
        message.contains("AWS::SecretsManager::Secret (ApiKey)")
            && message.contains("nothing was created"),
        "{message}"
    );
    // Nothing reached moto: no stack, no queue.
    let stacks = moto
        .query(None, "cloudformation", "2010-05-15", "ListStacks", &[])
        .await
        .unwrap();
    assert!(!stacks.contains("<StackName>"), "{stacks}");
    let queues = moto
        .query(None, "sqs", "2012-11-05", "ListQueues", &[])
        .await
        .unwrap();
    assert!(!queues.contains("<QueueUrl>"), "{queues}");
}

//! SAM policy templates expand exactly as the installed samtranslator
//! expands them, from an embedded copy that matches the installed one.

mod common;

use local_resources::iam::{SAMTRANSLATOR_VERSION, expand_policy_template};
use serde_json::{Value, json};

fn samtranslator(name: &str, params: &Value) -> Value {
    let out = common::python(&format!(
        "import json\n\
         from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor as P\n\
         p = P(P.get_default_policy_templates_json())\n\
         print(json.dumps(p.convert({name:?}, json.loads({params:?}))))\n",
        params = params.to_string()
    ));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn dynamodb_crud_and_sqs_poller_expand_as_samtranslator_does() {
    for (name, params) in [
        ("DynamoDBCrudPolicy", json!({"TableName": {"Ref": "Table"}})),
        ("DynamoDBCrudPolicy", json!({"TableName": "items"})),
        (
            "SQSPollerPolicy",
            json!({"QueueName": {"Fn::GetAtt": ["Jobs", "QueueName"]}}),
        ),
        ("SQSSendMessagePolicy", json!({"QueueName": "jobs"})),
        ("S3ReadPolicy", json!({"BucketName": {"Ref": "Bucket"}})),
    ] {
        assert_eq!(
            expand_policy_template(name, &params).unwrap(),
            samtranslator(name, &params),
            "{name} {params}"
        );
    }
}

#[test]
fn embedded_templates_match_the_installed_samtranslator() {
    let installed = common::python(
        "import json, samtranslator\n\
         from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor as P\n\
         print(samtranslator.__version__)\n\
         print(json.dumps(P.get_default_policy_templates_json()))\n",
    );
    let (version, json) = installed.split_once('\n').unwrap();
    assert_eq!(
        version, SAMTRANSLATOR_VERSION,
        "the SAM CLI pin changed samtranslator: copy its policy_templates.json to crates/local-resources/data/ and update SAMTRANSLATOR_VERSION"
    );
    let installed: Value = serde_json::from_str(json).unwrap();
    let embedded: Value =
        serde_json::from_str(include_str!("../data/policy_templates.json")).unwrap();
    assert_eq!(
        installed, embedded,
        "data/policy_templates.json differs from samtranslator's"
    );
}

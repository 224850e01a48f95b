//! A template of only functions and APIs (and what the rehearsal emulates
//! itself: alarms, log groups, roles) needs no moto.

mod common;

use std::collections::BTreeMap;

use cfn_template::Template;
use local_resources::{LocalValues, moto_template, needs_moto};

#[test]
fn time_service_and_test_stacks_need_no_moto() {
    for file in ["app-sam.yaml", "test-sam.yaml"] {
        let template = Template::from_path(common::repo_root().join(file)).unwrap();
        assert!(!needs_moto(&template), "{file} should not start moto");
        let sub = moto_template(&template, &BTreeMap::new(), &LocalValues::new()).unwrap();
        assert!(sub.is_empty(), "{file}: {:?}", sub.resources);
    }
    let only_functions = Template::from_yaml_str(
        r#"
Resources:
  Fn: {Type: AWS::Serverless::Function}
  Api: {Type: AWS::Serverless::Api}
  Http: {Type: AWS::Serverless::HttpApi}
"#,
    )
    .unwrap();
    assert!(!needs_moto(&only_functions));
}

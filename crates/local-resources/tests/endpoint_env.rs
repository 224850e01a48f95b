//! The endpoint variables of a function process: moto's services to moto,
//! the rehearsal's own services to the rehearsal.

use std::collections::BTreeMap;

use local_resources::endpoints::{REHEARSAL_SERVICES, endpoint_env};

#[test]
fn endpoint_variables_route_moto_services_to_moto_and_the_rest_to_the_rehearsal() {
    let moto = "http://127.0.0.1:5001";
    let rehearsal = "http://127.0.0.1:9000";
    let env: BTreeMap<String, String> = endpoint_env(Some(moto), rehearsal, &REHEARSAL_SERVICES)
        .into_iter()
        .collect();
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
        "AWS_ENDPOINT_URL_STS",
    ] {
        assert_eq!(env.get(name).map(String::as_str), Some(moto), "{name}");
    }
    for name in [
        "AWS_ENDPOINT_URL_CLOUDFORMATION",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_ENDPOINT_URL_CODEPIPELINE",
    ] {
        assert_eq!(env.get(name).map(String::as_str), Some(rehearsal), "{name}");
    }

    // A stack without moto: everything to the rehearsal, as before.
    let env: BTreeMap<String, String> = endpoint_env(None, rehearsal, &REHEARSAL_SERVICES)
        .into_iter()
        .collect();
    assert_eq!(env.len(), 4);
    assert!(env.values().all(|v| v == rehearsal));
    assert!(!env.contains_key("AWS_ENDPOINT_URL_DYNAMODB"));
}

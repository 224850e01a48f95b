//! Where a function process's AWS SDK sends its calls.
//!
//! AWS SDKs and Tools Reference Guide, "Service-specific endpoints"
//! (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html):
//! `AWS_ENDPOINT_URL` sets the endpoint of every service and is overridden,
//! per service, by `AWS_ENDPOINT_URL_<SERVICE>`, where `<SERVICE>` is the
//! service's `serviceId` upper-cased with spaces replaced by underscores;
//! the names are listed in "Identifiers for service-specific endpoints"
//! (https://docs.aws.amazon.com/sdkref/latest/guide/ss-endpoints-table.html):
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`,
//! ... The `serviceId`s below are the ones in botocore's service models
//! (`metadata.serviceId`), which the table is generated from.

/// The services moto emulates that a function is likely to call, by
/// `serviceId` (the SDK's own name for each).
pub const MOTO_SERVICES: [&str; 15] = [
    "DynamoDB",
    "DynamoDB Streams",
    "SQS",
    "S3",
    "SNS",
    "Kinesis",
    "EventBridge",
    "Secrets Manager",
    "SSM",
    "STS",
    "IAM",
    "KMS",
    "SFN",
    "CloudWatch Logs",
    "CloudWatch",
];

/// The services the rehearsal's own endpoint answers (its local
/// CloudFormation `DescribeStacks`, Lambda `Invoke`, CodePipeline job
/// results), by `serviceId`.
pub const REHEARSAL_SERVICES: [&str; 3] = ["CloudFormation", "Lambda", "CodePipeline"];

/// The service-specific variable of a `serviceId`:
/// `Secrets Manager` -> `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
pub fn env_var(service_id: &str) -> String {
    format!(
        "AWS_ENDPOINT_URL_{}",
        service_id.replace(' ', "_").to_ascii_uppercase()
    )
}

/// The endpoint variables of a function process: the `rehearsal_services`
/// to the rehearsal's endpoint, and, when the stack has moto, every other
/// service to moto (`AWS_ENDPOINT_URL`, so services not listed reach moto
/// too, plus the [`MOTO_SERVICES`] named explicitly). Without moto,
/// `AWS_ENDPOINT_URL` is the rehearsal's endpoint, as before moto.
pub fn endpoint_env(
    moto_url: Option<&str>,
    rehearsal_url: &str,
    rehearsal_services: &[&str],
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    match moto_url {
        Some(moto) => {
            env.push(("AWS_ENDPOINT_URL".to_string(), moto.to_string()));
            for s in MOTO_SERVICES {
                if !rehearsal_services.contains(&s) {
                    env.push((env_var(s), moto.to_string()));
                }
            }
        }
        None => env.push(("AWS_ENDPOINT_URL".to_string(), rehearsal_url.to_string())),
    }
    for s in rehearsal_services {
        env.push((env_var(s), rehearsal_url.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_service_ids() {
        assert_eq!(env_var("DynamoDB"), "AWS_ENDPOINT_URL_DYNAMODB");
        assert_eq!(
            env_var("Secrets Manager"),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER"
        );
        assert_eq!(
            env_var("CloudWatch Logs"),
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"
        );
        assert_eq!(
            env_var("DynamoDB Streams"),
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS"
        );
    }
}

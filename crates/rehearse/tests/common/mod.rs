//! A fake Lambda function for the tests: the test binary itself, started
//! with `REHEARSE_FAKE_FUNCTION=<behaviour>`, runs its ignored
//! `fake_function_main` entry point, which calls [`fake_function_main`]
//! here: a real `lambda_runtime` handler, so the local servers are exercised
//! by the same client library the real functions use.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use rehearse::runtime::FunctionConfig;
use serde_json::{Value, json};

/// The arguments that make the test binary run only the fake entry point.
pub const FAKE_ARGS: [&str; 5] = [
    "fake_function_main",
    "--exact",
    "--ignored",
    "--nocapture",
    "--test-threads=1",
];

/// Runs the fake function if this process was started as one.
pub fn fake_function_main() {
    let Ok(behaviour) = std::env::var("REHEARSE_FAKE_FUNCTION") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        if behaviour == "init_error" {
            let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap();
            let _ = reqwest::Client::new()
                .post(format!("http://{api}/2018-06-01/runtime/init/error"))
                .header("lambda-runtime-function-error-type", "Runtime.ConfigError")
                .body(r#"{"errorType":"Runtime.ConfigError","errorMessage":"missing STAGE"}"#)
                .send()
                .await;
            std::process::exit(1);
        }
        let behaviour = Arc::new(behaviour);
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            let behaviour = behaviour.clone();
            async move { handle(&behaviour, event).await }
        }))
        .await
        .unwrap();
    });
}

async fn sdk_config() -> aws_config::SdkConfig {
    // Everything comes from the environment the rehearsal gives a function
    // (AWS_ENDPOINT_URL, AWS_REGION, the fake credentials).
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

async fn handle(
    behaviour: &str,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    match behaviour {
        "echo" => Ok(json!({
            "event": payload,
            "requestId": context.request_id,
            "functionArn": context.invoked_function_arn,
            "deadlineMs": context.deadline,
            "pid": std::process::id(),
            "env": {
                "AWS_LAMBDA_FUNCTION_NAME": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
                "STAGE": std::env::var("STAGE").ok(),
                "HOME": std::env::var("HOME").ok(),
            }
        })),
        "http" => Ok(json!({
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-function": "fake"},
            "cookies": ["a=1"],
            "body": payload.to_string(),
            "isBase64Encoded": false
        })),
        "error" => Err("the handler refused the event".into()),
        // Returns without reporting the CodePipeline job.
        "never" => Ok(json!({"reported": false})),
        "crash" => std::process::exit(3),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Value::Null)
        }
        "report" => {
            // Reports the job twice: the second must be refused as on AWS.
            let client = aws_sdk_codepipeline::Client::new(&sdk_config().await);
            let job_id = payload["CodePipeline.job"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            client
                .put_job_success_result()
                .job_id(&job_id)
                .execution_details(
                    aws_sdk_codepipeline::types::ExecutionDetails::builder()
                        .summary("3 checks passed")
                        .build(),
                )
                .send()
                .await?;
            let second = client.put_job_success_result().job_id(&job_id).send().await;
            let code = second
                .err()
                .and_then(|e| e.into_service_error().meta().code().map(str::to_string));
            Ok(json!({"second": code}))
        }
        "review" => {
            // review-changes in small: describes the change set named in
            // UserParameters and publishes PermissionChanges ("true" when a
            // change touches an AWS::IAM:: resource) as an output variable.
            let config =
                &payload["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"];
            let user: Value =
                serde_json::from_str(config["UserParameters"].as_str().unwrap_or("{}"))?;
            let sdk = sdk_config().await;
            let described = aws_sdk_cloudformation::Client::new(&sdk)
                .describe_change_set()
                .stack_name(user["stackName"].as_str().unwrap_or_default())
                .change_set_name(user["changeSetName"].as_str().unwrap_or_default())
                .send()
                .await?;
            let iam = described.changes().iter().any(|c| {
                c.resource_change()
                    .and_then(|r| r.resource_type())
                    .is_some_and(|t| t.starts_with("AWS::IAM::"))
            });
            let job_id = payload["CodePipeline.job"]["id"]
                .as_str()
                .unwrap_or_default();
            aws_sdk_codepipeline::Client::new(&sdk)
                .put_job_success_result()
                .job_id(job_id)
                .output_variables("PermissionChanges", iam.to_string())
                .output_variables("Changes", described.changes().len().to_string())
                .send()
                .await?;
            Ok(json!({"reported": true}))
        }
        "report_failure" => {
            let client = aws_sdk_codepipeline::Client::new(&sdk_config().await);
            let job_id = payload["CodePipeline.job"]["id"]
                .as_str()
                .unwrap_or_default();
            client
                .put_job_failure_result()
                .job_id(job_id)
                .failure_details(
                    aws_sdk_codepipeline::types::FailureDetails::builder()
                        .r#type(aws_sdk_codepipeline::types::FailureType::ConfigurationError)
                        .message("UserParameters: missing field appStack")
                        .build()?,
                )
                .send()
                .await?;
            Ok(json!({"reported": true}))
        }
        "describe" => {
            let client = aws_sdk_cloudformation::Client::new(&sdk_config().await);
            let name = payload["stack"].as_str().unwrap_or_default();
            match client.describe_stacks().stack_name(name).send().await {
                Ok(out) => {
                    let outputs: BTreeMap<String, String> = out.stacks()[0]
                        .outputs()
                        .iter()
                        .map(|o| {
                            (
                                o.output_key().unwrap_or_default().into(),
                                o.output_value().unwrap_or_default().into(),
                            )
                        })
                        .collect();
                    Ok(json!({"outputs": outputs}))
                }
                Err(e) => {
                    let e = e.into_service_error();
                    Ok(json!({"code": e.meta().code(), "message": e.meta().message()}))
                }
            }
        }
        "invoke" => {
            let client = aws_sdk_lambda::Client::new(&sdk_config().await);
            let kind = if payload["async"] == true {
                aws_sdk_lambda::types::InvocationType::Event
            } else {
                aws_sdk_lambda::types::InvocationType::RequestResponse
            };
            let out = client
                .invoke()
                .function_name(payload["function"].as_str().unwrap_or_default())
                .invocation_type(kind)
                .payload(aws_sdk_lambda::primitives::Blob::new(
                    payload["payload"].to_string(),
                ))
                .send()
                .await;
            match out {
                Ok(out) => Ok(json!({
                    "status": out.status_code(),
                    "functionError": out.function_error(),
                    "payload": out.payload().map(|p| String::from_utf8_lossy(p.as_ref()).into_owned()),
                })),
                Err(e) => Ok(json!({"code": e.into_service_error().meta().code()})),
            }
        }
        // Reports the AWS environment the rehearsal gave it and, with
        // {"put": item} in the event, reads and writes its table (TABLE)
        // with its own credentials, as its SDK would: status and body of
        // each call. moto's error body goes to the log, as an SDK's error.
        "aws_self" => {
            if let Some(records) = payload.get("Records") {
                // An SQS batch: logged; a message "fail" fails it.
                eprintln!("records: {records}");
                if records
                    .as_array()
                    .is_some_and(|r| r.iter().any(|m| m["body"] == "fail"))
                {
                    return Err("a message of the batch failed".into());
                }
                // A message "partial" is reported as the batch's failure.
                let partial: Vec<Value> = records
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["body"] == "partial")
                    .map(|m| json!({"itemIdentifier": m["messageId"]}))
                    .collect();
                if !partial.is_empty() {
                    return Ok(json!({"batchItemFailures": partial}));
                }
            }
            let var = |k: &str| std::env::var(k).ok();
            let mut calls = serde_json::Map::new();
            if let (Some(item), Some(table), Some(endpoint)) = (
                payload.get("put"),
                var("TABLE"),
                var("AWS_ENDPOINT_URL_DYNAMODB"),
            ) {
                let creds = local_resources::Credentials {
                    access_key_id: var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
                    secret_access_key: var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
                    session_token: var("AWS_SESSION_TOKEN"),
                };
                for (action, body) in [
                    (
                        "GetItem",
                        json!({"TableName": table, "Key": {"id": {"S": "1"}}}),
                    ),
                    ("PutItem", json!({"TableName": table, "Item": item})),
                ] {
                    let (status, answer) = local_resources::signed_json(
                        &endpoint,
                        &creds,
                        "dynamodb",
                        "DynamoDB_20120810",
                        action,
                        &body,
                    )
                    .await?;
                    if status >= 400 {
                        eprintln!("ERROR {action} failed: service error: {answer}");
                    }
                    calls.insert(action.into(), json!({"status": status, "body": answer}));
                }
            }
            let env: BTreeMap<String, String> = std::env::vars()
                .filter(|(k, _)| {
                    k.starts_with("AWS_")
                        || ["TABLE", "QUEUE_URL", "QUEUE_ARN"].contains(&k.as_str())
                })
                .collect();
            Ok(json!({"env": env, "calls": calls}))
        }
        other => Err(format!("unknown fake behaviour {other}").into()),
    }
}

/// A function that runs this test binary with `behaviour`.
pub fn fake(
    name: &str,
    behaviour: &str,
    timeout: Duration,
    extra_env: &[(&str, &str)],
) -> FunctionConfig {
    let mut environment: BTreeMap<String, String> = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    environment.insert("REHEARSE_FAKE_FUNCTION".into(), behaviour.into());
    FunctionConfig {
        name: name.into(),
        command: std::env::current_exe().unwrap(),
        args: [
            "fake_function_main",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(String::from)
        .to_vec(),
        task_root: std::env::temp_dir(),
        handler: "bootstrap".into(),
        memory_mb: 256,
        timeout,
        environment,
        // The test harness of the fake prints to stdout: keep it out of ours.
        log_file: Some(std::env::temp_dir().join(format!("rehearse-fake-{name}.log"))),
        async_retries: 0,
    }
}

/// Runs git in `dir`; panics with its output when it fails.
pub fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository with `pipeline` as pipeline.yaml and `app` as app.yaml,
/// whose scripts/build.sh "builds" the fake function (this test binary)
/// into the build output, and packages both templates.
pub fn fake_repository(pipeline: &str, app: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::write(root.join("pipeline.yaml"), pipeline).unwrap();
    std::fs::write(root.join("app.yaml"), app).unwrap();
    let exe = std::env::current_exe().unwrap();
    let bootstrap = format!(
        "#!/bin/sh\nexec '{}' {}\n",
        exe.display(),
        FAKE_ARGS.join(" ")
    );
    let build = format!(
        "#!/bin/sh\nset -e\n[ \"$1 $2 $3\" = \"--arch {} --out\" ]\nOUT=$4\nmkdir -p \"$OUT/fn\"\ncat > \"$OUT/fn/bootstrap\" <<'EOF'\n{bootstrap}EOF\nchmod +x \"$OUT/fn/bootstrap\"\ncp pipeline.yaml \"$OUT/packaged-pipeline.yaml\"\ncp app.yaml \"$OUT/packaged-app.yaml\"\n",
        rehearse::executor::host_arch()
    );
    std::fs::write(root.join("scripts/build.sh"), build).unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.email", "test@example.com"]);
    git(root, &["config", "user.name", "test"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "pipeline under test"]);
    dir
}

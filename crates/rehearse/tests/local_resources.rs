//! A stack's other resources in moto, and its functions calling AWS as
//! themselves (issue 12): stacks deployed by the `Deployer` with the fake
//! function (this test binary, see `common`) and the pinned moto_server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rehearse::endpoint::Endpoint;
use rehearse::moto::Moto;
use rehearse::stack::{DeployError, Deployer};
use rehearse::world::World;
use serde_json::{Value, json};

mod common;

/// Entry point of the fake function processes (see `common`).
#[test]
#[ignore = "entry point of the fake function process, started by the other tests"]
fn fake_function_main() {
    common::fake_function_main();
}

fn moto_server() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools")
        .join(rehearse::moto::MOTO_SERVER);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-tools.sh",
        path.display()
    );
    path
}

/// A deployer with its endpoint and moto (not started), and a directory
/// holding the fake function's `fn/bootstrap`.
struct Local {
    world: Arc<World>,
    _endpoint: Endpoint,
    deployer: Deployer,
    dir: tempfile::TempDir,
}

async fn local() -> Local {
    let world = World::new();
    let endpoint = Endpoint::start(world.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deployer = Deployer::new(world.clone(), endpoint.url(), dir.path().join("logs"))
        .with_moto(Moto::new(Some(moto_server())));
    std::fs::create_dir_all(dir.path().join("fn")).unwrap();
    let bootstrap = dir.path().join("fn/bootstrap");
    std::fs::write(
        &bootstrap,
        format!(
            "#!/bin/sh\nexec '{}' {}\n",
            std::env::current_exe().unwrap().display(),
            common::FAKE_ARGS.join(" ")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    Local {
        world,
        _endpoint: endpoint,
        deployer,
        dir,
    }
}

impl Local {
    fn template(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path
    }

    async fn invoke(&self, function: &str, payload: Value) -> Value {
        let host = self.world.function(function).expect("function deployed");
        let answer = host.invoke(Bytes::from(payload.to_string())).await.unwrap();
        serde_json::from_slice(&answer).unwrap()
    }

    fn log(&self, stack: &str, function: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("logs/{stack}/{function}.log")))
            .unwrap_or_default()
    }
}

/// The queue's name: the last part of its URL (moto's CloudFormation gives
/// `https://sqs.us-east-1.amazonaws.com/...` URLs, its ListQueues the
/// server's own host; the SDK sends either to the endpoint it is given).
fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// Waits up to 10 s for `done`.
async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not done within 10 s");
}

/// (visible, in flight) messages of a queue.
async fn queue_counts(moto: &local_resources::MotoServer, url: &str) -> (u32, u32) {
    let xml = moto
        .query(
            None,
            "sqs",
            "2012-11-05",
            "GetQueueAttributes",
            &[("QueueUrl", url), ("AttributeName.1", "All")],
        )
        .await
        .unwrap();
    let value = |name: &str| -> u32 {
        let at = xml.find(&format!("<Name>{name}</Name>")).unwrap();
        let rest = &xml[at..];
        let start = rest.find("<Value>").unwrap() + 7;
        let end = rest.find("</Value>").unwrap();
        rest[start..end].parse().unwrap()
    };
    (
        value("ApproximateNumberOfMessages"),
        value("ApproximateNumberOfMessagesNotVisible"),
    )
}

const APP: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: beta}
Resources:
  Table:
    Type: AWS::Serverless::SimpleTable
  Queue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 30}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "worker-${Stage}"
      CodeUri: fn
      Handler: bootstrap
      Runtime: provided.al2023
      Timeout: 10
      Environment:
        Variables:
          REHEARSE_FAKE_FUNCTION: aws_self
          TABLE: !Ref Table
          QUEUE_URL: !Ref Queue
          QUEUE_ARN: !GetAtt Queue.Arn
      Policies:
        - DynamoDBReadPolicy: {TableName: !Ref Table}
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
        Nightly:
          Type: Schedule
          Properties: {Schedule: rate(1 day)}
  Writer:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "writer-${Stage}"
      CodeUri: fn
      Timeout: 10
      Role: !GetAtt WriterRole.Arn
      Environment:
        Variables: {REHEARSE_FAKE_FUNCTION: aws_self, TABLE: !Ref Table}
  WriterRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
      Policies:
        - PolicyName: write
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [dynamodb:GetItem, dynamodb:PutItem]
                Resource: !GetAtt Table.Arn
Outputs:
  TableName: {Value: !Ref Table}
  QueueUrl: {Value: !Ref Queue}
"#;

#[tokio::test]
async fn tables_and_queues_are_created_in_moto_and_functions_call_it_as_themselves() {
    let local = local().await;
    let path = local.template("app.yaml", APP);
    let update = local
        .deployer
        .prepare("app-beta", &path, &Default::default())
        .await
        .unwrap();
    let notes = update.notes.join("\n");
    assert!(
        notes.contains("Worker: event Nightly (Schedule) is not emulated"),
        "{notes}"
    );
    assert!(
        notes.contains(
            "Worker: event Jobs (SQS): the queue's messages are delivered in batches of at most 5, ReportBatchItemFailures honoured"
        ),
        "{notes}"
    );
    assert!(notes.contains("moto started"), "{notes}");
    let deployed = local.deployer.commit(update).await;
    let moto = local.deployer.moto().running().expect("moto started");

    // The outputs carry moto's real names, and moto has the resources.
    let table = deployed.outputs["TableName"].clone();
    let queue_url = deployed.outputs["QueueUrl"].clone();
    assert!(table.starts_with("app-beta-Table"), "{table}");
    assert!(queue_url.starts_with("http"), "{queue_url}");
    let described = moto
        .json(
            None,
            "dynamodb",
            "DynamoDB_20120810",
            "DescribeTable",
            &json!({"TableName": table}),
        )
        .await
        .unwrap();
    assert_eq!(described["Table"]["TableStatus"], "ACTIVE");
    let queues = moto
        .query(None, "sqs", "2012-11-05", "ListQueues", &[])
        .await
        .unwrap();
    assert!(
        queues.contains(queue_name(&queue_url)),
        "{queue_url} in {queues}"
    );

    // The function's environment: moto's names, endpoints, its own role.
    let answer = local
        .invoke("worker-beta", json!({"put": {"id": {"S": "1"}}}))
        .await;
    let env = &answer["env"];
    assert_eq!(env["TABLE"], table.as_str());
    assert_eq!(env["QUEUE_URL"], queue_url.as_str());
    assert!(
        env["QUEUE_ARN"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sqs:")
    );
    for service in ["", "_DYNAMODB", "_SQS", "_S3"] {
        assert_eq!(
            env[format!("AWS_ENDPOINT_URL{service}")],
            moto.url(),
            "{env}"
        );
    }
    for service in ["_LAMBDA", "_CLOUDFORMATION", "_CODEPIPELINE"] {
        assert_eq!(
            env[format!("AWS_ENDPOINT_URL{service}")],
            local._endpoint.url(),
            "{env}"
        );
    }
    assert!(
        env["AWS_ACCESS_KEY_ID"]
            .as_str()
            .unwrap()
            .starts_with("ASIA"),
        "assumed-role credentials: {env}"
    );
    assert!(env["AWS_SESSION_TOKEN"].is_string());

    // IAM enforced: DynamoDBReadPolicy allows GetItem, not PutItem.
    let calls = &answer["calls"];
    assert_eq!(calls["GetItem"]["status"], 200, "{calls}");
    assert_eq!(calls["PutItem"]["status"], 403, "{calls}");
    let denied = calls["PutItem"]["body"].as_str().unwrap();
    assert!(
        denied.contains("app-beta-WorkerRole") && denied.contains("dynamodb:PutItem"),
        "{denied}"
    );
    // The rehearsal names the denial in the function's log.
    let log = local.log("app-beta", "worker-beta");
    assert!(
        log.contains("[rehearsal] AccessDenied: role app-beta-WorkerRole may not dynamodb:PutItem"),
        "{log}"
    );

    // A function whose Role is the template's AWS::IAM::Role runs as it:
    // its policy allows PutItem.
    let writer = local
        .invoke("writer-beta", json!({"put": {"id": {"S": "1"}}}))
        .await;
    assert_eq!(writer["calls"]["PutItem"]["status"], 200, "{writer}");
    assert!(
        !local.log("app-beta", "writer-beta").contains("[rehearsal]"),
        "no denial"
    );

    // The queue's messages reach the worker; a failed batch stays queued.
    let send = |body: &'static str| {
        let url = queue_url.clone();
        async move {
            moto.query(
                None,
                "sqs",
                "2012-11-05",
                "SendMessage",
                &[("QueueUrl", url.as_str()), ("MessageBody", body)],
            )
            .await
            .unwrap();
        }
    };
    send("hello").await;
    wait_for(|| {
        local
            .log("app-beta", "worker-beta")
            .contains(r#""body":"hello""#)
    })
    .await;
    assert!(
        local
            .log("app-beta", "worker-beta")
            .contains(r#""eventSource":"aws:sqs""#)
    );
    let mut counts = (1, 1);
    for _ in 0..50 {
        counts = queue_counts(moto, &queue_url).await;
        if counts == (0, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(counts, (0, 0), "the processed message was deleted");
    // A batch item failure it reports stays too, the rest is deleted.
    send("partial").await;
    wait_for(|| {
        local
            .log("app-beta", "worker-beta")
            .contains(r#""body":"partial""#)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(queue_counts(moto, &queue_url).await, (0, 1));
    send("fail").await;
    wait_for(|| {
        local
            .log("app-beta", "worker-beta")
            .contains(r#""body":"fail""#)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        queue_counts(moto, &queue_url).await,
        (0, 2),
        "the failed message is in flight until its visibility timeout, not deleted"
    );

    // A redeploy with the same resources keeps them (and their data).
    let again = local
        .deployer
        .deploy("app-beta", &path, &Default::default())
        .await
        .unwrap();
    assert_eq!(again.outputs["QueueUrl"], queue_url);
    let item = moto
        .json(
            None,
            "dynamodb",
            "DynamoDB_20120810",
            "GetItem",
            &json!({"TableName": table, "Key": {"id": {"S": "1"}}}),
        )
        .await
        .unwrap();
    assert_eq!(item["Item"]["id"]["S"], "1", "the writer's item is kept");
    // A changed resource replaces moto's stack: new names, old ones gone.
    let changed = local.template(
        "app2.yaml",
        &APP.replace("VisibilityTimeout: 30", "VisibilityTimeout: 60"),
    );
    let update = local
        .deployer
        .prepare("app-beta", &changed, &Default::default())
        .await
        .unwrap();
    assert!(
        update.notes.join("\n").contains("data is not kept"),
        "{:?}",
        update.notes
    );
    let replaced = local.deployer.commit(update).await;
    assert_ne!(replaced.outputs["QueueUrl"], queue_url);
    let queues = moto
        .query(None, "sqs", "2012-11-05", "ListQueues", &[])
        .await
        .unwrap();
    assert!(!queues.contains(queue_name(&queue_url)), "{queues}");
    assert!(
        queues.contains(queue_name(&replaced.outputs["QueueUrl"])),
        "{queues}"
    );

    local.deployer.delete("app-beta").await.unwrap();
    let queues = moto
        .query(None, "sqs", "2012-11-05", "ListQueues", &[])
        .await
        .unwrap();
    assert!(!queues.contains("app-beta"), "{queues}");
    local.deployer.shutdown().await;
}

#[tokio::test]
async fn a_type_moto_cannot_create_fails_the_deploy_before_anything_starts() {
    let local = local().await;
    let path = local.template(
        "app.yaml",
        &APP.replace(
            "  Queue:\n",
            "  Secret:\n    Type: AWS::SecretsManager::Secret\n  Seed:\n    Type: Custom::Seed\n  Queue:\n",
        ),
    );
    let error = local
        .deployer
        .deploy("app-beta", &path, &Default::default())
        .await
        .unwrap_err();
    let DeployError::Unsupported { source, .. } = &error else {
        panic!("{error:?}")
    };
    let local_resources::Error::Unsupported { resources, .. } = source else {
        panic!("{source:?}")
    };
    let named: Vec<(&str, &str)> = resources
        .iter()
        .map(|r| (r.logical_id.as_str(), r.resource_type.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("Secret", "AWS::SecretsManager::Secret"),
            ("Seed", "Custom::Seed")
        ]
    );
    let message = error.to_string();
    assert!(
        message.contains("stack app-beta")
            && message.contains("AWS::SecretsManager::Secret (Secret)")
            && message.contains("Custom::Seed (Seed)")
            && message.contains("nothing was created"),
        "{message}"
    );
    assert!(
        local.deployer.moto().running().is_none(),
        "moto not started"
    );
    assert!(local.world.function("worker-beta").is_none());
    assert!(
        !Path::new(&local.dir.path().join("logs/app-beta/worker-beta.log")).exists(),
        "no function process started"
    );
}

#[tokio::test]
async fn a_stack_of_functions_apis_roles_logs_and_alarms_starts_no_moto() {
    let local = local().await;
    let path = local.template(
        "time.yaml",
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Api: {Type: AWS::Serverless::HttpApi}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: time-fn
      CodeUri: fn
      Role: !GetAtt FnRole.Arn
      Environment: {Variables: {REHEARSE_FAKE_FUNCTION: aws_self}}
      Events:
        Any: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /time, Method: GET}}
  FnRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]}
  Logs: {Type: AWS::Logs::LogGroup, Properties: {LogGroupName: /aws/lambda/time-fn}}
  Errors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: AWS/Lambda
      MetricName: Errors
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
"#,
    );
    let update = local
        .deployer
        .prepare("time-beta", &path, &Default::default())
        .await
        .unwrap();
    assert!(update.notes.is_empty(), "{:?}", update.notes);
    local.deployer.commit(update).await;
    assert!(local.deployer.moto().running().is_none());
    let env = local.invoke("time-fn", json!({})).await["env"].clone();
    assert_eq!(env["AWS_ENDPOINT_URL"], local._endpoint.url());
    assert_eq!(env["AWS_ENDPOINT_URL_LAMBDA"], local._endpoint.url());
    assert!(env.get("AWS_ENDPOINT_URL_DYNAMODB").is_none(), "{env}");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "AKIAREHEARSALLOCAL00");
    local.deployer.shutdown().await;
}

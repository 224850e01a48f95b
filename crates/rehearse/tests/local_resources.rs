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
    // moto's services go through the rehearsal's AWS proxy in front of it.
    let proxy = local.deployer.moto().proxy().expect("proxy started");
    assert_eq!(proxy.upstream(), moto.url());
    for service in ["", "_DYNAMODB", "_SQS", "_S3"] {
        assert_eq!(
            env[format!("AWS_ENDPOINT_URL{service}")],
            proxy.url(),
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
    assert_eq!(calls["PutItem"]["status"], 400, "{calls}");
    let denied = calls["PutItem"]["body"].as_str().unwrap();
    assert!(
        denied.contains("app-beta-WorkerRole") && denied.contains("dynamodb:PutItem"),
        "{denied}"
    );
    // The rehearsal's proxy names the denial in the function's log, once,
    // with the table's ARN.
    let log = local.log("app-beta", "worker-beta");
    let expected = format!(
        "[rehearsal] AccessDenied: role app-beta-WorkerRole may not dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/{table}; add the permission to the function's Policies"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with("[rehearsal]"))
            .collect::<Vec<_>>(),
        [expected.as_str()],
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
    assert!(
        !local.deployer.warm_up_moto(std::slice::from_ref(&path)),
        "no warm-up for a stack that does not need moto"
    );
    assert!(local.deployer.moto().running().is_none());
    let env = local.invoke("time-fn", json!({})).await["env"].clone();
    assert_eq!(env["AWS_ENDPOINT_URL"], local._endpoint.url());
    assert_eq!(env["AWS_ENDPOINT_URL_LAMBDA"], local._endpoint.url());
    assert!(env.get("AWS_ENDPOINT_URL_DYNAMODB").is_none(), "{env}");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "AKIAREHEARSALLOCAL00");
    local.deployer.shutdown().await;
}

/// moto with IAM enforced, a table `items` and a queue `jobs`, a role that
/// may GetItem and SendMessage only, and the rehearsal's proxy in front.
struct Proxied {
    moto: local_resources::MotoServer,
    proxy: rehearse::aws_proxy::AwsProxy,
    role: local_resources::Credentials,
    queue_url: String,
    log: PathBuf,
    admin: local_resources::Credentials,
    _dir: tempfile::TempDir,
}

async fn proxied() -> Proxied {
    let moto = local_resources::MotoServer::start(&moto_server())
        .await
        .unwrap();
    moto.json(
        None,
        "dynamodb",
        "DynamoDB_20120810",
        "CreateTable",
        &json!({"TableName": "items", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}),
    )
    .await
    .unwrap();
    let created = moto
        .query(
            None,
            "sqs",
            "2012-11-05",
            "CreateQueue",
            &[("QueueName", "jobs")],
        )
        .await
        .unwrap();
    let queue_url = created
        .split("<QueueUrl>")
        .nth(1)
        .and_then(|r| r.split("</QueueUrl>").next())
        .unwrap()
        .to_string();
    moto.json(
        None,
        "dynamodb",
        "DynamoDB_20120810",
        "PutItem",
        &json!({"TableName": "items", "Item": {"id": {"S": "1"}}}),
    )
    .await
    .unwrap();
    let admin = moto.enforce_iam().await.unwrap();
    let role = moto
        .role_credentials(&local_resources::iam::RoleSpec {
            name: "proxy-FnRole".into(),
            inline_policies: vec![(
                "calls".into(),
                json!({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": ["dynamodb:GetItem", "sqs:SendMessage"], "Resource": "*"},
                    {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::photos/*"}]}),
            )],
            managed_policy_arns: vec![],
        })
        .await
        .unwrap();
    let proxy = rehearse::aws_proxy::AwsProxy::start(moto.url())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fn.log");
    proxy.register(
        &role.access_key_id,
        rehearse::aws_proxy::Caller {
            function: "fn".into(),
            role: "proxy-FnRole".into(),
            log_file: Some(log.clone()),
        },
    );
    Proxied {
        moto,
        proxy,
        role,
        queue_url,
        log,
        admin,
        _dir: dir,
    }
}

#[tokio::test]
async fn calls_through_the_proxy_keep_their_signature_and_denials_name_the_resource() {
    let p = proxied().await;
    let client = local_resources::SignedClient::new(p.proxy.url());
    let get = json!({"TableName": "items", "Key": {"id": {"S": "1"}}});
    // Allowed calls pass unchanged: moto checks the signature over the
    // Host the SDK signed (the proxy's), forwarded as it came.
    let (status, body) = client
        .json(&p.role, "dynamodb", "DynamoDB_20120810", "GetItem", &get)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["Item"]["id"]["S"],
        "1"
    );
    let send = json!({"QueueUrl": p.queue_url, "MessageBody": "hi"});
    let (status, body) = client
        .json(&p.role, "sqs", "AmazonSQS", "SendMessage", &send)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // A request whose signature does not match what moto receives is
    // still refused (the proxy does not sign anything itself).
    let mut wrong = p.role.clone();
    wrong.secret_access_key.push('x');
    let (status, body) = client
        .json(&wrong, "dynamodb", "DynamoDB_20120810", "GetItem", &get)
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    assert!(!p.log.exists(), "no denial logged for a bad signature");

    // Denied: DynamoDB's own answer (HTTP 400, AccessDeniedException,
    // naming the table) in place of moto's XML 403, and the function's log
    // gets exactly one line naming the action and the table's ARN.
    let put = json!({"TableName": "items", "Item": {"id": {"S": "2"}}});
    let (status, body) = client
        .json(&p.role, "dynamodb", "DynamoDB_20120810", "PutItem", &put)
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("com.amazonaws.dynamodb.v20120810#AccessDeniedException")
            && body.contains(
                "dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/items"
            ),
        "{body}"
    );
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert_eq!(
        log,
        "[rehearsal] AccessDenied: role proxy-FnRole may not dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/items; add the permission to the function's Policies\n"
    );
    // SQS (JSON protocol) gets SQS's own AccessDeniedException.
    let purge = json!({"QueueUrl": p.queue_url});
    let (status, body) = client
        .json(&p.role, "sqs", "AmazonSQS", "PurgeQueue", &purge)
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("com.amazonaws.sqs#AccessDeniedException"),
        "{body}"
    );
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.ends_with("may not sqs:PurgeQueue on arn:aws:sqs:us-east-1:123456789012:jobs; add the permission to the function's Policies\n"),
        "{log}"
    );
    drop(p.moto);
}

fn median_p90(mut v: Vec<std::time::Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

/// bench/local-resources.sh: what the proxy adds to a signed SDK call
/// (IAM enforced, role credentials, keep-alive clients, calls interleaved
/// direct and through the proxy), and moto's start as the rehearsal does
/// it, cold and warmed up during a build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: bench/local-resources.sh runs it"]
async fn bench_proxy_latency_and_moto_warm_up() {
    let calls: usize = std::env::var("REHEARSE_BENCH_CALLS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let p = proxied().await;
    let direct = local_resources::SignedClient::new(p.moto.url());
    let through = local_resources::SignedClient::new(p.proxy.url());
    let get = json!({"TableName": "items", "Key": {"id": {"S": "1"}}});
    let send = json!({"QueueUrl": p.queue_url, "MessageBody": "hi"});
    let mut times: [Vec<std::time::Duration>; 4] = Default::default();
    for i in 0..calls + 10 {
        for (k, (client, service, prefix, action, body)) in [
            (&direct, "dynamodb", "DynamoDB_20120810", "GetItem", &get),
            (&through, "dynamodb", "DynamoDB_20120810", "GetItem", &get),
            (&direct, "sqs", "AmazonSQS", "SendMessage", &send),
            (&through, "sqs", "AmazonSQS", "SendMessage", &send),
        ]
        .into_iter()
        .enumerate()
        {
            let t = std::time::Instant::now();
            let (status, answer) = client
                .json(&p.role, service, prefix, action, body)
                .await
                .unwrap();
            assert_eq!(status, 200, "{answer}");
            // The first calls open connections and warm moto up.
            if i >= 10 {
                times[k].push(t.elapsed());
            }
        }
    }
    let [get_direct, get_proxy, send_direct, send_proxy] = times.map(median_p90);
    println!(
        "signed DynamoDB GetItem, IAM enforced, role credentials ({calls} calls): direct to moto median {:.2} ms (p90 {:.2}), through the proxy median {:.2} ms (p90 {:.2}): added median {:.2} ms, p90 {:.2} ms",
        get_direct.0,
        get_direct.1,
        get_proxy.0,
        get_proxy.1,
        get_proxy.0 - get_direct.0,
        get_proxy.1 - get_direct.1
    );
    println!(
        "signed SQS SendMessage (JSON protocol), same: direct median {:.2} ms (p90 {:.2}), through the proxy median {:.2} ms (p90 {:.2}): added median {:.2} ms, p90 {:.2} ms",
        send_direct.0,
        send_direct.1,
        send_proxy.0,
        send_proxy.1,
        send_proxy.0 - send_direct.0,
        send_proxy.1 - send_direct.1
    );
    drop(p);

    // moto as the rehearsal starts it: spawn, first answer, CloudFormation
    // loaded, IAM enforced, proxy up.
    let cold = Arc::new(Moto::new(Some(moto_server())));
    let (_, report) = cold.server_reporting().await.unwrap();
    println!(
        "moto start as the rehearsal does it (spawn to IAM enforced, proxy up), cold at the first deploy: {:.2} s",
        report.took.as_secs_f64()
    );
    drop(cold);
    let build_secs: f64 = std::env::var("REHEARSE_BENCH_BUILD_SECS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5.0);
    let warm = Arc::new(Moto::new(Some(moto_server())));
    assert!(warm.warm_up());
    tokio::time::sleep(std::time::Duration::from_secs_f64(build_secs)).await;
    let (_, report) = warm.server_reporting().await.unwrap();
    println!(
        "with warm_up at the build's start and a {build_secs:.0} s build: started in {:.2} s, the first deploy waited {:.3} s (hidden: {:.2} s)",
        report.took.as_secs_f64(),
        report.waited.as_secs_f64(),
        (report.took.as_secs_f64() - report.waited.as_secs_f64()).max(0.0)
    );
}

#[tokio::test]
async fn a_role_that_cannot_poll_its_queue_fails_the_deploy_as_create_event_source_mapping_does() {
    let local = local().await;
    let path = local.template(
        "poll.yaml",
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: poll-worker
      CodeUri: fn
      Role: !GetAtt WorkerRole.Arn
      Environment: {Variables: {REHEARSE_FAKE_FUNCTION: aws_self}}
      Events:
        Jobs: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn}}
  WorkerRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]}
      Policies:
        - PolicyName: half
          PolicyDocument:
            Statement:
              - {Effect: Allow, Action: [sqs:ReceiveMessage, sqs:GetQueueAttributes], Resource: !GetAtt Queue.Arn}
"#,
    );
    let error = local
        .deployer
        .deploy("poll-beta", &path, &Default::default())
        .await
        .unwrap_err();
    let DeployError::EventSourcePermission { role, action, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (role.as_str(), action.as_str()),
        ("poll-beta-WorkerRole", "DeleteMessage")
    );
    let message = error.to_string();
    assert!(
        message.contains("event Jobs (SQS): the provided execution role does not have permissions to call DeleteMessage on SQS")
            && message.contains("role poll-beta-WorkerRole may not sqs:DeleteMessage on arn:aws:sqs:us-east-1:123456789012:"),
        "{message}"
    );
    assert!(local.world.function("poll-worker").is_none());
    // Nothing was received or deleted by the check.
    let moto = local.deployer.moto().running().unwrap();
    let queues = moto
        .query(None, "sqs", "2012-11-05", "ListQueues", &[])
        .await
        .unwrap();
    let url = queues
        .split("<QueueUrl>")
        .nth(1)
        .and_then(|r| r.split("</QueueUrl>").next())
        .unwrap()
        .to_string();
    moto.query(
        None,
        "sqs",
        "2012-11-05",
        "SendMessage",
        &[("QueueUrl", url.as_str()), ("MessageBody", "x")],
    )
    .await
    .unwrap();
    assert_eq!(queue_counts(moto, &url).await, (1, 0));
    local.deployer.shutdown().await;
}

#[tokio::test]
async fn template_policies_and_managed_policies_attach_to_execution_roles() {
    let local = local().await;
    let path = local.template(
        "policies.yaml",
        r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Table: {Type: AWS::Serverless::SimpleTable}
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: pol-reader
      CodeUri: fn
      Timeout: 10
      Environment: {Variables: {REHEARSE_FAKE_FUNCTION: aws_self, TABLE: !Ref Table}}
      Policies: [!Ref WriteItems]
  ReadItems:
    Type: AWS::IAM::Policy
    Properties:
      PolicyName: read-items
      Roles: [!Ref ReaderRole]
      PolicyDocument:
        Statement: [{Effect: Allow, Action: dynamodb:GetItem, Resource: !GetAtt Table.Arn}]
  WriteItems:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Statement: [{Effect: Allow, Action: dynamodb:PutItem, Resource: !GetAtt Table.Arn}]
  Other:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: pol-other
      CodeUri: fn
      Timeout: 10
      Role: !GetAtt OtherRole.Arn
      Environment: {Variables: {REHEARSE_FAKE_FUNCTION: aws_self, TABLE: !Ref Table}}
  OtherRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]}
      ManagedPolicyArns: [!Ref WriteItems]
"#,
    );
    local
        .deployer
        .deploy("pol-beta", &path, &Default::default())
        .await
        .unwrap();
    // The SAM role: the Policy names it by `!Ref ReaderRole`, its Policies
    // name the managed policy.
    let reader = local
        .invoke("pol-reader", json!({"put": {"id": {"S": "1"}}}))
        .await;
    assert_eq!(reader["calls"]["GetItem"]["status"], 200, "{reader}");
    assert_eq!(reader["calls"]["PutItem"]["status"], 200, "{reader}");
    // The template's role: ManagedPolicyArns names the managed policy; no
    // Policy gives it GetItem.
    let other = local
        .invoke("pol-other", json!({"put": {"id": {"S": "2"}}}))
        .await;
    assert_eq!(other["calls"]["PutItem"]["status"], 200, "{other}");
    assert_eq!(other["calls"]["GetItem"]["status"], 400, "{other}");
    let log = local.log("pol-beta", "pol-other");
    assert_eq!(
        log.lines().filter(|l| l.starts_with("[rehearsal]")).count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("[rehearsal] AccessDenied: role pol-beta-OtherRole may not dynamodb:GetItem on arn:aws:dynamodb:us-east-1:123456789012:table/"),
        "{log}"
    );
    local.deployer.shutdown().await;
}

#[tokio::test]
async fn moto_warmed_up_during_the_build_is_the_one_the_first_deploy_uses() {
    let local = local().await;
    let app = local.template("app.yaml", APP);
    let missing = local.dir.path().join("test-sam.yaml");
    assert!(local.deployer.warm_up_moto(&[app.clone(), missing]));
    assert!(
        !local.deployer.warm_up_moto(std::slice::from_ref(&app)),
        "idempotent: one start"
    );
    let update = local
        .deployer
        .prepare("app-beta", &app, &Default::default())
        .await
        .unwrap();
    let notes = update.notes.join("\n");
    assert!(
        notes.contains("moto started during the build in"),
        "{notes}"
    );
    local.deployer.commit(update).await;
    local.deployer.shutdown().await;
}

/// A real SDK (boto3, from the venv moto comes with: its own signer and
/// HTTP stack, `Expect: 100-continue` on S3 uploads) through the proxy:
/// its calls pass with their signatures, and a denied S3 read names the
/// bucket and key.
#[tokio::test]
async fn a_real_sdk_calls_moto_through_the_proxy() {
    let p = proxied().await;
    let python = moto_server().parent().unwrap().join("python");
    let script = r#"
import json, sys, boto3, botocore
moto, proxy, queue, ak, sk, st, admin_ak, admin_sk = sys.argv[1:9]
cfg = botocore.config.Config(retries={"max_attempts": 1})
def client(service, url, **creds):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", config=cfg, **creds)
boto3.client("s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id=admin_ak,
             aws_secret_access_key=admin_sk).create_bucket(Bucket="photos")
role = dict(aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=st)
out = {}
def call(name, f):
    try:
        f()
        out[name] = "ok"
    except botocore.exceptions.ClientError as e:
        out[name] = e.response["Error"].get("Code", "?")
call("GetItem", lambda: client("dynamodb", proxy, **role).get_item(TableName="items", Key={"id": {"S": "1"}}))
call("SendMessage", lambda: client("sqs", proxy, **role).send_message(QueueUrl=queue, MessageBody="x"))
call("PutObject", lambda: client("s3", proxy, **role).put_object(Bucket="photos", Key="a b.txt", Body=b"x" * 2048))
call("GetObject", lambda: client("s3", proxy, **role).get_object(Bucket="photos", Key="a b.txt"))
call("PutItem", lambda: client("dynamodb", proxy, **role).put_item(TableName="items", Item={"id": {"S": "9"}}))
print(json.dumps(out))
"#;
    let output = tokio::process::Command::new(&python)
        .args(["-c", script, p.moto.url(), p.proxy.url(), &p.queue_url])
        .args([
            &p.role.access_key_id,
            &p.role.secret_access_key,
            p.role.session_token.as_deref().unwrap(),
            &p.admin.access_key_id,
            &p.admin.secret_access_key,
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls: Value = serde_json::from_str(stdout.trim()).unwrap();
    // moto answers a denied DynamoDB call in the query protocol's XML,
    // which botocore's JSON parser cannot read (a bare 403); the proxy
    // answers DynamoDB's own AccessDeniedException instead, as AWS does.
    assert_eq!(
        calls,
        json!({"GetItem": "ok", "SendMessage": "ok", "PutObject": "ok",
               "GetObject": "AccessDenied", "PutItem": "AccessDeniedException"})
    );
    let log = std::fs::read_to_string(&p.log).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "[rehearsal] AccessDenied: role proxy-FnRole may not s3:GetObject on arn:aws:s3:::photos/a b.txt; add the permission to the function's Policies",
            "[rehearsal] AccessDenied: role proxy-FnRole may not dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/items; add the permission to the function's Policies",
        ]
    );
}

//! Prints moto's start-up time and the latency of calls through moto
//! (medians), for bench/local-resources.sh.
//!
//! usage: moto_bench <path to moto_server> [start-ups] [calls]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cfn_template::Template;
use local_resources::iam::RoleSpec;
use local_resources::{LocalValues, MotoServer, moto_template};
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let moto_path = PathBuf::from(
        args.next()
            .ok_or("usage: moto_bench <moto_server> [start-ups] [calls]")?,
    );
    let starts: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let calls: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);

    let mut startups = Vec::new();
    for _ in 0..starts {
        let m = MotoServer::start(&moto_path).await?;
        startups.push(m.startup_time());
    }
    println!(
        "moto start-up (spawn to first answer), median of {starts}: {}",
        ms(median(startups.clone()))
    );
    println!(
        "  all: {}",
        startups
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let moto = MotoServer::start(&moto_path).await?;
    let template = Template::from_yaml_str(
        "Resources:\n  Table: {Type: AWS::Serverless::SimpleTable, Properties: {TableName: items}}\n  Jobs: {Type: AWS::SQS::Queue}\n",
    )?;
    let sub = moto_template(&template, &BTreeMap::new(), &LocalValues::new())?;
    let warm = moto.warm_up().await?;
    println!(
        "first CloudFormation call (warm_up: moto imports its CloudFormation models): {}",
        ms(warm)
    );
    let t = Instant::now();
    let created = moto.create_stack("bench", &sub).await?;
    println!(
        "create_stack after warm_up (SimpleTable + queue through moto's CloudFormation): {}",
        ms(t.elapsed())
    );
    let queue = created.resources["Jobs"].reference.clone();

    let http = reqwest::Client::new();
    let mut base = Vec::new();
    for _ in 0..calls {
        let t = Instant::now();
        http.get(format!("{}/moto-api/", moto.url()))
            .send()
            .await?
            .bytes()
            .await?;
        base.push(t.elapsed());
    }
    let item = json!({"TableName": "items", "Item": {"id": {"S": "1"}, "v": {"S": "x"}}});
    let key = json!({"TableName": "items", "Key": {"id": {"S": "1"}}});
    let creds = local_resources::Credentials::unchecked();
    moto.json(None, "dynamodb", "DynamoDB_20120810", "PutItem", &item)
        .await?;
    let time_calls = |label: &'static str, creds: local_resources::Credentials| {
        let moto = &moto;
        let key = key.clone();
        let queue = queue.clone();
        async move {
            let mut get = Vec::new();
            let mut send = Vec::new();
            for _ in 0..calls {
                let t = Instant::now();
                moto.json(
                    Some(&creds),
                    "dynamodb",
                    "DynamoDB_20120810",
                    "GetItem",
                    &key,
                )
                .await?;
                get.push(t.elapsed());
                let t = Instant::now();
                moto.query(
                    Some(&creds),
                    "sqs",
                    "2012-11-05",
                    "SendMessage",
                    &[("QueueUrl", &queue), ("MessageBody", "hi")],
                )
                .await?;
                send.push(t.elapsed());
            }
            println!(
                "{label}: DynamoDB GetItem median {}, SQS SendMessage median {} ({calls} calls each, signed, loopback)",
                ms(median(get)),
                ms(median(send))
            );
            Ok::<(), local_resources::Error>(())
        }
    };
    println!(
        "loopback baseline (GET /moto-api/, unsigned), median of {calls}: {}",
        ms(median(base))
    );
    time_calls("IAM not enforced", creds).await?;

    let t = Instant::now();
    moto.enforce_iam().await?;
    println!(
        "enforce_iam (admin user, key, reset-auth; loads AWS managed policies): {}",
        ms(t.elapsed())
    );
    let t = Instant::now();
    let role = moto
        .role_credentials(&RoleSpec {
            name: "bench-Role".into(),
            inline_policies: vec![("all".into(), json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["dynamodb:GetItem", "sqs:SendMessage"], "Resource": "*"}]}))],
            managed_policy_arns: vec!["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole".into()],
        })
        .await?;
    println!(
        "role_credentials (role, policies, AssumeRole): {}",
        ms(t.elapsed())
    );
    time_calls("IAM enforced, role credentials", role).await?;
    Ok(())
}

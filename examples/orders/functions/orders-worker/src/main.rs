//! `orders-worker` on Lambda: reads its configuration, builds the DynamoDB
//! client and runs [`orders_worker::handle`] for every SQS batch.

use std::process::ExitCode;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use orders_worker::Worker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    orders_worker::telemetry::init();
    // A missing TABLE_NAME stops the function at init, with the reason in
    // its log; the batch stays on the queue.
    let table_name = match orders_worker::table_name_from_env() {
        Ok(name) => name,
        Err(error) => {
            tracing::error!(error = %error, "orders-worker cannot start");
            return ExitCode::FAILURE;
        }
    };
    let sdk = orders_worker::load_sdk_config().await;
    let worker = Worker::new(aws_sdk_dynamodb::Client::new(&sdk), table_name);
    let worker = &worker;
    let result = lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        orders_worker::handle(worker, event)
    }))
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

//! `orders-api` on Lambda: reads its configuration, builds the AWS clients
//! and hands the router to `lambda_http`. Everything else is in the library.

use std::process::ExitCode;

use orders_api::{AwsBackend, Config};

// One thread: Lambda sends one request at a time to an instance.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    orders_api::telemetry::init();
    // A missing TABLE_NAME or QUEUE_URL stops the function at init, with the
    // reason in its log, rather than failing every request.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(error = %error, "orders-api cannot start");
            return ExitCode::FAILURE;
        }
    };
    let sdk = orders_api::aws::load_sdk_config().await;
    let router = orders_api::app(AwsBackend::new(&sdk, config));
    match lambda_http::run(router).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

//! `orders-gate`: on Lambda (AWS_LAMBDA_RUNTIME_API set) the runtime wired
//! to [`orders_gate::lambda::handle`]; elsewhere the command line
//! ([`orders_gate::cli`]: `orders-gate --api-url URL --stage S`).

use std::process::ExitCode;

use clap::Parser;
use codepipeline_job::Reporter;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        codepipeline_job::init_tracing();
        let reporter = Reporter::from_conf(&codepipeline_job::load_sdk_config().await);
        let reporter = &reporter;
        // Boxed: keeps the runtime's future shallow enough for rustc's layout query.
        let result = lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
            Box::pin(orders_gate::lambda::handle(reporter, event))
        }))
        .await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = %error, "the Lambda runtime stopped");
                ExitCode::FAILURE
            }
        }
    } else {
        let args = orders_gate::cli::Args::parse();
        ExitCode::from(orders_gate::cli::run(&args, &mut std::io::stdout()).await)
    }
}

//! `orders-gate`: on Lambda (AWS_LAMBDA_RUNTIME_API set) the runtime wired
//! to [`orders_gate::lambda::handle`]; elsewhere the command line
//! ([`orders_gate::cli`]: `orders-gate --api-url URL --stage S`).

use std::process::ExitCode;

use clap::Parser;
use codepipeline_job::gate;

#[tokio::main]
async fn main() -> ExitCode {
    if gate::on_lambda() {
        gate::serve(orders_gate::lambda::handle).await
    } else {
        let args = orders_gate::cli::Args::parse();
        ExitCode::from(orders_gate::cli::run(&args, &mut std::io::stdout()).await)
    }
}

//! `run-tests`: on Lambda (AWS_LAMBDA_RUNTIME_API set) the runtime wired to
//! [`run_tests::lambda::handle`]; elsewhere the command line ([`run_tests::cli`]).

use std::process::ExitCode;

use clap::Parser;
use codepipeline_job::gate;

#[tokio::main]
async fn main() -> ExitCode {
    if gate::on_lambda() {
        gate::serve(run_tests::lambda::handle).await
    } else {
        let args = run_tests::cli::Args::parse();
        ExitCode::from(run_tests::cli::run(&args, &mut std::io::stdout()).await)
    }
}

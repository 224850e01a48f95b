//! `start-tests` on Lambda: wires the runtime to [`start_tests::handle`].

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    codepipeline_job::init_tracing();
    let clients = start_tests::Clients::from_conf(&codepipeline_job::load_sdk_config().await);
    let clients = &clients;
    // Boxed: the handler's future is deep (three SDK clients), and nesting it
    // in the runtime's future overflows rustc's layout query depth.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        Box::pin(start_tests::handle(clients, event))
    }))
    .await
}

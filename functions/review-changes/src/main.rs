//! `review-changes` on Lambda: wires the runtime to [`review_changes::handle`].

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    codepipeline_job::init_tracing();
    let clients = review_changes::Clients::from_conf(&codepipeline_job::load_sdk_config().await);
    let clients = &clients;
    // Boxed like start-tests: the handler's future is deep, and nesting it
    // in the runtime's future can overflow rustc's layout query depth.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        Box::pin(review_changes::handle(clients, event))
    }))
    .await
}

//! Picks the mode: Lambda when the Lambda runtime API is present, a local
//! HTTP server otherwise. All behaviour lives in the library.

use std::process::ExitCode;

// One thread: a request costs a few microseconds of CPU, so one thread
// serves over 100k requests/s locally, and Lambda sends one request at a time.
// A multi-thread runtime measured slower here (cross-thread wake-ups) and
// starts more threads on every cold start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    time_service::telemetry::init(on_lambda);
    let stage = match time_service::stage_from_env() {
        Ok(stage) => stage,
        Err(e) => {
            eprintln!("time-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    let router = time_service::app(stage.clone());
    if on_lambda {
        return match time_service::lambda::run(router).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "Lambda runtime stopped");
                ExitCode::FAILURE
            }
        };
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match time_service::local::port_from(&args, std::env::var("PORT").ok()) {
        Ok(port) => port,
        Err(e) => {
            eprintln!("time-service: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "time-service: cannot listen on 127.0.0.1:{port}: {e} (is another server using it? try --port)"
            );
            return ExitCode::FAILURE;
        }
    };
    let url = match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(_) => format!("http://127.0.0.1:{port}"),
    };
    println!("TimeService ({stage}) listening on {url}  (try: curl {url}/time/America/New_York)");
    match time_service::serve_local(listener, router).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("time-service: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

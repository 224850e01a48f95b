//! `load_sdk_config` honours the standard `AWS_ENDPOINT_URL` override, which
//! the local pipeline rehearsal uses to answer the functions' AWS calls.
//!
//! A test binary of its own: it sets process environment variables before
//! any thread exists.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use codepipeline_job::{JobId, Reported, Reporter, load_sdk_config};

#[test]
fn reports_go_to_the_endpoint_named_by_aws_endpoint_url() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    // SAFETY: no other thread exists yet (current-thread runtime, one test).
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://{address}"));
        std::env::set_var("AWS_REGION", "eu-west-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_ENDPOINT_URL_CODEPIPELINE");
    }

    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = received.clone();
    let fake = Router::new().fallback(move |headers: HeaderMap, body: String| {
        let log = log.clone();
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            log.lock().unwrap().push((target.to_string(), body));
            ([("content-type", "application/x-amz-json-1.1")], "{}")
        }
    });

    let reported = runtime.block_on(async move {
        tokio::spawn(async move { axum::serve(listener, fake).await.unwrap() });
        let reporter = Reporter::from_conf(&load_sdk_config().await);
        reporter
            .success(&JobId::new("job-1").unwrap(), "all 10 checks passed")
            .await
    });

    assert_eq!(reported.unwrap(), Reported::Recorded);
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].0, "CodePipeline_20150709.PutJobSuccessResult");
    let body: serde_json::Value = serde_json::from_str(&received[0].1).unwrap();
    assert_eq!(body["jobId"], "job-1");
    assert_eq!(body["executionDetails"]["summary"], "all 10 checks passed");
}

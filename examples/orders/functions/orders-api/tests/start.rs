//! The binary as Lambda starts it: without its configuration it stops at
//! init with a readable reason instead of serving failures.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orders-api"));
    command
        .env_clear()
        // Never reached: the configuration is checked first.
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn without_table_name_the_function_stops_at_init_naming_it() {
    let (code, log) = start(&[("QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q")]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("TABLE_NAME is not set"), "{log}");
}

#[test]
fn without_queue_url_the_function_stops_at_init_naming_it() {
    let (code, log) = start(&[("TABLE_NAME", "Orders-beta-orders")]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("QUEUE_URL is not set"), "{log}");
}

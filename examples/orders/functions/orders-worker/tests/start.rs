//! The binary as Lambda starts it: without TABLE_NAME it stops at init with
//! a readable reason.

use std::process::Command;

#[test]
fn without_table_name_the_worker_stops_at_init_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_orders-worker"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("TABLE_NAME is not set"), "{log}");
}

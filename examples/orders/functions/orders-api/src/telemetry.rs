//! Logging: JSON lines on Lambda (CloudWatch), readable text elsewhere.
//! The level is `RUST_LOG` as a plain level (`info` when unset or unreadable).

use std::str::FromStr;

use tracing_subscriber::filter::LevelFilter;

/// Installs the global subscriber (a second call does nothing).
pub fn init() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| LevelFilter::from_str(v.trim()).ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    let _ = if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        // Lambda adds its own timestamp and request id to each line.
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.with_writer(std::io::stderr).try_init()
    };
}

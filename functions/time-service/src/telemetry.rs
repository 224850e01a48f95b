//! Logging: JSON lines on Lambda (CloudWatch), readable text on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info`.
pub fn init(on_lambda: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if on_lambda {
        // Lambda adds its own timestamp and request id to each line.
        builder
            .json()
            .with_current_span(false)
            .without_time()
            .with_target(false)
            .try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init()
    };
    // A subscriber already set (tests) is fine.
    let _ = result;
}

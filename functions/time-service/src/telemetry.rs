//! Logging: JSON lines on Lambda (CloudWatch), readable text on a terminal.
//!
//! The level comes from `RUST_LOG` as a plain level (`error`, `warn`, `info`,
//! `debug`, `trace`, `off`; default `info`). tracing-subscriber's per-target
//! `EnvFilter` is left out on purpose: it pulls in the regex engine, about a
//! third of this function's deployment zip.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::filter::LevelFilter;

/// The level `RUST_LOG` asks for, or `info` when unset or unreadable.
pub fn level_from(rust_log: Option<&str>) -> LevelFilter {
    rust_log
        .and_then(|v| LevelFilter::from_str(v.trim()).ok())
        .unwrap_or(LevelFilter::INFO)
}

/// Installs the global subscriber.
pub fn init(on_lambda: bool) {
    let level = level_from(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt().with_max_level(level);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_defaults_to_info() {
        assert_eq!(level_from(None), LevelFilter::INFO);
        assert_eq!(level_from(Some("chatty")), LevelFilter::INFO);
    }

    #[test]
    fn log_level_follows_rust_log() {
        assert_eq!(level_from(Some("debug")), LevelFilter::DEBUG);
        assert_eq!(level_from(Some("off")), LevelFilter::OFF);
        assert_eq!(level_from(Some(" WARN ")), LevelFilter::WARN);
    }
}

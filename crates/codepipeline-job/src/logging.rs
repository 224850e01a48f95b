//! Log setup: JSON lines on Lambda, readable text elsewhere.

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The log filter: `RUST_LOG` (or `AWS_LAMBDA_LOG_LEVEL`, or `info`), except
/// that `lambda_runtime`'s TRACE events are always dropped: at TRACE it logs
/// every raw event, and CodePipeline events carry artifact credentials.
/// `functions/*/tests/lambda_binary.rs` prove it end to end: the real gate
/// binaries under a Lambda Runtime API at `RUST_LOG=trace` print none of a
/// job event's planted credentials.
pub fn log_filter(
    directives: Option<&str>,
) -> impl tracing_subscriber::layer::Filter<tracing_subscriber::Registry> + use<> {
    let directives = directives.unwrap_or("info");
    let env = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    env.and(filter_fn(|meta| {
        !(meta.target().starts_with("lambda_runtime") && *meta.level() == Level::TRACE)
    }))
}

/// Installs the global subscriber: JSON when running on Lambda
/// (`AWS_LAMBDA_RUNTIME_API` set), text otherwise. Call once from `main`.
pub fn init_tracing() {
    let directives = std::env::var("RUST_LOG").ok().or_else(|| {
        std::env::var("AWS_LAMBDA_LOG_LEVEL")
            .ok()
            .map(|l| l.to_lowercase())
    });
    let filter = log_filter(directives.as_deref());
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let layer = if on_lambda {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true)
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Log lines written by a test subscriber.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    /// One installed test subscriber at a time: tracing-core computes its
    /// global level filter and callsite interest when a subscriber is
    /// registered, and registrations racing on different threads can leave
    /// them too low for one of them, which then misses lines.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    /// An installed test subscriber; uninstalled when dropped.
    pub(crate) struct Installed {
        _default: tracing::subscriber::DefaultGuard,
        // Declared last: released after the subscriber is gone.
        _serial: std::sync::MutexGuard<'static, ()>,
    }

    impl Captured {
        /// Installs a JSON subscriber (filtered like production, at `directives`)
        /// on this thread until the returned guard is dropped.
        pub(crate) fn install(&self, directives: &str) -> Installed {
            let serial = ONE_AT_A_TIME
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let writer = self.clone();
            let layer = fmt::layer().json().with_writer(move || writer.clone());
            let subscriber = tracing_subscriber::registry()
                .with(layer.with_filter(log_filter(Some(directives))));
            let installed = Installed {
                _default: tracing::subscriber::set_default(subscriber),
                _serial: serial,
            };
            // A callsite first hit by another test's thread while no
            // subscriber was installed can keep a cached "never" interest
            // (registration races with installation): recompute them all.
            tracing::callsite::rebuild_interest_cache();
            installed
        }

        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(directives: &str, emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        {
            let _guard = captured.install(directives);
            emit();
        }
        captured.text()
    }

    #[test]
    fn lambda_runtime_raw_event_traces_are_dropped_even_at_trace_level() {
        let logs = capture("trace", || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "SECRET-EVENT", "raw JSON event received from Lambda");
            tracing::trace!(target: "start_tests", "own trace line");
        });
        assert!(!logs.contains("SECRET-EVENT"), "{logs}");
        assert!(logs.contains("own trace line"), "{logs}");
    }

    #[test]
    fn lambda_runtime_errors_still_get_through() {
        let logs = capture("info", || {
            tracing::error!(target: "lambda_runtime::layers::api_client", "runtime API failed");
        });
        assert!(logs.contains("runtime API failed"), "{logs}");
    }

    #[test]
    fn an_invalid_filter_falls_back_to_info() {
        let logs = capture("=[not a filter", || {
            tracing::info!("info line");
            tracing::debug!("debug line");
        });
        assert!(
            logs.contains("info line") && !logs.contains("debug line"),
            "{logs}"
        );
    }
}

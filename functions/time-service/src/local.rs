//! Serving the router as plain HTTP on a workstation.

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until Ctrl-C or SIGTERM, then finishes the
/// requests in flight and returns.
pub async fn serve_local(listener: TcpListener, router: Router) -> std::io::Result<()> {
    // Responses are one write each; Nagle's algorithm would only hold them
    // back waiting for an ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// The port to listen on: `--port N` (or `--port=N`) wins over `PORT`, which
/// wins over 3000.
pub fn port_from(args: &[String], env_port: Option<String>) -> Result<u16, String> {
    let mut from_args = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--port" {
            from_args = Some(
                it.next()
                    .cloned()
                    .ok_or("--port needs a value, e.g. --port 8080")?,
            );
        } else if let Some(v) = arg.strip_prefix("--port=") {
            from_args = Some(v.to_owned());
        } else if arg == "-h" || arg == "--help" {
            return Err(USAGE.to_owned());
        } else {
            return Err(format!("unknown argument {arg:?}\n{USAGE}"));
        }
    }
    match from_args.or(env_port) {
        None => Ok(3000),
        Some(v) => v
            .parse()
            .map_err(|_| format!("port {v:?} is not a number from 0 to 65535")),
    }
}

const USAGE: &str = "usage: time-service [--port N]   (or PORT=N; default 3000; STAGE names the stage, default local)";

#[cfg(test)]
mod tests {
    use super::port_from;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn port_defaults_to_3000() {
        assert_eq!(port_from(&[], None), Ok(3000));
    }

    #[test]
    fn port_env_overrides_default() {
        assert_eq!(port_from(&[], Some("8080".into())), Ok(8080));
    }

    #[test]
    fn port_flag_overrides_env() {
        assert_eq!(
            port_from(&args(&["--port", "9000"]), Some("8080".into())),
            Ok(9000)
        );
        assert_eq!(port_from(&args(&["--port=9001"]), None), Ok(9001));
    }

    #[test]
    fn bad_port_is_a_clear_error() {
        assert!(
            port_from(&args(&["--port", "http"]), None)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            port_from(&args(&["--port"]), None)
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            port_from(&args(&["--verbose"]), None)
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}

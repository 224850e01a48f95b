//! TimeService: the current time in any IANA time zone.
//!
//! One axum router ([`app`]) serves `GET /time` and `GET /time/{timeZone}`;
//! [`lambda`] adapts it to API Gateway events under `lambda_http`, and
//! [`local`] serves it as plain HTTP on a workstation. `main.rs` only picks one.

pub mod api;
mod echo;
mod finish;
pub mod lambda;
pub mod local;
pub mod telemetry;
mod tzdb;
pub mod zones;

pub use api::{TimeResponse, app, app_with_clock};
pub use finish::STAGE_HEADER;
pub use local::serve_local;

/// The stage a process serves, from `STAGE` (default `local`).
///
/// Refuses a value that cannot be sent as a header, so a misconfigured
/// deployment fails at start rather than answering with a wrong stage.
pub fn stage_from_env() -> Result<String, String> {
    let stage = std::env::var("STAGE").unwrap_or_else(|_| "local".to_owned());
    if stage.is_empty() || http::HeaderValue::from_str(&stage).is_err() {
        return Err(format!(
            "STAGE={stage:?} is not a usable stage name: set STAGE to beta, gamma, prod or local"
        ));
    }
    Ok(stage)
}

#[cfg(test)]
mod tests {
    #[test]
    fn vendored_tzdata_is_the_release_chrono_tz_was_built_from() {
        assert_eq!(
            crate::zones::TZDATA_RELEASE,
            chrono_tz::IANA_TZDB_VERSION,
            "tzdata/ and the chrono-tz in Cargo.lock must agree: see tzdata/README.md"
        );
    }
}

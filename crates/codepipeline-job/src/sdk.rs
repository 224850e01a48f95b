//! One AWS SDK configuration for every function: timeouts and standard retries.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

/// Connecting to an AWS endpoint takes milliseconds; 3 s means it is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt of any call these functions make (all small requests).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole call including the standard retries' attempts and back-off.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// The standard retry mode's default: the first attempt plus two retries.
pub const MAX_ATTEMPTS: u32 = 3;

/// `aws_config`'s standard loader (region, credentials and `AWS_ENDPOINT_URL`
/// / `AWS_ENDPOINT_URL_<SERVICE>` from the environment) with this project's
/// timeouts and standard retries. Tests add `.endpoint_url(...)` etc. before
/// `.load()`.
pub fn sdk_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
}

/// [`sdk_config_loader`], loaded.
pub async fn load_sdk_config() -> SdkConfig {
    sdk_config_loader().load().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::Region;

    #[tokio::test]
    async fn the_loaded_config_carries_timeouts_and_standard_retries() {
        let config = sdk_config_loader()
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .load()
            .await;
        let timeouts = config.timeout_config().unwrap();
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
        let retry = config.retry_config().unwrap();
        assert_eq!(retry.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:1"));
    }
}

//! The function's configuration, from the environment app-sam.yaml sets.

/// The variable holding the DynamoDB table's name (`!Ref OrdersTable`).
pub const TABLE_NAME_ENV: &str = "TABLE_NAME";
/// The variable holding the SQS queue's URL (`!Ref OrdersQueue`).
pub const QUEUE_URL_ENV: &str = "QUEUE_URL";

/// Where orders are written and announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub queue_url: String,
}

/// A configuration the function cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{name} is not set (or empty): it must hold {what}; app-sam.yaml sets it on the function"
    )]
    Missing {
        name: &'static str,
        what: &'static str,
    },
}

impl Config {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str, what: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing { name, what })
        };
        Ok(Self {
            table_name: required(TABLE_NAME_ENV, "the name of the orders DynamoDB table")?,
            queue_url: required(QUEUE_URL_ENV, "the URL of the orders SQS queue")?,
        })
    }
}

//! A stack's resources other than functions and APIs, created in moto (an
//! AWS emulator run as a local process), for the local rehearsal.
//!
//! The pieces, in the order the rehearsal uses them (design:
//! `docs/local-resources.md`):
//! - [`needs_moto`]: whether a template has anything moto must create (moto
//!   starts only then).
//! - [`moto_template`] (pure): the sub-template moto creates, with SAM's
//!   `AWS::Serverless::SimpleTable` expanded as SAM expands it and the
//!   references to functions and APIs replaced by their local values; it
//!   fails with [`Error::Unsupported`] before anything is created when moto
//!   cannot create a type.
//! - [`MotoServer`]: the pinned `moto_server` on a free loopback port,
//!   stopped on drop; [`MotoServer::create_stack`] creates the sub-template
//!   through moto's CloudFormation and returns every resource's physical id
//!   and attributes ([`StackResources`]).
//! - [`iam`]: moto's IAM enforcement ([`MotoServer::enforce_iam`]), a
//!   function's execution role and its credentials
//!   ([`MotoServer::role_credentials`]), SAM policy templates expanded from
//!   samtranslator's own definitions, and [`iam::Denial`] for a clear log
//!   line when moto denies a call.
//! - [`endpoints`]: the `AWS_ENDPOINT_URL_<SERVICE>` variables of a function
//!   process.
//! - [`denied`]: a call moto denied, with the action and the resource its
//!   request names (what the rehearsal's AWS proxy writes in the calling
//!   function's log).

mod client;
pub mod denied;
pub mod endpoints;
pub mod iam;
mod server;
pub mod sqs;
mod stack;
mod types;

pub use client::{Credentials, SignedClient, signed_json};
pub use server::MotoServer;
pub use stack::{
    LocalValues, MotoTemplate, ResourceValues, StackResources, check_supported, is_local_type,
    moto_template, needs_moto,
};
pub use types::{MOTO_VERSION, moto_can_create, moto_declared_attributes};

/// The region and account moto's resources live in (moto's defaults).
pub const REGION: &str = "us-east-1";
/// moto's default account id.
pub const ACCOUNT_ID: &str = "123456789012";

/// A resource moto cannot create: its logical id and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedResource {
    /// The resource's logical id in the template.
    pub logical_id: String,
    /// Its `Type`.
    pub resource_type: String,
}

/// Everything that can go wrong; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `moto_server` could not be started.
    #[error(
        "could not start moto_server ({path}): {source}; install it with scripts/setup-tools.sh rehearsal"
    )]
    Start {
        /// The executable tried.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `moto_server` started but never answered.
    #[error(
        "moto_server did not answer on {url} within {waited_secs} s ({detail}); check that the venv's moto is intact (scripts/setup-tools.sh rehearsal)"
    )]
    StartTimeout {
        /// Where it should have answered.
        url: String,
        /// How long we waited.
        waited_secs: u64,
        /// Its exit status, if it exited.
        detail: String,
    },
    /// The template has resources moto's CloudFormation cannot create.
    #[error(
        "moto {moto} cannot create {}; nothing was created. Remove or replace these resources (moto's CloudFormation creates the types in crates/local-resources/data/moto-cfn-types.txt)",
        list_unsupported(.resources)
    )]
    Unsupported {
        /// Each resource moto cannot create.
        resources: Vec<UnsupportedResource>,
        /// The moto version the list is for.
        moto: &'static str,
    },
    /// A resource moto creates refers to a function or API (not in moto)
    /// whose local value the caller did not give.
    #[error(
        "resource {resource} refers to {reference}, a function or API that runs locally, and no local value was given for it; pass it in LocalValues"
    )]
    MissingLocalValue {
        /// The resource that refers.
        resource: String,
        /// `X` (a Ref) or `X.Attr` (a GetAtt).
        reference: String,
    },
    /// A part of the template without the shape SAM or CloudFormation
    /// requires.
    #[error("{context}: {message}")]
    Template {
        /// Where (`Resources.Table.Properties.PrimaryKey`).
        context: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// An HTTP call to moto failed at the transport level.
    #[error("calling moto's {action} at {url} failed: {source}; is moto_server still running?")]
    Http {
        /// The API action.
        action: String,
        /// moto's URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// moto answered a call with an AWS error.
    #[error("moto refused {action} (HTTP {status}): {code}: {message}")]
    Aws {
        /// The API action.
        action: String,
        /// The HTTP status.
        status: u16,
        /// The AWS error code (`AccessDenied`, `ValidationError`, ...).
        code: String,
        /// The AWS error message.
        message: String,
    },
    /// moto's answer did not have the shape of the AWS API's answer.
    #[error("unexpected answer from moto to {action}: {detail}")]
    Response {
        /// The API action.
        action: String,
        /// What was missing.
        detail: String,
    },
    /// moto's CloudFormation could not create the stack.
    #[error(
        "moto could not create stack {stack}: {status}{}; fix the resource named and rehearse again",
        .reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    StackFailed {
        /// The stack.
        stack: String,
        /// Its status.
        status: String,
        /// moto's reason.
        reason: Option<String>,
    },
    /// A request could not be signed (SigV4).
    #[error("could not sign the request to moto: {0}")]
    Sign(String),
    /// A SAM policy template that SAM does not define, or its parameters
    /// are wrong.
    #[error("{function}: policy template {template}: {message}")]
    PolicyTemplate {
        /// The function whose `Policies` uses it.
        function: String,
        /// The template's name.
        template: String,
        /// What is wrong.
        message: String,
    },
}

fn list_unsupported(resources: &[UnsupportedResource]) -> String {
    resources
        .iter()
        .map(|r| format!("{} ({})", r.resource_type, r.logical_id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Short for `Result<T, local_resources::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

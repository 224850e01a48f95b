//! `cargo rehearse`: runs the pipeline that `pipeline.yaml` defines on this
//! machine, with the real function binaries, and no AWS account.
//!
//! - [`executor`] reads the `AWS::CodePipeline::Pipeline` and runs its stages
//!   and actions (Source from a clean checkout, Build with scripts/build.sh,
//!   CloudFormation deploys, Lambda invokes waiting for the job result,
//!   manual approvals).
//! - [`stack`] deploys a packaged SAM template as a local stack: functions
//!   as processes ([`runtime`]), API events behind a per-stack [`gateway`],
//!   outputs resolved to local values by `cfn_template::Resolver`.
//! - [`runtime`] serves the Lambda Runtime API to each function process.
//! - [`moto`] is the rehearsal's one moto server (crates/local-resources),
//!   started by the first stack with tables, queues or other resources.
//! - [`endpoint`] answers the functions' AWS calls (CloudFormation
//!   DescribeStacks and DescribeChangeSet, Lambda Invoke, CodePipeline job
//!   results with their output variables) from the local [`world`], in AWS's
//!   wire formats.
//! - [`changeset`] computes a `CHANGE_SET_REPLACE` change set from the
//!   running stack's template and parameters and the new ones.
//! - [`report`] prints progress, the final table and the JSON result.
//! - [`view`] is the run as a picture (stages, actions, states) built from
//!   the printer's events; [`live`] draws it on a terminal, [`console`]
//!   serves it as a page on a loopback port (`--keep`, `--watch`).
//! - [`lock`] keeps to one rehearsal per work directory.
//! - [`traffic`] and [`alarms`]: the building blocks of gradual deployment
//!   (a `DeploymentPreference`'s schedule, time-scaled; the alias's traffic
//!   split; CloudWatch alarm evaluation), wired by [`shift`]: an alias's
//!   local versions, what a stage's gateway observes, the time-scaled
//!   shift under synthetic load, rolled back by an alarm.

pub mod alarms;
pub mod aws_proxy;
pub mod changeset;
pub mod console;
pub mod deploy_policy;
pub mod endpoint;
pub mod executor;
pub mod gateway;
pub mod ids;
pub mod live;
pub mod lock;
pub mod moto;
pub mod parameters_file;
pub mod report;
pub mod runtime;
pub mod shift;
pub mod source;
pub mod stack;
pub mod traffic;
pub mod view;
pub mod window;
pub mod world;

pub use executor::{ActionError, Options, Rehearsal, RehearsalError};
pub use report::{RunReport, Status};

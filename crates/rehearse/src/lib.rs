//! `cargo rehearse`: runs the pipeline that `pipeline.yaml` defines on this
//! machine, with the real function binaries under a local Lambda Runtime API,
//! a local API gateway per stage and a local AWS endpoint.

pub mod cfn;
pub mod endpoint;
pub mod executor;
pub mod gateway;
pub mod ids;
pub mod report;
pub mod runtime;
pub mod source;
pub mod stack;
pub mod world;

pub use executor::{Options, Rehearsal, RehearsalError};
pub use report::{RunReport, Status};

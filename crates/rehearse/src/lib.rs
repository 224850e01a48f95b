//! `cargo rehearse`: runs the pipeline that `pipeline.yaml` defines on this
//! machine, with the real function binaries under a local Lambda Runtime API,
//! a local API gateway per stage and a local AWS endpoint.

pub mod cfn;
pub mod endpoint;
pub mod gateway;
pub mod ids;
pub mod runtime;
pub mod stack;
pub mod world;

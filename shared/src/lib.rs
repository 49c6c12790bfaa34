//! The model promotion service's library: domain types and decisions, ports, AWS adapters,
//! configuration and telemetry, shared by the Lambda functions and the `promote` CLI.

pub mod adapters;
pub mod config;
pub mod deployment;
pub mod diagnostic;
pub mod domain;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod invocation;
pub mod ports;
pub mod promotion;
pub mod telemetry;

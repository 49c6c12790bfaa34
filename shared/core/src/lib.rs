//! The model promotion service's core: domain types and decisions, ports, the promotion and
//! deployment use cases and configuration. It sees no AWS SDK and no Lambda runtime: the
//! adapters, telemetry and wiring live in `promotion-aws`, so Cargo keeps the layering.

// An operation's error is its rare path, and its payload names what a person needs to act on (the
// endpoint, the versions, the failing cases): it is not boxed to save a few bytes on the good path.
#![allow(clippy::result_large_err)]

pub mod approvers;
pub mod config;
pub mod deployment;
pub mod domain;
pub mod failure;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod operator;
pub mod ports;
pub mod promotion;

//! The model promotion service's AWS side: one adapter file per service (each implements ports of
//! `promotion_core` over the AWS SDK for Rust), telemetry, the Lambda runtime glue, and the one
//! module that wires every function's ports from the environment.

#[cfg(test)]
#[macro_use]
mod mocks;

pub mod codepipeline;
pub mod dynamodb;
pub mod ecr;
pub mod endpoints;
mod errors;
pub mod eventbridge;
pub mod runtime;
pub mod s3;
pub mod sagemaker;
pub mod sns;
pub mod sts;
pub mod telemetry;
pub mod wiring;

pub use errors::classify;

//! What the deploy-model test binaries share: the reference job events, and running a job as
//! CodePipeline does.

use lambda_runtime::{Context, LambdaEvent};
use promotion_core::deployment::JobOutcome;
use promotion_core::fakes::DeployWorld;
use serde_json::Value;

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The next job of the action, as CodePipeline makes it: a job id of its own, and the token.
fn continued(mut job: Value, token: &str, invocation: usize) -> Value {
    let id = format!("{}-{invocation}", job["CodePipeline.job"]["id"].as_str().unwrap_or_default());
    job["CodePipeline.job"]["id"] = Value::String(id);
    job["CodePipeline.job"]["data"]["continuationToken"] = Value::String(token.to_owned());
    job
}

pub async fn invoke(world: &DeployWorld, payload: Value) -> JobOutcome {
    deploy_model::handler(&world.ports, &world.config, LambdaEvent::new(payload, Context::default())).await.expect("the job is answered")
}

/// Invokes until the job stops asking to continue, as CodePipeline does; returns the number of invocations.
pub async fn run_job(world: &DeployWorld, job: Value) -> (JobOutcome, usize) {
    let mut outcome = invoke(world, job.clone()).await;
    let mut invocations = 1;
    while let JobOutcome::Continuing { continuation, .. } = &outcome {
        outcome = invoke(world, continued(job.clone(), continuation, invocations)).await;
        invocations += 1;
        assert!(invocations < 20, "the job never settles");
    }
    (outcome, invocations)
}

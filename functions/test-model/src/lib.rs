//! test-model: the TestModel action of the pipeline.

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::deployment::test::handle_test_job;
use shared::deployment::{DeployConfig, DeployError, DeployPorts, JobOutcome};

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<JobOutcome, DeployError> {
    handle_test_job(ports, config, &event.payload).await
}

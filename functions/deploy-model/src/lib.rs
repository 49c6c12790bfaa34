//! deploy-model: the DeployTest and DeployProd actions of the pipeline.

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::deployment::deploy::handle_deploy_job;
use shared::deployment::{DeployConfig, DeployError, DeployPorts, JobOutcome};

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<JobOutcome, DeployError> {
    handle_deploy_job(ports, config, &event.payload).await
}

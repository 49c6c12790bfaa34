//! deploy-model: the DeployTest and DeployProd actions of the pipeline.

use chrono::Duration;
use lambda_runtime::LambdaEvent;
use promotion_aws::runtime::deadline;
use promotion_core::deployment::deploy::handle_deploy_job;
use promotion_core::deployment::{ActionError, DeployConfig, DeployPorts, JobOutcome};
use serde_json::Value;

/// The function's timeout in infra/central-account.yaml (`infra/check_drift.py` compares them):
/// the deadline of a run that reports none.
const TIMEOUT: Duration = Duration::seconds(120);

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<JobOutcome, ActionError> {
    handle_deploy_job(ports, config, &event.payload, deadline(&event.context, TIMEOUT)).await
}

//! start-deployment: a central approval starts the deploy pipeline for exactly that version.

use chrono::Duration;
use lambda_runtime::LambdaEvent;
use promotion_aws::runtime::deadline;
use promotion_core::deployment::start::{handle_central_approval, StartOutcome};
use promotion_core::deployment::{DeployConfig, DeployPorts, StartError};
use serde_json::Value;

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<StartOutcome, StartError> {
    handle_central_approval(ports, config, &event.payload, deadline(&event.context, Duration::minutes(1))).await
}

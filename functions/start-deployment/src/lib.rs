//! start-deployment: a central approval starts the deploy pipeline for exactly that version.

use chrono::Duration;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::deployment::start::{handle_central_approval, StartOutcome};
use shared::deployment::{DeployConfig, DeployError, DeployPorts};
use shared::invocation::deadline;

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<StartOutcome, DeployError> {
    handle_central_approval(ports, config, &event.payload, deadline(&event.context, Duration::minutes(1))).await
}

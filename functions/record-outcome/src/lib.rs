//! record-outcome: pipeline and approval state changes into the ledger and the model card.

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::deployment::outcome::{record_outcome, Recorded};
use shared::deployment::{DeployConfig, DeployError, DeployPorts};

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<Recorded, DeployError> {
    record_outcome(ports, config, &event.payload).await
}

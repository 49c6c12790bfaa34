//! record-outcome: pipeline and approval state changes into the ledger and the model card.

use lambda_runtime::LambdaEvent;
use promotion_core::deployment::outcome::{record_outcome, Recorded};
use promotion_core::deployment::{DeployConfig, DeployError, DeployPorts};
use serde_json::Value;

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<Recorded, DeployError> {
    record_outcome(ports, config, &event.payload).await
}

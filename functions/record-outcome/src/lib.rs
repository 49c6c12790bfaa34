//! record-outcome: pipeline and approval state changes into the ledger and the model card.

use lambda_runtime::LambdaEvent;
use promotion_core::deployment::record::{record_outcome, Recorded};
use promotion_core::deployment::{DeployConfig, DeployPorts, RecordError};
use serde_json::Value;

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<Recorded, RecordError> {
    record_outcome(ports, config, &event.payload).await
}

//! record-outcome: pipeline and approval state changes into the ledger and the model card; and
//! the reach of a revocation (promote-model's `ModelRevoked`) into the pipeline and the endpoints.

use chrono::Duration;
use lambda_runtime::{Diagnostic, LambdaEvent};
use promotion_aws::runtime::{deadline, diagnostic};
use promotion_core::deployment::record::{record_outcome, Recorded};
use promotion_core::deployment::revocation::{reach_revocation, Reached};
use promotion_core::deployment::{DeployConfig, DeployPorts, RecordError, RevocationError};
use promotion_core::domain::revocation::ModelRevoked;
use promotion_core::failure::Failure;
use serde::Serialize;
use serde_json::Value;

/// The function's timeout in infra/central-account.yaml (`infra/check_drift.py` compares them):
/// the deadline of a run that reports none. A revocation waits, within it, for the endpoints it
/// rolls back to be in service.
const TIMEOUT: Duration = Duration::seconds(900);

/// The function's entry: a `ModelRevoked` event goes to the revocation, any other is a pipeline
/// state change.
pub async fn dispatch(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    if ModelRevoked::is_one(&event.payload) {
        answer(revocation(ports, config, event).await)
    } else {
        answer(handler(ports, config, event).await)
    }
}

/// A pipeline or approval state change.
pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<Recorded, RecordError> {
    record_outcome(ports, config, &event.payload).await
}

/// A revocation, reaching the executions and endpoints of the revoked version.
pub async fn revocation(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<Reached, RevocationError> {
    reach_revocation(ports, config, &event.payload, deadline(&event.context, TIMEOUT)).await
}

fn answer<T: Serialize, E: Failure>(result: Result<T, E>) -> Result<Value, Diagnostic> {
    result.map(|outcome| serde_json::to_value(outcome).expect("an outcome serializes")).map_err(diagnostic)
}

//! start-deployment: a central approval starts the deploy pipeline for exactly that version; the
//! CloudTrail record of that approval names its approver.

use chrono::Duration;
use lambda_runtime::{Diagnostic, LambdaEvent};
use promotion_aws::runtime::{deadline, diagnostic};
use promotion_core::approvers::{record_central_approver, ApproverError, ApproverOutcome};
use promotion_core::deployment::start::{handle_central_approval, StartOutcome};
use promotion_core::deployment::{DeployConfig, DeployPorts, StartError};
use promotion_core::domain::cloudtrail::ApprovalCall;
use serde_json::Value;

/// The function's entry: a CloudTrail record of `UpdateModelPackage` goes to the approver's
/// record, any other event is a central registry's state change.
pub async fn dispatch(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    if ApprovalCall::is_one(&event.payload) {
        let recorded = approver(ports, config, event).await.map_err(diagnostic)?;
        return Ok(serde_json::to_value(recorded).expect("an outcome serializes"));
    }
    let outcome = handler(ports, config, event).await.map_err(diagnostic)?;
    Ok(serde_json::to_value(outcome).expect("an outcome serializes"))
}

/// Who approved a central version, from CloudTrail: recorded against it, whether its state change
/// (and the pipeline it starts) came first or not.
pub async fn approver(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<ApproverOutcome, ApproverError> {
    record_central_approver(ports, config, &event.payload).await
}

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<StartOutcome, StartError> {
    handle_central_approval(ports, config, &event.payload, deadline(&event.context, Duration::minutes(1))).await
}

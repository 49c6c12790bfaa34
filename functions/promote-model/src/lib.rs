//! promote-model: a dev approval, forwarded by EventBridge, becomes one central version; the
//! CloudTrail record of that approval, forwarded by the same rule, names its approver.

use chrono::Duration;
use lambda_runtime::{Diagnostic, LambdaEvent};
use promotion_aws::runtime::{deadline, diagnostic};
use promotion_core::approvers::{record_dev_approver, ApproverError, ApproverOutcome};
use promotion_core::config::PromoteConfig;
use promotion_core::domain::cloudtrail::ApprovalCall;
use promotion_core::failure::Failure;
use promotion_core::ports::PromotePorts;
use promotion_core::promotion::{handle_state_change, Invocation, Outcome, PromoteError};
use serde_json::Value;
use tracing::{error, info_span, Instrument};

/// Lambda's longest timeout: the deadline of an invocation that reports none.
const LONGEST_INVOCATION: Duration = Duration::minutes(15);

/// The function's entry: a CloudTrail record of `UpdateModelPackage` goes to the approver's
/// record, any other event is a model package state change.
pub async fn dispatch(ports: &PromotePorts, config: &PromoteConfig, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    if ApprovalCall::is_one(&event.payload) {
        let recorded = approver(ports, config, event).await.map_err(diagnostic)?;
        return Ok(serde_json::to_value(recorded).expect("an outcome serializes"));
    }
    let outcome = handler(ports, config, event).await.map_err(diagnostic)?;
    Ok(serde_json::to_value(outcome).expect("an outcome serializes"))
}

/// Who approved a dev version, from CloudTrail: recorded against the source version, whether its
/// state change came first or not.
pub async fn approver(ports: &PromotePorts, config: &PromoteConfig, event: LambdaEvent<Value>) -> Result<ApproverOutcome, ApproverError> {
    let event_id = event.payload.pointer("/detail/eventID").and_then(Value::as_str);
    let span = info_span!("promote-model", request_id = %event.context.request_id, event_id, gate = "DevApproval");
    let recorded = record_dev_approver(ports, config, &event.payload).instrument(span.clone()).await;
    if let Err(failure) = &recorded {
        span.in_scope(|| error!(error_type = %failure.error_type(), error = %failure, "approver not recorded"));
    }
    recorded
}

pub async fn handler(ports: &PromotePorts, config: &PromoteConfig, event: LambdaEvent<Value>) -> Result<Outcome, PromoteError> {
    let invocation = Invocation { request_id: event.context.request_id.clone(), deadline: deadline(&event.context, LONGEST_INVOCATION) };
    // As the event says, before it is validated: every line of the invocation carries them.
    let event_id = event.payload.get("id").and_then(Value::as_str);
    let package = event.payload.pointer("/detail/ModelPackageArn").and_then(Value::as_str);
    let span = info_span!("promote-model", request_id = %invocation.request_id, event_id, package);
    let outcome = handle_state_change(ports, config, &event.payload, &invocation).instrument(span.clone()).await;
    if let Err(failure) = &outcome {
        span.in_scope(|| error!(error_type = %failure.error_type(), error = %failure, "promotion failed"));
    }
    outcome
}

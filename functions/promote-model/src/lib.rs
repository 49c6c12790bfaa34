//! promote-model: a dev approval, forwarded by EventBridge, becomes one central version.

use chrono::Duration;
use lambda_runtime::LambdaEvent;
use promotion_aws::runtime::deadline;
use promotion_core::config::PromoteConfig;
use promotion_core::failure::Failure;
use promotion_core::ports::PromotePorts;
use promotion_core::promotion::{handle_state_change, Invocation, Outcome, PromoteError};
use serde_json::Value;
use tracing::{error, info_span, Instrument};

/// Lambda's longest timeout: the deadline of an invocation that reports none.
const LONGEST_INVOCATION: Duration = Duration::minutes(15);

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

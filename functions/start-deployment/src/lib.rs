//! start-deployment: a central approval starts the deploy pipeline for exactly that version.

use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::deployment::start::{handle_central_approval, StartOutcome};
use shared::deployment::{DeployConfig, DeployError, DeployPorts};

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<StartOutcome, DeployError> {
    handle_central_approval(ports, config, &event.payload, deadline(event.context.deadline)).await
}

/// The claim on starting lasts as long as this invocation can.
fn deadline(millis: u64) -> DateTime<Utc> {
    i64::try_from(millis)
        .ok()
        .filter(|ms| *ms > 0)
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_else(|| Utc::now() + Duration::minutes(1))
}

//! test-model: the TestModel action of the pipeline.

use chrono::Duration;
use lambda_runtime::LambdaEvent;
use promotion_aws::runtime::deadline;
use promotion_core::deployment::test::handle_test_job;
use promotion_core::deployment::{ActionError, DeployConfig, DeployPorts, JobOutcome};
use serde_json::Value;

/// The function's timeout in infra/central-account.yaml (`infra/check_drift.py` compares them):
/// the deadline of a run that reports none.
const TIMEOUT: Duration = Duration::seconds(300);

pub async fn handler(ports: &DeployPorts, config: &DeployConfig, event: LambdaEvent<Value>) -> Result<JobOutcome, ActionError> {
    handle_test_job(ports, config, &event.payload, deadline(&event.context, TIMEOUT)).await
}

//! The approval a lead data scientist gives in dev, and the event SageMaker emits for it
//! (the emulator emits none, so it is built here in the documented shape).

use anyhow::{Context as _, Result};
use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_sagemaker::types::ModelApprovalStatus;
use chrono::{SubsecRound, Utc};
use promotion_core::domain::event::{SAGEMAKER_SOURCE, STATE_CHANGE_DETAIL_TYPE};
use promotion_core::domain::ids::ModelPackageArn;
use serde_json::{json, Value};

pub async fn set_dev_approval(dev: &SdkConfig, package: &ModelPackageArn, approved: bool) -> Result<()> {
    let status = if approved { ModelApprovalStatus::Approved } else { ModelApprovalStatus::Rejected };
    aws_sdk_sagemaker::Client::new(dev)
        .update_model_package()
        .model_package_arn(package.as_str())
        .model_approval_status(status)
        .approval_description("set by the local demo")
        .send()
        .await
        .context("update dev model package")?;
    Ok(())
}

/// "SageMaker Model Package State Change" for `package` as forwarded to the central bus, in the
/// envelope of `aws_lambda_events`' `EventBridgeEvent`.
pub fn approval_event(package: &ModelPackageArn, status: &str) -> Value {
    let now = Utc::now().trunc_subsecs(0);
    let mut event = EventBridgeEvent::<Value>::default();
    event.version = Some("0".into());
    event.id = Some(uuid::Uuid::new_v4().to_string());
    event.detail_type = STATE_CHANGE_DETAIL_TYPE.into();
    event.source = SAGEMAKER_SOURCE.into();
    event.account = Some(package.account().to_string());
    event.time = Some(now);
    event.region = Some(package.region().to_owned());
    event.resources = Some(vec![package.to_string()]);
    event.detail = json!({
        "ModelPackageGroupName": package.group().to_string(),
        "ModelPackageVersion": package.version(),
        "ModelPackageArn": package.to_string(),
        "CreationTime": now.timestamp_millis(),
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": status,
    });
    serde_json::to_value(event).expect("an EventBridge event serializes")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use promotion_core::domain::event::StateChange;

    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(name)).expect("fixture")
    }

    #[test]
    fn the_built_event_and_the_fixtures_have_the_eventbridge_envelope() {
        let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3".parse().unwrap();
        let built = approval_event(&package, "Approved");
        let change = StateChange::parse(&built).expect("the handler's parser takes it");
        assert_eq!((change.package, change.account.as_str()), (package, "111111111111"));
        for name in
            ["model-package-approved.json", "model-package-approved-epoch-millis.json", "model-package-rejected.json", "sagemaker-central-approval.json"]
        {
            let typed: EventBridgeEvent = serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((typed.source.as_str(), typed.detail_type.as_str()), (SAGEMAKER_SOURCE, STATE_CHANGE_DETAIL_TYPE), "{name}");
        }
    }

    /// Why the handler parses a `serde_json::Value` and not this type: AWS's own example repeats
    /// `source`, the second time as an array, which the typed envelope refuses.
    #[test]
    fn the_documented_example_does_not_fit_the_typed_envelope() {
        let documented = fixture("sagemaker-state-change-aws-docs.json");
        assert!(serde_json::from_str::<EventBridgeEvent>(&documented).is_err());
        let value: Value = serde_json::from_str(&documented).unwrap();
        assert!(StateChange::parse(&value).is_ok(), "the handler's parser takes it");
    }
}

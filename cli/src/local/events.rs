//! The approval a lead data scientist gives in dev, and the events AWS emits for it: SageMaker's
//! state change, and CloudTrail's record of the `UpdateModelPackage` call with who made it (the
//! emulator emits neither, so they are built here in the documented shapes).

use anyhow::{Context as _, Result};
use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_sagemaker::types::ModelApprovalStatus;
use chrono::{SubsecRound, Utc};
use promotion_core::domain::cloudtrail::{CLOUDTRAIL_DETAIL_TYPE, SAGEMAKER_EVENT_SOURCE, UPDATE_MODEL_PACKAGE};
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

/// CloudTrail's record of the `UpdateModelPackage` call that set `status` on `package`, as
/// EventBridge delivers it: made by whoever `caller`'s credentials are (STS `GetCallerIdentity`),
/// with the session's `source_identity`, which STS does not report back.
pub async fn approval_call_event(caller: &SdkConfig, source_identity: Option<&str>, package: &ModelPackageArn, status: &str) -> Result<Value> {
    let who = aws_sdk_sts::Client::new(caller).get_caller_identity().send().await.context("who approves (GetCallerIdentity)")?;
    let (arn, account) = (who.arn().unwrap_or_default(), who.account().unwrap_or_default());
    let now = Utc::now().trunc_subsecs(0);
    let mut event = EventBridgeEvent::<Value>::default();
    event.version = Some("0".into());
    event.id = Some(uuid::Uuid::new_v4().to_string());
    event.detail_type = CLOUDTRAIL_DETAIL_TYPE.into();
    event.source = SAGEMAKER_SOURCE.into();
    event.account = Some(package.account().to_string());
    event.time = Some(now);
    event.region = Some(package.region().to_owned());
    event.resources = Some(Vec::new());
    event.detail = json!({
        "eventVersion": "1.09",
        "userIdentity": user_identity(arn, account, who.user_id().unwrap_or_default(), source_identity),
        "eventTime": now.to_rfc3339(),
        "eventSource": SAGEMAKER_EVENT_SOURCE,
        "eventName": UPDATE_MODEL_PACKAGE,
        "awsRegion": package.region(),
        "sourceIPAddress": "127.0.0.1",
        "userAgent": "promote local",
        "requestParameters": { "modelPackageArn": package.to_string(), "modelApprovalStatus": status },
        "responseElements": { "modelPackageArn": package.to_string() },
        "requestID": uuid::Uuid::new_v4().to_string(),
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": package.account().to_string(),
        "eventCategory": "Management",
    });
    Ok(serde_json::to_value(event).expect("an EventBridge event serializes"))
}

/// `userIdentity` as CloudTrail writes it for an assumed-role session or an IAM user.
fn user_identity(arn: &str, account: &str, principal_id: &str, source_identity: Option<&str>) -> Value {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    match resource.split('/').collect::<Vec<_>>().as_slice() {
        ["assumed-role", role, _session] => {
            let mut context = json!({
                "sessionIssuer": { "type": "Role", "arn": format!("arn:aws:iam::{account}:role/{role}"), "accountId": account, "userName": role },
                "attributes": { "mfaAuthenticated": "false" }
            });
            if let Some(source_identity) = source_identity {
                context["sourceIdentity"] = source_identity.into();
            }
            json!({ "type": "AssumedRole", "principalId": principal_id, "arn": arn, "accountId": account, "sessionContext": context })
        }
        ["user", .., name] => json!({ "type": "IAMUser", "principalId": principal_id, "arn": arn, "accountId": account, "userName": name }),
        _ => json!({ "type": "Unknown", "principalId": principal_id, "accountId": account }),
    }
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

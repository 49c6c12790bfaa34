//! The approval a lead data scientist gives in dev, and the event SageMaker emits for it
//! (the emulator emits none, so it is built here in the documented shape).

use anyhow::{Context as _, Result};
use aws_config::SdkConfig;
use aws_sdk_sagemaker::types::ModelApprovalStatus;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use shared::domain::ids::ModelPackageArn;

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

/// "SageMaker Model Package State Change" for `package` as forwarded to the central bus.
pub fn approval_event(package: &ModelPackageArn, status: &str) -> Value {
    let now = Utc::now();
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": package.account().to_string(),
        "time": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": package.region(),
        "resources": [package.to_string()],
        "detail": {
            "ModelPackageGroupName": package.group().to_string(),
            "ModelPackageVersion": package.version(),
            "ModelPackageArn": package.to_string(),
            "CreationTime": now.timestamp_millis(),
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": status,
        }
    })
}

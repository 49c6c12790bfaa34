//! The CloudTrail management event of `UpdateModelPackage`, as EventBridge delivers it
//! (`AWS API Call via CloudTrail`): the one record of who approved a version in a registry,
//! which the registry's own state-change event does not name.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::event::{ApprovalStatus, EventError, SAGEMAKER_SOURCE};
use super::identity::{Approver, Gate, Principal};
use super::ids::{truncated, AccountId, ModelPackageArn};

pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
pub const SAGEMAKER_EVENT_SOURCE: &str = "sagemaker.amazonaws.com";
pub const UPDATE_MODEL_PACKAGE: &str = "UpdateModelPackage";

/// Why an event is not a CloudTrail record of `UpdateModelPackage` this service can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("the call is {source_name} {name}, not sagemaker.amazonaws.com UpdateModelPackage")]
    OtherCall { source_name: String, name: String },
}

/// One `UpdateModelPackage` call, as CloudTrail recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalCall {
    /// CloudTrail's own `eventID` (the EventBridge event's `id` when it lacks one): the handle an
    /// auditor looks the call up with in CloudTrail.
    pub event_id: String,
    pub account: AccountId,
    /// When the call was made (`eventTime`, else the event's `time`).
    pub time: DateTime<Utc>,
    pub package: ModelPackageArn,
    /// The status the call set; `None` when it changed something else.
    pub status: Option<ApprovalStatus>,
    /// The call's `errorCode`: a call that failed decided nothing.
    pub error_code: Option<String>,
    /// `userIdentity.arn`, as CloudTrail gave it.
    pub caller_arn: Option<String>,
    pub caller: Principal,
}

impl ApprovalCall {
    /// Whether `event` is a CloudTrail record (of any call), to be parsed by this type.
    pub fn is_one(event: &Value) -> bool {
        event.get("detail-type").and_then(Value::as_str) == Some(CLOUDTRAIL_DETAIL_TYPE)
    }

    pub fn parse(event: &Value) -> Result<Self, CallError> {
        let text = |pointer: &'static str| event.pointer(pointer).and_then(Value::as_str);
        let required = |pointer: &'static str| text(pointer).ok_or(EventError::Missing(pointer));
        if required("/source")? != SAGEMAKER_SOURCE {
            return Err(EventError::WrongSource(truncated(required("/source")?)).into());
        }
        if required("/detail-type")? != CLOUDTRAIL_DETAIL_TYPE {
            return Err(EventError::WrongDetailType(truncated(required("/detail-type")?)).into());
        }
        let (source_name, name) = (required("/detail/eventSource")?, required("/detail/eventName")?);
        if source_name != SAGEMAKER_EVENT_SOURCE || name != UPDATE_MODEL_PACKAGE {
            return Err(CallError::OtherCall { source_name: truncated(source_name), name: truncated(name) });
        }
        let account: AccountId = required("/account")?.parse().map_err(EventError::from)?;
        // What SageMaker answered names the version canonically; the request, as the caller wrote it.
        let package = text("/detail/responseElements/modelPackageArn").or(text("/detail/requestParameters/modelPackageArn"));
        let package: ModelPackageArn = package.ok_or(EventError::Missing("/detail/requestParameters/modelPackageArn"))?.parse().map_err(EventError::from)?;
        for claimed in [Some(account.as_str()), text("/detail/recipientAccountId")].into_iter().flatten() {
            if claimed != package.account().as_str() {
                let event_account = claimed.parse().map_err(EventError::from)?;
                return Err(EventError::AccountMismatch { event_account, arn_account: package.account().clone() }.into());
            }
        }
        let time = text("/detail/eventTime").map(|t| ("detail.eventTime", t)).or(text("/time").map(|t| ("time", t)));
        let (field, time) = time.ok_or(EventError::Missing("/detail/eventTime"))?;
        let time = DateTime::parse_from_rfc3339(time).map(|t| t.with_timezone(&Utc)).map_err(|_| EventError::BadTime { field, value: truncated(time) })?;
        let event_id = text("/detail/eventID").or(text("/id")).filter(|id| !id.is_empty() && id.len() <= 128).ok_or(EventError::BadEventId)?;
        Ok(Self {
            event_id: event_id.to_owned(),
            account,
            time,
            package,
            status: text("/detail/requestParameters/modelApprovalStatus").and_then(status),
            error_code: text("/detail/errorCode").map(str::to_owned),
            caller_arn: text("/detail/userIdentity/arn").map(str::to_owned),
            caller: Principal::from_user_identity(event.pointer("/detail/userIdentity")),
        })
    }

    /// The approver this call makes of its version at `gate`: `None` unless it approved it.
    pub fn approver(&self, gate: Gate) -> Option<Approver> {
        (self.status == Some(ApprovalStatus::Approved) && self.error_code.is_none()).then(|| Approver {
            gate,
            package: self.package.clone(),
            principal: self.caller_arn.clone(),
            normalised: self.caller.clone(),
            at: self.time,
            event_id: self.event_id.clone(),
        })
    }
}

fn status(raw: &str) -> Option<ApprovalStatus> {
    match raw {
        "Approved" => Some(ApprovalStatus::Approved),
        "Rejected" => Some(ApprovalStatus::Rejected),
        "PendingManualApproval" => Some(ApprovalStatus::PendingManualApproval),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call() -> Value {
        serde_json::from_str(include_str!("../../../../events/cloudtrail-update-model-package-dev.json")).unwrap()
    }

    #[test]
    fn the_approval_names_the_version_the_time_and_the_role_with_its_source_identity() {
        let parsed = ApprovalCall::parse(&call()).unwrap();
        assert_eq!(parsed.package.as_str(), "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3");
        assert_eq!(parsed.status, Some(ApprovalStatus::Approved));
        assert_eq!(parsed.time.to_rfc3339(), "2026-11-21T10:14:55+00:00");
        assert_eq!(parsed.event_id, "7f0c6a52-3c1e-4d0b-9d55-2f7a1e6b8c01");
        let approver = parsed.approver(Gate::DevApproval).unwrap();
        assert_eq!(approver.principal.as_deref(), Some("arn:aws:sts::111111111111:assumed-role/DataScientist/alice"));
        assert_eq!(
            approver.normalised,
            Principal::Role { arn: "arn:aws:iam::111111111111:role/DataScientist".into(), source_identity: Some("alice@example.com".into()) }
        );
    }

    #[test]
    fn a_failed_call_or_another_status_approves_nothing() {
        let mut failed = call();
        failed["detail"]["errorCode"] = json!("AccessDenied");
        assert_eq!(ApprovalCall::parse(&failed).unwrap().approver(Gate::DevApproval), None);
        let mut rejected = call();
        rejected["detail"]["requestParameters"]["modelApprovalStatus"] = json!("Rejected");
        assert_eq!(ApprovalCall::parse(&rejected).unwrap().approver(Gate::DevApproval), None);
        let mut metadata_only = call();
        metadata_only["detail"]["requestParameters"].as_object_mut().unwrap().remove("modelApprovalStatus");
        assert_eq!(ApprovalCall::parse(&metadata_only).unwrap().status, None);
    }

    #[test]
    fn each_bad_field_is_named() {
        let with = |pointer: &str, value: Value| {
            let mut event = call();
            *event.pointer_mut(pointer).unwrap() = value;
            event
        };
        let cases = [
            (with("/source", json!("evil")), "source `evil`"),
            (with("/detail-type", json!("SageMaker Model Package State Change")), "detail-type"),
            (with("/detail/eventName", json!("DeleteModelPackage")), "sagemaker.amazonaws.com DeleteModelPackage"),
            (with("/account", json!("222222222222")), "belongs to account 111111111111"),
            (with("/detail/recipientAccountId", json!("333333333333")), "from account 333333333333"),
            (with("/detail/responseElements/modelPackageArn", json!("arn:aws:sagemaker:us-east-1:111111111111:model-package/churn")), "ARN"),
            (with("/detail/eventTime", json!("yesterday")), "detail.eventTime"),
        ];
        for (event, expected) in cases {
            let message = ApprovalCall::parse(&event).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
        assert!(!ApprovalCall::is_one(&json!({ "detail-type": "SageMaker Model Package State Change" })));
    }
}

//! The "SageMaker Model Package State Change" event, as EventBridge delivers it.
//!
//! Parsed from a `serde_json::Value` rather than a derived struct: real events carry
//! shapes a strict schema would refuse (the documented example repeats `source`, once
//! as an array; `CreationTime` is an ISO string or epoch milliseconds).

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{truncated, AccountId, GroupName, IdError, ModelPackageArn};

pub const SAGEMAKER_SOURCE: &str = "aws.sagemaker";
pub const STATE_CHANGE_DETAIL_TYPE: &str = "SageMaker Model Package State Change";
const EVENT_ID_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a JSON object")]
    NotAnObject,
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` should be {expected}")]
    WrongType { field: &'static str, expected: &'static str },
    #[error("source `{0}` is not aws.sagemaker")]
    WrongSource(String),
    #[error("detail-type `{0}` is not \"SageMaker Model Package State Change\"")]
    WrongDetailType(String),
    #[error("event id is empty or longer than {EVENT_ID_MAX} characters")]
    BadEventId,
    #[error(transparent)]
    BadId(#[from] IdError),
    #[error("the package ARN belongs to account {arn_account}, the event comes from account {event_account}")]
    AccountMismatch { event_account: AccountId, arn_account: AccountId },
    #[error("detail.{field} `{value}` does not match the package ARN")]
    DetailMismatch { field: &'static str, value: String },
    #[error("field `{field}` is not a timestamp: {value}")]
    BadTime { field: &'static str, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalStatus {
    Approved,
    Rejected,
    PendingManualApproval,
}

impl ApprovalStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::PendingManualApproval => "PendingManualApproval",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub event_id: String,
    pub account: AccountId,
    pub time: DateTime<Utc>,
    pub package: ModelPackageArn,
    pub status: ApprovalStatus,
    pub creation_time: Option<DateTime<Utc>>,
}

impl StateChange {
    pub fn parse(event: &Value) -> Result<Self, EventError> {
        let event = event.as_object().ok_or(EventError::NotAnObject)?;
        check_source(event.get("source").ok_or(EventError::Missing("source"))?)?;
        let detail_type = string(event, "detail-type", "detail-type")?;
        if detail_type != STATE_CHANGE_DETAIL_TYPE {
            return Err(EventError::WrongDetailType(truncated(detail_type)));
        }
        let event_id = string(event, "id", "id")?;
        if event_id.is_empty() || event_id.len() > EVENT_ID_MAX {
            return Err(EventError::BadEventId);
        }
        let account: AccountId = string(event, "account", "account")?.parse()?;
        let time = iso_time("time", string(event, "time", "time")?)?;
        let detail =
            event.get("detail").ok_or(EventError::Missing("detail"))?.as_object().ok_or(EventError::WrongType { field: "detail", expected: "an object" })?;
        let package: ModelPackageArn = string(detail, "ModelPackageArn", "detail.ModelPackageArn")?.parse()?;
        if package.account() != &account {
            return Err(EventError::AccountMismatch { event_account: account, arn_account: package.account().clone() });
        }
        check_detail_matches_arn(detail, &package)?;
        let status = approval_status(string(detail, "ModelApprovalStatus", "detail.ModelApprovalStatus")?)?;
        let creation_time = detail.get("CreationTime").map(creation_time).transpose()?;
        Ok(Self { event_id: event_id.to_owned(), account, time, package, status, creation_time })
    }
}

type Object = serde_json::Map<String, Value>;

fn string<'a>(object: &'a Object, key: &str, field: &'static str) -> Result<&'a str, EventError> {
    object.get(key).ok_or(EventError::Missing(field))?.as_str().ok_or(EventError::WrongType { field, expected: "a string" })
}

fn check_source(source: &Value) -> Result<(), EventError> {
    let wrong_type = EventError::WrongType { field: "source", expected: "a string" };
    let sources: Vec<&str> = match source {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) if !many.is_empty() => many.iter().map(|v| v.as_str().ok_or(wrong_type.clone())).collect::<Result<_, _>>()?,
        _ => return Err(wrong_type),
    };
    match sources.iter().find(|s| **s != SAGEMAKER_SOURCE) {
        Some(other) => Err(EventError::WrongSource(truncated(other))),
        None => Ok(()),
    }
}

/// The detail repeats the group and version; a disagreement means a forged or corrupted event.
fn check_detail_matches_arn(detail: &Object, package: &ModelPackageArn) -> Result<(), EventError> {
    if let Some(group) = detail.get("ModelPackageGroupName") {
        let group = group.as_str().ok_or(EventError::WrongType { field: "detail.ModelPackageGroupName", expected: "a string" })?;
        let group: GroupName = group.parse()?;
        if &group != package.group() {
            return Err(EventError::DetailMismatch { field: "ModelPackageGroupName", value: group.to_string() });
        }
    }
    if let Some(version) = detail.get("ModelPackageVersion") {
        let version = version.as_u64().ok_or(EventError::WrongType { field: "detail.ModelPackageVersion", expected: "a positive integer" })?;
        if version != u64::from(package.version()) {
            return Err(EventError::DetailMismatch { field: "ModelPackageVersion", value: version.to_string() });
        }
    }
    Ok(())
}

fn approval_status(raw: &str) -> Result<ApprovalStatus, EventError> {
    match raw {
        "Approved" => Ok(ApprovalStatus::Approved),
        "Rejected" => Ok(ApprovalStatus::Rejected),
        "PendingManualApproval" => Ok(ApprovalStatus::PendingManualApproval),
        _ => Err(EventError::WrongType { field: "detail.ModelApprovalStatus", expected: "Approved, Rejected or PendingManualApproval" }),
    }
}

fn creation_time(raw: &Value) -> Result<DateTime<Utc>, EventError> {
    let field = "detail.CreationTime";
    match raw {
        Value::String(iso) => iso_time(field, iso),
        Value::Number(millis) => millis
            .as_i64()
            .or_else(|| millis.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .ok_or_else(|| EventError::BadTime { field, value: millis.to_string() }),
        _ => Err(EventError::WrongType { field, expected: "an ISO-8601 string or epoch milliseconds" }),
    }
}

fn iso_time(field: &'static str, raw: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| EventError::BadTime { field, value: truncated(raw) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "version": "0",
            "id": "844e2571-85d4-695f-b930-0153b71dcb42",
            "detail-type": "SageMaker Model Package State Change",
            "source": "aws.sagemaker",
            "account": "111111111111",
            "time": "2021-02-24T17:00:14Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "ModelPackageGroupName": "churn",
                "ModelPackageVersion": 3,
                "ModelPackageArn": "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn/3",
                "CreationTime": 1614186014000_i64,
                "ModelApprovalStatus": "Approved",
                "SomethingNew": {"nested": true}
            }
        })
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut event = event();
        let mut cursor = &mut event;
        for key in &path[..path.len() - 1] {
            cursor = cursor.get_mut(*key).unwrap();
        }
        cursor[path[path.len() - 1]] = value;
        event
    }

    #[test]
    fn creation_time_as_epoch_millis_and_as_iso_string_mean_the_same() {
        let millis = StateChange::parse(&event()).unwrap();
        let iso = StateChange::parse(&with(&["detail", "CreationTime"], json!("2021-02-24T17:00:14Z"))).unwrap();
        assert_eq!(millis.creation_time, iso.creation_time);
        assert_eq!(millis.creation_time.unwrap().to_rfc3339(), "2021-02-24T17:00:14+00:00");
    }

    #[test]
    fn source_may_be_repeated_as_an_array() {
        let parsed = StateChange::parse(&with(&["source"], json!(["aws.sagemaker"]))).unwrap();
        assert_eq!(parsed.status, ApprovalStatus::Approved);
        let forged = StateChange::parse(&with(&["source"], json!(["aws.sagemaker", "evil"])));
        assert_eq!(forged, Err(EventError::WrongSource("evil".into())));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (with(&["detail-type"], json!("Other")), "detail-type"),
            (with(&["account"], json!("222222222222")), "belongs to account 111111111111"),
            (with(&["account"], json!(111111111111_i64)), "`account` should be a string"),
            (with(&["detail", "ModelPackageArn"], json!(null)), "`detail.ModelPackageArn` should be a string"),
            (with(&["detail", "ModelPackageVersion"], json!(4)), "ModelPackageVersion `4`"),
            (with(&["detail", "ModelPackageGroupName"], json!("other")), "ModelPackageGroupName `other`"),
            (with(&["detail", "CreationTime"], json!("yesterday")), "not a timestamp"),
            (with(&["detail", "ModelApprovalStatus"], json!("Maybe")), "ModelApprovalStatus"),
            (with(&["id"], json!("")), "event id"),
            (with(&["time"], json!("soon")), "`time` is not a timestamp"),
            (json!([1, 2]), "not a JSON object"),
        ];
        for (event, expected) in cases {
            let message = StateChange::parse(&event).unwrap_err().to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn the_documented_example_with_its_duplicate_source_key_parses() {
        let raw = include_str!("../../../../events/sagemaker-state-change-aws-docs.json");
        let value: Value = serde_json::from_str(raw).unwrap();
        let parsed = StateChange::parse(&value).unwrap();
        assert_eq!(parsed.status, ApprovalStatus::Rejected);
        assert_eq!(parsed.package.version(), 2);
    }
}

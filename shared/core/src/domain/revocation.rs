//! `ModelRevoked`: promote-model's word, on the central bus, that a dev rejection revoked a
//! promoted version. It only sets the revocation's reach in motion: what is done to the
//! pipeline and the endpoints follows what the ledger holds, never what the event says.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::EventError;
use super::ids::{AccountId, ModelPackageArn};

pub const REVOKED_DETAIL_TYPE: &str = "ModelRevoked";

/// The event's detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRevoked {
    pub source_package: ModelPackageArn,
    pub central_package: ModelPackageArn,
    /// The dev rejection that revoked it.
    pub event_id: String,
    pub reason: String,
}

/// One delivery of a `ModelRevoked` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedDelivery {
    /// The envelope's id: one per publication, so a republication has another.
    pub id: String,
    /// The account that published it. EventBridge always sets it, and the rule admits only the
    /// central account's own; moto's bus drops it, so it is checked when it is there. What the
    /// revocation does rests on the ledger, not on the envelope.
    pub account: Option<AccountId>,
    pub revoked: ModelRevoked,
}

impl ModelRevoked {
    /// Whether an EventBridge event is one: the functions that take several kinds of event
    /// route on it.
    pub fn is_one(event: &Value) -> bool {
        event.get("detail-type").and_then(Value::as_str) == Some(REVOKED_DETAIL_TYPE)
    }

    pub fn parse(event: &Value) -> Result<RevokedDelivery, EventError> {
        let text = |field: &'static str| event.get(field).and_then(Value::as_str).ok_or(EventError::Missing(field));
        if !Self::is_one(event) {
            return Err(EventError::WrongType { field: "detail-type", expected: "\"ModelRevoked\"" });
        }
        let id = text("id")?.to_owned();
        let account = event.get("account").and_then(Value::as_str).map(str::parse).transpose()?;
        let detail = event.get("detail").ok_or(EventError::Missing("detail"))?;
        let revoked = serde_json::from_value(detail.clone()).map_err(|_| EventError::WrongType { field: "detail", expected: "a ModelRevoked detail" })?;
        Ok(RevokedDelivery { id, account, revoked })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_delivery_reads_back_what_was_published_and_nothing_else_passes_for_one() {
        let revoked = ModelRevoked {
            source_package: "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn/3".parse().unwrap(),
            central_package: "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1".parse().unwrap(),
            event_id: "dev-rejection-1".into(),
            reason: "rejected in dev".into(),
        };
        let event = json!({ "id": "e-9", "account": "222222222222", "detail-type": REVOKED_DETAIL_TYPE, "source": "model-promotion", "detail": revoked });

        let delivery = ModelRevoked::parse(&event).unwrap();

        assert_eq!((delivery.id.as_str(), delivery.account.as_ref().map(AccountId::as_str)), ("e-9", Some("222222222222")));
        assert_eq!(delivery.revoked, revoked);
        let promoted = json!({ "id": "e-9", "account": "222222222222", "detail-type": "ModelPromoted", "detail": {} });
        assert!(!ModelRevoked::is_one(&promoted) && ModelRevoked::parse(&promoted).is_err());
        let mut bad = event.clone();
        bad["detail"]["central_package"] = json!("not an arn");
        assert!(ModelRevoked::parse(&bad).is_err());
    }
}

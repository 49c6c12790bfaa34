//! What an operator's command writes names the operator: every audit entry the command's ports
//! write (a rollback's, a replayed function's) carries `operator` in its detail, as STS named the
//! person at the terminal. The role sessions the command assumes carry them too (the AWS side).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::deployment::DeployPorts;
use crate::domain::audit::AuditEntry;
use crate::domain::chain::StoredChain;
use crate::domain::ids::{GroupName, ModelPackageArn};
use crate::domain::ledger::{Claim, ClaimResult, PromotionRecord};
use crate::domain::operator::Operator;
use crate::ports::{AuditTrail, PortResult, PromotePorts, PromotionLedger};

/// `ports` with every audit entry they write naming `operator`.
pub fn deploy_ports_for(ports: &DeployPorts, operator: &Operator) -> DeployPorts {
    DeployPorts { audit: Arc::new(Named { inner: ports.audit.clone(), operator: operator.clone() }), ..ports.clone() }
}

/// `ports` with every audit entry they write naming `operator`, the promotion's last one included.
pub fn promote_ports_for(ports: &PromotePorts, operator: &Operator) -> PromotePorts {
    PromotePorts {
        audit: Arc::new(Named { inner: ports.audit.clone(), operator: operator.clone() }),
        ledger: Arc::new(Named { inner: ports.ledger.clone(), operator: operator.clone() }),
        ..ports.clone()
    }
}

/// The entry with `operator` in its detail (a detail that is no object is kept under `detail`).
pub fn named(entry: &AuditEntry, operator: &Operator) -> AuditEntry {
    let detail = match &entry.detail {
        Value::Object(fields) => {
            let mut fields = fields.clone();
            fields.insert("operator".into(), operator.audit_detail());
            Value::Object(fields)
        }
        other => json!({ "detail": other, "operator": operator.audit_detail() }),
    };
    AuditEntry { detail, ..entry.clone() }
}

/// A port that writes audit entries in the operator's name.
struct Named<P: ?Sized> {
    inner: Arc<P>,
    operator: Operator,
}

#[async_trait]
impl AuditTrail for Named<dyn AuditTrail> {
    async fn append(&self, entry: &AuditEntry) -> PortResult<()> {
        self.inner.append(&named(entry, &self.operator)).await
    }
    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>> {
        self.inner.history(package).await
    }
    async fn chained_models(&self) -> PortResult<Vec<GroupName>> {
        self.inner.chained_models().await
    }
    async fn chain(&self, model: &GroupName) -> PortResult<StoredChain> {
        self.inner.chain(model).await
    }
}

#[async_trait]
impl PromotionLedger for Named<dyn PromotionLedger> {
    async fn claim(&self, claim: &Claim) -> PortResult<ClaimResult> {
        self.inner.claim(claim).await
    }
    async fn get(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        self.inner.get(source).await
    }
    async fn save(&self, record: &PromotionRecord, owner: &str) -> PortResult<()> {
        self.inner.save(record, owner).await
    }
    async fn finish(&self, record: &PromotionRecord, owner: &str, entry: &AuditEntry) -> PortResult<()> {
        self.inner.finish(record, owner, &named(entry, &self.operator)).await
    }
    async fn renew(&self, source: &ModelPackageArn, owner: &str, lease_until: DateTime<Utc>) -> PortResult<()> {
        self.inner.renew(source, owner, lease_until).await
    }
    async fn release(&self, source: &ModelPackageArn, owner: &str) -> PortResult<()> {
        self.inner.release(source, owner).await
    }
    async fn record_decision(&self, record: &PromotionRecord) -> PortResult<bool> {
        self.inner.record_decision(record).await
    }
    async fn promotions(&self) -> PortResult<Vec<PromotionRecord>> {
        self.inner.promotions().await
    }
    async fn promotion_of(&self, central: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        self.inner.promotion_of(central).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::PromoteWorld;
    use crate::promotion::{handle_state_change, Invocation, Outcome};

    fn operator() -> Operator {
        Operator::from_caller_arn("arn:aws:sts::222222222222:assumed-role/Operations/dana@example.com")
    }

    #[tokio::test]
    async fn a_replayed_promotion_names_the_operator_in_its_audit_entry() {
        let world = PromoteWorld::new();
        let ports = promote_ports_for(&world.ports, &operator());
        let event: Value = serde_json::from_str(include_str!("../../../events/model-package-approved.json")).unwrap();
        let invocation = Invocation { request_id: "cli-1".into(), deadline: Utc::now() + chrono::Duration::minutes(5) };

        let outcome = handle_state_change(&ports, &world.config, &event, &invocation).await.unwrap();

        let Outcome::Promoted(summary) = outcome else { panic!("{outcome:?}") };
        let trail = world.ledger.history(&summary.source).await.unwrap();
        assert_eq!(trail.len(), 1);
        assert_eq!(trail[0].detail["operator"]["arn"], "arn:aws:sts::222222222222:assumed-role/Operations/dana@example.com");
        assert_eq!(trail[0].detail["operator"]["source_identity"], "dana@example.com");
        assert_eq!(trail[0].detail["central_package"], json!(summary.central_package), "the entry's own detail stays");
    }

    #[test]
    fn a_detail_that_is_no_object_is_kept_beside_the_operator() {
        let package: ModelPackageArn = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1".parse().unwrap();
        let entry = AuditEntry::now(&package, "e", crate::domain::audit::AuditAction::Refused, json!("why"));
        let named = named(&entry, &operator());
        assert_eq!((named.detail["detail"].clone(), named.detail["operator"]["source_identity"].clone()), (json!("why"), json!("dana@example.com")));
        assert_eq!((named.event_id, named.action, named.at), (entry.event_id, entry.action, entry.at));
    }
}

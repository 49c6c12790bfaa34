//! The ledger table in its four roles, and the audit table with one hash chain per model, with
//! the rules DynamoDB's conditions state; each write is atomic under the locks (taken in the
//! order records, audit, chains).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::audit::AuditEntry;
use crate::domain::chain::{chain_model, Head, Identity, Link, Recorded, StoredChain};
use crate::domain::identity::{Approver, Gate};
use crate::domain::ids::{AccountId, GroupName, ModelPackageArn, Stage};
use crate::domain::ledger::{Claim, ClaimResult, DeploymentRecord, PromotionRecord, StartClaim, TestRecord};
use crate::ports::{ApproverRecords, AuditTrail, DeploymentRecords, FailureKind, PortError, PortResult, PromotionLedger, StartClaims, TestRecords};
use crate::promotion::policy::{claim_granted, decision_supersedes};

/// A start claim's lease and, once started, its execution.
pub type StartEntry = (chrono::DateTime<chrono::Utc>, Option<String>);

pub struct FakeLedger {
    pub records: Mutex<HashMap<String, PromotionRecord>>,
    /// Every entry appended, by its identity (package, event id, action): what a redelivery finds.
    pub audit: Mutex<BTreeMap<String, AuditEntry>>,
    /// The audit table: each model's chain, as a test may tamper with it.
    pub chains: Mutex<FakeChains>,
    /// Tells a central version (its group is its model) from a dev version.
    pub central_account: AccountId,
    pub deployments: Mutex<HashMap<String, DeploymentRecord>>,
    pub starts: Mutex<HashMap<String, StartEntry>>,
    /// How many times a claim's lease was renewed.
    pub renewals: Mutex<usize>,
    /// The source version of each central version promoted, as the finished record names it.
    pub promoted_from: Mutex<HashMap<String, ModelPackageArn>>,
    pub tests: Mutex<HashMap<String, TestRecord>>,
    /// The executions started for each central version.
    pub executions: Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>,
    /// Who approved each version at each gate, the first record kept.
    pub approvers: Mutex<BTreeMap<(String, Gate), Approver>>,
}

impl Default for FakeLedger {
    /// The central account of the fakes' worlds.
    fn default() -> Self {
        Self {
            records: Mutex::default(),
            audit: Mutex::default(),
            chains: Mutex::default(),
            central_account: "222222222222".parse().expect("an account id"),
            deployments: Mutex::default(),
            starts: Mutex::default(),
            renewals: Mutex::default(),
            promoted_from: Mutex::default(),
            tests: Mutex::default(),
            executions: Mutex::default(),
            approvers: Mutex::default(),
        }
    }
}

/// Each model's entries by position, its head, and the identities recorded with its entries.
#[derive(Debug, Default)]
pub struct FakeChains {
    pub links: BTreeMap<String, BTreeMap<u64, Link>>,
    pub heads: BTreeMap<String, Head>,
    pub identities: BTreeMap<String, Vec<Identity>>,
}

impl FakeChains {
    /// Chains the entry to its model's head.
    fn extend(&mut self, model: &GroupName, entry: &AuditEntry) {
        let head = self.heads.get(model.as_str()).cloned().unwrap_or_else(Head::genesis);
        let (link, next) = head.next(model, Recorded::of(entry));
        self.identities.entry(model.to_string()).or_default().push(Identity::of(&link));
        self.links.entry(model.to_string()).or_default().insert(link.position, link);
        self.heads.insert(model.to_string(), next);
    }
}

pub(crate) fn test_key(execution_id: &str, package: &ModelPackageArn, stage: Stage) -> String {
    format!("{execution_id}#{package}#{stage}")
}

#[async_trait]
impl TestRecords for FakeLedger {
    async fn record_test(&self, record: &TestRecord) -> PortResult<()> {
        let mut tests = self.tests.lock().unwrap();
        let key = test_key(&record.execution_id, &record.package, record.stage);
        if tests.contains_key(&key) {
            return Err(PortError::new("PutItem", FailureKind::Conflict, "ConditionalCheckFailedException: the test record exists"));
        }
        tests.insert(key, record.clone());
        Ok(())
    }

    async fn test_record(&self, execution_id: &str, package: &ModelPackageArn, stage: Stage) -> PortResult<Option<TestRecord>> {
        Ok(self.tests.lock().unwrap().get(&test_key(execution_id, package, stage)).cloned())
    }
}

impl FakeLedger {
    pub fn record(&self, source: &ModelPackageArn) -> Option<PromotionRecord> {
        self.records.lock().unwrap().get(source.as_str()).cloned()
    }
}

#[async_trait]
impl PromotionLedger for FakeLedger {
    async fn claim(&self, claim: &Claim) -> PortResult<ClaimResult> {
        let mut records = self.records.lock().unwrap();
        let existing = records.get(claim.source.as_str());
        if !claim_granted(claim, existing) {
            return Ok(ClaimResult::Held(existing.cloned().expect("held means present")));
        }
        let mut record = existing.cloned().unwrap_or_else(|| {
            PromotionRecord::new(claim.source.clone(), crate::domain::ledger::PromotionState::InProgress, &claim.event_id, claim.event_time)
        });
        record.state = crate::domain::ledger::PromotionState::InProgress;
        record.owner = Some(claim.owner.clone());
        record.lease_until = Some(claim.lease_until);
        record.event_id = claim.event_id.clone();
        record.decided_at = claim.event_time;
        record.reason = None;
        record.claims += 1;
        records.insert(claim.source.to_string(), record.clone());
        Ok(ClaimResult::Granted(record))
    }

    async fn get(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        Ok(self.record(source))
    }

    async fn save(&self, record: &PromotionRecord, owner: &str) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        let held = records.get(record.source.as_str()).and_then(|r| r.owner.as_deref()) == Some(owner);
        if !held {
            return Err(PortError::new("PutItem", FailureKind::Retryable, "claim lost"));
        }
        records.insert(record.source.to_string(), record.clone());
        Ok(())
    }

    async fn finish(&self, record: &PromotionRecord, owner: &str, entry: &AuditEntry) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        let held = records.get(record.source.as_str()).and_then(|r| r.owner.as_deref()) == Some(owner);
        let mut audit = self.audit.lock().unwrap();
        let key = audit_key(entry);
        if !held || audit.contains_key(&key) {
            return Err(PortError::new("TransactWriteItems", FailureKind::Retryable, "claim lost"));
        }
        records.insert(record.source.to_string(), record.clone());
        self.chains.lock().unwrap().extend(&chain_model(&entry.source, &self.central_account), entry);
        audit.insert(key, entry.clone());
        if let Some(central) = &record.central_package {
            self.promoted_from.lock().unwrap().insert(central.to_string(), record.source.clone());
        }
        Ok(())
    }

    async fn renew(&self, source: &ModelPackageArn, owner: &str, lease_until: chrono::DateTime<chrono::Utc>) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        let held =
            records.get_mut(source.as_str()).filter(|r| r.owner.as_deref() == Some(owner) && r.state == crate::domain::ledger::PromotionState::InProgress);
        let record = held.ok_or_else(|| PortError::new("UpdateItem", FailureKind::Conflict, "claim lost"))?;
        record.lease_until = Some(lease_until);
        *self.renewals.lock().unwrap() += 1;
        Ok(())
    }

    async fn release(&self, source: &ModelPackageArn, owner: &str) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        if let Some(record) = records.get_mut(source.as_str()).filter(|r| r.owner.as_deref() == Some(owner)) {
            record.lease_until = Some(chrono::DateTime::UNIX_EPOCH);
        }
        Ok(())
    }

    async fn record_decision(&self, record: &PromotionRecord) -> PortResult<bool> {
        let mut records = self.records.lock().unwrap();
        if !decision_supersedes(records.get(record.source.as_str()), record) {
            return Ok(false);
        }
        records.insert(record.source.to_string(), record.clone());
        Ok(true)
    }

    async fn promotions(&self) -> PortResult<Vec<PromotionRecord>> {
        Ok(self.records.lock().unwrap().values().cloned().collect())
    }

    async fn promotion_of(&self, central: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        let source = self.promoted_from.lock().unwrap().get(central.as_str()).cloned();
        Ok(source.and_then(|source| self.record(&source)))
    }
}

#[async_trait]
impl ApproverRecords for FakeLedger {
    async fn record_approver(&self, approver: &Approver) -> PortResult<bool> {
        let mut approvers = self.approvers.lock().unwrap();
        let key = (approver.package.to_string(), approver.gate);
        if approvers.contains_key(&key) {
            return Ok(false);
        }
        approvers.insert(key, approver.clone());
        Ok(true)
    }

    async fn approvers(&self, package: &ModelPackageArn) -> PortResult<Vec<Approver>> {
        let approvers = self.approvers.lock().unwrap();
        Ok(Gate::ALL.iter().filter_map(|gate| approvers.get(&(package.to_string(), *gate)).cloned()).collect())
    }
}

#[async_trait]
impl AuditTrail for FakeLedger {
    async fn append(&self, entry: &AuditEntry) -> PortResult<()> {
        let mut audit = self.audit.lock().unwrap();
        if let std::collections::btree_map::Entry::Vacant(vacant) = audit.entry(audit_key(entry)) {
            self.chains.lock().unwrap().extend(&chain_model(&entry.source, &self.central_account), entry);
            vacant.insert(entry.clone());
        }
        Ok(())
    }

    /// Read from the chain, as the audit table's adapter reads it.
    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>> {
        let model = chain_model(package, &self.central_account);
        let chains = self.chains.lock().unwrap();
        let links = chains.links.get(model.as_str()).into_iter().flat_map(|links| links.values());
        let mut entries =
            links.filter(|link| link.recorded.package == package.as_str()).map(|link| link.entry().map_err(PortError::from)).collect::<PortResult<Vec<_>>>()?;
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }

    async fn chained_models(&self) -> PortResult<Vec<GroupName>> {
        let chains = self.chains.lock().unwrap();
        let models: std::collections::BTreeSet<&String> = chains.heads.keys().chain(chains.links.keys()).chain(chains.identities.keys()).collect();
        Ok(models.into_iter().filter_map(|model| model.parse().ok()).collect())
    }

    async fn chain(&self, model: &GroupName) -> PortResult<StoredChain> {
        let chains = self.chains.lock().unwrap();
        Ok(StoredChain {
            links: chains.links.get(model.as_str()).map(|links| links.values().cloned().collect()).unwrap_or_default(),
            head: chains.heads.get(model.as_str()).cloned(),
            identities: chains.identities.get(model.as_str()).cloned().unwrap_or_default(),
        })
    }
}

#[async_trait]
impl DeploymentRecords for FakeLedger {
    async fn deployment(&self, stage: Stage, endpoint: &str) -> PortResult<Option<DeploymentRecord>> {
        Ok(self.deployments.lock().unwrap().get(&format!("{stage}#{endpoint}")).cloned())
    }

    async fn record_deployment(&self, record: &DeploymentRecord) -> PortResult<()> {
        self.deployments.lock().unwrap().insert(format!("{}#{}", record.stage, record.endpoint), record.clone());
        Ok(())
    }
}

#[async_trait]
impl StartClaims for FakeLedger {
    async fn claim_start(&self, event_id: &str, lease_until: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> PortResult<StartClaim> {
        let mut starts = self.starts.lock().unwrap();
        match starts.get(event_id) {
            Some((_, Some(execution_id))) => Ok(StartClaim::Started { execution_id: execution_id.clone() }),
            Some((lease, None)) if *lease >= now => Ok(StartClaim::Busy),
            _ => {
                starts.insert(event_id.to_owned(), (lease_until, None));
                Ok(StartClaim::Granted)
            }
        }
    }

    async fn record_start(&self, event_id: &str, execution_id: &str) -> PortResult<()> {
        let mut starts = self.starts.lock().unwrap();
        let entry = starts.entry(event_id.to_owned()).or_insert((chrono::Utc::now(), None));
        entry.1 = Some(execution_id.to_owned());
        Ok(())
    }

    async fn record_execution(&self, package: &ModelPackageArn, execution_id: &str) -> PortResult<()> {
        self.executions.lock().unwrap().entry(package.to_string()).or_default().insert(execution_id.to_owned());
        Ok(())
    }

    async fn executions_of(&self, package: &ModelPackageArn) -> PortResult<Vec<String>> {
        Ok(self.executions.lock().unwrap().get(package.as_str()).map(|ids| ids.iter().cloned().collect()).unwrap_or_default())
    }
}

/// An audit entry's identity: its package, event and action, as the DynamoDB sort key has it.
fn audit_key(entry: &AuditEntry) -> String {
    format!("{}#{}#{}", entry.source, entry.event_id, entry.action)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::domain::audit::AuditAction;
    use crate::domain::chain::verify;
    use crate::domain::ledger::PromotionState;

    const DEV: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn/3";
    const CENTRAL: &str = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1";

    fn model() -> GroupName {
        "churn-111111111111".parse().unwrap()
    }

    fn entry(package: &str, event: &str, action: AuditAction) -> AuditEntry {
        AuditEntry::now(&package.parse().unwrap(), event, action, json!({ "event": event }))
    }

    async fn verified(ledger: &FakeLedger) -> u64 {
        verify(&model(), &ledger.chain(&model()).await.unwrap()).expect("the chain verifies").entries
    }

    #[tokio::test]
    async fn the_dev_and_central_entries_of_a_model_are_one_chain_and_a_redelivery_is_chained_once() {
        let ledger = FakeLedger::default();
        ledger.append(&entry(DEV, "e-1", AuditAction::RejectedInDev)).await.unwrap();
        ledger.append(&entry(CENTRAL, "job-1", AuditAction::DeployStarted)).await.unwrap();
        ledger.append(&entry(CENTRAL, "job-1", AuditAction::DeployStarted)).await.unwrap();
        ledger.append(&entry(CENTRAL, "job-1", AuditAction::Deployed)).await.unwrap();

        assert_eq!(verified(&ledger).await, 3);
        let chain = ledger.chain(&model()).await.unwrap();
        let recorded: Vec<(u64, &str, &str)> = chain.links.iter().map(|l| (l.seq, l.recorded.package.as_str(), l.recorded.action.as_str())).collect();
        assert_eq!(recorded, [(1, DEV, "RejectedInDev"), (2, CENTRAL, "deploy-started"), (3, CENTRAL, "deployed")]);
        assert_eq!(ledger.chained_models().await.unwrap(), [model()]);
        let history = ledger.history(&CENTRAL.parse().unwrap()).await.unwrap();
        assert_eq!(history.iter().map(|e| e.action.to_string()).collect::<Vec<_>>(), ["deploy-started", "deployed"]);
    }

    #[tokio::test]
    async fn concurrent_appends_to_one_chain_are_each_chained_exactly_once_without_a_gap() {
        let ledger = Arc::new(FakeLedger::default());
        let writes = (0..40).map(|i| {
            let ledger = ledger.clone();
            // Every entry twice: a redelivery racing its first delivery.
            tokio::spawn(async move { ledger.append(&entry(CENTRAL, &format!("job-{}", i % 20), AuditAction::DeployStarted)).await })
        });
        for write in futures::future::join_all(writes).await {
            write.unwrap().unwrap();
        }
        assert_eq!(verified(&ledger).await, 20);
    }

    #[tokio::test]
    async fn finish_chains_its_entry_with_the_record_or_neither() {
        let ledger = FakeLedger::default();
        let source: ModelPackageArn = DEV.parse().unwrap();
        let claim = crate::domain::ledger::Claim {
            source: source.clone(),
            event_id: "e-1".into(),
            event_time: chrono::Utc::now(),
            owner: "me".into(),
            lease_until: chrono::Utc::now() + chrono::Duration::minutes(5),
            now: chrono::Utc::now(),
        };
        ledger.claim(&claim).await.unwrap();
        let mut record = PromotionRecord::new(source.clone(), PromotionState::Promoted, "e-1", claim.event_time);
        record.owner = Some("me".into());
        record.central_package = Some(CENTRAL.parse().unwrap());
        let promoted = entry(DEV, "e-1", AuditAction::Promoted);

        ledger.finish(&record, "someone else", &promoted).await.expect_err("not the owner");
        assert_eq!(ledger.chain(&model()).await.unwrap(), StoredChain::default(), "nothing chained without the record");

        ledger.finish(&record, "me", &promoted).await.unwrap();
        assert_eq!(verified(&ledger).await, 1);
        assert_eq!(ledger.record(&source).unwrap().state, PromotionState::Promoted);
        assert_eq!(ledger.promotion_of(&CENTRAL.parse().unwrap()).await.unwrap().map(|r| r.source), Some(source));
    }

    #[tokio::test]
    async fn history_reads_what_the_chain_stores() {
        let ledger = FakeLedger::default();
        ledger.append(&entry(CENTRAL, "job-1", AuditAction::TestsPassed)).await.unwrap();
        ledger.chains.lock().unwrap().links.get_mut(model().as_str()).unwrap().get_mut(&1).unwrap().recorded.action = "tests-failed".into();

        let history = ledger.history(&CENTRAL.parse().unwrap()).await.unwrap();

        assert_eq!(history[0].action, AuditAction::TestsFailed);
    }
}

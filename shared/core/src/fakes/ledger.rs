//! The ledger table in its four roles, with the rules DynamoDB's conditions state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::audit::AuditEntry;
use crate::domain::identity::{Approver, Gate};
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::ledger::{Claim, ClaimResult, DeploymentRecord, PromotionRecord, StartClaim, TestRecord};
use crate::ports::{ApproverRecords, AuditTrail, DeploymentRecords, FailureKind, PortError, PortResult, PromotionLedger, StartClaims, TestRecords};
use crate::promotion::policy::{claim_granted, decision_supersedes};

/// A start claim's lease and, once started, its execution.
pub type StartEntry = (chrono::DateTime<chrono::Utc>, Option<String>);

#[derive(Default)]
pub struct FakeLedger {
    pub records: Mutex<HashMap<String, PromotionRecord>>,
    pub audit: Mutex<BTreeMap<String, AuditEntry>>,
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
        self.audit.lock().unwrap().entry(audit_key(entry)).or_insert_with(|| entry.clone());
        Ok(())
    }

    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>> {
        let mut entries: Vec<AuditEntry> = self.audit.lock().unwrap().values().filter(|e| &e.source == package).cloned().collect();
        entries.sort_by_key(|e| e.at);
        Ok(entries)
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

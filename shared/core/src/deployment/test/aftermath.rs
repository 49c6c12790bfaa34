//! What a failed run does after its verdict: the report, the rejection, the rollback, each on
//! its own, and what of it could not be done.

use chrono::Utc;
use serde_json::{json, Value};
use tracing::info;

use crate::deployment::rollback::ModelPast;
use crate::domain::audit::AuditAction;
use crate::domain::deploy::deployment_name;
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::S3Uri;
use crate::domain::ledger::{DeploymentRecord, DeploymentState};
use crate::ports::{Endpoints, PortResult};

use super::report::TestReport;
use super::{within, TestError, TestRun};

/// What a failed run did and did not manage to do after the verdict.
#[derive(Default)]
pub(super) struct Aftermath {
    done: Vec<String>,
    undone: Vec<String>,
}

impl Aftermath {
    fn note<T>(&mut self, step: String, result: Result<T, TestError>) -> Option<T> {
        result.map_err(|error| self.undone.push(format!("{step} ({error})"))).ok()
    }

    pub(super) fn describe(&self) -> String {
        let mut text = if self.done.is_empty() { "the version is not Rejected and the endpoint not rolled back".to_owned() } else { self.done.join("; ") };
        if !self.undone.is_empty() {
            text.push_str(&format!("; NOT DONE, to do by hand: {}", self.undone.join("; ")));
        }
        text
    }
}

impl TestRun<'_> {
    /// Records the failure and rejects the version before the endpoint is touched, each step on
    /// its own: one that fails is named in the job's failure, the others still happen. Returns
    /// what was done and where the report is, if it was stored.
    pub(super) async fn failed(&self, endpoints: &dyn Endpoints, report: &TestReport, names: &str) -> (Aftermath, Option<S3Uri>) {
        let mut aftermath = Aftermath::default();
        let by = self.answer_by;
        let stored = aftermath.note("write the report".into(), within(by, "writing the report", self.store_report(report)).await);
        let record = stored.map(|stored| self.test_record(report, stored));
        if let Some(record) = &record {
            let recorded = within(by, "recording the failed tests", self.record(record.clone())).await;
            aftermath.note("record the verdict in the ledger".into(), recorded);
        }
        let detail = record.as_ref().map_or_else(|| summary(report), |record| super::verdict::detail(report, record));
        let audited = within(by, "recording the failed tests", self.audit(AuditAction::TestsFailed, detail)).await;
        aftermath.note("record the failed tests in the ledger".into(), audited);
        if let Some(record) = &record {
            let carded = within(by, "adding the report to the model card", self.add_to_card(report, record)).await;
            aftermath.note("add the report to the model card".into(), carded);
        }
        let uri = record.map(|r| r.report);

        let at = uri.as_ref().map_or_else(|| "not stored".to_owned(), S3Uri::to_string);
        let reason = format!("failed tests on {}: {names}; report {at}", self.endpoint);
        let rejected = within(by, "rejecting the version", self.reject(&reason)).await;
        if aftermath.note(format!("mark {} Rejected", self.package()), rejected).is_some() {
            aftermath.done.push(format!("{} was marked Rejected", self.package()));
            let audited = within(by, "recording the rejection", self.audit(AuditAction::RejectedByTests, json!({ "reason": reason }))).await;
            aftermath.note("record the rejection in the ledger".into(), audited);
        }

        let restored = within(by, "rolling the endpoint back", self.restore(endpoints)).await;
        if let Some(restored) = aftermath.note(format!("roll {} back", self.endpoint), restored) {
            aftermath.done.push(format!("the endpoint was rolled back to {restored}"));
            let recorded = within(by, "recording the rollback", self.record_rollback(&restored)).await;
            aftermath.note("record the rollback in the ledger".into(), recorded);
        }
        (aftermath, uri)
    }

    async fn reject(&self, reason: &str) -> Result<(), TestError> {
        let central = self.ports.central_registry.describe_package(self.package()).await?;
        self.ports.central_registry.set_approval(&central, ApprovalStatus::Rejected, reason, &[]).await?;
        info!(job_id = %self.job.id, package = %self.package(), decision = "rejected-by-tests", "tests");
        Ok(())
    }

    /// Puts the endpoint back on the config this version replaced, or deletes it when there was none.
    async fn restore(&self, endpoints: &dyn Endpoints) -> Result<String, TestError> {
        let record = self.ports.deployments.deployment(self.stage(), &self.endpoint).await?;
        let Some(record) = record.filter(|r| &r.package == self.package()) else {
            return Err(TestError::NoDeploymentRecord { endpoint: self.endpoint.clone(), package: self.package().clone() });
        };
        let previous_config = self.rollback_config(&record).await?;
        let restored = restore(endpoints, &self.endpoint, previous_config.as_deref()).await?;
        info!(job_id = %self.job.id, package = %self.package(), endpoint = %self.endpoint, restored = %restored, decision = "rolled-back", "tests");
        Ok(restored)
    }

    /// The config this version replaced, unless that version was revoked in dev since: then the
    /// config of the newest earlier version a rollback may return to, or none (the endpoint goes).
    async fn rollback_config(&self, record: &DeploymentRecord) -> Result<Option<String>, TestError> {
        let Some(previous) = &record.previous_package else {
            return Ok(record.previous_config.clone());
        };
        let past = ModelPast::load(self.ports, self.package().group()).await?;
        if !past.is_revoked(previous) {
            return Ok(record.previous_config.clone());
        }
        let lookback = past.previous_good(self.ports.central_registry.as_ref(), self.stage(), &self.endpoint, self.package()).await?;
        let target = lookback.target.as_ref().map_or_else(|| "nothing".to_owned(), ToString::to_string);
        info!(job_id = %self.job.id, package = %self.package(), revoked = %previous, target = %target, decision = "revoked-rollback-target-passed-over", "tests");
        Ok(lookback.target.map(|version| deployment_name(&version, self.stage())))
    }

    async fn record_rollback(&self, restored: &str) -> Result<(), TestError> {
        if let Some(mut record) = self.ports.deployments.deployment(self.stage(), &self.endpoint).await?.filter(|r| &r.package == self.package()) {
            record.state = DeploymentState::RolledBack;
            record.at = Utc::now();
            self.ports.deployments.record_deployment(&record).await?;
        }
        self.audit(AuditAction::RolledBack, json!({ "endpoint": self.endpoint, "restored": restored })).await
    }
}

/// The audit entry of a failure whose report could not be stored.
fn summary(report: &TestReport) -> Value {
    json!({ "report": null, "release_fingerprint": report.release_fingerprint, "execution_id": report.execution_id, "passed": report.passed, "failed": report.failed })
}

/// Puts `endpoint` back on `config`, or deletes it when there was nothing before.
pub async fn restore(endpoints: &dyn Endpoints, endpoint: &str, previous_config: Option<&str>) -> PortResult<String> {
    match previous_config {
        Some(config) => {
            endpoints.update_endpoint(endpoint, config, None).await?;
            Ok(config.to_owned())
        }
        None => {
            endpoints.delete_endpoint(endpoint).await?;
            Ok("nothing (the endpoint was deleted)".to_owned())
        }
    }
}

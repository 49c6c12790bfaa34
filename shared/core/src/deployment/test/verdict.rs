//! The verdict in the ledger: written once per execution, version and stage by the job that ran
//! the cases; the only thing that lets a job finish a pass. A continuation token that says
//! `passed` is taken only when the ledger's record names the same report, version and digest.

use chrono::Utc;
use serde_json::{json, Value};
use tracing::info;

use crate::domain::evidence::check_report;
use crate::domain::ledger::TestRecord;
use crate::ports::FailureKind;

use super::report::{StoredReport, TestReport};
use super::{Pass, TestError, TestRun};

/// The longest report read back: a report takes some 150 bytes a case.
const REPORT_READ_MAX: u64 = 8 * 1024 * 1024;

/// A pass as the ledger records it and the stored report, read back at the recorded version,
/// confirms it: what the approvers are told and the approval shows.
pub(super) struct Confirmed {
    pub record: TestRecord,
    pub report: TestReport,
    pub passed: usize,
    pub total: usize,
    pub slowest_ms: u64,
}

/// The audit entry of a verdict: the report and its evidence, the release and the execution.
pub(super) fn detail(report: &TestReport, record: &TestRecord) -> Value {
    json!({
        "report": record.report.to_string(),
        "report_version": record.report_version,
        "report_sha256": record.report_sha256,
        "release_fingerprint": record.fingerprint,
        "execution_id": record.execution_id,
        "passed": report.passed,
        "failed": report.failed,
    })
}

impl Pass {
    /// Whether the ledger's `record` is the pass this token names.
    fn names(&self, record: &TestRecord) -> bool {
        record.job_id == self.tested_by
            && record.report == self.report
            && record.report_version.as_deref() == Some(self.version.as_str())
            && record.report_sha256 == self.sha256
    }
}

impl TestRun<'_> {
    /// The verdict the ledger holds for this execution, version and stage.
    pub(super) async fn recorded(&self) -> Result<Option<TestRecord>, TestError> {
        Ok(self.ports.tests.test_record(self.execution, self.package(), self.stage()).await?)
    }

    pub(super) fn test_record(&self, report: &TestReport, stored: StoredReport) -> TestRecord {
        TestRecord {
            execution_id: self.execution.to_owned(),
            package: self.package().clone(),
            stage: self.stage(),
            fingerprint: report.release_fingerprint.clone(),
            passed: report.failed == 0,
            job_id: self.job.id.clone(),
            report: stored.uri,
            report_version: Some(stored.version_id),
            report_sha256: stored.sha256,
            at: Utc::now(),
        }
    }

    /// Writes the verdict once; when the ledger holds one already (a job delivered again, or a
    /// retry of the stage, got there first), that first one is kept and returned.
    pub(super) async fn record(&self, record: TestRecord) -> Result<TestRecord, TestError> {
        match self.ports.tests.record_test(&record).await {
            Ok(()) => Ok(record),
            Err(error) if error.kind == FailureKind::Conflict => {
                let first = self.recorded().await?.ok_or(error)?;
                info!(job_id = %self.job.id, package = %self.package(), first_job = %first.job_id, decision = "first-verdict-kept", "tests");
                Ok(first)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// A verdict the ledger holds already: a pass is finished from it, a failure stands.
    pub(super) fn first_verdict(&self, record: TestRecord) -> Result<TestRecord, TestError> {
        if record.passed {
            return Ok(record);
        }
        Err(TestError::FailedBefore { package: self.package().clone(), job: record.job_id, report: record.report })
    }

    /// The ledger's pass that a `passed` token names, or the refusal of the token.
    pub(super) async fn confirm(&self, pass: &Pass, recorded: Option<TestRecord>) -> Result<TestRecord, TestError> {
        let reason = match recorded {
            None => format!("the ledger holds no test record of execution {}", self.execution),
            Some(record) if !record.passed => format!("the ledger records that the tests failed in execution {} (job {})", self.execution, record.job_id),
            Some(record) if !pass.names(&record) => format!(
                "the ledger's pass in execution {} is job {}'s, report {} version {} sha256 {}, not the token's (job {}, report {} version {} sha256 {})",
                self.execution,
                record.job_id,
                record.report,
                record.report_version.as_deref().unwrap_or("none"),
                record.report_sha256,
                pass.tested_by,
                pass.report,
                pass.version,
                pass.sha256,
            ),
            Some(record) => return Ok(record),
        };
        Err(self.refuse(TestError::ForgedContinuation { package: self.package().clone(), reason }, "test-continuation").await)
    }

    /// Reads the recorded report back at its version and checks it is what the tests wrote, its
    /// key still showing that version: only then are the approvers shown it.
    pub(super) async fn verified(&self, record: &TestRecord) -> Result<Confirmed, TestError> {
        if !self.reports(&record.report) {
            return Err(self.evidence_changed(format!("the recorded report {} is not among this version's reports in {}", record.report, self.bucket)).await);
        }
        let Some(version) = record.report_version.as_deref() else {
            return Err(self.evidence_changed(format!("the test record names no version of {}", record.report)).await);
        };
        let current = self.ports.artifacts.current_version(&record.report).await?;
        let bytes = self.ports.artifacts.read_version(&record.report, version, REPORT_READ_MAX).await?;
        if let Err(problem) = check_report(record, current.as_deref(), &bytes) {
            return Err(self.evidence_changed(problem.to_string()).await);
        }
        let report = match serde_json::from_slice::<TestReport>(&bytes) {
            Ok(report) if report.model_package_arn == self.package().as_str() && report.job_id == record.job_id && report.failed == 0 => report,
            Ok(_) => {
                return Err(self.evidence_changed(format!("{} is not a passed report of {} by job {}", record.report, self.package(), record.job_id)).await)
            }
            Err(error) => return Err(self.evidence_changed(format!("{} is not a test report: {error}", record.report)).await),
        };
        let slowest_ms = report.cases.iter().map(|c| c.latency_ms).max().unwrap_or_default();
        Ok(Confirmed { record: record.clone(), passed: report.passed, total: report.cases.len(), slowest_ms, report })
    }
}

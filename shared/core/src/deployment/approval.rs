//! A governance officer's answer to the prod approval, from the CLI: the lookup and the answer are
//! apart so that the version's tests are shown first. An approval is sent only once the test
//! report the ledger recorded for the execution is read back at its version and its SHA-256
//! found unchanged.

use serde_json::{json, Value};
use tracing::{info, warn};

use super::gate::rules::four_eyes as four_eyes_rule;
use super::gate::{audit_refused, Refusal, RefusedAt};
use crate::approvers::approvers_of;
use crate::domain::evidence::{check_report, EvidenceProblem};
use crate::domain::identity::{Approver, Gate};
use crate::domain::ids::{GroupName, ModelPackageArn, Stage};
use crate::domain::ledger::TestRecord;
use crate::domain::pipeline::{PipelineStage, APPROVAL_ACTION};
use crate::failure::Failure;
use crate::ports::{AuditTrail, PortError};

use super::{DeployConfig, DeployPorts};

/// Why there is no prod approval to answer.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no pipeline execution of {0} waits for a prod approval")]
    NoPendingApproval(String),
    #[error("the ledger holds no passed tests of {package} in execution {execution} ({found}): the approval was not answered")]
    NoPassedTests { package: ModelPackageArn, execution: String, found: String },
    #[error("the test report of {package} is not the evidence the ledger recorded: {problem}; the approval was not answered")]
    EvidenceChanged { package: ModelPackageArn, problem: EvidenceProblem },
    #[error("refused, the approval was not answered: {0}")]
    Refused(Refusal),
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for ApprovalError {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Aws(port) if port.is_retryable())
    }

    fn name(&self) -> &'static str {
        match self {
            Self::NoPendingApproval(_) => "NoPendingApproval",
            Self::NoPassedTests { .. } => "NoPassedTests",
            Self::EvidenceChanged { .. } => "EvidenceChanged",
            Self::Refused(refusal) => refusal.name(),
            Self::Aws(port) => port.name(),
        }
    }
}

/// The version of a model that waits for the prod approval, and what a governance officer reads
/// before answering.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingApproval {
    pub package: ModelPackageArn,
    pub execution_id: String,
    /// The latest test run of the version.
    pub tests: Option<Value>,
    token: String,
}

/// The prod approval that waits for `model` (a central group), unanswered.
pub async fn waiting_prod_approval(ports: &DeployPorts, config: &DeployConfig, model: &GroupName) -> Result<WaitingApproval, ApprovalError> {
    let waiting = ports.runs.pending_approval(&config.pipeline, PipelineStage::ApproveProd.as_str(), APPROVAL_ACTION).await?;
    let no_approval = || ApprovalError::NoPendingApproval(model.to_string());
    let pending = waiting.ok_or_else(no_approval)?;
    let execution_id = pending.execution_id.ok_or_else(no_approval)?;
    let package = ports.runs.execution_package(&config.pipeline, &execution_id).await?.ok_or_else(no_approval)?;
    if package.group() != model {
        return Err(no_approval());
    }
    let tests = latest_tests(ports.audit.as_ref(), &package).await?;
    Ok(WaitingApproval { package, execution_id, tests, token: pending.token })
}

/// Answers the approval that `waiting` found; an approval only after the evidence is checked
/// (`verified_evidence`). A rejection needs no evidence.
pub async fn answer_prod_approval(
    ports: &DeployPorts,
    config: &DeployConfig,
    waiting: &WaitingApproval,
    approve: bool,
    comment: &str,
) -> Result<(), ApprovalError> {
    if approve {
        let evidence = verified_evidence(ports, waiting).await?;
        info!(execution_id = %waiting.execution_id, package = %waiting.package, report = %evidence.report, sha256 = %evidence.report_sha256, decision = "evidence-verified", "prod approval");
    }
    ports.runs.answer_approval(&config.pipeline, PipelineStage::ApproveProd.as_str(), APPROVAL_ACTION, &waiting.token, approve, comment).await?;
    let decision = if approve { "prod-approved" } else { "prod-rejected" };
    info!(execution_id = %waiting.execution_id, package = %waiting.package, decision, "prod approval answered");
    Ok(())
}

/// The passed test run the ledger recorded for the waiting execution, once its report, read at the
/// recorded version, hashes to the recorded SHA-256 and is still what its key shows. Anything
/// else is refused, and the refusal audited.
pub async fn verified_evidence(ports: &DeployPorts, waiting: &WaitingApproval) -> Result<TestRecord, ApprovalError> {
    let (package, execution) = (&waiting.package, &waiting.execution_id);
    let record = ports.tests.test_record(execution, package, Stage::Test).await?;
    let no_pass = |found: &str| ApprovalError::NoPassedTests { package: package.clone(), execution: execution.clone(), found: found.to_owned() };
    let record = match record {
        Some(record) if record.passed => record,
        Some(record) => return Err(refused(ports, waiting, no_pass(&format!("the tests of job {} failed", record.job_id))).await),
        None => return Err(refused(ports, waiting, no_pass("no test record")).await),
    };
    let problem = match record.report_version.as_deref() {
        None => Some(EvidenceProblem::NoVersion(record.report.clone())),
        Some(version) => {
            let current = ports.artifacts.current_version(&record.report).await?;
            let bytes = ports.artifacts.read_version(&record.report, version, REPORT_READ_MAX).await?;
            check_report(&record, current.as_deref(), &bytes).err()
        }
    };
    match problem {
        Some(problem) => Err(refused(ports, waiting, ApprovalError::EvidenceChanged { package: package.clone(), problem }).await),
        None => Ok(record),
    }
}

/// The largest report read back.
const REPORT_READ_MAX: u64 = 8 * 1024 * 1024;

/// Audits the refusal to answer `waiting` and hands it back. The refusal stands even when its
/// entry cannot be written.
/// Four eyes, before anything is sent: `by` is another person than the version's dev and central
/// approvers as the ledger recorded them; the same person, or one that cannot be told apart, is refused and audited.
pub async fn four_eyes(ports: &DeployPorts, waiting: &WaitingApproval, by: &str) -> Result<(), ApprovalError> {
    let found = approvers_of(ports.promotions.as_ref(), ports.approver_records.as_ref(), &waiting.package).await?;
    // Normalised as CodePipeline's `updatedBy` for this caller will be, which deploy-model checks.
    let prod = Approver::prod(&waiting.package, Some(by), chrono::Utc::now(), &waiting.execution_id);
    let earlier = [(Gate::DevApproval, found.dev.as_ref()), (Gate::CentralApproval, found.central.as_ref())];
    match four_eyes_rule(&waiting.package, &prod, &earlier) {
        Ok(()) => Ok(()),
        Err(refusal) => Err(refused(ports, waiting, ApprovalError::Refused(refusal)).await),
    }
}

async fn refused(ports: &DeployPorts, waiting: &WaitingApproval, refusal: ApprovalError) -> ApprovalError {
    let event_id = format!("approve-{}", waiting.execution_id);
    let at = RefusedAt { gate: "prod-approval-evidence", event_id: &event_id, execution_id: Some(&waiting.execution_id), stage: Some(Stage::Prod) };
    if let Err(error) = audit_refused(ports.audit.as_ref(), &waiting.package, &at, refusal.name(), &refusal.to_string()).await {
        warn!(execution_id = %waiting.execution_id, package = %waiting.package, error = %error, decision = "refusal-not-audited", "prod approval");
    }
    refusal
}

async fn latest_tests(trail: &dyn AuditTrail, package: &ModelPackageArn) -> Result<Option<Value>, ApprovalError> {
    let history = trail.history(package).await?;
    Ok(history.into_iter().rev().find(|e| e.action.is_test_verdict()).map(|e| json!({ "result": e.action, "detail": e.detail })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::testing::{deploy, job_event};
    use crate::deployment::JobOutcome;
    use crate::domain::audit::{AuditAction, AuditEntry};
    use crate::fakes::DeployWorld;
    use crate::ports::{PendingApproval, PipelineRuns};

    /// A version that passed its tests in `EXECUTION`, which now waits at the prod approval.
    async fn tested_and_waiting() -> (DeployWorld, WaitingApproval, TestRecord) {
        let world = DeployWorld::new(0);
        assert!(matches!(deploy(&world, &world.package, Stage::Test).await, JobOutcome::Succeeded { .. }));
        let event = job_event("tests-1", Stage::Test, &world.package, None);
        let tested = crate::deployment::test::handle_test_job(&world.ports, &world.config, &event, chrono::Utc::now() + chrono::Duration::minutes(5)).await;
        assert!(matches!(tested, Ok(JobOutcome::Succeeded { .. })), "{tested:?}");
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(crate::fakes::world_execution(&world.package)) });
        let waiting = waiting_prod_approval(&world.ports, &world.config, world.package.group()).await.unwrap();
        let record = world.ledger.tests.lock().unwrap().values().next().cloned().unwrap();
        (world, waiting, record)
    }

    fn refusals(world: &DeployWorld) -> Vec<Value> {
        world.ledger.audit.lock().unwrap().values().filter(|e| e.action == AuditAction::Refused).map(|e| e.detail.clone()).collect()
    }

    #[tokio::test]
    async fn an_approval_goes_out_once_the_recorded_report_is_read_back_unchanged() {
        let (world, waiting, record) = tested_and_waiting().await;

        answer_prod_approval(&world.ports, &world.config, &waiting, true, "risk review passed").await.unwrap();

        assert_eq!(world.runs.answers.lock().unwrap().as_slice(), [("tok".to_owned(), true, "risk review passed".to_owned())]);
        let reads = world.store.calls.lock().unwrap().clone();
        assert_eq!(&reads[reads.len() - 2..], ["HeadObject", "GetObject"], "the key's current version, then the recorded version's bytes");
        assert!(record.passed && record.report_version.is_some());
    }

    #[tokio::test]
    async fn a_report_written_over_or_changed_or_missing_is_refused_and_nothing_is_answered() {
        let (over, waiting_over, record) = tested_and_waiting().await;
        // What a writer of the bucket can do under Object Lock: add a version over the key.
        over.store.put_object(&record.report, b"{\"passed\": 2, \"failed\": 0}".to_vec());
        let (changed, waiting_changed, record_changed) = tested_and_waiting().await;
        // What S3 never lets happen to a version; the digest check would notice it.
        changed.store.corrupt_version(&record_changed.report, record_changed.report_version.as_deref().unwrap(), b"forged".to_vec());
        let (untested, waiting_untested, _) = tested_and_waiting().await;
        untested.ledger.tests.lock().unwrap().clear();

        for (world, waiting, expected, says) in [
            (&over, &waiting_over, "Rejected.EvidenceChanged", "someone wrote over the report"),
            (&changed, &waiting_changed, "Rejected.EvidenceChanged", "not the bytes test-model wrote"),
            (&untested, &waiting_untested, "Rejected.NoPassedTests", "no test record"),
        ] {
            let refused = answer_prod_approval(&world.ports, &world.config, waiting, true, "ok").await.unwrap_err();

            assert_eq!(refused.error_type(), expected);
            assert!(refused.to_string().contains(says) && refused.to_string().contains("the approval was not answered"), "{refused}");
            assert!(world.runs.answers.lock().unwrap().is_empty(), "nothing is sent to CodePipeline");
            assert!(world.runs.pending.lock().unwrap().is_some(), "the approval still waits");
            assert_eq!(refusals(world).len(), 1);
            assert_eq!(refusals(world)[0]["gate"], "prod-approval-evidence");
        }
        // A rejection needs no evidence.
        answer_prod_approval(&over.ports, &over.config, &waiting_over, false, "the report was written over").await.unwrap();
        assert_eq!(over.runs.answers.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_waiting_approval_is_found_with_its_tests_and_answered_only_when_asked() {
        let world = DeployWorld::new(0);
        let execution = world.runs.start("p", &world.package, "t").await.unwrap();
        *world.runs.pending.lock().unwrap() = Some(PendingApproval { token: "tok".into(), execution_id: Some(execution.clone()) });
        let tested = AuditEntry::now(&world.package, "job-7", AuditAction::TestsPassed, json!({ "passed": 2, "failed": 0 }));
        world.ledger.append(&tested).await.unwrap();

        let other: GroupName = "fraud-111111111111".parse().unwrap();
        let refused = waiting_prod_approval(&world.ports, &world.config, &other).await.unwrap_err();
        assert_eq!(refused.error_type(), "Rejected.NoPendingApproval");
        let model: GroupName = "churn-prediction-111111111111".parse().unwrap();
        let waiting = waiting_prod_approval(&world.ports, &world.config, &model).await.unwrap();

        assert_eq!((&waiting.package, waiting.execution_id.as_str()), (&world.package, execution.as_str()));
        assert_eq!(waiting.tests, Some(json!({ "result": "tests-passed", "detail": { "passed": 2, "failed": 0 } })));
        assert!(world.runs.answers.lock().unwrap().is_empty(), "looking the approval up answers nothing");

        answer_prod_approval(&world.ports, &world.config, &waiting, false, "latency too high").await.unwrap();
        assert_eq!(world.runs.answers.lock().unwrap().as_slice(), [("tok".to_owned(), false, "latency too high".to_owned())]);
    }
}

//! The gates of the pipeline actions, enforced where the action happens: before a deployment
//! touches a stage account it asks CodePipeline, the ledger, the registry and the stored objects,
//! never a token or an event it was handed. The rules are in `rules`; this file makes the calls,
//! as few waves as their inputs allow, and audits every refusal.

pub mod rules;
#[cfg(test)]
mod tests;

use serde_json::json;
use tracing::warn;

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::deploy::PipelineJob;
use crate::domain::fingerprint::{release_fingerprint, ModelDataObject, ReleaseFingerprint};
use crate::domain::identity::{Approver, Gate};
use crate::domain::ids::{ModelPackageArn, Stage};
use crate::domain::package::{ArtifactSlot, RegisteredPackage};
use crate::domain::pipeline::PipelineStage;
use crate::ports::{ActionRun, AuditTrail, PortError};
pub use rules::Refusal;

use super::{DeployConfig, DeployPorts};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Aws(#[from] PortError),
}

/// What the gates confirmed of a deployment about to start.
pub struct Cleared {
    pub central: RegisteredPackage,
    pub fingerprint: ReleaseFingerprint,
}

/// Every gate of a deployment's first step: the job is CodePipeline's run of this action, the
/// version is the promoted, unrevoked, unchanged release, and prod has its tests and approval.
pub async fn clear_deployment(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob) -> Result<Cleared, GateError> {
    let package = &job.parameters.model_package_arn;
    let stage = job.parameters.stage;
    let execution_id = rules::claimed_execution(job)?;
    let (execution, runs, promotion, central, tested) = tokio::try_join!(
        ports.runs.execution(&config.pipeline, execution_id),
        ports.runs.action_runs(&config.pipeline, execution_id),
        ports.promotions.promotion_of(package),
        ports.central_registry.describe_package(package),
        async {
            match stage {
                Stage::Prod => ports.tests.test_record(execution_id, package, Stage::Test).await,
                Stage::Test => Ok(None),
            }
        },
    )?;
    rules::confirm_run(job, rules::deploy_stage(stage), &config.pipeline, execution.as_ref(), &runs)?;
    let promoted = rules::promoted_release(package, promotion.as_ref())?;
    let source = promotion.as_ref().map(|p| &p.source).expect("a promoted release has its promotion");
    let (release, approvers) = tokio::try_join!(current_release(ports, config, &central), async {
        match stage == Stage::Prod && config.separation_of_duties {
            true => earlier_approvers(ports, source, package).await.map(Some),
            false => Ok(None),
        }
    })?;
    rules::same_release(package, promoted, release)?;
    if stage == Stage::Prod {
        rules::cleared_for_prod(package, promoted, execution_id, tested.as_ref(), &runs)?;
    }
    if let Some((dev, central_approver)) = approvers {
        let prod = prod_approver(package, job, &runs);
        rules::four_eyes(package, &prod, &[(Gate::DevApproval, dev.as_ref()), (Gate::CentralApproval, central_approver.as_ref())])?;
    }
    Ok(Cleared { fingerprint: promoted.clone(), central })
}

/// The release a version's tests may judge: promoted by the service, not revoked, unchanged since.
pub async fn clear_release(ports: &DeployPorts, config: &DeployConfig, package: &ModelPackageArn) -> Result<ReleaseFingerprint, GateError> {
    let (promotion, central) = tokio::try_join!(ports.promotions.promotion_of(package), ports.central_registry.describe_package(package))?;
    let promoted = rules::promoted_release(package, promotion.as_ref())?;
    rules::same_release(package, promoted, current_release(ports, config, &central).await?)?;
    Ok(promoted.clone())
}

/// test-model's gates before it tests: the job is CodePipeline's run of TestModel, and the
/// release is the one promoted.
pub async fn clear_test(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob) -> Result<ReleaseFingerprint, GateError> {
    let (_, fingerprint) =
        tokio::try_join!(confirm_job(ports, config, job, PipelineStage::TestModel), clear_release(ports, config, &job.parameters.model_package_arn))?;
    Ok(fingerprint)
}

/// Who approved the source version in dev and the central version, as the ledger recorded them.
async fn earlier_approvers(
    ports: &DeployPorts,
    source: &ModelPackageArn,
    central: &ModelPackageArn,
) -> Result<(Option<Approver>, Option<Approver>), PortError> {
    let (dev, mine) = tokio::try_join!(ports.approver_records.approvers(source), ports.approver_records.approvers(central))?;
    let at = |approvers: Vec<Approver>, gate: Gate| approvers.into_iter().find(|a| a.gate == gate);
    Ok((at(dev, Gate::DevApproval), at(mine, Gate::CentralApproval)))
}

/// Who answered the prod approval of the job's execution, as CodePipeline says (`updatedBy`).
fn prod_approver(package: &ModelPackageArn, job: &PipelineJob, runs: &[ActionRun]) -> Approver {
    let approval = runs.iter().find(|run| run.stage == PipelineStage::ApproveProd.as_str());
    let at = approval.and_then(|run| run.last_update).unwrap_or_else(chrono::Utc::now);
    Approver::prod(package, approval.and_then(|run| run.updated_by.as_deref()), at, &job.id)
}

/// The job is CodePipeline's run of the action of `stage`, still in progress.
pub async fn confirm_job(ports: &DeployPorts, config: &DeployConfig, job: &PipelineJob, stage: PipelineStage) -> Result<Vec<ActionRun>, GateError> {
    let execution_id = rules::claimed_execution(job)?;
    let (execution, runs) = tokio::try_join!(ports.runs.execution(&config.pipeline, execution_id), ports.runs.action_runs(&config.pipeline, execution_id))?;
    rules::confirm_run(job, stage, &config.pipeline, execution.as_ref(), &runs)?;
    Ok(runs)
}

/// The fingerprint of the release as it stands: the central version's spec as the registry has
/// it now, and each model-data object as the central bucket holds it now. `Err` says what is
/// missing; only a failed call is a `PortError`.
pub async fn current_release(ports: &DeployPorts, config: &DeployConfig, central: &RegisteredPackage) -> Result<Result<ReleaseFingerprint, String>, PortError> {
    let model_data: Vec<_> =
        central.artifacts.iter().filter_map(|a| if let ArtifactSlot::ModelData { container } = a.slot { Some((container, &a.uri)) } else { None }).collect();
    let heads = futures::future::try_join_all(model_data.iter().map(|(_, uri)| ports.artifacts.head(uri, &config.central_account))).await?;
    let mut objects = Vec::with_capacity(model_data.len());
    for ((container, uri), head) in model_data.iter().zip(&heads) {
        let Some(head) = head else { return Ok(Err(format!("{uri} is gone from the central bucket"))) };
        let Some(sha256) = head.sha256.as_deref() else { return Ok(Err(format!("{uri} has no SHA-256 checksum in S3"))) };
        objects.push(ModelDataObject { container: *container, uri, size: head.size, sha256 });
    }
    Ok(Ok(release_fingerprint(&central.inference, &objects)))
}

/// Where a refusal happened, for the audit entry that records it.
pub struct RefusedAt<'a> {
    pub gate: &'static str,
    /// The job or event refused: the entry's event id.
    pub event_id: &'a str,
    pub execution_id: Option<&'a str>,
    pub stage: Option<Stage>,
}

impl<'a> RefusedAt<'a> {
    pub fn job(gate: &'static str, job: &'a PipelineJob) -> Self {
        Self { gate, event_id: &job.id, execution_id: job.parameters.execution_id.as_deref(), stage: Some(job.parameters.stage) }
    }
}

/// Writes the refusal into the version's audit trail.
pub async fn audit_refusal(audit: &dyn AuditTrail, package: &ModelPackageArn, at: &RefusedAt<'_>, refusal: &Refusal) -> Result<(), PortError> {
    audit_refused(audit, package, at, refusal.name(), &refusal.to_string()).await
}

/// Writes a refusal, named `name` and said as `reason`, into the version's audit trail: the one
/// shape of every gate's `refused` entry (deploy-model, test-model, record-outcome, the approval).
pub async fn audit_refused(audit: &dyn AuditTrail, package: &ModelPackageArn, at: &RefusedAt<'_>, name: &str, reason: &str) -> Result<(), PortError> {
    let detail = json!({ "gate": at.gate, "refusal": name, "reason": reason, "stage": at.stage, "execution_id": at.execution_id });
    warn!(event_id = at.event_id, package = %package, gate = at.gate, refusal = name, reason, decision = "refused", "gate");
    audit.append(&AuditEntry::now(package, at.event_id, AuditAction::Refused, detail)).await
}

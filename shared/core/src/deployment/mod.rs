//! The staged deployment, one module per operation: start (start-deployment), deploy
//! (deploy-model), test (test-model), record (record-outcome), revocation (record-outcome, when
//! a dev rejection revoked a promoted version), and what operators do from the CLI: approval
//! (answer the prod approval), rollback, history. deploy-model and test-model share
//! one job entry (`job`). Each operation has its own error type.

pub mod approval;
pub mod audit;
pub mod card;
pub mod deploy;
pub mod endpoint;
pub mod gate;
pub mod history;
pub mod job;
pub mod policy;
pub mod record;
pub mod revocation;
pub mod rollback;
pub mod start;
pub mod test;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use crate::ports::{
    ApproverRecords, ArtifactStore, AuditTrail, DeploymentRecords, ModelCards, ModelRegistry, Notifier, PipelineJobs, PipelineRuns, PromotionLedger,
    StageSessions, StartClaims, TestRecords,
};

pub use crate::config::DeployConfig;
pub use approval::ApprovalError;
pub use deploy::DeployError;
pub use endpoint::EndpointError;
pub use job::{answer_job, ActionError, JobOutcome, Step};
pub use record::RecordError;
pub use revocation::RevocationError;
pub use rollback::RollbackError;
pub use start::StartError;
pub use test::TestError;

/// Everything the deployment functions talk to.
#[derive(Clone)]
pub struct DeployPorts {
    pub stages: Arc<dyn StageSessions>,
    pub central_registry: Arc<dyn ModelRegistry>,
    pub jobs: Arc<dyn PipelineJobs>,
    pub runs: Arc<dyn PipelineRuns>,
    /// What promote-model recorded of each version: only promoted, unrevoked versions are deployed.
    pub promotions: Arc<dyn PromotionLedger>,
    pub audit: Arc<dyn AuditTrail>,
    pub deployments: Arc<dyn DeploymentRecords>,
    pub starts: Arc<dyn StartClaims>,
    /// What test-model recorded of each test run: the prod gate's evidence that tests passed.
    pub tests: Arc<dyn TestRecords>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub cards: Arc<dyn ModelCards>,
    /// The governance officers' approval topic.
    pub approvers: Arc<dyn Notifier>,
    /// Who approved each version at each gate: the central approval (CloudTrail) and the prod
    /// approval (CodePipeline) here, the dev approval under the source version.
    pub approver_records: Arc<dyn ApproverRecords>,
}

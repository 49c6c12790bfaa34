//! The narrow interfaces the domain needs from AWS; adapters implement them, tests fake them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::audit::AuditEntry;
use crate::domain::chain::{StoredChain, UnreadableEntry};
use crate::domain::copy::{ByteRange, ObjectInfo};
use crate::domain::deploy::{BlueGreen, OutputVariables, StageSettings};
use crate::domain::event::ApprovalStatus;
use crate::domain::identity::Approver;
use crate::domain::ids::{AccountId, GroupName, ModelPackageArn, S3Uri, Stage};
use crate::domain::image::{ImageDigest, ImageRef, RepositoryName};
use crate::domain::ledger::{Claim, ClaimResult, DeploymentRecord, PromotionRecord, StartClaim, TestRecord};
use crate::domain::package::{NewPackage, RegisteredPackage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Throttling, 5xx, timeouts: worth another delivery.
    Retryable,
    NotFound,
    /// A conditional write lost, or a resource exists already.
    Conflict,
    /// Access denied, validation errors: no retry will help.
    Terminal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct PortError {
    pub operation: &'static str,
    pub kind: FailureKind,
    pub message: String,
}

impl PortError {
    pub fn new(operation: &'static str, kind: FailureKind, message: impl Into<String>) -> Self {
        Self { operation, kind, message: message.into() }
    }
    pub fn is_retryable(&self) -> bool {
        self.kind == FailureKind::Retryable
    }
}

pub type PortResult<T> = Result<T, PortError>;

#[async_trait]
pub trait ModelRegistry: Send + Sync {
    async fn describe_package(&self, arn: &ModelPackageArn) -> PortResult<RegisteredPackage>;
    /// Creates the group unless it exists.
    async fn ensure_group(&self, group: &GroupName, description: &str) -> PortResult<()>;
    async fn create_package(&self, package: &NewPackage) -> PortResult<ModelPackageArn>;
    /// The newest versions of a group whose description is `description`.
    async fn find_recent_by_description(&self, group: &GroupName, description: &str) -> PortResult<Option<ModelPackageArn>>;
    /// Sets the approval status, restating the version's metadata so that it is kept.
    async fn set_approval(&self, package: &RegisteredPackage, status: ApprovalStatus, reason: &str, extra_metadata: &[(&str, &str)]) -> PortResult<()>;
}

#[async_trait]
pub trait AccountSessions: Send + Sync {
    /// The registry of another account, read through a role assumed in it.
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>>;
    /// Amazon ECR as the same role of another account sees it: its own registry, and the
    /// registries it may pull from (AWS's).
    async fn images(&self, account: &AccountId) -> PortResult<Arc<dyn ImageRegistry>>;
}

/// Amazon ECR, as one account sees it.
#[async_trait]
pub trait ImageRegistry: Send + Sync {
    /// The digest `image` names now in its registry (in its region): its tag's, or its own once
    /// the registry holds it. `None` when the registry holds no such image.
    async fn resolve(&self, image: &ImageRef) -> PortResult<Option<ImageDigest>>;
    /// The image `digest` in this account's `repository`, named by that digest as its registry
    /// reports it; `None` while the repository or the image is not there.
    async fn find(&self, repository: &RepositoryName, digest: &ImageDigest) -> PortResult<Option<ImageRef>>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTarget<'a> {
    pub destination: &'a S3Uri,
    /// The account that must own the source bucket (`ExpectedSourceBucketOwner`).
    pub source_owner: &'a AccountId,
    pub source_etag: &'a str,
    pub content_type: Option<&'a str>,
}

#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// `None` when the object does not exist.
    async fn head(&self, uri: &S3Uri, expected_owner: &AccountId) -> PortResult<Option<ObjectInfo>>;
    /// A server-side copy; returns the SHA-256 that S3 computed.
    async fn copy_whole(&self, source: &S3Uri, target: &CopyTarget<'_>) -> PortResult<Option<String>>;
    async fn start_multipart(&self, target: &CopyTarget<'_>) -> PortResult<String>;
    /// Returns the part's ETag and the SHA-256 that S3 computed, when it reports one.
    async fn copy_part(&self, source: &S3Uri, target: &CopyTarget<'_>, upload_id: &str, range: ByteRange) -> PortResult<CopiedPart>;
    async fn complete_multipart(&self, destination: &S3Uri, upload_id: &str, parts: &[CopiedPart]) -> PortResult<Option<String>>;
    async fn abort_multipart(&self, destination: &S3Uri, upload_id: &str) -> PortResult<()>;
    /// The ids of the incomplete multipart uploads to exactly `destination`.
    async fn incomplete_uploads(&self, destination: &S3Uri) -> PortResult<Vec<String>>;
    async fn delete(&self, uri: &S3Uri) -> PortResult<()>;
    /// Writes a small object (a report) into the central bucket.
    async fn put(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str) -> PortResult<()>;
    /// Reads a small object whole, refusing one larger than `max_bytes`.
    async fn read_small(&self, uri: &S3Uri, max_bytes: u64) -> PortResult<Vec<u8>>;
    /// Writes a small object (a piece of evidence) under a key that holds none yet, locked in
    /// compliance mode until `retain_until`: a `Conflict` when the key holds an object already
    /// (`If-None-Match: *`), so nothing is ever written over. The request carries the body's
    /// SHA-256, which S3 checks the bytes against before it stores them.
    async fn put_once(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str, retain_until: DateTime<Utc>) -> PortResult<StoredVersion>;
    /// Reads one version of a small object whole, refusing one larger than `max_bytes`.
    async fn read_version(&self, uri: &S3Uri, version_id: &str, max_bytes: u64) -> PortResult<Vec<u8>>;
    /// The key's current version, the one a reader who names no version gets; `None` when the
    /// key holds nothing (never written, or hidden by a delete marker).
    async fn current_version(&self, uri: &S3Uri) -> PortResult<Option<String>>;
}

/// The version of an object S3 stored, with the SHA-256 it reports of the stored bytes (base64,
/// S3's `ChecksumSHA256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub version_id: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedPart {
    pub part_number: i32,
    pub etag: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CardSnapshot {
    pub version: u32,
    pub content: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardStatus {
    Draft,
    PendingReview,
    Approved,
}

#[async_trait]
pub trait ModelCards: Send + Sync {
    async fn describe(&self, name: &str) -> PortResult<Option<CardSnapshot>>;
    async fn create(&self, name: &str, content: &Value) -> PortResult<u32>;
    /// Writes a new card version and returns its number; `status` moves the review status too.
    async fn update(&self, name: &str, content: &Value, status: Option<CardStatus>) -> PortResult<u32>;
}

#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, detail_type: &str, detail: &Value) -> PortResult<()>;
}

/// The promotion ledger: one record per source version, claimed by the invocation that promotes it.
#[async_trait]
pub trait PromotionLedger: Send + Sync {
    async fn claim(&self, claim: &Claim) -> PortResult<ClaimResult>;
    async fn get(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>>;
    /// Writes the record's progress while `owner` still holds the claim.
    async fn save(&self, record: &PromotionRecord, owner: &str) -> PortResult<()>;
    /// Writes the finished record and its audit entry in one request, while `owner` still holds
    /// the claim: both or neither, so a crash between them cannot lose the entry.
    async fn finish(&self, record: &PromotionRecord, owner: &str, entry: &AuditEntry) -> PortResult<()>;
    /// Extends the lease of a claim that `owner` still holds; a `Conflict` when it holds it no more.
    async fn renew(&self, source: &ModelPackageArn, owner: &str, lease_until: DateTime<Utc>) -> PortResult<()>;
    /// Gives the claim up after a failure so that a redelivery need not wait for the lease.
    async fn release(&self, source: &ModelPackageArn, owner: &str) -> PortResult<()>;
    /// Writes a decision record unless a newer one is there; false when a newer one was.
    async fn record_decision(&self, record: &PromotionRecord) -> PortResult<bool>;
    async fn promotions(&self) -> PortResult<Vec<PromotionRecord>>;
    /// The record of the promotion that made `central` (written with the finished record, in the
    /// same request): `None` for a version the service never promoted.
    async fn promotion_of(&self, central: &ModelPackageArn) -> PortResult<Option<PromotionRecord>>;
    /// Reads ahead what `finish` of `source`'s promotion will need (its audit chain's head), so
    /// that reading it costs no wave of its own; a stale read only costs `finish` a retry.
    async fn prepare_finish(&self, _source: &ModelPackageArn) -> PortResult<()> {
        Ok(())
    }
}

/// What test-model recorded of each test run.
#[async_trait]
pub trait TestRecords: Send + Sync {
    /// Writes the record once: a second record for the same execution, version and stage is a
    /// `Conflict` (a retried job keeps the first verdict).
    async fn record_test(&self, record: &TestRecord) -> PortResult<()>;
    async fn test_record(&self, execution_id: &str, package: &ModelPackageArn, stage: Stage) -> PortResult<Option<TestRecord>>;
}

/// Who decided at each gate of each version: one record per version and gate, written once.
#[async_trait]
pub trait ApproverRecords: Send + Sync {
    /// Writes the approver of its version and gate unless one is recorded there; `false` when one
    /// was (the first decision recorded stays, whatever a later event says).
    async fn record_approver(&self, approver: &Approver) -> PortResult<bool>;
    /// Every approver recorded of `package` (a source or a central version), in the gates' order.
    async fn approvers(&self, package: &ModelPackageArn) -> PortResult<Vec<Approver>>;
}

/// The audit trail of every package version, only ever appended, one hash chain per model
/// (`domain::chain`).
#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Idempotent: an entry is identified by its package, event id and action, and a second
    /// write of those is dropped whatever its time (a redelivered job repeats no entry). The
    /// entry is chained to its model's newest entry, exactly once, however many write at once.
    async fn append(&self, entry: &AuditEntry) -> PortResult<()>;
    /// The audit trail of a package version (source or central), oldest first.
    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>>;
    /// The models that have a chain.
    async fn chained_models(&self) -> PortResult<Vec<GroupName>>;
    /// One model's chain as stored, oldest first: what `history` reads and `verify` checks
    /// (nothing is checked here).
    async fn chain(&self, model: &GroupName) -> PortResult<StoredChain>;
}

impl From<UnreadableEntry> for PortError {
    fn from(error: UnreadableEntry) -> Self {
        PortError::new("AuditChain", FailureKind::Terminal, error.to_string())
    }
}

/// What each stage's endpoint runs, and ran before.
#[async_trait]
pub trait DeploymentRecords: Send + Sync {
    async fn deployment(&self, stage: Stage, endpoint: &str) -> PortResult<Option<DeploymentRecord>>;
    async fn record_deployment(&self, record: &DeploymentRecord) -> PortResult<()>;
}

/// One pipeline execution per central approval event.
#[async_trait]
pub trait StartClaims: Send + Sync {
    /// Claims the start of a pipeline execution for `event_id` until `lease_until`.
    async fn claim_start(&self, event_id: &str, lease_until: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<StartClaim>;
    async fn record_start(&self, event_id: &str, execution_id: &str) -> PortResult<()>;
    /// Remembers that `execution_id` runs for `package` (idempotent): a revocation of the
    /// version finds its executions here, the ledger's word, not a listing of the pipeline's.
    async fn record_execution(&self, package: &ModelPackageArn, execution_id: &str) -> PortResult<()>;
    /// The executions recorded for `package`, in the order of their ids.
    async fn executions_of(&self, package: &ModelPackageArn) -> PortResult<Vec<String>>;
}

/// The whole ledger table in its four roles, for a tool that reads across them (the CLI's status).
/// The use cases take only the roles they need.
pub trait Ledger: PromotionLedger + AuditTrail + DeploymentRecords + StartClaims + TestRecords {}

impl<T: PromotionLedger + AuditTrail + DeploymentRecords + StartClaims + TestRecords + ?Sized> Ledger for T {}

/// Everything promote-model talks to.
#[derive(Clone)]
pub struct PromotePorts {
    pub sessions: Arc<dyn AccountSessions>,
    pub central_registry: Arc<dyn ModelRegistry>,
    /// The central account's ECR, where the dev images arrive by replication.
    pub central_images: Arc<dyn ImageRegistry>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub cards: Arc<dyn ModelCards>,
    pub events: Arc<dyn EventPublisher>,
    pub ledger: Arc<dyn PromotionLedger>,
    pub audit: Arc<dyn AuditTrail>,
    /// Who approved each source version in dev (CloudTrail's `UpdateModelPackage`).
    pub approver_records: Arc<dyn ApproverRecords>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointStatus {
    Creating,
    Updating,
    RollingBack,
    /// SageMaker patches or scales the endpoint's instances: it takes no update meanwhile.
    SystemUpdating,
    InService,
    Failed,
    /// On its way out: it takes no update, and ends absent.
    Deleting,
    /// OutOfService, UpdateRollbackFailed…: not a state a deployment waits in.
    Other(String),
}

impl EndpointStatus {
    /// On its way to InService (or Failed): nothing is asked of it until it gets there.
    pub fn is_transitional(&self) -> bool {
        matches!(self, Self::Creating | Self::Updating | Self::SystemUpdating | Self::RollingBack)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    pub status: EndpointStatus,
    /// The config the endpoint runs now (after an update, the new one only once it is in service).
    pub config_name: String,
    pub failure_reason: Option<String>,
    /// The images the endpoint's instances run, as SageMaker resolved them (`DeployedImages`'
    /// `ResolvedImage`, by digest); empty where they are not reported.
    pub resolved_images: Vec<String>,
}

/// How a wait for an endpoint ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The endpoint as last described: in service, or Failed.
    As(EndpointState),
    Absent,
    /// Still changing when the wait's bound ran out.
    StillChanging,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec<'a> {
    pub name: &'a str,
    pub package: &'a ModelPackageArn,
    pub execution_role_arn: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfigSpec<'a> {
    pub name: &'a str,
    pub model_name: &'a str,
    pub instance_type: &'a str,
    pub instance_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeResult {
    pub status: u16,
    pub body: Vec<u8>,
}

/// SageMaker hosting in one stage account.
#[async_trait]
pub trait Endpoints: Send + Sync {
    /// Creates the model unless one of that name exists.
    async fn ensure_model(&self, spec: &ModelSpec<'_>) -> PortResult<()>;
    async fn ensure_endpoint_config(&self, spec: &EndpointConfigSpec<'_>) -> PortResult<()>;
    async fn describe_endpoint(&self, name: &str) -> PortResult<Option<EndpointState>>;
    async fn create_endpoint(&self, name: &str, config: &str) -> PortResult<()>;
    async fn update_endpoint(&self, name: &str, config: &str, blue_green: Option<&BlueGreen>) -> PortResult<()>;
    async fn delete_endpoint(&self, name: &str) -> PortResult<()>;
    /// Waits, at most `bound`, until the endpoint is in service, or in a state it does not leave on
    /// its own (Failed), or gone.
    async fn wait_until_in_service(&self, name: &str, bound: Duration) -> PortResult<Settled>;
    /// Waits, at most `bound`, until the endpoint is gone (or its deletion failed).
    async fn wait_until_deleted(&self, name: &str, bound: Duration) -> PortResult<Settled>;
    /// `inference_id` tags the request in the endpoint's data capture and logs.
    async fn invoke(&self, name: &str, content_type: &str, payload: &[u8], inference_id: &str) -> PortResult<InvokeResult>;
}

#[async_trait]
pub trait StageSessions: Send + Sync {
    /// Hosting in the stage's account, through its deploy role.
    async fn endpoints(&self, stage: &StageSettings) -> PortResult<Arc<dyn Endpoints>>;
}

/// Answers to a CodePipeline job: every invocation of an action ends with exactly one.
#[async_trait]
pub trait PipelineJobs: Send + Sync {
    async fn succeed(&self, job_id: &str, continuation: Option<&str>, summary: &str) -> PortResult<()>;
    /// The job is done and hands `variables` to the later actions of the execution. CodePipeline
    /// takes output variables with a final answer only: there is no continuation token here.
    async fn succeed_with_variables(&self, job_id: &str, summary: &str, variables: &OutputVariables) -> PortResult<()>;
    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingApproval {
    pub token: String,
    pub execution_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalResult {
    pub approved: bool,
    pub by: Option<String>,
    pub comment: Option<String>,
}

/// Tells people that something waits for them.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, subject: &str, message: &str) -> PortResult<()>;
}

/// The status of one action in one execution, as `ListActionExecutions` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionRunStatus {
    InProgress,
    Succeeded,
    Failed,
    Abandoned,
}

/// One run of one action of a pipeline execution, as CodePipeline itself reports it
/// (`ListActionExecutions`): the source of truth a pipeline action checks before it acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRun {
    pub stage: String,
    pub action: String,
    pub status: ActionRunStatus,
    /// The Lambda action's `UserParameters` as CodePipeline resolved them for this run (its
    /// variables filled in): what the real job of this run carries.
    pub user_parameters: Option<String>,
    /// Who answered a manual approval (`updatedBy`).
    pub updated_by: Option<String>,
    /// The approval's comment, or the job's summary.
    pub summary: Option<String>,
    pub last_update: Option<DateTime<Utc>>,
}

/// The status of a pipeline execution (`GetPipelineExecution`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionStatus {
    InProgress,
    Stopping,
    Stopped,
    Succeeded,
    Superseded,
    Failed,
    Cancelled,
    Other(String),
}

/// A pipeline execution as CodePipeline reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionView {
    pub status: ExecutionStatus,
    /// Its `ModelPackageArn` variable.
    pub package: Option<ModelPackageArn>,
}

#[async_trait]
pub trait PipelineRuns: Send + Sync {
    /// The execution's status and the version it runs for (`GetPipelineExecution`); `None` when
    /// CodePipeline knows no such execution.
    async fn execution(&self, pipeline: &str, execution_id: &str) -> PortResult<Option<ExecutionView>>;
    /// Every action run of one execution (`ListActionExecutions` filtered on the execution, all
    /// pages), newest first.
    async fn action_runs(&self, pipeline: &str, execution_id: &str) -> PortResult<Vec<ActionRun>>;
    /// Stops an execution, abandoning its running actions (`StopPipelineExecution` with `abandon`).
    async fn stop(&self, pipeline: &str, execution_id: &str, reason: &str) -> PortResult<()>;
    /// Starts an execution for exactly this version; `token` makes a repeated start a no-op.
    async fn start(&self, pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String>;
    /// The version an execution runs for (its `ModelPackageArn` variable).
    async fn execution_package(&self, pipeline: &str, execution_id: &str) -> PortResult<Option<ModelPackageArn>> {
        Ok(self.execution(pipeline, execution_id).await?.and_then(|e| e.package))
    }
    async fn pending_approval(&self, pipeline: &str, stage: &str, action: &str) -> PortResult<Option<PendingApproval>>;
    async fn answer_approval(&self, pipeline: &str, stage: &str, action: &str, token: &str, approve: bool, summary: &str) -> PortResult<()>;
    /// Who answered an approval of an execution, and with what comment.
    async fn approval_result(&self, pipeline: &str, execution_id: &str, action: &str) -> PortResult<Option<ApprovalResult>>;
}

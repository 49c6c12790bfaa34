//! The narrow interfaces the domain needs from AWS; adapters implement them, tests fake them.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::copy::{ByteRange, ObjectInfo};
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{AccountId, GroupName, ModelPackageArn, S3Uri};
use crate::domain::ledger::{AuditEntry, Claim, ClaimResult, PromotionRecord};
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
    async fn find_recent_by_description(
        &self,
        group: &GroupName,
        description: &str,
    ) -> PortResult<Option<ModelPackageArn>>;
    /// Sets the approval status, restating the version's metadata so that it is kept.
    async fn set_approval(
        &self,
        package: &RegisteredPackage,
        status: ApprovalStatus,
        reason: &str,
        extra_metadata: &[(&str, &str)],
    ) -> PortResult<()>;
}

#[async_trait]
pub trait AccountSessions: Send + Sync {
    /// The registry of another account, read through a role assumed in it.
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>>;
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
    async fn copy_part(
        &self,
        source: &S3Uri,
        target: &CopyTarget<'_>,
        upload_id: &str,
        range: ByteRange,
    ) -> PortResult<CopiedPart>;
    async fn complete_multipart(
        &self,
        destination: &S3Uri,
        upload_id: &str,
        parts: &[CopiedPart],
    ) -> PortResult<Option<String>>;
    async fn abort_multipart(&self, destination: &S3Uri, upload_id: &str) -> PortResult<()>;
    async fn delete(&self, uri: &S3Uri) -> PortResult<()>;
    /// Reads a small object whole, refusing one larger than `max_bytes`.
    async fn read_small(&self, uri: &S3Uri, max_bytes: u64) -> PortResult<Vec<u8>>;
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

#[async_trait]
pub trait ModelCards: Send + Sync {
    async fn describe(&self, name: &str) -> PortResult<Option<CardSnapshot>>;
    async fn create(&self, name: &str, content: &Value) -> PortResult<u32>;
    /// Writes a new card version and returns its number.
    async fn update(&self, name: &str, content: &Value) -> PortResult<u32>;
}

#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, detail_type: &str, detail: &Value) -> PortResult<()>;
}

#[async_trait]
pub trait Ledger: Send + Sync {
    async fn claim(&self, claim: &Claim) -> PortResult<ClaimResult>;
    async fn get(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>>;
    /// Writes the record's progress while `owner` still holds the claim.
    async fn save(&self, record: &PromotionRecord, owner: &str) -> PortResult<()>;
    /// Gives the claim up after a failure so that a redelivery need not wait for the lease.
    async fn release(&self, source: &ModelPackageArn, owner: &str) -> PortResult<()>;
    /// Writes a decision record unless a newer one is there; false when a newer one was.
    async fn record_decision(&self, record: &PromotionRecord) -> PortResult<bool>;
    /// Idempotent: the same entry written twice is kept once.
    async fn append(&self, entry: &AuditEntry) -> PortResult<()>;
    async fn promotions(&self) -> PortResult<Vec<PromotionRecord>>;
}

/// Everything promote-model talks to.
#[derive(Clone)]
pub struct PromotePorts {
    pub sessions: Arc<dyn AccountSessions>,
    pub central_registry: Arc<dyn ModelRegistry>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub cards: Arc<dyn ModelCards>,
    pub events: Arc<dyn EventPublisher>,
    pub ledger: Arc<dyn Ledger>,
}

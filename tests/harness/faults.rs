//! Faults injected through the ports, around the real adapters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promotion_core::domain::copy::{ByteRange, ObjectInfo};
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::{AccountId, GroupName, ModelPackageArn, S3Uri};
use promotion_core::domain::package::{NewPackage, RegisteredPackage};
use promotion_core::ports::{ArtifactStore, CopiedPart, CopyTarget, FailureKind, ModelRegistry, PortError, PortResult, StoredVersion};

const CORRUPT_SHA256: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Reports a different checksum for every object in `bucket` than S3 stored: a corrupted copy.
pub struct CorruptCopies {
    pub inner: Arc<dyn ArtifactStore>,
    pub bucket: String,
}

#[async_trait]
impl ArtifactStore for CorruptCopies {
    async fn head(&self, uri: &S3Uri, owner: &AccountId) -> PortResult<Option<ObjectInfo>> {
        let info = self.inner.head(uri, owner).await?;
        Ok(info.map(|mut info| {
            if uri.bucket() == self.bucket {
                info.sha256 = Some(CORRUPT_SHA256.into());
            }
            info
        }))
    }
    async fn copy_whole(&self, source: &S3Uri, target: &CopyTarget<'_>) -> PortResult<Option<String>> {
        // What S3 reports of the copy it wrote is what the promotion checks.
        let reported = self.inner.copy_whole(source, target).await?;
        Ok(reported.map(|_| CORRUPT_SHA256.to_owned()))
    }
    async fn start_multipart(&self, target: &CopyTarget<'_>) -> PortResult<String> {
        self.inner.start_multipart(target).await
    }
    async fn copy_part(&self, source: &S3Uri, target: &CopyTarget<'_>, upload_id: &str, range: ByteRange) -> PortResult<CopiedPart> {
        self.inner.copy_part(source, target, upload_id, range).await
    }
    async fn complete_multipart(&self, destination: &S3Uri, upload_id: &str, parts: &[CopiedPart]) -> PortResult<Option<String>> {
        self.inner.complete_multipart(destination, upload_id, parts).await
    }
    async fn abort_multipart(&self, destination: &S3Uri, upload_id: &str) -> PortResult<()> {
        self.inner.abort_multipart(destination, upload_id).await
    }
    async fn incomplete_uploads(&self, destination: &S3Uri) -> PortResult<Vec<String>> {
        self.inner.incomplete_uploads(destination).await
    }
    async fn delete(&self, uri: &S3Uri) -> PortResult<()> {
        self.inner.delete(uri).await
    }
    async fn put(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str) -> PortResult<()> {
        self.inner.put(uri, body, content_type).await
    }
    async fn read_small(&self, uri: &S3Uri, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.inner.read_small(uri, max_bytes).await
    }
    async fn put_once(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str, retain_until: DateTime<Utc>) -> PortResult<StoredVersion> {
        self.inner.put_once(uri, body, content_type, retain_until).await
    }
    async fn read_version(&self, uri: &S3Uri, version_id: &str, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.inner.read_version(uri, version_id, max_bytes).await
    }
    async fn current_version(&self, uri: &S3Uri) -> PortResult<Option<String>> {
        self.inner.current_version(uri).await
    }
}

/// When the process dies around `CreateModelPackage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// After the copies, before the central version exists.
    BeforeRegistration,
    /// The version is created, but the invocation dies before the ledger learns of it.
    AfterRegistration,
}

/// The central registry, dying once at the chosen moment.
pub struct CrashingRegistry {
    pub inner: Arc<dyn ModelRegistry>,
    pub crash: Crash,
    pub crashes_left: AtomicUsize,
}

impl CrashingRegistry {
    pub fn once(inner: Arc<dyn ModelRegistry>, crash: Crash) -> Self {
        Self { inner, crash, crashes_left: AtomicUsize::new(1) }
    }

    fn crash_now(&self) -> bool {
        self.crashes_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

fn crashed() -> PortError {
    PortError::new("CreateModelPackage", FailureKind::Retryable, "injected crash")
}

#[async_trait]
impl ModelRegistry for CrashingRegistry {
    async fn describe_package(&self, arn: &ModelPackageArn) -> PortResult<RegisteredPackage> {
        self.inner.describe_package(arn).await
    }
    async fn ensure_group(&self, group: &GroupName, description: &str) -> PortResult<()> {
        self.inner.ensure_group(group, description).await
    }
    async fn create_package(&self, package: &NewPackage) -> PortResult<ModelPackageArn> {
        if self.crash == Crash::BeforeRegistration && self.crash_now() {
            return Err(crashed());
        }
        let created = self.inner.create_package(package).await?;
        if self.crash == Crash::AfterRegistration && self.crash_now() {
            return Err(crashed());
        }
        Ok(created)
    }
    async fn find_recent_by_description(&self, group: &GroupName, description: &str) -> PortResult<Option<ModelPackageArn>> {
        self.inner.find_recent_by_description(group, description).await
    }
    async fn set_approval(&self, package: &RegisteredPackage, status: ApprovalStatus, reason: &str, extra: &[(&str, &str)]) -> PortResult<()> {
        self.inner.set_approval(package, status, reason, extra).await
    }
}

//! Copies one artifact into the central bucket, server-side, and proves the copy whole.

use futures::{StreamExt, TryStreamExt};
use tracing::warn;

use crate::domain::copy::{
    composite_sha256, plan_copy, reusable_copy, verify_copy, verify_reported, ByteRange, CopyMismatch, CopyPlan, CopySettings, ObjectInfo,
};
use crate::domain::ids::{AccountId, S3Uri};
use crate::domain::ledger::CopiedArtifact;
use crate::domain::package::Artifact;
use crate::ports::{ArtifactStore, CopiedPart, CopyTarget, FailureKind};

use super::error::PromoteError;

pub struct CopyJob<'a> {
    pub store: &'a dyn ArtifactStore,
    pub settings: &'a CopySettings,
    pub source_owner: &'a AccountId,
    pub central_owner: &'a AccountId,
    /// An earlier holder of the claim may have copied, or begun to: its copies are looked for
    /// and its abandoned uploads aborted. A first claim knows there are none and asks nothing.
    pub resumed: bool,
}

impl CopyJob<'_> {
    /// `source` is what a HEAD of the artifact told before the claim.
    pub async fn copy(&self, artifact: &Artifact, source: &ObjectInfo, destination: &S3Uri) -> Result<CopiedArtifact, PromoteError> {
        let copied = |sha256: String| CopiedArtifact {
            slot: artifact.slot,
            source: artifact.uri.clone(),
            central: destination.clone(),
            size: source.size,
            sha256,
            content_type: artifact.content_type.clone(),
        };
        if self.resumed {
            let earlier = self.store.head(destination, self.central_owner).await?;
            if let Some(sha256) = earlier.as_ref().and_then(|existing| reusable_copy(source, existing)) {
                return Ok(copied(sha256));
            }
        }
        let target = CopyTarget {
            destination,
            source_owner: self.source_owner,
            source_etag: &source.etag,
            content_type: source.content_type.as_deref().or(artifact.content_type.as_deref()),
        };
        let plan = plan_copy(source.size, self.settings);
        let reported = match &plan {
            CopyPlan::Single => self.store.copy_whole(&artifact.uri, &target).await?,
            CopyPlan::Multipart(ranges) => self.copy_parts(&artifact.uri, &target, ranges).await?,
        };
        let mismatch = |mismatch| PromoteError::CopyMismatch { from: artifact.uri.clone(), to: destination.clone(), mismatch };
        let single = plan == CopyPlan::Single;
        let verified = match reported {
            // The copy's answer carries the checksum S3 computed of what it wrote: no HEAD after.
            Some(reported) => verify_reported(source, &reported, single),
            // An answer without it (moto's multipart completions): the stored copy tells.
            None => verify_copy(source, None, single, &self.store.head(destination, self.central_owner).await?.unwrap_or_default()),
        };
        match verified {
            Ok(sha256) => Ok(copied(sha256)),
            Err(found) => {
                if let Err(error) = self.store.delete(destination).await {
                    warn!(%destination, %error, "could not delete a copy that failed verification");
                }
                Err(mismatch(found))
            }
        }
    }

    async fn copy_parts(&self, source: &S3Uri, target: &CopyTarget<'_>, ranges: &[ByteRange]) -> Result<Option<String>, PromoteError> {
        // Keys are deterministic per source version and we hold its claim: an upload to this
        // key was left by an earlier holder that was killed before it could abort.
        let abandoned = if self.resumed { self.store.incomplete_uploads(target.destination).await? } else { Vec::new() };
        for abandoned in abandoned {
            match self.store.abort_multipart(target.destination, &abandoned).await {
                Err(error) if error.kind != FailureKind::NotFound => {
                    warn!(destination = %target.destination, %error, "an abandoned upload is left to the bucket's lifecycle rule");
                }
                _ => {}
            }
        }
        let upload_id = self.store.start_multipart(target).await?;
        let copied = self.copy_and_complete(source, target, &upload_id, ranges).await;
        if copied.is_err() {
            // An incomplete upload is invisible but billed; the bucket's lifecycle rule is only the backstop.
            if let Err(error) = self.store.abort_multipart(target.destination, &upload_id).await {
                warn!(destination = %target.destination, %error, "could not abort a failed multipart copy");
            }
        }
        copied
    }

    async fn copy_and_complete(&self, source: &S3Uri, target: &CopyTarget<'_>, upload_id: &str, ranges: &[ByteRange]) -> Result<Option<String>, PromoteError> {
        let mut parts: Vec<CopiedPart> = futures::stream::iter(ranges.iter().copied())
            .map(|range| self.store.copy_part(source, target, upload_id, range))
            .buffer_unordered(self.settings.concurrency)
            .try_collect()
            .await?;
        parts.sort_by_key(|part| part.part_number);
        let completed = self.store.complete_multipart(target.destination, upload_id, &parts).await?;
        let from_parts = parts.iter().map(|part| part.sha256.clone()).collect::<Option<Vec<_>>>().and_then(|sums| composite_sha256(&sums));
        match (completed, from_parts) {
            (Some(completed), Some(ours)) if completed != ours => Err(PromoteError::CopyMismatch {
                from: source.clone(),
                to: target.destination.clone(),
                mismatch: CopyMismatch::Checksum { expected: ours, actual: completed },
            }),
            (completed, ours) => Ok(completed.or(ours)),
        }
    }
}

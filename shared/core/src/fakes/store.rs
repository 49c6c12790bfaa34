//! The artifact store (S3), with its composite checksums, and a pass-through store with a hook
//! before copies.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::domain::copy::{composite_sha256, ByteRange, ObjectInfo};
use crate::domain::ids::{AccountId, S3Uri};
use crate::ports::{ArtifactStore, CopiedPart, CopyTarget, FailureKind, PortError, PortResult};

fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

#[derive(Debug, Clone)]
struct StoredObject {
    bytes: Vec<u8>,
    sha256: String,
    copied_from_etag: Option<String>,
}

/// An incomplete upload: its destination, the ETag of its source, its parts.
type Upload = (S3Uri, Option<String>, BTreeMap<i32, Vec<u8>>);

#[derive(Default)]
pub struct FakeStore {
    objects: Mutex<BTreeMap<S3Uri, StoredObject>>,
    uploads: Mutex<HashMap<String, Upload>>,
    pub calls: Mutex<Vec<&'static str>>,
}

impl FakeStore {
    pub fn put_object(&self, uri: &S3Uri, bytes: Vec<u8>) {
        let sha256 = sha256_b64(&bytes);
        self.objects.lock().unwrap().insert(uri.clone(), StoredObject { bytes, sha256, copied_from_etag: None });
    }

    /// What a HEAD of the object answers, without counting a call.
    pub fn object_info(&self, uri: &S3Uri) -> Option<ObjectInfo> {
        self.objects.lock().unwrap().get(uri).map(|o| ObjectInfo {
            size: o.bytes.len() as u64,
            etag: Self::etag(&o.bytes),
            sha256: Some(o.sha256.clone()),
            content_type: None,
            copied_from_etag: o.copied_from_etag.clone(),
        })
    }

    pub fn bytes(&self, uri: &S3Uri) -> Option<Vec<u8>> {
        self.objects.lock().unwrap().get(uri).map(|o| o.bytes.clone())
    }

    pub fn keys_in(&self, bucket: &str) -> Vec<String> {
        self.objects.lock().unwrap().keys().filter(|u| u.bucket() == bucket).map(|u| u.key().to_owned()).collect()
    }

    pub fn open_uploads(&self) -> usize {
        self.uploads.lock().unwrap().len()
    }

    fn record(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }

    fn etag(bytes: &[u8]) -> String {
        format!("\"{}\"", &crate::domain::naming::hex_sha256(bytes)[..32])
    }

    fn source(&self, uri: &S3Uri) -> PortResult<StoredObject> {
        self.objects.lock().unwrap().get(uri).cloned().ok_or_else(|| PortError::new("CopyObject", FailureKind::NotFound, "NoSuchKey"))
    }
}

#[async_trait]
impl ArtifactStore for FakeStore {
    async fn head(&self, uri: &S3Uri, _owner: &AccountId) -> PortResult<Option<ObjectInfo>> {
        self.record("HeadObject");
        Ok(self.object_info(uri))
    }

    async fn copy_whole(&self, source: &S3Uri, target: &CopyTarget<'_>) -> PortResult<Option<String>> {
        self.record("CopyObject");
        let bytes = self.source(source)?.bytes;
        let sha256 = sha256_b64(&bytes);
        let copy = StoredObject { bytes, sha256: sha256.clone(), copied_from_etag: Some(target.source_etag.to_owned()) };
        self.objects.lock().unwrap().insert(target.destination.clone(), copy);
        Ok(Some(sha256))
    }

    async fn start_multipart(&self, target: &CopyTarget<'_>) -> PortResult<String> {
        self.record("CreateMultipartUpload");
        let id = uuid::Uuid::new_v4().to_string();
        let entry = (target.destination.clone(), Some(target.source_etag.to_owned()), BTreeMap::new());
        self.uploads.lock().unwrap().insert(id.clone(), entry);
        Ok(id)
    }

    async fn copy_part(&self, source: &S3Uri, _target: &CopyTarget<'_>, upload_id: &str, range: ByteRange) -> PortResult<CopiedPart> {
        self.record("UploadPartCopy");
        let bytes = self.source(source)?.bytes;
        let first = usize::try_from(range.first).expect("fits");
        let last = usize::try_from(range.last).expect("fits");
        let part = bytes[first..=last].to_vec();
        let copied = CopiedPart { part_number: range.part_number, etag: Self::etag(&part), sha256: Some(sha256_b64(&part)) };
        let mut uploads = self.uploads.lock().unwrap();
        let upload = uploads.get_mut(upload_id).ok_or_else(|| PortError::new("UploadPartCopy", FailureKind::NotFound, "NoSuchUpload"))?;
        upload.2.insert(range.part_number, part);
        Ok(copied)
    }

    async fn complete_multipart(&self, destination: &S3Uri, upload_id: &str, parts: &[CopiedPart]) -> PortResult<Option<String>> {
        self.record("CompleteMultipartUpload");
        let (_, source_etag, stored) =
            self.uploads.lock().unwrap().remove(upload_id).ok_or_else(|| PortError::new("CompleteMultipartUpload", FailureKind::NotFound, "NoSuchUpload"))?;
        let bytes: Vec<u8> = parts.iter().flat_map(|p| stored[&p.part_number].clone()).collect();
        let sums: Vec<String> = parts.iter().map(|p| sha256_b64(&stored[&p.part_number])).collect();
        let sha256 = composite_sha256(&sums).expect("valid base64");
        self.objects.lock().unwrap().insert(destination.clone(), StoredObject { bytes, sha256: sha256.clone(), copied_from_etag: source_etag });
        Ok(Some(sha256))
    }

    async fn abort_multipart(&self, _destination: &S3Uri, upload_id: &str) -> PortResult<()> {
        self.record("AbortMultipartUpload");
        self.uploads.lock().unwrap().remove(upload_id);
        Ok(())
    }

    async fn incomplete_uploads(&self, destination: &S3Uri) -> PortResult<Vec<String>> {
        self.record("ListMultipartUploads");
        let uploads = self.uploads.lock().unwrap();
        Ok(uploads.iter().filter(|(_, (to, _, _))| to == destination).map(|(id, _)| id.clone()).collect())
    }

    async fn delete(&self, uri: &S3Uri) -> PortResult<()> {
        self.record("DeleteObject");
        self.objects.lock().unwrap().remove(uri);
        Ok(())
    }

    async fn put(&self, uri: &S3Uri, body: Vec<u8>, _content_type: &str) -> PortResult<()> {
        self.record("PutObject");
        self.put_object(uri, body);
        Ok(())
    }

    async fn read_small(&self, uri: &S3Uri, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.record("GetObject");
        let bytes = self.source(uri)?.bytes;
        if bytes.len() as u64 > max_bytes {
            return Err(PortError::new("GetObject", FailureKind::Terminal, "too large"));
        }
        Ok(bytes)
    }
}

/// What a test does before a copy reaches the store: slow it, fail it, look around.
#[async_trait]
pub trait BeforeCopy: Send + Sync {
    /// `part` is the part number of an `UploadPartCopy`, `None` for a `CopyObject`.
    async fn before_copy(&self, part: Option<i32>) -> PortResult<()>;
}

/// An artifact store that passes every call on to `inner`, its copies once `hook` lets them.
pub struct HookedStore<H> {
    pub inner: Arc<dyn ArtifactStore>,
    pub hook: H,
}

#[async_trait]
impl<H: BeforeCopy> ArtifactStore for HookedStore<H> {
    async fn head(&self, uri: &S3Uri, owner: &AccountId) -> PortResult<Option<ObjectInfo>> {
        self.inner.head(uri, owner).await
    }
    async fn copy_whole(&self, source: &S3Uri, target: &CopyTarget<'_>) -> PortResult<Option<String>> {
        self.hook.before_copy(None).await?;
        self.inner.copy_whole(source, target).await
    }
    async fn start_multipart(&self, target: &CopyTarget<'_>) -> PortResult<String> {
        self.inner.start_multipart(target).await
    }
    async fn copy_part(&self, source: &S3Uri, target: &CopyTarget<'_>, upload_id: &str, range: ByteRange) -> PortResult<CopiedPart> {
        self.hook.before_copy(Some(range.part_number)).await?;
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
}

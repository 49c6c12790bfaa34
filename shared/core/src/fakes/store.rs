//! The artifact store (S3), with its composite checksums, its versions and conditional writes,
//! and a pass-through store with a hook before copies.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::copy::{composite_sha256, ByteRange, ObjectInfo};
use crate::domain::evidence::sha256_base64 as sha256_b64;
use crate::domain::ids::{AccountId, S3Uri};
use crate::ports::{ArtifactStore, CopiedPart, CopyTarget, FailureKind, PortError, PortResult, StoredVersion};

#[derive(Debug, Clone)]
struct StoredObject {
    bytes: Vec<u8>,
    sha256: String,
    copied_from_etag: Option<String>,
    version_id: String,
}

impl StoredObject {
    fn new(bytes: Vec<u8>, sha256: String, copied_from_etag: Option<String>) -> Self {
        Self { bytes, sha256, copied_from_etag, version_id: uuid::Uuid::new_v4().simple().to_string() }
    }
}

/// One version of a key, as a versioned bucket keeps it.
#[derive(Debug, Clone)]
struct KeptVersion {
    object: StoredObject,
    /// Locked in compliance mode until then: S3 deletes and overwrites it for no one.
    retain_until: Option<DateTime<Utc>>,
}

/// An incomplete upload: its destination, the ETag of its source, its parts.
type Upload = (S3Uri, Option<String>, BTreeMap<i32, Vec<u8>>);

/// A versioned bucket: every write of a key is a new version, the last one its current object.
#[derive(Default)]
pub struct FakeStore {
    objects: Mutex<BTreeMap<S3Uri, StoredObject>>,
    versions: Mutex<BTreeMap<S3Uri, Vec<KeptVersion>>>,
    uploads: Mutex<HashMap<String, Upload>>,
    pub calls: Mutex<Vec<&'static str>>,
}

impl FakeStore {
    /// Writes `bytes` as a new current version of `uri`, unconditionally (as any writer of the
    /// bucket may); returns its version id.
    pub fn put_object(&self, uri: &S3Uri, bytes: Vec<u8>) -> String {
        let sha256 = sha256_b64(&bytes);
        self.store(uri, StoredObject::new(bytes, sha256, None), None)
    }

    fn store(&self, uri: &S3Uri, object: StoredObject, retain_until: Option<DateTime<Utc>>) -> String {
        let version_id = object.version_id.clone();
        self.versions.lock().unwrap().entry(uri.clone()).or_default().push(KeptVersion { object: object.clone(), retain_until });
        self.objects.lock().unwrap().insert(uri.clone(), object);
        version_id
    }

    /// Every version of `uri`, oldest first: its id and bytes.
    pub fn versions(&self, uri: &S3Uri) -> Vec<(String, Vec<u8>)> {
        let versions = self.versions.lock().unwrap();
        versions.get(uri).map(|kept| kept.iter().map(|v| (v.object.version_id.clone(), v.object.bytes.clone())).collect()).unwrap_or_default()
    }

    /// Until when a version of `uri` is locked, if it is.
    pub fn retained_until(&self, uri: &S3Uri, version_id: &str) -> Option<DateTime<Utc>> {
        let versions = self.versions.lock().unwrap();
        versions.get(uri)?.iter().find(|v| v.object.version_id == version_id)?.retain_until
    }

    /// Changes the bytes of a stored version in place: what no S3 API can do (a version is
    /// immutable, a locked one undeletable), for tests of the checks that would notice.
    pub fn corrupt_version(&self, uri: &S3Uri, version_id: &str, bytes: Vec<u8>) {
        let mut versions = self.versions.lock().unwrap();
        let kept = versions.get_mut(uri).and_then(|kept| kept.iter_mut().find(|v| v.object.version_id == version_id)).expect("a stored version");
        kept.object.bytes = bytes.clone();
        let mut objects = self.objects.lock().unwrap();
        if let Some(current) = objects.get_mut(uri).filter(|o| o.version_id == version_id) {
            current.bytes = bytes;
        }
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
        let copy = StoredObject::new(bytes, sha256.clone(), Some(target.source_etag.to_owned()));
        self.store(target.destination, copy, None);
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
        self.store(destination, StoredObject::new(bytes, sha256.clone(), source_etag), None);
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

    /// A delete without a version id: the key reads as absent, its versions stay (a delete marker).
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

    async fn put_once(&self, uri: &S3Uri, body: Vec<u8>, _content_type: &str, retain_until: DateTime<Utc>) -> PortResult<StoredVersion> {
        self.record("PutObject");
        if self.objects.lock().unwrap().contains_key(uri) {
            return Err(PortError::new(
                "PutObject",
                FailureKind::Conflict,
                "PreconditionFailed: At least one of the pre-conditions you specified did not hold",
            ));
        }
        let sha256 = sha256_b64(&body);
        let version_id = self.store(uri, StoredObject::new(body, sha256.clone(), None), Some(retain_until));
        Ok(StoredVersion { version_id, sha256 })
    }

    async fn read_version(&self, uri: &S3Uri, version_id: &str, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.record("GetObject");
        let found = self.versions(uri).into_iter().find(|(id, _)| id == version_id);
        let (_, bytes) = found.ok_or_else(|| PortError::new("GetObject", FailureKind::NotFound, "NoSuchVersion"))?;
        if bytes.len() as u64 > max_bytes {
            return Err(PortError::new("GetObject", FailureKind::Terminal, "too large"));
        }
        Ok(bytes)
    }

    async fn current_version(&self, uri: &S3Uri) -> PortResult<Option<String>> {
        self.record("HeadObject");
        Ok(self.objects.lock().unwrap().get(uri).map(|o| o.version_id.clone()))
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

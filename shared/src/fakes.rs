//! In-memory fakes of the ports, for tests of the domain and of the handlers. They keep the
//! rules the real services enforce (conditional writes, composite checksums, card versions).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::copy::{composite_sha256, ByteRange, ObjectInfo};
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{AccountId, GroupName, ModelPackageArn, S3Uri, Stage};
use crate::domain::ledger::{decision_supersedes, AuditEntry, Claim, ClaimResult, DeploymentRecord, PromotionRecord, StartClaim};
use crate::domain::package::{NewPackage, RegisteredPackage};
use crate::ports::*;

fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

#[derive(Default)]
pub struct FakeRegistry {
    pub region: String,
    pub account: Option<AccountId>,
    pub packages: Mutex<BTreeMap<String, RegisteredPackage>>,
    pub groups: Mutex<HashSet<GroupName>>,
    pub creates: AtomicUsize,
}

impl FakeRegistry {
    pub fn in_account(account: &str) -> Self {
        Self { region: "us-east-1".into(), account: Some(account.parse().expect("account")), ..Self::default() }
    }

    pub fn add(&self, package: RegisteredPackage) {
        self.packages.lock().unwrap().insert(package.arn.to_string(), package);
    }

    pub fn versions(&self, group: &GroupName) -> Vec<RegisteredPackage> {
        self.packages.lock().unwrap().values().filter(|p| p.arn.group() == group).cloned().collect()
    }
}

#[async_trait]
impl ModelRegistry for FakeRegistry {
    async fn describe_package(&self, arn: &ModelPackageArn) -> PortResult<RegisteredPackage> {
        let found = self.packages.lock().unwrap().get(arn.as_str()).cloned();
        found.ok_or_else(|| PortError::new("DescribeModelPackage", FailureKind::Terminal, format!("{arn} does not exist")))
    }

    async fn ensure_group(&self, group: &GroupName, _description: &str) -> PortResult<()> {
        self.groups.lock().unwrap().insert(group.clone());
        Ok(())
    }

    async fn create_package(&self, package: &NewPackage) -> PortResult<ModelPackageArn> {
        if !self.groups.lock().unwrap().contains(&package.group) {
            return Err(PortError::new("CreateModelPackage", FailureKind::Terminal, "group does not exist"));
        }
        self.creates.fetch_add(1, Ordering::SeqCst);
        let version = u32::try_from(self.versions(&package.group).len() + 1).expect("few versions");
        let account = self.account.clone().expect("registry account");
        let arn = ModelPackageArn::new(&self.region, &account, &package.group, version);
        self.add(RegisteredPackage {
            arn: arn.clone(),
            description: Some(package.description.clone()),
            status: Some(ApprovalStatus::PendingManualApproval),
            inference: package.inference.clone(),
            artifacts: package.artifacts.clone(),
            customer_metadata: package.customer_metadata.clone(),
        });
        Ok(arn)
    }

    async fn find_recent_by_description(&self, group: &GroupName, description: &str) -> PortResult<Option<ModelPackageArn>> {
        Ok(self.versions(group).into_iter().rev().find(|p| p.description.as_deref() == Some(description)).map(|p| p.arn))
    }

    async fn set_approval(&self, package: &RegisteredPackage, status: ApprovalStatus, _reason: &str, extra: &[(&str, &str)]) -> PortResult<()> {
        let mut packages = self.packages.lock().unwrap();
        let stored = packages.get_mut(package.arn.as_str()).expect("package exists");
        stored.status = Some(status);
        stored.customer_metadata.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeSessions {
    pub registries: HashMap<AccountId, Arc<FakeRegistry>>,
}

#[async_trait]
impl AccountSessions for FakeSessions {
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>> {
        match self.registries.get(account) {
            Some(registry) => Ok(registry.clone()),
            None => Err(PortError::new("AssumeRole", FailureKind::Terminal, format!("no role in {account}"))),
        }
    }
}

#[derive(Debug, Clone)]
struct StoredObject {
    bytes: Vec<u8>,
    sha256: String,
    copied_from_etag: Option<String>,
}

#[derive(Default)]
pub struct FakeStore {
    objects: Mutex<BTreeMap<S3Uri, StoredObject>>,
    uploads: Mutex<HashMap<String, (S3Uri, Option<String>, BTreeMap<i32, Vec<u8>>)>>,
    pub calls: Mutex<Vec<&'static str>>,
}

impl FakeStore {
    pub fn put_object(&self, uri: &S3Uri, bytes: Vec<u8>) {
        let sha256 = sha256_b64(&bytes);
        self.objects.lock().unwrap().insert(uri.clone(), StoredObject { bytes, sha256, copied_from_etag: None });
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
        Ok(self.objects.lock().unwrap().get(uri).map(|o| ObjectInfo {
            size: o.bytes.len() as u64,
            etag: Self::etag(&o.bytes),
            sha256: Some(o.sha256.clone()),
            content_type: None,
            copied_from_etag: o.copied_from_etag.clone(),
        }))
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
        let (_, source_etag, stored) = self
            .uploads
            .lock()
            .unwrap()
            .remove(upload_id)
            .ok_or_else(|| PortError::new("CompleteMultipartUpload", FailureKind::NotFound, "NoSuchUpload"))?;
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

#[derive(Default)]
pub struct FakeCards {
    pub cards: Mutex<HashMap<String, Vec<Value>>>,
    pub statuses: Mutex<HashMap<String, CardStatus>>,
}

#[async_trait]
impl ModelCards for FakeCards {
    async fn describe(&self, name: &str) -> PortResult<Option<CardSnapshot>> {
        let cards = self.cards.lock().unwrap();
        Ok(cards.get(name).map(|versions| CardSnapshot {
            version: u32::try_from(versions.len()).expect("few versions"),
            content: versions.last().cloned().unwrap_or_default(),
        }))
    }

    async fn create(&self, name: &str, content: &Value) -> PortResult<u32> {
        let mut cards = self.cards.lock().unwrap();
        if cards.contains_key(name) {
            return Err(PortError::new("CreateModelCard", FailureKind::Conflict, "card already exists"));
        }
        cards.insert(name.to_owned(), vec![content.clone()]);
        Ok(1)
    }

    async fn update(&self, name: &str, content: &Value, status: Option<CardStatus>) -> PortResult<u32> {
        if let Some(status) = status {
            self.statuses.lock().unwrap().insert(name.to_owned(), status);
        }
        let mut cards = self.cards.lock().unwrap();
        let versions = cards.get_mut(name).ok_or_else(|| PortError::new("UpdateModelCard", FailureKind::NotFound, "no card"))?;
        versions.push(content.clone());
        Ok(u32::try_from(versions.len()).expect("few versions"))
    }
}

#[derive(Default)]
pub struct FakePublisher {
    pub events: Mutex<Vec<(String, Value)>>,
}

#[async_trait]
impl EventPublisher for FakePublisher {
    async fn publish(&self, detail_type: &str, detail: &Value) -> PortResult<()> {
        self.events.lock().unwrap().push((detail_type.to_owned(), detail.clone()));
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeLedger {
    pub records: Mutex<HashMap<String, PromotionRecord>>,
    pub audit: Mutex<BTreeMap<String, AuditEntry>>,
    pub deployments: Mutex<HashMap<String, DeploymentRecord>>,
    pub starts: Mutex<HashMap<String, (chrono::DateTime<chrono::Utc>, Option<String>)>>,
}

impl FakeLedger {
    pub fn record(&self, source: &ModelPackageArn) -> Option<PromotionRecord> {
        self.records.lock().unwrap().get(source.as_str()).cloned()
    }
}

#[async_trait]
impl Ledger for FakeLedger {
    async fn claim(&self, claim: &Claim) -> PortResult<ClaimResult> {
        let mut records = self.records.lock().unwrap();
        let existing = records.get(claim.source.as_str());
        if !claim.grants_over(existing) {
            return Ok(ClaimResult::Held(existing.cloned().expect("held means present")));
        }
        let mut record = existing.cloned().unwrap_or_else(|| {
            PromotionRecord::new(claim.source.clone(), crate::domain::ledger::PromotionState::InProgress, &claim.event_id, claim.event_time)
        });
        record.state = crate::domain::ledger::PromotionState::InProgress;
        record.owner = Some(claim.owner.clone());
        record.lease_until = Some(claim.lease_until);
        record.event_id = claim.event_id.clone();
        record.decided_at = claim.event_time;
        record.reason = None;
        records.insert(claim.source.to_string(), record.clone());
        Ok(ClaimResult::Granted(record))
    }

    async fn get(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        Ok(self.record(source))
    }

    async fn save(&self, record: &PromotionRecord, owner: &str) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        let held = records.get(record.source.as_str()).and_then(|r| r.owner.as_deref()) == Some(owner);
        if !held {
            return Err(PortError::new("PutItem", FailureKind::Retryable, "claim lost"));
        }
        records.insert(record.source.to_string(), record.clone());
        Ok(())
    }

    async fn release(&self, source: &ModelPackageArn, owner: &str) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        if let Some(record) = records.get_mut(source.as_str()).filter(|r| r.owner.as_deref() == Some(owner)) {
            record.lease_until = Some(chrono::DateTime::UNIX_EPOCH);
        }
        Ok(())
    }

    async fn record_decision(&self, record: &PromotionRecord) -> PortResult<bool> {
        let mut records = self.records.lock().unwrap();
        if !decision_supersedes(records.get(record.source.as_str()), record) {
            return Ok(false);
        }
        records.insert(record.source.to_string(), record.clone());
        Ok(true)
    }

    async fn append(&self, entry: &AuditEntry) -> PortResult<()> {
        let key = format!("{}#{}#{}#{}", entry.source, entry.at, entry.event_id, entry.action);
        self.audit.lock().unwrap().entry(key).or_insert_with(|| entry.clone());
        Ok(())
    }

    async fn promotions(&self) -> PortResult<Vec<PromotionRecord>> {
        Ok(self.records.lock().unwrap().values().cloned().collect())
    }

    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>> {
        let mut entries: Vec<AuditEntry> = self.audit.lock().unwrap().values().filter(|e| &e.source == package).cloned().collect();
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }

    async fn deployment(&self, stage: Stage, endpoint: &str) -> PortResult<Option<DeploymentRecord>> {
        Ok(self.deployments.lock().unwrap().get(&format!("{stage}#{endpoint}")).cloned())
    }

    async fn record_deployment(&self, record: &DeploymentRecord) -> PortResult<()> {
        self.deployments.lock().unwrap().insert(format!("{}#{}", record.stage, record.endpoint), record.clone());
        Ok(())
    }

    async fn claim_start(&self, event_id: &str, lease_until: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> PortResult<StartClaim> {
        let mut starts = self.starts.lock().unwrap();
        match starts.get(event_id) {
            Some((_, Some(execution_id))) => Ok(StartClaim::Started { execution_id: execution_id.clone() }),
            Some((lease, None)) if *lease >= now => Ok(StartClaim::Busy),
            _ => {
                starts.insert(event_id.to_owned(), (lease_until, None));
                Ok(StartClaim::Granted)
            }
        }
    }

    async fn record_start(&self, event_id: &str, execution_id: &str) -> PortResult<()> {
        let mut starts = self.starts.lock().unwrap();
        let entry = starts.entry(event_id.to_owned()).or_insert((chrono::Utc::now(), None));
        entry.1 = Some(execution_id.to_owned());
        Ok(())
    }
}

//! In-memory fakes of the ports, for tests of the domain and of the handlers. They keep the
//! rules the real services enforce (conditional writes, composite checksums, card versions).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::audit::AuditEntry;
use crate::domain::copy::{composite_sha256, ByteRange, ObjectInfo};
use crate::domain::deploy::{BlueGreen, OutputVariables, StageSettings};
use crate::domain::event::ApprovalStatus;
use crate::domain::ids::{AccountId, GroupName, ModelPackageArn, S3Uri, Stage};
use crate::domain::ledger::{decision_supersedes, Claim, ClaimResult, DeploymentRecord, PromotionRecord, StartClaim};
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
    /// How many times a claim's lease was renewed.
    pub renewals: Mutex<usize>,
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

    async fn renew(&self, source: &ModelPackageArn, owner: &str, lease_until: chrono::DateTime<chrono::Utc>) -> PortResult<()> {
        let mut records = self.records.lock().unwrap();
        let held =
            records.get_mut(source.as_str()).filter(|r| r.owner.as_deref() == Some(owner) && r.state == crate::domain::ledger::PromotionState::InProgress);
        let record = held.ok_or_else(|| PortError::new("UpdateItem", FailureKind::Conflict, "claim lost"))?;
        record.lease_until = Some(lease_until);
        *self.renewals.lock().unwrap() += 1;
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
        let key = format!("{}#{}#{}", entry.source, entry.event_id, entry.action);
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

/// How a fake endpoint's pending create or update ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Succeed,
    Fail(String),
    /// SageMaker rolled the update back on its own: back in service on the old config.
    SilentRollback,
}

#[derive(Debug, Clone)]
pub struct FakeEndpoint {
    pub status: EndpointStatus,
    pub config: String,
    target: Option<String>,
    polls_left: usize,
}

/// SageMaker hosting in one account: endpoints take `polls` describes to settle.
pub struct FakeEndpoints {
    pub polls: usize,
    pub transition: Mutex<Transition>,
    pub models: Mutex<Vec<String>>,
    pub configs: Mutex<Vec<String>>,
    pub endpoints: Mutex<HashMap<String, FakeEndpoint>>,
    pub replies: Mutex<std::collections::VecDeque<InvokeResult>>,
    pub calls: Mutex<Vec<String>>,
    /// What the next calls of an operation (`"InvokeEndpoint"`, `"DescribeEndpoint"`…) do instead
    /// of their work, first come first served.
    pub faults: Mutex<Vec<(&'static str, Fault)>>,
}

/// A call of a fake that goes wrong.
#[derive(Debug, Clone)]
pub enum Fault {
    Fail(PortError),
    /// Never answers, as a hung endpoint or connection.
    Hang,
}

impl FakeEndpoints {
    pub fn settling_after(polls: usize) -> Self {
        Self {
            polls,
            transition: Mutex::new(Transition::Succeed),
            models: Mutex::default(),
            configs: Mutex::default(),
            endpoints: Mutex::default(),
            replies: Mutex::default(),
            calls: Mutex::default(),
            faults: Mutex::default(),
        }
    }

    /// The next call of `operation` goes wrong as `fault` says.
    pub fn fault(&self, operation: &'static str, fault: Fault) {
        self.faults.lock().unwrap().push((operation, fault));
    }

    async fn faulty(&self, operation: &'static str) -> PortResult<()> {
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            faults.iter().position(|(op, _)| *op == operation).map(|at| faults.remove(at).1)
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail(error)) => Err(error),
            Some(Fault::Hang) => std::future::pending().await,
        }
    }

    pub fn endpoint(&self, name: &str) -> Option<FakeEndpoint> {
        self.endpoints.lock().unwrap().get(name).cloned()
    }

    fn begin(&self, name: &str, status: EndpointStatus, current: &str, target: &str) {
        let endpoint = FakeEndpoint { status, config: current.to_owned(), target: Some(target.to_owned()), polls_left: self.polls };
        self.endpoints.lock().unwrap().insert(name.to_owned(), endpoint);
    }
}

#[async_trait]
impl Endpoints for FakeEndpoints {
    async fn ensure_model(&self, spec: &ModelSpec<'_>) -> PortResult<()> {
        self.faulty("CreateModel").await?;
        let mut models = self.models.lock().unwrap();
        if !models.iter().any(|m| m == spec.name) {
            models.push(spec.name.to_owned());
        }
        Ok(())
    }

    async fn ensure_endpoint_config(&self, spec: &EndpointConfigSpec<'_>) -> PortResult<()> {
        self.faulty("CreateEndpointConfig").await?;
        let mut configs = self.configs.lock().unwrap();
        if !configs.iter().any(|c| c == spec.name) {
            configs.push(spec.name.to_owned());
        }
        Ok(())
    }

    async fn describe_endpoint(&self, name: &str) -> PortResult<Option<EndpointState>> {
        self.faulty("DescribeEndpoint").await?;
        let transition = self.transition.lock().unwrap().clone();
        let mut endpoints = self.endpoints.lock().unwrap();
        let Some(endpoint) = endpoints.get_mut(name) else {
            return Ok(None);
        };
        if endpoint.target.is_some() {
            if endpoint.polls_left == 0 {
                let target = endpoint.target.take().expect("pending target");
                match transition {
                    Transition::Succeed => (endpoint.status, endpoint.config) = (EndpointStatus::InService, target),
                    Transition::Fail(_) => endpoint.status = EndpointStatus::Failed,
                    Transition::SilentRollback => endpoint.status = EndpointStatus::InService,
                }
            } else {
                endpoint.polls_left -= 1;
            }
        }
        let failure_reason = match (&endpoint.status, transition) {
            (EndpointStatus::Failed, Transition::Fail(reason)) => Some(reason),
            _ => None,
        };
        Ok(Some(EndpointState { status: endpoint.status.clone(), config_name: endpoint.config.clone(), failure_reason }))
    }

    async fn create_endpoint(&self, name: &str, config: &str) -> PortResult<()> {
        self.faulty("CreateEndpoint").await?;
        self.calls.lock().unwrap().push(format!("CreateEndpoint {name} {config}"));
        self.begin(name, EndpointStatus::Creating, config, config);
        Ok(())
    }

    async fn update_endpoint(&self, name: &str, config: &str, blue_green: Option<&BlueGreen>) -> PortResult<()> {
        self.faulty("UpdateEndpoint").await?;
        let mode = if blue_green.is_some() { "blue-green" } else { "direct" };
        self.calls.lock().unwrap().push(format!("UpdateEndpoint {name} {config} {mode}"));
        let current = self.endpoint(name).map(|e| e.config).unwrap_or_default();
        self.begin(name, EndpointStatus::Updating, &current, config);
        Ok(())
    }

    async fn delete_endpoint(&self, name: &str) -> PortResult<()> {
        self.faulty("DeleteEndpoint").await?;
        self.calls.lock().unwrap().push(format!("DeleteEndpoint {name}"));
        self.endpoints.lock().unwrap().remove(name);
        Ok(())
    }

    async fn invoke(&self, name: &str, _content_type: &str, _payload: &[u8], _inference_id: &str) -> PortResult<InvokeResult> {
        self.faulty("InvokeEndpoint").await?;
        if self.endpoint(name).is_none() {
            return Err(PortError::new("InvokeEndpoint", FailureKind::Terminal, format!("endpoint {name} not found")));
        }
        Ok(self.replies.lock().unwrap().pop_front().unwrap_or(InvokeResult { status: 200, body: b"0.5".to_vec() }))
    }
}

#[derive(Default)]
pub struct FakeStageSessions {
    pub accounts: HashMap<AccountId, Arc<FakeEndpoints>>,
}

#[async_trait]
impl StageSessions for FakeStageSessions {
    async fn endpoints(&self, stage: &StageSettings) -> PortResult<Arc<dyn Endpoints>> {
        match self.accounts.get(&stage.account) {
            Some(endpoints) => Ok(endpoints.clone()),
            None => Err(PortError::new("AssumeRole", FailureKind::Terminal, format!("no deploy role in {}", stage.account))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAnswer {
    pub job_id: String,
    pub succeeded: bool,
    pub continuation: Option<String>,
    pub message: String,
    /// The output variables a final success handed on.
    pub variables: OutputVariables,
}

#[derive(Default)]
pub struct FakeJobs {
    pub answers: Mutex<Vec<JobAnswer>>,
}

impl FakeJobs {
    /// As CodePipeline: a job takes one answer, and a second one is refused.
    fn settle(&self, answer: JobAnswer) -> PortResult<()> {
        let mut answers = self.answers.lock().unwrap();
        if answers.iter().any(|earlier| earlier.job_id == answer.job_id) {
            return Err(PortError::new("PutJobResult", FailureKind::Conflict, format!("InvalidJobStateException: job {} is already answered", answer.job_id)));
        }
        answers.push(answer);
        Ok(())
    }

    /// The answer a job got, if any.
    pub fn answer(&self, job_id: &str) -> Option<JobAnswer> {
        self.answers.lock().unwrap().iter().find(|a| a.job_id == job_id).cloned()
    }
}

#[async_trait]
impl PipelineJobs for FakeJobs {
    async fn succeed(&self, job_id: &str, continuation: Option<&str>, summary: &str) -> PortResult<()> {
        let continuation = continuation.map(str::to_owned);
        self.settle(JobAnswer { job_id: job_id.into(), succeeded: true, continuation, message: summary.into(), variables: OutputVariables::new() })
    }

    async fn succeed_with_variables(&self, job_id: &str, summary: &str, variables: &OutputVariables) -> PortResult<()> {
        self.settle(JobAnswer { job_id: job_id.into(), succeeded: true, continuation: None, message: summary.into(), variables: variables.clone() })
    }

    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()> {
        self.settle(JobAnswer { job_id: job_id.into(), succeeded: false, continuation: None, message: message.into(), variables: OutputVariables::new() })
    }
}

#[derive(Default)]
pub struct FakeNotifier {
    pub sent: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl Notifier for FakeNotifier {
    async fn notify(&self, subject: &str, message: &str) -> PortResult<()> {
        self.sent.lock().unwrap().push((subject.to_owned(), message.to_owned()));
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeRuns {
    /// Executions by id: the version each runs for and the token that started it.
    pub executions: Mutex<BTreeMap<String, (ModelPackageArn, String)>>,
    pub pending: Mutex<Option<PendingApproval>>,
    pub answers: Mutex<Vec<(String, bool, String)>>,
    pub approval_results: Mutex<HashMap<String, ApprovalResult>>,
}

#[async_trait]
impl PipelineRuns for FakeRuns {
    async fn start(&self, _pipeline: &str, package: &ModelPackageArn, token: &str) -> PortResult<String> {
        let mut executions = self.executions.lock().unwrap();
        if let Some((id, _)) = executions.iter().find(|(_, (_, t))| t == token) {
            return Ok(id.clone());
        }
        let id = format!("exec-{}", executions.len() + 1);
        executions.insert(id.clone(), (package.clone(), token.to_owned()));
        Ok(id)
    }

    async fn execution_package(&self, _pipeline: &str, execution_id: &str) -> PortResult<Option<ModelPackageArn>> {
        Ok(self.executions.lock().unwrap().get(execution_id).map(|(package, _)| package.clone()))
    }

    async fn pending_approval(&self, _pipeline: &str, _stage: &str, _action: &str) -> PortResult<Option<PendingApproval>> {
        Ok(self.pending.lock().unwrap().clone())
    }

    async fn answer_approval(&self, _pipeline: &str, _stage: &str, _action: &str, token: &str, approve: bool, summary: &str) -> PortResult<()> {
        self.answers.lock().unwrap().push((token.to_owned(), approve, summary.to_owned()));
        *self.pending.lock().unwrap() = None;
        Ok(())
    }

    async fn approval_result(&self, _pipeline: &str, execution_id: &str, _action: &str) -> PortResult<Option<ApprovalResult>> {
        Ok(self.approval_results.lock().unwrap().get(execution_id).cloned())
    }
}

/// A central account, with one promoted and approved version, and test and prod accounts: all fakes.
pub struct DeployWorld {
    pub central: Arc<FakeRegistry>,
    pub test: Arc<FakeEndpoints>,
    pub prod: Arc<FakeEndpoints>,
    pub jobs: Arc<FakeJobs>,
    pub runs: Arc<FakeRuns>,
    pub ledger: Arc<FakeLedger>,
    pub store: Arc<FakeStore>,
    pub cards: Arc<FakeCards>,
    pub approvers: Arc<FakeNotifier>,
    pub ports: crate::deployment::DeployPorts,
    pub config: crate::deployment::DeployConfig,
    pub package: ModelPackageArn,
}

pub const DEPLOY_WORLD_PACKAGE: &str = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-prediction-111111111111/1";
pub const DEPLOY_WORLD_SOURCE: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3";

impl DeployWorld {
    /// Endpoints settle after `polls` describes.
    pub fn new(polls: usize) -> Self {
        let package: ModelPackageArn = DEPLOY_WORLD_PACKAGE.parse().expect("arn");
        let source: ModelPackageArn = DEPLOY_WORLD_SOURCE.parse().expect("arn");
        let central = Arc::new(FakeRegistry::in_account("222222222222"));
        central.add(RegisteredPackage {
            arn: package.clone(),
            description: Some(crate::domain::naming::central_description(&source)),
            status: Some(ApprovalStatus::Approved),
            inference: Default::default(),
            artifacts: Vec::new(),
            customer_metadata: BTreeMap::from([(crate::domain::lineage::SOURCE_ARN.to_owned(), source.to_string())]),
        });
        let ledger = Arc::new(FakeLedger::default());
        let mut record = PromotionRecord::new(source.clone(), crate::domain::ledger::PromotionState::Promoted, "e-0", chrono::Utc::now());
        record.central_package = Some(package.clone());
        record.central_group = Some(package.group().clone());
        ledger.records.lock().unwrap().insert(source.to_string(), record);
        let cards = Arc::new(FakeCards::default());
        let card =
            serde_json::json!({ "model_package_details": { "model_package_arn": package.to_string() }, "additional_information": { "custom_details": {} } });
        cards.cards.lock().unwrap().insert(package.group().to_string(), vec![card]);
        let (test, prod) = (Arc::new(FakeEndpoints::settling_after(polls)), Arc::new(FakeEndpoints::settling_after(polls)));
        let stages = FakeStageSessions {
            accounts: HashMap::from([("333333333333".parse().expect("id"), test.clone()), ("444444444444".parse().expect("id"), prod.clone())]),
        };
        let (jobs, runs, store) = (Arc::new(FakeJobs::default()), Arc::new(FakeRuns::default()), Arc::new(FakeStore::default()));
        let approvers = Arc::new(FakeNotifier::default());
        let ports = crate::deployment::DeployPorts {
            stages: Arc::new(stages),
            central_registry: central.clone(),
            jobs: jobs.clone(),
            runs: runs.clone(),
            ledger: ledger.clone(),
            artifacts: store.clone(),
            cards: cards.clone(),
            approvers: approvers.clone(),
        };
        let env = HashMap::from([
            ("CENTRAL_ACCOUNT_ID", "222222222222".to_owned()),
            ("STAGE_CONFIG", stage_config_json()),
            ("ARTIFACT_BUCKET", "model-promotion-artifacts-222222222222".to_owned()),
            ("ARTIFACT_KMS_KEY_ID", "key".to_owned()),
            ("LEDGER_TABLE", "ledger".to_owned()),
            ("PIPELINE_NAME", "model-promotion-deploy".to_owned()),
            ("APPROVAL_TOPIC_ARN", "arn:aws:sns:us-east-1:222222222222:model-promotion-approvals".to_owned()),
        ]);
        let config = crate::deployment::DeployConfig::from_lookup(|name| env.get(name).cloned()).expect("config");
        Self { central, test, prod, jobs, runs, ledger, store, cards, approvers, ports, config, package }
    }

    pub fn last_answer(&self) -> JobAnswer {
        self.jobs.answers.lock().unwrap().last().cloned().expect("the job was answered")
    }

    pub fn audit_actions(&self) -> Vec<String> {
        let mut entries: Vec<AuditEntry> = self.ledger.audit.lock().unwrap().values().filter(|e| e.source == self.package).cloned().collect();
        entries.sort_by_key(|e| e.at);
        entries.into_iter().map(|e| e.action.to_string()).collect()
    }
}

/// Test and prod as the local demo configures them.
pub fn stage_config_json() -> String {
    crate::config::LOCAL_STAGE_CONFIG.to_owned()
}

impl FakeEndpoints {
    /// An endpoint already in service, as an earlier deployment left it.
    pub fn create_endpoint_for_test(&self, name: &str, config: &str) {
        let endpoint = FakeEndpoint { status: EndpointStatus::InService, config: config.to_owned(), target: None, polls_left: 0 };
        self.endpoints.lock().unwrap().insert(name.to_owned(), endpoint);
    }
}

/// What the tracing macros write while a capture is installed: for tests that assert what never
/// reaches a log line, such as a CodePipeline job's artifactCredentials.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures every event at every level, as JSON lines, on this thread until the guard drops.
    pub fn everything() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt().json().with_max_level(tracing::Level::TRACE).with_writer(logs.clone()).finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Panics when a line holds any value of the job event's artifactCredentials, or names them.
    pub fn assert_free_of_credentials(&self, job: &Value) {
        let credentials = job["CodePipeline.job"]["data"]["artifactCredentials"].as_object().expect("the job carries artifactCredentials");
        assert!(!credentials.is_empty(), "the job's artifactCredentials are empty");
        for line in self.text().lines() {
            for (name, value) in credentials {
                let value = value.as_str().expect("credentials are strings");
                assert!(!line.contains(value), "{name} leaked into a log line");
            }
            assert!(!line.contains("artifactCredentials"), "a log line names the artifactCredentials");
        }
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

//! Chaos over the ports: every call promote-model or deploy-model makes is numbered, and chosen calls fail the
//! way AWS fails (throttling, 5xx, timeouts), either before the call takes effect or after it
//! took effect with its answer lost. Wraps the real adapters (or fakes) without changing them.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use promotion_core::deployment::DeployPorts;
use promotion_core::domain::audit::AuditEntry;
use promotion_core::domain::chain::StoredChain;
use promotion_core::domain::copy::{ByteRange, ObjectInfo};
use promotion_core::domain::deploy::{BlueGreen, OutputVariables, StageSettings};
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::identity::Approver;
use promotion_core::domain::ids::{AccountId, GroupName, ModelPackageArn, S3Uri, Stage};
use promotion_core::domain::image::{ImageDigest, ImageRef, RepositoryName};
use promotion_core::domain::ledger::{Claim, ClaimResult, DeploymentRecord, PromotionRecord, StartClaim, TestRecord};
use promotion_core::domain::package::{NewPackage, RegisteredPackage};
use promotion_core::ports::{
    AccountSessions, ApproverRecords, ArtifactStore, AuditTrail, CardSnapshot, CardStatus, CopiedPart, CopyTarget, DeploymentRecords, EndpointConfigSpec,
    EndpointState, Endpoints, EventPublisher, FailureKind, ImageRegistry, InvokeResult, ModelCards, ModelRegistry, ModelSpec, Notifier, PipelineJobs,
    PortError, PortResult, PromotePorts, PromotionLedger, Settled, StageSessions, StartClaims, StoredVersion, TestRecords,
};
use serde_json::Value;

/// How an injected failure meets the call it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused before it runs: throttling or a 5xx that outlasted the SDK's retries.
    Refused,
    /// Ran and took effect, but the answer never came back: a timeout, a dropped connection.
    AnswerLost,
}

/// What an injected error says; all are retryable, as the adapters classify them.
const FLAVOURS: [&str; 3] =
    ["ThrottlingException: Rate exceeded (injected)", "ServiceUnavailable: HTTP 503 (injected)", "timeout: the operation did not complete in time (injected)"];

/// Numbers the calls of every port it wraps and fails the chosen ones.
#[derive(Default)]
pub struct Chaos {
    calls: Mutex<Vec<&'static str>>,
    fail: Mutex<BTreeSet<usize>>,
    fault: Option<Fault>,
    injected: Mutex<Vec<(usize, &'static str)>>,
}

impl Chaos {
    /// Counts and fails nothing.
    pub fn counting() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Fails the calls numbered `positions` (from 0), each once.
    pub fn failing(positions: impl IntoIterator<Item = usize>, fault: Fault) -> Arc<Self> {
        Arc::new(Self { fail: Mutex::new(positions.into_iter().collect()), fault: Some(fault), ..Self::default() })
    }

    /// The operations called so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls that were failed: position and operation.
    pub fn injected(&self) -> Vec<(usize, &'static str)> {
        self.injected.lock().unwrap().clone()
    }

    /// `inner` with every port wrapped.
    pub fn ports(self: &Arc<Self>, inner: &PromotePorts) -> PromotePorts {
        PromotePorts {
            sessions: Arc::new(ChaosSessions { inner: inner.sessions.clone(), chaos: self.clone() }),
            central_registry: Arc::new(ChaosRegistry { inner: inner.central_registry.clone(), chaos: self.clone(), account: "central" }),
            central_images: Arc::new(ChaosImages { inner: inner.central_images.clone(), chaos: self.clone() }),
            artifacts: Arc::new(ChaosStore { inner: inner.artifacts.clone(), chaos: self.clone() }),
            cards: Arc::new(ChaosCards { inner: inner.cards.clone(), chaos: self.clone() }),
            events: Arc::new(ChaosEvents { inner: inner.events.clone(), chaos: self.clone() }),
            ledger: Arc::new(ChaosLedger { inner: inner.ledger.clone(), chaos: self.clone() }),
            audit: Arc::new(ChaosLedger { inner: inner.audit.clone(), chaos: self.clone() }),
            approver_records: Arc::new(ChaosLedger { inner: inner.approver_records.clone(), chaos: self.clone() }),
        }
    }

    /// `inner` with every port a deployment function calls wrapped; pipeline runs are not.
    pub fn deploy_ports(self: &Arc<Self>, inner: &DeployPorts) -> DeployPorts {
        DeployPorts {
            stages: Arc::new(ChaosStages { inner: inner.stages.clone(), chaos: self.clone() }),
            central_registry: Arc::new(ChaosRegistry { inner: inner.central_registry.clone(), chaos: self.clone(), account: "central" }),
            jobs: Arc::new(ChaosJobs { inner: inner.jobs.clone(), chaos: self.clone() }),
            runs: inner.runs.clone(),
            promotions: Arc::new(ChaosLedger { inner: inner.promotions.clone(), chaos: self.clone() }),
            audit: Arc::new(ChaosLedger { inner: inner.audit.clone(), chaos: self.clone() }),
            deployments: Arc::new(ChaosLedger { inner: inner.deployments.clone(), chaos: self.clone() }),
            starts: Arc::new(ChaosLedger { inner: inner.starts.clone(), chaos: self.clone() }),
            tests: Arc::new(ChaosLedger { inner: inner.tests.clone(), chaos: self.clone() }),
            artifacts: Arc::new(ChaosStore { inner: inner.artifacts.clone(), chaos: self.clone() }),
            cards: Arc::new(ChaosCards { inner: inner.cards.clone(), chaos: self.clone() }),
            approvers: Arc::new(ChaosNotifier { inner: inner.approvers.clone(), chaos: self.clone() }),
            approver_records: Arc::new(ChaosLedger { inner: inner.approver_records.clone(), chaos: self.clone() }),
        }
    }

    async fn call<T>(&self, operation: &'static str, call: impl Future<Output = PortResult<T>>) -> PortResult<T> {
        let position = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(operation);
            calls.len() - 1
        };
        let fault = self.fault.filter(|_| self.fail.lock().unwrap().remove(&position));
        let Some(fault) = fault else {
            return call.await;
        };
        self.injected.lock().unwrap().push((position, operation));
        let error = PortError::new(operation, FailureKind::Retryable, FLAVOURS[position % FLAVOURS.len()]);
        if fault == Fault::AnswerLost {
            // The effect happens; only its answer is lost.
            let _ = call.await;
        }
        Err(error)
    }
}

pub struct ChaosSessions {
    inner: Arc<dyn AccountSessions>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl AccountSessions for ChaosSessions {
    async fn registry(&self, account: &AccountId) -> PortResult<Arc<dyn ModelRegistry>> {
        let inner = self.chaos.call("AssumeRole", self.inner.registry(account)).await?;
        Ok(Arc::new(ChaosRegistry { inner, chaos: self.chaos.clone(), account: "source" }))
    }

    /// Not a call of its own: the session the registry's `AssumeRole` opened.
    async fn images(&self, account: &AccountId) -> PortResult<Arc<dyn ImageRegistry>> {
        let inner = self.inner.images(account).await?;
        Ok(Arc::new(ChaosImages { inner, chaos: self.chaos.clone() }))
    }
}

pub struct ChaosImages {
    inner: Arc<dyn ImageRegistry>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl ImageRegistry for ChaosImages {
    async fn resolve(&self, image: &ImageRef) -> PortResult<Option<ImageDigest>> {
        self.chaos.call("BatchGetImage", self.inner.resolve(image)).await
    }
    async fn find(&self, repository: &RepositoryName, digest: &ImageDigest) -> PortResult<Option<ImageRef>> {
        self.chaos.call("DescribeImages", self.inner.find(repository, digest)).await
    }
}

pub struct ChaosRegistry {
    inner: Arc<dyn ModelRegistry>,
    chaos: Arc<Chaos>,
    /// Tells the dev registry's calls from the central one's in the call log.
    account: &'static str,
}

impl ChaosRegistry {
    fn name(&self, central: &'static str, source: &'static str) -> &'static str {
        if self.account == "central" {
            central
        } else {
            source
        }
    }
}

#[async_trait]
impl ModelRegistry for ChaosRegistry {
    async fn describe_package(&self, arn: &ModelPackageArn) -> PortResult<RegisteredPackage> {
        let name = self.name("DescribeModelPackage(central)", "DescribeModelPackage(source)");
        self.chaos.call(name, self.inner.describe_package(arn)).await
    }
    async fn ensure_group(&self, group: &GroupName, description: &str) -> PortResult<()> {
        self.chaos.call("EnsureModelPackageGroup", self.inner.ensure_group(group, description)).await
    }
    async fn create_package(&self, package: &NewPackage) -> PortResult<ModelPackageArn> {
        self.chaos.call("CreateModelPackage", self.inner.create_package(package)).await
    }
    async fn find_recent_by_description(&self, group: &GroupName, description: &str) -> PortResult<Option<ModelPackageArn>> {
        self.chaos.call("ListModelPackages", self.inner.find_recent_by_description(group, description)).await
    }
    async fn set_approval(&self, package: &RegisteredPackage, status: ApprovalStatus, reason: &str, extra: &[(&str, &str)]) -> PortResult<()> {
        self.chaos.call("UpdateModelPackage", self.inner.set_approval(package, status, reason, extra)).await
    }
}

pub struct ChaosStore {
    inner: Arc<dyn ArtifactStore>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl ArtifactStore for ChaosStore {
    async fn head(&self, uri: &S3Uri, owner: &AccountId) -> PortResult<Option<ObjectInfo>> {
        self.chaos.call("HeadObject", self.inner.head(uri, owner)).await
    }
    async fn copy_whole(&self, source: &S3Uri, target: &CopyTarget<'_>) -> PortResult<Option<String>> {
        self.chaos.call("CopyObject", self.inner.copy_whole(source, target)).await
    }
    async fn start_multipart(&self, target: &CopyTarget<'_>) -> PortResult<String> {
        self.chaos.call("CreateMultipartUpload", self.inner.start_multipart(target)).await
    }
    async fn copy_part(&self, source: &S3Uri, target: &CopyTarget<'_>, upload_id: &str, range: ByteRange) -> PortResult<CopiedPart> {
        self.chaos.call("UploadPartCopy", self.inner.copy_part(source, target, upload_id, range)).await
    }
    async fn complete_multipart(&self, destination: &S3Uri, upload_id: &str, parts: &[CopiedPart]) -> PortResult<Option<String>> {
        self.chaos.call("CompleteMultipartUpload", self.inner.complete_multipart(destination, upload_id, parts)).await
    }
    async fn abort_multipart(&self, destination: &S3Uri, upload_id: &str) -> PortResult<()> {
        self.chaos.call("AbortMultipartUpload", self.inner.abort_multipart(destination, upload_id)).await
    }
    async fn incomplete_uploads(&self, destination: &S3Uri) -> PortResult<Vec<String>> {
        self.chaos.call("ListMultipartUploads", self.inner.incomplete_uploads(destination)).await
    }
    async fn delete(&self, uri: &S3Uri) -> PortResult<()> {
        self.chaos.call("DeleteObject", self.inner.delete(uri)).await
    }
    async fn put(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str) -> PortResult<()> {
        self.chaos.call("PutObject", self.inner.put(uri, body, content_type)).await
    }
    async fn read_small(&self, uri: &S3Uri, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.chaos.call("GetObject", self.inner.read_small(uri, max_bytes)).await
    }
    async fn put_once(&self, uri: &S3Uri, body: Vec<u8>, content_type: &str, retain_until: DateTime<Utc>) -> PortResult<StoredVersion> {
        self.chaos.call("PutObject", self.inner.put_once(uri, body, content_type, retain_until)).await
    }
    async fn read_version(&self, uri: &S3Uri, version_id: &str, max_bytes: u64) -> PortResult<Vec<u8>> {
        self.chaos.call("GetObject", self.inner.read_version(uri, version_id, max_bytes)).await
    }
    async fn current_version(&self, uri: &S3Uri) -> PortResult<Option<String>> {
        self.chaos.call("HeadObject", self.inner.current_version(uri)).await
    }
}

pub struct ChaosCards {
    inner: Arc<dyn ModelCards>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl ModelCards for ChaosCards {
    async fn describe(&self, name: &str) -> PortResult<Option<CardSnapshot>> {
        self.chaos.call("DescribeModelCard", self.inner.describe(name)).await
    }
    async fn create(&self, name: &str, content: &Value) -> PortResult<u32> {
        self.chaos.call("CreateModelCard", self.inner.create(name, content)).await
    }
    async fn update(&self, name: &str, content: &Value, status: Option<CardStatus>) -> PortResult<u32> {
        self.chaos.call("UpdateModelCard", self.inner.update(name, content, status)).await
    }
}

pub struct ChaosEvents {
    inner: Arc<dyn EventPublisher>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl EventPublisher for ChaosEvents {
    async fn publish(&self, detail_type: &str, detail: &Value) -> PortResult<()> {
        self.chaos.call("PutEvents", self.inner.publish(detail_type, detail)).await
    }
}

/// One role of the ledger, each call counted (as `Ledger.{method}`) and faulted.
pub struct ChaosLedger<L: ?Sized> {
    inner: Arc<L>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl PromotionLedger for ChaosLedger<dyn PromotionLedger> {
    async fn claim(&self, claim: &Claim) -> PortResult<ClaimResult> {
        self.chaos.call("Ledger.claim", self.inner.claim(claim)).await
    }
    async fn get(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        self.chaos.call("Ledger.get", self.inner.get(source)).await
    }
    async fn save(&self, record: &PromotionRecord, owner: &str) -> PortResult<()> {
        self.chaos.call("Ledger.save", self.inner.save(record, owner)).await
    }
    async fn finish(&self, record: &PromotionRecord, owner: &str, entry: &AuditEntry) -> PortResult<()> {
        self.chaos.call("Ledger.finish", self.inner.finish(record, owner, entry)).await
    }
    async fn renew(&self, source: &ModelPackageArn, owner: &str, lease_until: DateTime<Utc>) -> PortResult<()> {
        // Renewals come by the clock, not in a promotion's order of calls: faults go by that order.
        self.inner.renew(source, owner, lease_until).await
    }
    async fn release(&self, source: &ModelPackageArn, owner: &str) -> PortResult<()> {
        self.chaos.call("Ledger.release", self.inner.release(source, owner)).await
    }
    async fn record_decision(&self, record: &PromotionRecord) -> PortResult<bool> {
        self.chaos.call("Ledger.record_decision", self.inner.record_decision(record)).await
    }
    async fn promotions(&self) -> PortResult<Vec<PromotionRecord>> {
        self.chaos.call("Ledger.promotions", self.inner.promotions()).await
    }
    async fn promotion_of(&self, central: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        self.chaos.call("Ledger.promotion_of", self.inner.promotion_of(central)).await
    }
}

#[async_trait]
impl AuditTrail for ChaosLedger<dyn AuditTrail> {
    async fn append(&self, entry: &AuditEntry) -> PortResult<()> {
        self.chaos.call("Ledger.append", self.inner.append(entry)).await
    }
    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>> {
        self.chaos.call("Ledger.history", self.inner.history(package)).await
    }
    async fn chained_models(&self) -> PortResult<Vec<GroupName>> {
        self.chaos.call("Ledger.chained_models", self.inner.chained_models()).await
    }
    async fn chain(&self, model: &GroupName) -> PortResult<StoredChain> {
        self.chaos.call("Ledger.chain", self.inner.chain(model)).await
    }
}

#[async_trait]
impl ApproverRecords for ChaosLedger<dyn ApproverRecords> {
    async fn record_approver(&self, approver: &Approver) -> PortResult<bool> {
        self.chaos.call("Ledger.record_approver", self.inner.record_approver(approver)).await
    }
    async fn approvers(&self, package: &ModelPackageArn) -> PortResult<Vec<Approver>> {
        self.chaos.call("Ledger.approvers", self.inner.approvers(package)).await
    }
}

#[async_trait]
impl DeploymentRecords for ChaosLedger<dyn DeploymentRecords> {
    async fn deployment(&self, stage: Stage, endpoint: &str) -> PortResult<Option<DeploymentRecord>> {
        self.chaos.call("Ledger.deployment", self.inner.deployment(stage, endpoint)).await
    }
    async fn record_deployment(&self, record: &DeploymentRecord) -> PortResult<()> {
        self.chaos.call("Ledger.record_deployment", self.inner.record_deployment(record)).await
    }
}

#[async_trait]
impl TestRecords for ChaosLedger<dyn TestRecords> {
    async fn record_test(&self, record: &TestRecord) -> PortResult<()> {
        self.chaos.call("Ledger.record_test", self.inner.record_test(record)).await
    }
    async fn test_record(&self, execution_id: &str, package: &ModelPackageArn, stage: Stage) -> PortResult<Option<TestRecord>> {
        self.chaos.call("Ledger.test_record", self.inner.test_record(execution_id, package, stage)).await
    }
}

#[async_trait]
impl StartClaims for ChaosLedger<dyn StartClaims> {
    async fn claim_start(&self, event_id: &str, lease_until: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<StartClaim> {
        self.chaos.call("Ledger.claim_start", self.inner.claim_start(event_id, lease_until, now)).await
    }
    async fn record_start(&self, event_id: &str, execution_id: &str) -> PortResult<()> {
        self.chaos.call("Ledger.record_start", self.inner.record_start(event_id, execution_id)).await
    }
    async fn record_execution(&self, package: &ModelPackageArn, execution_id: &str) -> PortResult<()> {
        self.chaos.call("Ledger.record_execution", self.inner.record_execution(package, execution_id)).await
    }
    async fn executions_of(&self, package: &ModelPackageArn) -> PortResult<Vec<String>> {
        self.chaos.call("Ledger.executions_of", self.inner.executions_of(package)).await
    }
}

pub struct ChaosStages {
    inner: Arc<dyn StageSessions>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl StageSessions for ChaosStages {
    async fn endpoints(&self, stage: &StageSettings) -> PortResult<Arc<dyn Endpoints>> {
        let inner = self.chaos.call("AssumeRole(stage)", self.inner.endpoints(stage)).await?;
        Ok(Arc::new(ChaosEndpoints { inner, chaos: self.chaos.clone() }))
    }
}

pub struct ChaosEndpoints {
    inner: Arc<dyn Endpoints>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl Endpoints for ChaosEndpoints {
    async fn ensure_model(&self, spec: &ModelSpec<'_>) -> PortResult<()> {
        self.chaos.call("CreateModel", self.inner.ensure_model(spec)).await
    }
    async fn ensure_endpoint_config(&self, spec: &EndpointConfigSpec<'_>) -> PortResult<()> {
        self.chaos.call("CreateEndpointConfig", self.inner.ensure_endpoint_config(spec)).await
    }
    async fn describe_endpoint(&self, name: &str) -> PortResult<Option<EndpointState>> {
        self.chaos.call("DescribeEndpoint", self.inner.describe_endpoint(name)).await
    }
    async fn create_endpoint(&self, name: &str, config: &str) -> PortResult<()> {
        self.chaos.call("CreateEndpoint", self.inner.create_endpoint(name, config)).await
    }
    async fn update_endpoint(&self, name: &str, config: &str, blue_green: Option<&BlueGreen>) -> PortResult<()> {
        self.chaos.call("UpdateEndpoint", self.inner.update_endpoint(name, config, blue_green)).await
    }
    async fn delete_endpoint(&self, name: &str) -> PortResult<()> {
        self.chaos.call("DeleteEndpoint", self.inner.delete_endpoint(name)).await
    }
    async fn wait_until_in_service(&self, name: &str, bound: std::time::Duration) -> PortResult<Settled> {
        self.chaos.call("DescribeEndpoint", self.inner.wait_until_in_service(name, bound)).await
    }
    async fn wait_until_deleted(&self, name: &str, bound: std::time::Duration) -> PortResult<Settled> {
        self.chaos.call("DescribeEndpoint", self.inner.wait_until_deleted(name, bound)).await
    }
    async fn invoke(&self, name: &str, content_type: &str, payload: &[u8], inference_id: &str) -> PortResult<InvokeResult> {
        self.chaos.call("InvokeEndpoint", self.inner.invoke(name, content_type, payload, inference_id)).await
    }
}

pub struct ChaosJobs {
    inner: Arc<dyn PipelineJobs>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl PipelineJobs for ChaosJobs {
    async fn succeed(&self, job_id: &str, continuation: Option<&str>, summary: &str) -> PortResult<()> {
        self.chaos.call("PutJobSuccessResult", self.inner.succeed(job_id, continuation, summary)).await
    }
    async fn succeed_with_variables(&self, job_id: &str, summary: &str, variables: &OutputVariables) -> PortResult<()> {
        self.chaos.call("PutJobSuccessResult", self.inner.succeed_with_variables(job_id, summary, variables)).await
    }
    async fn fail(&self, job_id: &str, message: &str) -> PortResult<()> {
        self.chaos.call("PutJobFailureResult", self.inner.fail(job_id, message)).await
    }
}

pub struct ChaosNotifier {
    inner: Arc<dyn Notifier>,
    chaos: Arc<Chaos>,
}

#[async_trait]
impl Notifier for ChaosNotifier {
    async fn notify(&self, subject: &str, message: &str) -> PortResult<()> {
        self.chaos.call("Publish", self.inner.notify(subject, message)).await
    }
}

//! Test reports as evidence, against moto's server: the report lands in the Object Lock bucket,
//! locked in compliance mode, written once; the ledger's verdict holds the version and the
//! SHA-256 of the stored bytes; and `promote approve` refuses a report whose key was written over
//! or hidden, sending nothing to CodePipeline. CodePipeline's job and approval calls, which the
//! emulator lacks, are fakes; S3, DynamoDB, SageMaker and SNS are moto's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::types::{ChecksumMode, ObjectLockMode};
use lambda_runtime::{Context, LambdaEvent};
use promotion_aws::s3::S3Artifacts;
use promotion_core::deployment::approval::{answer_prod_approval, verified_evidence, waiting_prod_approval};
use promotion_core::deployment::{DeployConfig, DeployPorts, JobOutcome};
use promotion_core::domain::deploy::deployment_name;
use promotion_core::domain::evidence::sha256_base64;
use promotion_core::domain::ids::{ModelPackageArn, S3Uri, Stage};
use promotion_core::domain::ledger::TestRecord;
use promotion_core::domain::naming::hex_sha256;
use promotion_core::domain::pipeline::PipelineStage;
use promotion_core::fakes::{job_parameters, FakeJobs, FakeRuns};
use promotion_core::ports::{ArtifactStore, EndpointConfigSpec, FailureKind, ModelSpec, PendingApproval, PortError, PortResult, TestRecords};
use promotion_core::promotion::Outcome;
use promotion_tests::TestWorld;
use serde_json::{json, Value};

/// moto keeps one queue of endpoint replies per account: the tests that run cases take turns.
static REPLY_QUEUE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const EXECUTION: &str = "c0ffee00-1111-4222-8333-444455556666";

/// A promoted version, deployed on the test endpoint as deploy-model leaves it, with test-model's
/// ports over moto (its jobs and approvals answered by fakes).
struct Tested {
    world: TestWorld,
    ports: DeployPorts,
    config: DeployConfig,
    runs: Arc<FakeRuns>,
    central: ModelPackageArn,
}

impl Tested {
    async fn new() -> Self {
        let world = TestWorld::new().await;
        let approval = world.decide(&world.world.dev_package.clone(), true).await;
        let Ok(Outcome::Promoted(summary)) = world.deliver(&approval).await else { panic!("promotion failed") };
        let config = world.deploy_config();
        let runs = Arc::new(FakeRuns::default());
        let mut ports = promotion_aws::wiring::deploy_ports(world.central(), &config);
        ports.jobs = Arc::new(FakeJobs::default());
        ports.runs = runs.clone();
        let tested = Self { world, ports, config, runs, central: summary.central_package };
        tested.deployed_on_test().await;
        // DeployTest succeeded: CodePipeline (the fake one these tests drive) runs TestModel.
        tested.runs.run_at(EXECUTION, &tested.central, PipelineStage::TestModel);
        tested
    }

    /// The test endpoint in service on this version's config, as deploy-model leaves it.
    async fn deployed_on_test(&self) {
        let settings = self.config.stages.stage(Stage::Test);
        let endpoints = self.ports.stages.endpoints(settings).await.unwrap();
        let name = deployment_name(&self.central, Stage::Test);
        endpoints.ensure_model(&ModelSpec { name: &name, package: &self.central, execution_role_arn: &settings.execution_role_arn }).await.unwrap();
        let config = EndpointConfigSpec { name: &name, model_name: &name, instance_type: &settings.instance_type, instance_count: settings.instance_count };
        endpoints.ensure_endpoint_config(&config).await.unwrap();
        endpoints.create_endpoint(&settings.endpoint_name(self.central.group(), Stage::Test), &name).await.unwrap();
    }

    fn job(&self, id: &str) -> Value {
        let parameters = job_parameters(Stage::Test, &self.central, EXECUTION);
        json!({ "CodePipeline.job": { "id": id, "accountId": "222222222222", "data": {
            "actionConfiguration": { "configuration": { "FunctionName": "test-model", "UserParameters": parameters } },
        } } })
    }

    /// Runs test-model's job `id` with `ports`, the endpoint answering every case well.
    async fn test(&self, ports: &DeployPorts, id: &str) -> JobOutcome {
        let _turn = REPLY_QUEUE.lock().await;
        let results: Vec<Value> = ["0.83", "0.12"].iter().map(|b| json!({ "Body": b, "ContentType": "text/csv" })).collect();
        promote_cli::local::queue_endpoint_results(&self.world.world.endpoint, "333333333333", &results).await.unwrap();
        test_model::handler(ports, &self.config, LambdaEvent::new(self.job(id), Context::default())).await.unwrap()
    }

    async fn recorded(&self) -> Option<TestRecord> {
        self.ports.tests.test_record(EXECUTION, &self.central, Stage::Test).await.unwrap()
    }

    /// Every version of `uri` in the evidence bucket: (version id, bytes).
    async fn versions(&self, uri: &S3Uri) -> Vec<(String, Vec<u8>)> {
        let s3 = self.world.s3();
        let listed = s3.list_object_versions().bucket(uri.bucket()).prefix(uri.key()).send().await.unwrap();
        let mut versions = Vec::new();
        for version in listed.versions().iter().filter(|v| v.key() == Some(uri.key())) {
            let id = version.version_id().unwrap().to_owned();
            let object = s3.get_object().bucket(uri.bucket()).key(uri.key()).version_id(&id).send().await.unwrap();
            versions.push((id, object.body.collect().await.unwrap().to_vec()));
        }
        versions
    }

    /// The prod approval of `EXECUTION` waits, as CodePipeline would hold it.
    fn waits_for_approval(&self) {
        self.runs.run_at(EXECUTION, &self.central, PipelineStage::ApproveProd);
        *self.runs.pending.lock().unwrap() = Some(PendingApproval { token: "approval-token".into(), execution_id: Some(EXECUTION.into()) });
    }
}

/// A ledger whose first verdict write is lost to a timeout, as when an invocation dies after
/// its report is stored.
struct LosesFirstVerdict {
    inner: Arc<dyn TestRecords>,
    lost: AtomicBool,
}

#[async_trait]
impl TestRecords for LosesFirstVerdict {
    async fn record_test(&self, record: &TestRecord) -> PortResult<()> {
        if !self.lost.swap(true, Ordering::SeqCst) {
            return Err(PortError::new("PutItem", FailureKind::Retryable, "RequestTimeout"));
        }
        self.inner.record_test(record).await
    }
    async fn test_record(&self, execution_id: &str, package: &ModelPackageArn, stage: Stage) -> PortResult<Option<TestRecord>> {
        self.inner.test_record(execution_id, package, stage).await
    }
}

#[tokio::test]
async fn a_passed_report_lands_locked_in_the_evidence_bucket_and_the_ledger_holds_its_version_and_digest() {
    let tested = Tested::new().await;

    let outcome = tested.test(&tested.ports, "job-1").await;

    let JobOutcome::Succeeded { variables, .. } = outcome else { panic!("{outcome:?}") };
    let report: S3Uri = S3Uri::new(&tested.config.evidence_bucket, &variables["ReportKey"]).unwrap();
    assert_eq!(report.key(), format!("reports/{}/1/test-job-1-attempt-1.json", tested.central.group()));
    let head = tested.world.s3().head_object().bucket(report.bucket()).key(report.key()).checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance), "locked in compliance mode");
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let wanted = (chrono::Utc::now() + chrono::Duration::days(i64::from(tested.config.evidence_retention_days))).timestamp();
    assert!((wanted - 120..=wanted + 5).contains(&until), "locked for the configured retention: {until} vs {wanted}");
    let versions = tested.versions(&report).await;
    assert_eq!(versions.len(), 1);
    let (version, bytes) = &versions[0];
    assert_eq!(head.checksum_sha256(), Some(sha256_base64(bytes).as_str()), "S3 keeps the SHA-256 of the bytes it stored");

    let record = tested.recorded().await.expect("the verdict is in the ledger");
    assert_eq!((record.passed, record.job_id.as_str(), &record.report), (true, "job-1", &report));
    assert_eq!(record.report_version.as_deref(), Some(version.as_str()), "the version S3 stored");
    assert_eq!(record.report_sha256, hex_sha256(bytes), "the digest of the stored bytes");
    let promoted = tested.ports.promotions.promotion_of(&tested.central).await.unwrap().unwrap();
    assert_eq!(Some(&record.fingerprint), promoted.fingerprint.as_ref(), "the release the service promoted");
    let stored: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!((stored["release_fingerprint"].as_str(), stored["execution_id"].as_str()), (Some(record.fingerprint.as_str()), Some(EXECUTION)));
    assert_eq!((&variables["ReportVersion"], &variables["ReportSha256"]), (version, &record.report_sha256));
    assert_eq!(variables["ReleaseFingerprint"], record.fingerprint.as_str());

    let card = tested.world.card_versions(&promotion_core::domain::card::card_name(&tested.central)).await.pop().unwrap().1;
    let observation = card["evaluation_details"].as_array().unwrap().last().unwrap()["evaluation_observation"].as_str().unwrap().to_owned();
    assert!(
        observation.contains(&format!("version {version} sha256 {}", record.report_sha256)) && observation.contains(record.fingerprint.as_str()),
        "{observation}"
    );
    let inbox = tested.world.approval_requests().await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains(&record.report_sha256) && inbox[0].contains(&format!("versionId={version}")), "{}", inbox[0]);
}

#[tokio::test]
async fn a_report_is_written_once_a_second_write_to_its_key_is_refused_and_its_locked_version_cannot_be_deleted() {
    let tested = Tested::new().await;
    let JobOutcome::Succeeded { variables, .. } = tested.test(&tested.ports, "job-1").await else { panic!("the tests pass") };
    let report = S3Uri::new(&tested.config.evidence_bucket, &variables["ReportKey"]).unwrap();
    let before = tested.versions(&report).await;
    let store = S3Artifacts::new(tested.world.s3(), &"222222222222".parse().unwrap(), &tested.world.world.config.kms_key_id);

    let again = store.put_once(&report, b"{\"passed\": 99}".to_vec(), "application/json", chrono::Utc::now()).await.unwrap_err();
    let delete = tested.world.s3().delete_object().bucket(report.bucket()).key(report.key()).version_id(&before[0].0).send().await;

    assert_eq!(again.kind, FailureKind::Conflict, "If-None-Match: * is refused on a key that holds a report: {again}");
    let refused = delete.expect_err("a version under compliance-mode retention cannot be deleted");
    assert!(format!("{:?}", refused).contains("AccessDenied"), "{refused:?}");
    assert_eq!(tested.versions(&report).await, before, "one version, its bytes as they were");
}

#[tokio::test]
async fn a_retried_job_writes_a_new_attempt_and_the_first_attempts_report_stays_as_it_was() {
    let tested = Tested::new().await;
    let losing = DeployPorts { tests: Arc::new(LosesFirstVerdict { inner: tested.ports.tests.clone(), lost: AtomicBool::new(false) }), ..tested.ports.clone() };
    let first = tested.test(&losing, "job-1").await;
    assert!(matches!(first, JobOutcome::Continuing { .. }), "the verdict was lost: {first:?}");
    let first_key = S3Uri::new(&tested.config.evidence_bucket, &format!("reports/{}/1/test-job-1-attempt-1.json", tested.central.group())).unwrap();
    let first_report = tested.versions(&first_key).await;

    // Lambda delivers the same job again.
    let again = tested.test(&losing, "job-1").await;

    let JobOutcome::Succeeded { variables, .. } = again else { panic!("{again:?}") };
    let second_key = S3Uri::new(&tested.config.evidence_bucket, &variables["ReportKey"]).unwrap();
    assert_eq!(second_key.key(), format!("reports/{}/1/test-job-1-attempt-2.json", tested.central.group()));
    assert_eq!(first_report.len(), 1);
    assert_eq!(tested.versions(&first_key).await, first_report, "the first attempt is untouched");
    let (version, bytes) = tested.versions(&second_key).await.pop().unwrap();
    let record = tested.recorded().await.unwrap();
    assert_eq!(
        (&record.report, record.report_version.as_deref(), record.report_sha256.as_str()),
        (&second_key, Some(version.as_str()), hex_sha256(&bytes).as_str())
    );
}

/// What someone who may write the evidence bucket can do under Object Lock: not change or delete
/// the version test-model wrote, but add a version over its key (moto enforces no bucket policy;
/// in AWS the template's DenyWritesOverAReport and DenyDeleteMarkers statements refuse these too)
/// or hide it behind a delete marker. Either way the key's link shows other bytes than those
/// tested, and `promote approve` answers nothing.
#[tokio::test]
async fn promote_approve_refuses_a_report_written_over_or_hidden_and_sends_nothing_to_codepipeline() {
    for attack in ["a new version over the key", "a delete marker"] {
        let tested = Tested::new().await;
        let JobOutcome::Succeeded { .. } = tested.test(&tested.ports, "job-1").await else { panic!("the tests pass") };
        tested.waits_for_approval();
        let waiting = waiting_prod_approval(&tested.ports, &tested.config, tested.central.group()).await.unwrap();
        let record = verified_evidence(&tested.ports, &waiting).await.expect("untouched, the evidence checks out");
        let s3 = tested.world.s3();
        let (bucket, key) = (record.report.bucket(), record.report.key());
        match attack {
            "a delete marker" => {
                s3.delete_object().bucket(bucket).key(key).send().await.unwrap();
            }
            _ => {
                let forged = br#"{"passed": 2, "failed": 0, "cases": []}"#.to_vec();
                s3.put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(forged.into())
                    .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
                    .send()
                    .await
                    .unwrap();
            }
        }
        let mut screen = Vec::new();

        let error =
            promote_cli::governance::decide_prod(&tested.ports, &tested.config, tested.central.group(), true, "looks fine", &mut screen).await.unwrap_err();

        let failed = promote_cli::exit::explain(&error);
        assert_eq!(failed.exit, promote_cli::exit::Exit::Refused, "{attack}: {failed:?}");
        assert!(failed.cause.contains("Rejected.EvidenceChanged"), "{attack}: {failed:?}");
        assert!(tested.runs.answers.lock().unwrap().is_empty(), "{attack}: nothing is sent to CodePipeline");
        let original = s3.get_object().bucket(bucket).key(key).version_id(record.report_version.as_deref().unwrap()).send().await.unwrap();
        assert_eq!(hex_sha256(&original.body.collect().await.unwrap().to_vec()), record.report_sha256, "{attack}: the tested bytes are still there, locked");
        let refusals: Vec<_> = tested.ports.audit.history(&tested.central).await.unwrap().into_iter().filter(|e| e.action == "refused").collect();
        assert_eq!(refusals.len(), 1, "{attack}");
        assert_eq!(refusals[0].detail["gate"], "prod-approval-evidence");
        // Rejecting needs no evidence.
        answer_prod_approval(&tested.ports, &tested.config, &waiting, false, "the report was tampered with").await.unwrap();
        assert_eq!(tested.runs.answers.lock().unwrap().len(), 1);
    }
}

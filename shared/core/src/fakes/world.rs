//! A whole deployment world over the fakes: the central account with one promoted, approved
//! version, and the test and prod accounts. And promote-model's: a dev account with an approved
//! version, and the central account.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::domain::audit::AuditEntry;
use crate::domain::copy::ObjectInfo;
use crate::domain::event::ApprovalStatus;
use crate::domain::fingerprint::{release_fingerprint, ModelDataObject};
use crate::domain::identity::{Approver, Gate, Principal};
use crate::domain::ids::{ModelPackageArn, S3Uri, Stage};
use crate::domain::ledger::{PromotionRecord, PromotionState, TestRecord};
use crate::domain::package::{Artifact, ArtifactSlot, Container, InferenceSpec, RegisteredPackage};
use crate::domain::pipeline::PipelineStage;

use super::ledger::test_key;
use super::{
    FakeCards, FakeEndpoints, FakeImages, FakeJobs, FakeLedger, FakeNotifier, FakePublisher, FakeRegistry, FakeRuns, FakeSessions, FakeStageSessions,
    FakeStore, JobAnswer,
};

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
pub const DEPLOY_WORLD_EVIDENCE_BUCKET: &str = "model-promotion-evidence-222222222222";

impl DeployWorld {
    /// Endpoints settle after `polls` describes.
    pub fn new(polls: usize) -> Self {
        let package: ModelPackageArn = DEPLOY_WORLD_PACKAGE.parse().expect("arn");
        let source: ModelPackageArn = DEPLOY_WORLD_SOURCE.parse().expect("arn");
        let central = Arc::new(FakeRegistry::in_account("222222222222"));
        let model: S3Uri = WORLD_MODEL_DATA.parse().expect("uri");
        central.add(RegisteredPackage {
            arn: package.clone(),
            description: Some(crate::domain::naming::central_description(&source)),
            status: Some(ApprovalStatus::Approved),
            inference: InferenceSpec { containers: vec![Container { image: WORLD_IMAGE.into(), ..Container::default() }], ..InferenceSpec::default() },
            artifacts: vec![Artifact { slot: ArtifactSlot::ModelData { container: 0 }, uri: model.clone(), content_type: None }],
            customer_metadata: BTreeMap::from([(crate::domain::lineage::SOURCE_ARN.to_owned(), source.to_string())]),
        });
        let ledger = Arc::new(FakeLedger::default());
        let cards = Arc::new(FakeCards::default());
        let card =
            serde_json::json!({ "model_package_details": { "model_package_arn": package.to_string() }, "additional_information": { "custom_details": {} } });
        cards.cards.lock().unwrap().insert(crate::domain::card::card_name(&package), vec![card]);
        let (test, prod) = (Arc::new(FakeEndpoints::settling_after(polls)), Arc::new(FakeEndpoints::settling_after(polls)));
        let stages = FakeStageSessions {
            accounts: HashMap::from([("333333333333".parse().expect("id"), test.clone()), ("444444444444".parse().expect("id"), prod.clone())]),
        };
        let (jobs, runs, store) = (Arc::new(FakeJobs::default()), Arc::new(FakeRuns::default()), Arc::new(FakeStore::default()));
        store.put_object(&model, b"the model of version 1".to_vec());
        let approvers = Arc::new(FakeNotifier::default());
        let ports = crate::deployment::DeployPorts {
            stages: Arc::new(stages),
            central_registry: central.clone(),
            jobs: jobs.clone(),
            runs: runs.clone(),
            promotions: ledger.clone(),
            audit: ledger.clone(),
            deployments: ledger.clone(),
            starts: ledger.clone(),
            tests: ledger.clone(),
            artifacts: store.clone(),
            cards: cards.clone(),
            approvers: approvers.clone(),
            approver_records: ledger.clone(),
        };
        let env = HashMap::from([
            ("CENTRAL_ACCOUNT_ID", "222222222222".to_owned()),
            ("STAGE_CONFIG", stage_config_json()),
            ("ARTIFACT_BUCKET", "model-promotion-artifacts-222222222222".to_owned()),
            ("ARTIFACT_KMS_KEY_ID", "key".to_owned()),
            ("LEDGER_TABLE", "ledger".to_owned()),
            ("AUDIT_TABLE", "audit".to_owned()),
            ("PIPELINE_NAME", "model-promotion-deploy".to_owned()),
            ("APPROVAL_TOPIC_ARN", "arn:aws:sns:us-east-1:222222222222:model-promotion-approvals".to_owned()),
            ("EVIDENCE_BUCKET", DEPLOY_WORLD_EVIDENCE_BUCKET.to_owned()),
            ("EVIDENCE_RETENTION_DAYS", "2555".to_owned()),
        ]);
        let config = crate::deployment::DeployConfig::from_lookup(|name| env.get(name).cloned()).expect("config");
        let world = Self { central, test, prod, jobs, runs, ledger, store, cards, approvers, ports, config, package: package.clone() };
        world.promoted(&source, &package);
        world.pipeline_at(&package, PipelineStage::DeployTest);
        world
    }

    /// Records `central` as the service's promotion of `source`, with the fingerprint of the
    /// central version and its objects as they are now, as promote-model's last write does.
    pub fn promoted(&self, source: &ModelPackageArn, central: &ModelPackageArn) {
        let package = self.central.packages.lock().unwrap()[central.as_str()].clone();
        let heads: Vec<(usize, S3Uri, ObjectInfo)> = package
            .artifacts
            .iter()
            .filter_map(|a| match a.slot {
                ArtifactSlot::ModelData { container } => Some((container, a.uri.clone(), self.store.object_info(&a.uri)?)),
                _ => None,
            })
            .collect();
        let objects: Vec<ModelDataObject> = heads
            .iter()
            .map(|(container, uri, head)| ModelDataObject { container: *container, uri, size: head.size, sha256: head.sha256.as_deref().unwrap_or_default() })
            .collect();
        let mut record = PromotionRecord::new(source.clone(), PromotionState::Promoted, "e-0", chrono::Utc::now());
        record.central_package = Some(central.clone());
        record.central_group = Some(central.group().clone());
        record.fingerprint = Some(release_fingerprint(&package.inference, &objects));
        self.ledger.records.lock().unwrap().insert(source.to_string(), record);
        self.ledger.promoted_from.lock().unwrap().insert(central.to_string(), source.clone());
        // Two people approved it: a data scientist in dev, an ML engineer centrally.
        let approved_by = |gate: Gate, package: &ModelPackageArn, role: &str, person: &str| Approver {
            gate,
            package: package.clone(),
            principal: Some(format!("arn:aws:sts::{}:assumed-role/{role}/{person}", package.account())),
            normalised: Principal::Role { arn: format!("arn:aws:iam::{}:role/{role}", package.account()), source_identity: Some(person.to_owned()) },
            at: chrono::Utc::now(),
            event_id: format!("approval-{}", package.version()),
        };
        let mut approvers = self.ledger.approvers.lock().unwrap();
        approvers.insert((source.to_string(), Gate::DevApproval), approved_by(Gate::DevApproval, source, "data-scientist", "dana"));
        approvers.insert((central.to_string(), Gate::CentralApproval), approved_by(Gate::CentralApproval, central, "ml-engineer", "erik"));
    }

    /// CodePipeline runs `package`'s execution at `stage`, the stages before it passed; at
    /// DeployProd, test-model has recorded a pass of the promoted release in that execution
    /// (unless it recorded its own verdict there already).
    pub fn pipeline_at(&self, package: &ModelPackageArn, stage: PipelineStage) {
        let execution = world_execution(package);
        self.runs.run_at(&execution, package, stage);
        if stage == PipelineStage::DeployProd {
            let fingerprint =
                self.ledger.promoted_from.lock().unwrap().get(package.as_str()).and_then(|source| self.ledger.record(source)).and_then(|r| r.fingerprint);
            if let Some(fingerprint) = fingerprint {
                let report: S3Uri = format!("s3://{}/reports/{execution}.json", self.config.artifact_bucket).parse().expect("uri");
                let record = TestRecord {
                    execution_id: execution.clone(),
                    package: package.clone(),
                    stage: Stage::Test,
                    fingerprint,
                    passed: true,
                    job_id: format!("job-test-{execution}"),
                    report,
                    report_version: None,
                    report_sha256: String::new(),
                    at: chrono::Utc::now(),
                };
                // test-model's own record, when it ran in this world, stands.
                self.ledger.tests.lock().unwrap().entry(test_key(&execution, package, Stage::Test)).or_insert(record);
            }
        }
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

/// The image of the world's versions (a central repository, by digest).
pub const WORLD_IMAGE: &str =
    "222222222222.dkr.ecr.us-east-1.amazonaws.com/churn-prediction-111111111111@sha256:1111111111111111111111111111111111111111111111111111111111111111";
/// The model data of the world's first version.
pub const WORLD_MODEL_DATA: &str = "s3://model-promotion-artifacts-222222222222/churn-prediction-111111111111/v1/model.tar.gz";

/// The execution CodePipeline runs for `package` in the fake world.
pub fn world_execution(package: &ModelPackageArn) -> String {
    format!("exec-{}", package.version())
}

/// The `UserParameters` CodePipeline resolves for the world's jobs deploying `package` to `stage`.
pub fn world_job_parameters(stage: Stage, package: &ModelPackageArn) -> String {
    super::pipeline::job_parameters(stage, package, &world_execution(package))
}

/// Test and prod as the local demo configures them.
pub fn stage_config_json() -> String {
    crate::config::LOCAL_STAGE_CONFIG.to_owned()
}

pub const PROMOTE_WORLD_SOURCE: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3";
/// The dev version's serving image, in the dev repository that ECR replicates to the model's
/// central repository.
pub const PROMOTE_WORLD_IMAGE: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com/model-promotion/churn-prediction-111111111111:serving-1";
pub const PROMOTE_WORLD_DIGEST: &str = "sha256:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
pub const PROMOTE_WORLD_MODEL: &str = "s3://dev-ml-artifacts-111111111111/churn-prediction/pipelines-7f3k/output/model.tar.gz";

/// promote-model's world over the fakes: a dev account whose approved version (the reference
/// approval event's) names one model archive and runs one container, and the central account.
pub struct PromoteWorld {
    pub dev: Arc<FakeRegistry>,
    /// ECR as the dev read role sees it.
    pub dev_images: Arc<FakeImages>,
    pub central: Arc<FakeRegistry>,
    pub central_images: Arc<FakeImages>,
    pub store: Arc<FakeStore>,
    pub ledger: Arc<FakeLedger>,
    pub ports: crate::ports::PromotePorts,
    pub config: crate::config::PromoteConfig,
}

impl PromoteWorld {
    /// The dev version runs `PROMOTE_WORLD_IMAGE`, recorded at `PROMOTE_WORLD_DIGEST`, pushed in
    /// dev and replicated into the central repository.
    pub fn new() -> Self {
        let world = Self::running(Container { image: PROMOTE_WORLD_IMAGE.into(), image_digest: Some(PROMOTE_WORLD_DIGEST.into()), ..Container::default() });
        world.dev_images.push(PROMOTE_WORLD_IMAGE, PROMOTE_WORLD_DIGEST);
        world.central_images.replicated(&"model-promotion/churn-prediction-111111111111".parse().expect("repository"), PROMOTE_WORLD_DIGEST);
        world
    }

    /// The dev version runs `container`; no registry holds any image yet.
    pub fn running(container: Container) -> Self {
        let dev = Arc::new(FakeRegistry::in_account("111111111111"));
        let model: crate::domain::ids::S3Uri = PROMOTE_WORLD_MODEL.parse().expect("uri");
        dev.add(RegisteredPackage {
            arn: PROMOTE_WORLD_SOURCE.parse().expect("arn"),
            description: None,
            status: Some(ApprovalStatus::Approved),
            inference: InferenceSpec { containers: vec![container], content_types: vec!["text/csv".into()], ..InferenceSpec::default() },
            artifacts: vec![Artifact { slot: ArtifactSlot::ModelData { container: 0 }, uri: model.clone(), content_type: None }],
            customer_metadata: BTreeMap::new(),
        });
        let store = Arc::new(FakeStore::default());
        store.put_object(&model, vec![7; 4096]);
        let (dev_images, central_images) = (Arc::new(FakeImages::of("111111111111")), Arc::new(FakeImages::of("222222222222")));
        let central = Arc::new(FakeRegistry::in_account("222222222222"));
        let ledger = Arc::new(FakeLedger::default());
        let dev_account: crate::domain::ids::AccountId = "111111111111".parse().expect("id");
        let sessions =
            FakeSessions { registries: HashMap::from([(dev_account.clone(), dev.clone())]), images: HashMap::from([(dev_account, dev_images.clone())]) };
        let ports = crate::ports::PromotePorts {
            sessions: Arc::new(sessions),
            central_registry: central.clone(),
            central_images: central_images.clone(),
            artifacts: store.clone(),
            cards: Arc::new(FakeCards::default()),
            events: Arc::new(FakePublisher::default()),
            ledger: ledger.clone(),
            audit: ledger.clone(),
            approver_records: ledger.clone(),
        };
        let env = HashMap::from([
            ("CENTRAL_ACCOUNT_ID", "222222222222"),
            ("SOURCE_ACCOUNTS", "111111111111=dev-ml-artifacts-111111111111"),
            ("ARTIFACT_BUCKET", "model-promotion-artifacts-222222222222"),
            ("ARTIFACT_KMS_KEY_ID", "central-key"),
            ("LEDGER_TABLE", "ledger"),
            ("AUDIT_TABLE", "audit"),
            ("EVENT_BUS_NAME", "model-promotion"),
        ]);
        let config = crate::config::PromoteConfig::from_lookup(|name| env.get(name).map(|v| (*v).to_owned())).expect("config");
        Self { dev, dev_images, central, central_images, store, ledger, ports, config }
    }

    /// One delivery of the reference approval event.
    pub async fn deliver_approval(&self) -> Result<crate::promotion::Outcome, crate::promotion::PromoteError> {
        let event: serde_json::Value = serde_json::from_str(include_str!("../../../../events/model-package-approved.json")).expect("fixture");
        let invocation = crate::promotion::Invocation { request_id: "fake".into(), deadline: chrono::Utc::now() + chrono::Duration::minutes(5) };
        crate::promotion::handle_state_change(&self.ports, &self.config, &event, &invocation).await
    }

    /// The central versions of the model.
    pub fn central_versions(&self) -> Vec<RegisteredPackage> {
        self.central.versions(&"churn-prediction-111111111111".parse().expect("group"))
    }
}

impl Default for PromoteWorld {
    fn default() -> Self {
        Self::new()
    }
}

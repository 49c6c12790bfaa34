//! A revocation against moto's server: promote-model (real) revokes version 2 on a dev
//! rejection and publishes `ModelRevoked` on the central bus; record-outcome (real) takes that
//! event as the bus delivered it and puts the prod endpoint back on version 1. SageMaker
//! hosting in the prod account, the registry, the ledger (DynamoDB) and the bus are moto's;
//! CodePipeline's approval and stop calls, which moto lacks, are `FakeRuns`. moto has no
//! `UpdateEndpoint` either: the prod account's hosting is moto's behind `Replacing`, which plays
//! an update as the deletion and creation it amounts to on the emulator.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lambda_runtime::{Context, LambdaEvent};
use promote_cli::local::{put_object, register_version};
use promotion_aws::sagemaker::SageMakerRegistry;
use promotion_core::deployment::start::StartOutcome;
use promotion_core::deployment::{DeployConfig, DeployPorts};
use promotion_core::domain::audit::AuditEntry;
use promotion_core::domain::deploy::{deployment_name, BlueGreen, StageSettings};
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::{ModelPackageArn, Stage};
use promotion_core::domain::ledger::{DeploymentRecord, DeploymentState};
use promotion_core::fakes::FakeRuns;
use promotion_core::ports::{
    EndpointConfigSpec, EndpointState, Endpoints, ExecutionStatus, InvokeResult, ModelRegistry, ModelSpec, PendingApproval, PortResult, Settled, StageSessions,
};
use promotion_core::promotion::Outcome;
use promotion_tests::chaos::Chaos;
use promotion_tests::TestWorld;
use serde_json::{json, Value};

/// A stage account's hosting on moto, with an update played as delete and create (moto has no
/// `UpdateEndpoint`); the updates are counted.
struct Replacing {
    inner: Arc<dyn StageSessions>,
    updates: Arc<AtomicUsize>,
}

#[async_trait]
impl StageSessions for Replacing {
    async fn endpoints(&self, stage: &StageSettings) -> PortResult<Arc<dyn Endpoints>> {
        Ok(Arc::new(ReplacingEndpoints { inner: self.inner.endpoints(stage).await?, updates: self.updates.clone() }))
    }
}

struct ReplacingEndpoints {
    inner: Arc<dyn Endpoints>,
    updates: Arc<AtomicUsize>,
}

#[async_trait]
impl Endpoints for ReplacingEndpoints {
    async fn ensure_model(&self, spec: &ModelSpec<'_>) -> PortResult<()> {
        self.inner.ensure_model(spec).await
    }
    async fn ensure_endpoint_config(&self, spec: &EndpointConfigSpec<'_>) -> PortResult<()> {
        self.inner.ensure_endpoint_config(spec).await
    }
    async fn describe_endpoint(&self, name: &str) -> PortResult<Option<EndpointState>> {
        self.inner.describe_endpoint(name).await
    }
    async fn create_endpoint(&self, name: &str, config: &str) -> PortResult<()> {
        self.inner.create_endpoint(name, config).await
    }
    async fn update_endpoint(&self, name: &str, config: &str, _blue_green: Option<&BlueGreen>) -> PortResult<()> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_endpoint(name).await?;
        self.inner.wait_until_deleted(name, Duration::from_secs(30)).await?;
        self.inner.create_endpoint(name, config).await
    }
    async fn delete_endpoint(&self, name: &str) -> PortResult<()> {
        self.inner.delete_endpoint(name).await
    }
    async fn wait_until_in_service(&self, name: &str, bound: Duration) -> PortResult<Settled> {
        self.inner.wait_until_in_service(name, bound).await
    }
    async fn wait_until_deleted(&self, name: &str, bound: Duration) -> PortResult<Settled> {
        self.inner.wait_until_deleted(name, bound).await
    }
    async fn invoke(&self, name: &str, content_type: &str, payload: &[u8], inference_id: &str) -> PortResult<InvokeResult> {
        self.inner.invoke(name, content_type, payload, inference_id).await
    }
}

struct Revocation {
    world: TestWorld,
    ports: DeployPorts,
    config: DeployConfig,
    runs: Arc<FakeRuns>,
    updates: Arc<AtomicUsize>,
    /// Dev versions 1 and 2 of one model, and the central versions they became.
    dev: [ModelPackageArn; 2],
    central: [ModelPackageArn; 2],
}

impl Revocation {
    /// Two versions of one model, promoted by promote-model and approved centrally.
    async fn two_versions_promoted() -> Self {
        let world = TestWorld::new().await;
        let group = format!("revoked-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let archive = promote_cli::local::model_archive(1).unwrap();
        let model = put_object(world.dev(), &world.world.names.dev_bucket, &format!("{group}/output/model.tar.gz"), archive).await.unwrap();
        let registry = SageMakerRegistry::new(world.sagemaker());
        let (mut dev, mut central) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let version = register_version(world.dev(), &group, &model, None).await.unwrap();
            let Ok(Outcome::Promoted(summary)) = world.deliver(&world.decide(&version, true).await).await else { panic!("promotion of {version} failed") };
            let package = registry.describe_package(&summary.central_package).await.unwrap();
            registry.set_approval(&package, ApprovalStatus::Approved, "approved by the ML engineer", &[]).await.unwrap();
            dev.push(version);
            central.push(summary.central_package);
        }
        world.published_events().await; // the two ModelPromoted
        let config = world.deploy_config();
        let (runs, updates) = (Arc::new(FakeRuns::default()), Arc::new(AtomicUsize::new(0)));
        let mut ports = promotion_aws::wiring::deploy_ports(world.central(), &config);
        ports.runs = runs.clone();
        ports.stages = Arc::new(Replacing { inner: ports.stages.clone(), updates: updates.clone() });
        let (dev, central) = (dev.try_into().unwrap(), central.try_into().unwrap());
        Self { world, ports, config, runs, updates, dev, central }
    }

    fn prod_endpoint(&self) -> String {
        self.config.stages.stage(Stage::Prod).endpoint_name(self.central[0].group(), Stage::Prod)
    }

    /// Prod as deploy-model leaves it after version 1, then version 2: each version's model and
    /// config in the prod account, the endpoint in service on version 2's, the ledger's record
    /// and `deployed` entries.
    async fn prod_runs_one_then_two(&self) {
        let settings = self.config.stages.stage(Stage::Prod);
        let endpoints = self.ports.stages.endpoints(settings).await.unwrap();
        let endpoint = self.prod_endpoint();
        for version in &self.central {
            let name = deployment_name(version, Stage::Prod);
            endpoints.ensure_model(&ModelSpec { name: &name, package: version, execution_role_arn: &settings.execution_role_arn }).await.unwrap();
            let spec = EndpointConfigSpec { name: &name, model_name: &name, instance_type: &settings.instance_type, instance_count: settings.instance_count };
            endpoints.ensure_endpoint_config(&spec).await.unwrap();
            let detail = json!({ "stage": Stage::Prod, "endpoint": endpoint, "config": name });
            self.ports.audit.append(&AuditEntry::now(version, &format!("deploy-{}", version.version()), "deployed".into(), detail)).await.unwrap();
        }
        endpoints.create_endpoint(&endpoint, &deployment_name(&self.central[1], Stage::Prod)).await.unwrap();
        let record = DeploymentRecord {
            stage: Stage::Prod,
            endpoint,
            package: self.central[1].clone(),
            config: deployment_name(&self.central[1], Stage::Prod),
            state: DeploymentState::InService,
            previous_config: Some(deployment_name(&self.central[0], Stage::Prod)),
            previous_package: Some(self.central[0].clone()),
            at: chrono::Utc::now(),
        };
        self.ports.deployments.record_deployment(&record).await.unwrap();
    }

    /// What the prod account's SageMaker says the endpoint runs.
    async fn prod_runs(&self) -> (String, String) {
        let prod = aws_sdk_sagemaker::Client::new(&promote_cli::local::session_in(self.world.central(), "444444444444").await.unwrap());
        let described = prod.describe_endpoint().endpoint_name(self.prod_endpoint()).send().await.unwrap();
        (described.endpoint_status().map(|s| s.as_str().to_owned()).unwrap_or_default(), described.endpoint_config_name().unwrap_or_default().to_owned())
    }

    /// A central approval of `version` delivered to start-deployment: one execution.
    async fn start(&self, version: &ModelPackageArn) -> String {
        let mut context = Context::default();
        context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(1)).timestamp_millis()).unwrap();
        let approval = promote_cli::local::approval_event(version, "Approved");
        match start_deployment::handler(&self.ports, &self.config, LambdaEvent::new(approval, context)).await.unwrap() {
            StartOutcome::Started { execution_id, .. } => execution_id,
            other => panic!("{other:?}"),
        }
    }

    /// A delivery of `event` to record-outcome; returns its answer and the AWS calls it made
    /// (CodePipeline's, faked, aside).
    async fn record_outcome(&self, event: &Value) -> (Result<Value, lambda_runtime::Diagnostic>, Vec<&'static str>) {
        let mut context = Context::default();
        context.deadline = u64::try_from((chrono::Utc::now() + chrono::Duration::minutes(15)).timestamp_millis()).unwrap();
        let counter = Chaos::counting();
        let answer = record_outcome::dispatch(&counter.deploy_ports(&self.ports), &self.config, LambdaEvent::new(event.clone(), context)).await;
        (answer, counter.calls())
    }

    async fn trail(&self, version: &ModelPackageArn) -> Vec<AuditEntry> {
        self.ports.audit.history(version).await.unwrap()
    }
}

#[tokio::test]
async fn a_version_in_prod_revoked_in_dev_leaves_prod_on_the_previous_version_and_its_approval_rejected() {
    let _shared = promotion_tests::EMULATOR.read().await;
    let revocation = Revocation::two_versions_promoted().await;
    let [first, second] = &revocation.central;
    revocation.prod_runs_one_then_two().await;
    assert_eq!(revocation.prod_runs().await, ("InService".to_owned(), deployment_name(second, Stage::Prod)));
    // A later execution of version 2, started by start-deployment (its ledger item on DynamoDB),
    // waits at the prod approval; an older one ran to its end.
    let execution = revocation.start(second).await;
    let ended = revocation.start(second).await;
    revocation.runs.ended.lock().unwrap().insert(ended.clone(), ExecutionStatus::Succeeded);
    let listed: BTreeSet<String> = revocation.ports.starts.executions_of(second).await.unwrap().into_iter().collect();
    assert_eq!(listed, BTreeSet::from([execution.clone(), ended.clone()]), "the ledger lists the version's executions");
    *revocation.runs.pending.lock().unwrap() = Some(PendingApproval { token: "approval-token".into(), execution_id: Some(execution.clone()) });

    let rejected = revocation.world.deliver(&revocation.world.decide(&revocation.dev[1], false).await).await.unwrap();
    assert!(matches!(rejected, Outcome::Revoked { .. }), "{rejected:?}");
    let published = revocation.world.published_events().await;
    assert_eq!(published.len(), 1, "{published:?}");
    let revoked = &published[0];
    assert_eq!((revoked["detail-type"].as_str(), revoked["detail"]["central_package"].as_str()), (Some("ModelRevoked"), Some(second.as_str())));

    let (reached, calls) = revocation.record_outcome(revoked).await;
    let reached = reached.unwrap();
    eprintln!("a revocation that rolls prod back: {} AWS calls besides CodePipeline's: {calls:?}", calls.len());
    assert!(reached["steps"].as_array().unwrap().iter().any(|s| s.as_str().unwrap() == format!("execution {ended}: left: Succeeded already")), "{reached}");

    assert_eq!(revocation.prod_runs().await, ("InService".to_owned(), deployment_name(first, Stage::Prod)), "{reached}");
    assert_eq!(revocation.updates.load(Ordering::SeqCst), 1);
    let record = revocation.ports.deployments.deployment(Stage::Prod, &revocation.prod_endpoint()).await.unwrap().unwrap();
    assert_eq!((&record.package, record.state, record.previous_package.as_ref()), (first, DeploymentState::InService, Some(second)));
    let answers = revocation.runs.answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].0.as_str(), answers[0].1), ("approval-token", false));
    assert!(answers[0].2.starts_with("revoked in dev: Revoked: source version") && answers[0].2.contains(revocation.dev[1].as_str()), "{}", answers[0].2);
    let central = SageMakerRegistry::new(revocation.world.sagemaker()).describe_package(second).await.unwrap();
    assert_eq!(central.status, Some(ApprovalStatus::Rejected));

    // The audit trail names each step: the dev rejection, the approval, the rollback and what it restored.
    let actions = |trail: Vec<AuditEntry>| trail.into_iter().map(|e| (e.action.to_string(), e.event_id)).collect::<Vec<_>>();
    let dev_event = revoked["detail"]["event_id"].as_str().unwrap().to_owned();
    assert!(actions(revocation.trail(&revocation.dev[1]).await).contains(&("Revoked".into(), dev_event.clone())));
    let revoked_trail = actions(revocation.trail(second).await);
    for step in [("revocation-approval-rejected", execution.as_str()), ("revocation-rollback-started", "prod"), ("revocation-rolled-back", "prod")] {
        assert!(revoked_trail.contains(&(step.0.to_owned(), format!("{dev_event}:{}", step.1))), "{step:?} not in {revoked_trail:?}");
    }
    let restored = revocation.trail(first).await.into_iter().find(|e| e.action == "restored-on-revocation").expect("restored entry");
    assert_eq!((restored.detail["from"].as_str(), restored.detail["to"].as_str()), (Some(second.as_str()), Some(first.as_str())));

    // EventBridge delivers it again: nothing is rolled back, rejected or written twice.
    let entries = revocation.world.ledger_items().await.len();
    let (again, calls) = revocation.record_outcome(revoked).await;
    again.unwrap();
    eprintln!("its redelivery: {} AWS calls besides CodePipeline's: {calls:?}", calls.len());
    let writes = ["Ledger.append", "Ledger.record_deployment", "UpdateEndpoint", "CreateEndpoint", "DeleteEndpoint", "Publish", "UpdateModelPackage"];
    assert!(!calls.iter().any(|call| writes.contains(call)), "a redelivery writes nothing: {calls:?}");
    assert_eq!(revocation.updates.load(Ordering::SeqCst), 1);
    assert_eq!(revocation.runs.answers.lock().unwrap().len(), 1);
    assert_eq!(revocation.world.ledger_items().await.len(), entries);
    assert_eq!(revocation.prod_runs().await, ("InService".to_owned(), deployment_name(first, Stage::Prod)));
}

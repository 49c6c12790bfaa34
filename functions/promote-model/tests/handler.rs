//! The handler on the reference events, over in-memory fakes of every port.

use promotion_core::failure::Failure;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use promotion_core::config::PromoteConfig;
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::event::ApprovalStatus;
use promotion_core::domain::ids::{ModelPackageArn, S3Uri};
use promotion_core::domain::image::central_repository;
use promotion_core::domain::ledger::{PromotionRecord, PromotionState};
use promotion_core::domain::package::{Artifact, ArtifactSlot, Container, InferenceSpec, RegisteredPackage, Report};
use promotion_core::fakes::{
    BeforeCopy, FakeCards, FakeImages, FakeLedger, FakePublisher, FakeRegistry, FakeSessions, FakeStore, HookedStore, PROMOTE_WORLD_DIGEST, PROMOTE_WORLD_IMAGE,
};
use promotion_core::ports::{PortResult, PromotePorts};
use promotion_core::promotion::{Outcome, PromoteError};
use serde_json::Value;

const SOURCE: &str = "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn-prediction/3";
const MODEL: &str = "s3://dev-ml-artifacts-111111111111/churn-prediction/pipelines-7f3k/output/model.tar.gz";
const EVALUATION: &str = "s3://dev-ml-artifacts-111111111111/churn-prediction/pipelines-7f3k/output/evaluation/evaluation.json";
const CENTRAL_BUCKET: &str = "model-promotion-artifacts-222222222222";

struct World {
    dev: Arc<FakeRegistry>,
    central: Arc<FakeRegistry>,
    store: Arc<FakeStore>,
    cards: Arc<FakeCards>,
    publisher: Arc<FakePublisher>,
    ledger: Arc<FakeLedger>,
    ports: PromotePorts,
    config: PromoteConfig,
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture json")
}

fn uri(raw: &str) -> S3Uri {
    raw.parse().unwrap()
}

fn model_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

fn world(copy: CopySettings, model_len: usize) -> World {
    let dev = Arc::new(FakeRegistry::in_account("111111111111"));
    dev.add(RegisteredPackage {
        arn: SOURCE.parse().unwrap(),
        description: None,
        status: Some(ApprovalStatus::Approved),
        inference: InferenceSpec {
            containers: vec![Container { image: PROMOTE_WORLD_IMAGE.into(), image_digest: Some(PROMOTE_WORLD_DIGEST.into()), ..Container::default() }],
            content_types: vec!["text/csv".into()],
            response_types: vec!["text/csv".into()],
            ..InferenceSpec::default()
        },
        artifacts: vec![
            Artifact { slot: ArtifactSlot::ModelData { container: 0 }, uri: uri(MODEL), content_type: None },
            Artifact { slot: ArtifactSlot::Metrics(Report::ModelQualityStatistics), uri: uri(EVALUATION), content_type: Some("application/json".into()) },
        ],
        customer_metadata: BTreeMap::new(),
    });
    let store = Arc::new(FakeStore::default());
    store.put_object(&uri(MODEL), model_bytes(model_len));
    store.put_object(&uri(EVALUATION), br#"{"regression_metrics": {"mse": {"value": 4.25}}}"#.to_vec());
    let central = Arc::new(FakeRegistry::in_account("222222222222"));
    let (cards, publisher, ledger) = (Arc::new(FakeCards::default()), Arc::new(FakePublisher::default()), Arc::new(FakeLedger::default()));
    // The dev image, pushed in dev and replicated into the model's central repository.
    let (dev_images, central_images) = (Arc::new(FakeImages::of("111111111111")), Arc::new(FakeImages::of("222222222222")));
    dev_images.push(PROMOTE_WORLD_IMAGE, PROMOTE_WORLD_DIGEST);
    central_images.replicated(&central_repository(&"churn-prediction-111111111111".parse().unwrap()), PROMOTE_WORLD_DIGEST);
    let sessions = FakeSessions {
        registries: HashMap::from([("111111111111".parse().unwrap(), dev.clone())]),
        images: HashMap::from([("111111111111".parse().unwrap(), dev_images)]),
    };
    let ports = PromotePorts {
        sessions: Arc::new(sessions),
        central_registry: central.clone(),
        central_images,
        artifacts: store.clone(),
        cards: cards.clone(),
        events: publisher.clone(),
        ledger: ledger.clone(),
        audit: ledger.clone(),
        approver_records: ledger.clone(),
    };
    let env = HashMap::from([
        ("CENTRAL_ACCOUNT_ID", "222222222222".to_owned()),
        ("SOURCE_ACCOUNTS", "111111111111=dev-ml-artifacts-111111111111".to_owned()),
        ("ARTIFACT_BUCKET", CENTRAL_BUCKET.to_owned()),
        ("ARTIFACT_KMS_KEY_ID", "central-key".to_owned()),
        ("LEDGER_TABLE", "ledger".to_owned()),
        ("AUDIT_TABLE", "audit".to_owned()),
        ("EVENT_BUS_NAME", "model-promotion".to_owned()),
        ("MULTIPART_THRESHOLD_BYTES", copy.multipart_threshold.to_string()),
        ("COPY_PART_SIZE_BYTES", copy.part_size.to_string()),
        ("COPY_CONCURRENCY", copy.concurrency.to_string()),
    ]);
    let config = PromoteConfig::from_lookup(|name| env.get(name).cloned()).expect("config");
    World { dev, central, store, cards, publisher, ledger, ports, config }
}

fn default_world() -> World {
    world(CopySettings::default(), 4096)
}

impl World {
    async fn invoke(&self, payload: Value) -> Result<Outcome, PromoteError> {
        let mut context = Context::default();
        context.request_id = uuid::Uuid::new_v4().to_string();
        context.deadline = u64::try_from((Utc::now() + Duration::minutes(5)).timestamp_millis()).unwrap();
        promote_model::handler(&self.ports, &self.config, LambdaEvent::new(payload, context)).await
    }

    fn central_group(&self) -> promotion_core::domain::ids::GroupName {
        "churn-prediction-111111111111".parse().unwrap()
    }
}

#[tokio::test]
async fn both_creation_time_shapes_promote_the_same_way() {
    for fixture_name in ["model-package-approved.json", "model-package-approved-epoch-millis.json"] {
        let world = default_world();
        let event = fixture(fixture_name);

        let Outcome::Promoted(summary) = world.invoke(event.clone()).await.expect("promoted") else { panic!("not promoted") };

        assert_eq!(summary.source.as_str(), SOURCE);
        assert_eq!(summary.event_id, event["id"].as_str().unwrap());
        let copied = world.store.bytes(&uri(&format!("s3://{CENTRAL_BUCKET}/churn-prediction-111111111111/3/model/0/model.tar.gz")));
        assert_eq!(copied, Some(model_bytes(4096)));
        let versions = world.central.versions(&world.central_group());
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].status, Some(ApprovalStatus::PendingManualApproval));
        assert_eq!(versions[0].customer_metadata["promotion:event-id"], summary.event_id);
        assert!(versions[0].artifacts.iter().all(|a| a.uri.bucket() == CENTRAL_BUCKET));
        let cards = world.cards.cards.lock().unwrap();
        let card = &cards[&summary.model_card];
        assert_eq!(card.len(), 1);
        assert_eq!(card[0]["evaluation_details"][0]["metric_groups"][0]["metric_data"][0]["value"], 4.25);
        assert_eq!(world.publisher.events.lock().unwrap()[0].0, "ModelPromoted");
        let record = world.ledger.record(&summary.source).unwrap();
        assert_eq!(record.state, PromotionState::Promoted);
        assert_eq!(world.ledger.audit.lock().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn the_documented_example_is_refused_for_its_unknown_account() {
    let world = default_world();
    let error = world.invoke(fixture("sagemaker-state-change-aws-docs.json")).await.unwrap_err();
    assert_eq!(error.error_type(), "Rejected.UnknownSourceAccount");
    assert!(error.to_string().contains("123456789012"));
    assert!(world.ledger.records.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_rejection_after_promotion_revokes_and_a_redelivered_approval_is_refused() {
    let world = default_world();
    world.invoke(fixture("model-package-approved.json")).await.unwrap();

    let outcome = world.invoke(fixture("model-package-rejected.json")).await.unwrap();

    assert!(matches!(outcome, Outcome::Revoked { .. }), "{outcome:?}");
    let central = &world.central.versions(&world.central_group())[0];
    assert_eq!(central.status, Some(ApprovalStatus::Rejected));
    assert_eq!(central.customer_metadata["promotion:revoked-by-event"], "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d");
    assert_eq!(world.ledger.record(&SOURCE.parse().unwrap()).unwrap().state, PromotionState::Revoked);
    let revoked: Vec<serde_json::Value> =
        world.publisher.events.lock().unwrap().iter().filter(|(kind, _)| kind == "ModelRevoked").map(|(_, d)| d.clone()).collect();
    assert_eq!(revoked.len(), 1, "what runs the version is told once per delivery");
    assert_eq!(revoked[0]["central_package"], central.arn.to_string());
    assert_eq!((revoked[0]["source_package"].as_str(), revoked[0]["event_id"].as_str()), (Some(SOURCE), Some("0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d")));
    assert!(revoked[0]["reason"].as_str().unwrap().contains("was rejected in dev account 111111111111"), "{}", revoked[0]);
    let replay = world.invoke(fixture("model-package-approved.json")).await.unwrap_err();
    assert_eq!(replay.error_type(), "Rejected.VersionRevoked");
}

#[tokio::test]
async fn a_redelivered_rejection_publishes_the_revocation_again_for_a_reach_that_may_not_be_through() {
    let world = default_world();
    world.invoke(fixture("model-package-approved.json")).await.unwrap();
    for _ in 0..2 {
        assert!(matches!(world.invoke(fixture("model-package-rejected.json")).await.unwrap(), Outcome::Revoked { .. }));
    }
    let published: Vec<serde_json::Value> =
        world.publisher.events.lock().unwrap().iter().filter(|(kind, _)| kind == "ModelRevoked").map(|(_, d)| d.clone()).collect();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0], published[1], "the same revocation: its reach keys every step on the dev rejection's event");
}

#[tokio::test]
async fn an_old_rejection_arriving_after_a_newer_approval_is_ignored() {
    let world = default_world();
    let mut approval = fixture("model-package-approved.json");
    approval["time"] = "2026-11-22T00:00:00Z".into();
    world.invoke(approval).await.unwrap();

    let outcome = world.invoke(fixture("model-package-rejected.json")).await.unwrap();

    assert!(matches!(outcome, Outcome::Ignored { .. }), "{outcome:?}");
    assert_eq!(world.central.versions(&world.central_group())[0].status, Some(ApprovalStatus::PendingManualApproval));
}

#[tokio::test]
async fn a_claim_whose_holder_died_is_taken_over_and_a_live_one_is_respected() {
    let world = default_world();
    let source: ModelPackageArn = SOURCE.parse().unwrap();
    let mut held = PromotionRecord::new(source.clone(), PromotionState::InProgress, "other-event", Utc::now() - Duration::days(3));
    held.owner = Some("a-live-invocation".into());
    held.lease_until = Some(Utc::now() + Duration::minutes(10));
    world.ledger.records.lock().unwrap().insert(SOURCE.into(), held.clone());

    let busy = world.invoke(fixture("model-package-approved.json")).await.unwrap_err();
    assert_eq!(busy.error_type(), "Retryable.PromotionInProgress");
    assert!(world.central.versions(&world.central_group()).is_empty());

    held.lease_until = Some(Utc::now() - Duration::seconds(1));
    world.ledger.records.lock().unwrap().insert(SOURCE.into(), held);
    let outcome = world.invoke(fixture("model-package-approved.json")).await.unwrap();
    assert!(matches!(outcome, Outcome::Promoted(_)));
    assert_eq!(world.central.versions(&world.central_group()).len(), 1);
}

#[tokio::test]
async fn a_multipart_copy_records_the_composite_checksum_of_its_parts() {
    const MIB: u64 = 1024 * 1024;
    let copy = CopySettings { multipart_threshold: 6 * MIB, part_size: 5 * MIB, concurrency: 3 };
    let world = world(copy, (17 * MIB) as usize);

    let Outcome::Promoted(summary) = world.invoke(fixture("model-package-approved.json")).await.unwrap() else { panic!() };

    let model = &summary.artifacts[0];
    assert!(model.sha256.ends_with("-4"), "composite of 4 parts: {}", model.sha256);
    assert_eq!(world.store.bytes(&model.central), Some(model_bytes((17 * MIB) as usize)));
    assert_eq!(world.store.open_uploads(), 0);
    let calls = world.store.calls.lock().unwrap();
    assert_eq!(calls.iter().filter(|c| **c == "UploadPartCopy").count(), 4);
}

#[tokio::test]
async fn a_pending_status_is_ignored_without_touching_anything() {
    let world = default_world();
    let mut event = fixture("model-package-approved.json");
    event["detail"]["ModelApprovalStatus"] = "PendingManualApproval".into();

    assert!(matches!(world.invoke(event).await.unwrap(), Outcome::Ignored { .. }));
    assert!(world.store.calls.lock().unwrap().is_empty());
    assert!(world.ledger.records.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_artifact_is_a_terminal_error_before_any_claim() {
    let world = default_world();
    world.dev.packages.lock().unwrap().get_mut(SOURCE).unwrap().artifacts[0].uri = uri("s3://dev-ml-artifacts-111111111111/gone.tar.gz");

    let error = world.invoke(fixture("model-package-approved.json")).await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.MissingArtifact");
    assert!(world.ledger.records.lock().unwrap().is_empty());
    assert!(world.store.keys_in(CENTRAL_BUCKET).is_empty());
}

fn refused_before_any_claim(world: &World, error: &PromoteError, expected: &str) {
    assert_eq!(error.error_type(), expected, "{error}");
    assert!(world.ledger.records.lock().unwrap().is_empty());
    assert!(world.store.keys_in(CENTRAL_BUCKET).is_empty());
    assert!(world.central.versions(&world.central_group()).is_empty());
    assert!(world.publisher.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_version_naming_ten_thousand_artifacts_is_refused_before_any_read_of_them() {
    let world = default_world();
    let many: Vec<Artifact> = (0..10_000)
        .map(|i| Artifact {
            slot: ArtifactSlot::ModelData { container: i },
            uri: uri(&format!("s3://dev-ml-artifacts-111111111111/many/{i}/model.tar.gz")),
            content_type: None,
        })
        .collect();
    world.dev.packages.lock().unwrap().get_mut(SOURCE).unwrap().artifacts = many;

    let error = world.invoke(fixture("model-package-approved.json")).await.unwrap_err();

    refused_before_any_claim(&world, &error, "Rejected.TooManyArtifacts");
    assert!(error.to_string().contains("10000"), "{error}");
    assert!(world.store.calls.lock().unwrap().is_empty(), "not one of them was read");
}

#[tokio::test]
async fn an_approval_the_dev_registry_does_not_hold_is_refused() {
    let world = default_world();
    world.dev.packages.lock().unwrap().get_mut(SOURCE).unwrap().status = Some(ApprovalStatus::PendingManualApproval);

    let error = world.invoke(fixture("model-package-approved.json")).await.unwrap_err();

    refused_before_any_claim(&world, &error, "Rejected.NotApprovedInDev");
    assert!(error.to_string().contains("PendingManualApproval"), "{error}");
}

#[tokio::test]
async fn a_version_without_an_inference_container_is_refused() {
    let world = default_world();
    world.dev.packages.lock().unwrap().get_mut(SOURCE).unwrap().inference.containers.clear();

    let error = world.invoke(fixture("model-package-approved.json")).await.unwrap_err();

    refused_before_any_claim(&world, &error, "Rejected.NoContainers");
}

/// A copy that takes `delay` (of tokio's clock), recording the claim's lease before and after.
struct SlowCopies {
    ledger: Arc<FakeLedger>,
    delay: std::time::Duration,
    leases: std::sync::Mutex<Vec<chrono::DateTime<Utc>>>,
}

impl SlowCopies {
    fn lease(&self) -> chrono::DateTime<Utc> {
        self.ledger.record(&SOURCE.parse().unwrap()).and_then(|r| r.lease_until).expect("a claim with a lease")
    }
}

#[async_trait::async_trait]
impl BeforeCopy for SlowCopies {
    async fn before_copy(&self, _part: Option<i32>) -> PortResult<()> {
        self.leases.lock().unwrap().push(self.lease());
        tokio::time::sleep(self.delay).await;
        self.leases.lock().unwrap().push(self.lease());
        Ok(())
    }
}

fn slow_world(delay: std::time::Duration) -> (World, Arc<HookedStore<SlowCopies>>) {
    let mut world = default_world();
    let slow = SlowCopies { ledger: world.ledger.clone(), delay, leases: Default::default() };
    let hooked = Arc::new(HookedStore { inner: world.store.clone(), hook: slow });
    world.ports.artifacts = hooked.clone();
    (world, hooked)
}

/// A claim lapses a minute after its last renewal, not at the invocation's deadline: a crashed
/// invocation holds redeliveries off for a minute at most, however long its timeout.
#[tokio::test(start_paused = true)]
async fn the_claim_is_short_and_renewed_while_a_long_copy_runs() {
    let (world, slow) = slow_world(std::time::Duration::from_secs(150));
    let claimed_by = Utc::now();

    let outcome = world.invoke(fixture("model-package-approved.json")).await.expect("promoted");

    assert!(matches!(outcome, Outcome::Promoted(_)), "{outcome:?}");
    let leases = slow.hook.leases.lock().unwrap().clone();
    assert!(leases[0] <= claimed_by + Duration::seconds(61), "the first lease is a minute, not the 5-minute deadline: {leases:?}");
    // tokio's clock ran 150 s (seven renewals at 20 s) while the wall clock barely moved.
    // The copies run at once: each records the lease before and after its 150 s.
    assert!(leases.last() > leases.first(), "the lease was renewed during the copies: {leases:?}");
    assert!(*world.ledger.renewals.lock().unwrap() >= 7, "renewed every 20 s");
}

/// Another delivery took the claim over (this one's lease lapsed unseen, a paused VM, say):
/// the next renewal finds it gone and the work stops before it registers anything.
#[tokio::test(start_paused = true)]
async fn a_promotion_whose_claim_was_taken_over_stops_at_the_next_renewal() {
    let (world, _slow) = slow_world(std::time::Duration::from_secs(3600));
    let source: ModelPackageArn = SOURCE.parse().unwrap();
    let take_over = async {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        world.ledger.records.lock().unwrap().get_mut(SOURCE).expect("claimed").owner = Some("another-delivery".into());
    };

    let (stopped, ()) = tokio::join!(world.invoke(fixture("model-package-approved.json")), take_over);

    assert_eq!(stopped.unwrap_err().error_type(), "Retryable.PromotionInProgress");
    assert!(world.central.versions(&world.central_group()).is_empty());
    assert!(world.cards.cards.lock().unwrap().is_empty());
    assert_eq!(world.ledger.record(&source).unwrap().owner.as_deref(), Some("another-delivery"), "the new holder's claim stands");
}

/// An invocation that dies mid-copy (its future dropped, as a crash would) leaves its claim to
/// lapse within a minute; its copy is reused by the next delivery.
#[tokio::test(start_paused = true)]
async fn a_crashed_invocation_leaves_a_claim_that_lapses_within_a_minute() {
    let (world, _slow) = slow_world(std::time::Duration::from_secs(3600));

    let crashed = tokio::time::timeout(std::time::Duration::from_secs(90), world.invoke(fixture("model-package-approved.json"))).await;

    assert!(crashed.is_err(), "the copy was still running: {crashed:?}");
    let record = world.ledger.record(&SOURCE.parse().unwrap()).expect("claimed");
    assert_eq!(record.state, PromotionState::InProgress);
    let lease = record.lease_until.expect("lease");
    assert!(lease <= Utc::now() + Duration::seconds(60), "the claim lapses within a minute: {lease}");
    assert!(world.central.versions(&world.central_group()).is_empty());
}

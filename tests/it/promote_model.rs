//! promote-model against moto's server, across the dev and central accounts.

use promotion_core::failure::Failure;
use std::sync::Arc;

use base64::Engine;
use promote_cli::local::register_version;
use promotion_core::domain::copy::CopySettings;
use promotion_core::domain::ids::{ModelPackageArn, S3Uri};
use promotion_core::domain::ledger::{Claim, ClaimResult, PromotionState};
use promotion_core::promotion::{Outcome, PromotionSummary};
use promotion_tests::faults::{CorruptCopies, Crash, CrashingRegistry};
use promotion_tests::{TestWorld, EMULATOR};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The stage settings the local accounts run with: they name the endpoints `promote status` reads.
fn local_stages() -> promotion_core::domain::deploy::StageConfig {
    promotion_core::domain::deploy::StageConfig::parse(promotion_core::config::LOCAL_STAGE_CONFIG).unwrap()
}

const MIB: u64 = 1024 * 1024;

fn promoted(outcome: Outcome) -> PromotionSummary {
    match outcome {
        Outcome::Promoted(summary) => summary,
        other => panic!("expected a promotion, got {other:?}"),
    }
}

fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

async fn upload(world: &TestWorld, bucket: &str, key: &str, body: Vec<u8>) -> String {
    promote_cli::local::put_object(world.dev(), bucket, key, body).await.expect("upload")
}

#[tokio::test]
async fn an_approved_dev_version_becomes_one_central_version_with_its_artifacts_card_and_record() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let source = world.world.dev_package.clone();
    let event = world.decide(&source, true).await;

    let summary = promoted(world.deliver(&event).await.expect("promotion"));

    let group = format!("{}-111111111111", world.world.names.dev_group);
    assert_eq!(summary.central_group.as_str(), group);
    assert_eq!(summary.artifacts.len(), 3, "model, evaluation report, drift baseline");
    for artifact in &summary.artifacts {
        let original = world.object(&artifact.source).await;
        let copy = world.object(&artifact.central).await;
        assert_eq!(copy, original, "bytes of {}", artifact.central);
        assert_eq!(artifact.sha256, sha256_b64(&original));
        assert_eq!(artifact.size, original.len() as u64);
        assert_eq!(artifact.central.bucket(), world.world.names.artifact_bucket);
        assert!(artifact.central.key().starts_with(&format!("{group}/1/")), "{}", artifact.central);
        let head = world.s3().head_object().bucket(artifact.central.bucket()).key(artifact.central.key()).send().await.unwrap();
        assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"));
        assert_eq!(head.ssekms_key_id(), Some(world.world.config.kms_key_id.as_str()));
    }
    let model = &summary.artifacts[0];
    assert!(model.size > 2 * MIB, "a real artifact of a few MB, got {}", model.size);

    let versions = world.central_versions(&group).await;
    assert_eq!(versions.len(), 1);
    let central = &versions[0];
    assert_eq!(central.model_package_arn(), Some(summary.central_package.as_str()));
    assert_eq!(central.model_approval_status().map(|s| s.as_str()), Some("PendingManualApproval"));
    let container = &central.inference_specification().unwrap().containers()[0];
    assert_eq!(container.model_data_url(), Some(model.central.to_string().as_str()));
    let statistics = central.model_metrics().and_then(|m| m.model_quality()).and_then(|q| q.statistics()).unwrap();
    assert_eq!(statistics.s3_uri(), Some(summary.artifacts[1].central.to_string().as_str()));
    let metadata = central.customer_metadata_properties().unwrap();
    assert_eq!(metadata["promotion:source-arn"], source.to_string());
    assert_eq!(metadata["promotion:source-account"], "111111111111");
    assert_eq!(metadata["promotion:source-version"], "1");
    assert_eq!(metadata["promotion:event-id"], event["id"].as_str().unwrap());
    assert_eq!(metadata["promotion:sha256:model/0"], model.sha256);
    assert!(metadata.contains_key("promotion:promoted-at"));

    let cards = world.card_versions(&summary.model_card).await;
    assert_eq!(cards.len(), 1);
    let (version, content) = &cards[0];
    assert_eq!(*version as u32, summary.model_card_version);
    assert_eq!(content["model_package_details"]["model_package_arn"], summary.central_package.to_string());
    assert_eq!(content["model_overview"]["model_artifact"], json!([model.central.to_string()]));
    let metrics = &content["evaluation_details"][0]["metric_groups"][0];
    assert_eq!(metrics["name"], "binary_classification_metrics");
    assert!(metrics["metric_data"].as_array().unwrap().contains(&json!({"name": "accuracy", "type": "number", "value": 0.912})));
    assert_eq!(content["additional_information"]["custom_details"]["source_model_package_arn"], source.to_string());

    let record = world.ports.ledger.get(&source).await.unwrap().expect("ledger record");
    assert_eq!(record.state.as_str(), "Promoted");
    assert_eq!(record.central_package.as_ref(), Some(&summary.central_package));
    assert_eq!(record.artifacts, summary.artifacts);
    assert_eq!(record.card_version, Some(summary.model_card_version));
    assert_eq!(record.owner, None);

    let events = world.published_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail-type"], "ModelPromoted");
    assert_eq!(events[0]["source"], "model-promotion");
    assert_eq!(events[0]["detail"]["central_package"], summary.central_package.to_string());
}

#[tokio::test]
async fn ten_concurrent_deliveries_of_one_event_make_exactly_one_central_version() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let event = world.decide(&world.world.dev_package, true).await;

    let deliveries = futures::future::join_all((0..10).map(|_| world.deliver(&event))).await;
    let promotions = deliveries.iter().filter(|d| matches!(d, Ok(Outcome::Promoted(_)))).count();
    assert_eq!(promotions, 1, "{deliveries:?}");
    for delivery in &deliveries {
        match delivery {
            Ok(Outcome::Promoted(_) | Outcome::AlreadyPromoted(_)) => {}
            // DynamoDB grants one claim; moto's server can grant two under a race, and then the
            // owner fencing on every ledger write stops the loser (ClaimLost) before it registers.
            Err(busy) => assert!(["Retryable.PromotionInProgress", "Retryable.ClaimLost"].contains(&busy.error_type().as_str()), "{busy}"),
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    // The busy ones come back, as EventBridge retries them, and find the work done.
    for _ in 0..10 {
        assert!(matches!(world.deliver(&event).await, Ok(Outcome::AlreadyPromoted(_))));
    }

    let group = format!("{}-111111111111", world.world.names.dev_group);
    assert_eq!(world.central_versions(&group).await.len(), 1);
    assert_eq!(world.group_card_versions(&group).await.len(), 1);
    assert_eq!(world.published_events().await.len(), 1);
    let central_registry = promotion_aws::sagemaker::SageMakerRegistry::new(world.sagemaker());
    let rows = promote_cli::status::status(world.ledger.as_ref(), &central_registry, &local_stages()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].central_approval.as_deref(), Some("PendingManualApproval"));
    assert_eq!(rows[0].model_card_version, Some(1));
}

#[tokio::test]
async fn a_claim_retried_by_its_own_invocation_is_still_its_own_and_no_one_elses() {
    let _shared = EMULATOR.read().await;
    // The SDK retries a claim whose answer was lost after DynamoDB applied it; the retry must
    // not find the invocation locked out by itself until its lease ends.
    let world = TestWorld::new().await;
    let now = chrono::Utc::now();
    let claim = |owner: &str| Claim {
        source: world.world.dev_package.clone(),
        event_id: "e-1".into(),
        event_time: now,
        owner: owner.into(),
        lease_until: now + chrono::Duration::minutes(5),
        now,
    };
    let ledger = world.ports.ledger.as_ref();

    let first = ledger.claim(&claim("invocation-a")).await.expect("first claim");
    let retried = ledger.claim(&claim("invocation-a")).await.expect("retried claim");
    let other = ledger.claim(&claim("invocation-b")).await.expect("another invocation's claim");

    assert!(matches!(first, ClaimResult::Granted(ref r) if r.owner.as_deref() == Some("invocation-a")), "{first:?}");
    assert!(matches!(retried, ClaimResult::Granted(ref r) if r.owner.as_deref() == Some("invocation-a")), "{retried:?}");
    assert!(matches!(other, ClaimResult::Held(ref r) if r.owner.as_deref() == Some("invocation-a")), "{other:?}");
    let stored = ledger.get(&world.world.dev_package).await.unwrap().expect("the claim is stored");
    assert_eq!((stored.state, stored.owner.as_deref()), (PromotionState::InProgress, Some("invocation-a")));
}

#[tokio::test]
async fn a_later_rejection_in_dev_revokes_the_central_version() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let source = world.world.dev_package.clone();
    let approval = world.decide(&source, true).await;
    let summary = promoted(world.deliver(&approval).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rejection = world.decide(&source, false).await;

    let outcome = world.deliver(&rejection).await.expect("revocation");

    let Outcome::Revoked { central_package, reason, .. } = outcome else { panic!("expected revocation, got {outcome:?}") };
    assert_eq!(central_package, summary.central_package);
    assert!(reason.contains(rejection["id"].as_str().unwrap()), "{reason}");
    let described = world.sagemaker().describe_model_package().model_package_name(central_package.as_str()).send().await.unwrap();
    assert_eq!(described.model_approval_status().map(|s| s.as_str()), Some("Rejected"));
    assert_eq!(described.approval_description(), Some(reason.as_str()));
    let metadata = described.customer_metadata_properties().unwrap();
    assert_eq!(metadata["promotion:source-arn"], source.to_string(), "lineage kept");
    assert_eq!(metadata["promotion:revoked-by-event"], rejection["id"].as_str().unwrap());
    let record = world.ports.ledger.get(&source).await.unwrap().unwrap();
    assert_eq!(record.state.as_str(), "Revoked");
    assert_eq!(record.reason.as_deref(), Some(reason.as_str()));

    let central_registry = promotion_aws::sagemaker::SageMakerRegistry::new(world.sagemaker());
    let rows = promote_cli::status::status(world.ledger.as_ref(), &central_registry, &local_stages()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state.as_str(), rows[0].central_approval.as_deref()), ("Revoked", Some("Rejected")));
    assert_eq!(rows[0].central_package.as_deref(), Some(summary.central_package.as_str()));
    assert!(promote_cli::status::render(&rows).contains("Revoked"));

    // The rejection redelivered changes nothing; the old approval redelivered is refused.
    assert!(matches!(world.deliver(&rejection).await, Ok(Outcome::Revoked { .. })));
    let replay = world.deliver(&approval).await.unwrap_err();
    assert_eq!(replay.error_type(), "Rejected.VersionRevoked");
    let group = format!("{}-111111111111", world.world.names.dev_group);
    assert_eq!(world.central_versions(&group).await.len(), 1);
}

#[tokio::test]
async fn a_rejection_before_promotion_bars_an_older_approval() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let source = world.world.dev_package.clone();
    let approval = world.decide(&source, true).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let rejection = world.decide(&source, false).await;

    assert!(matches!(world.deliver(&rejection).await, Ok(Outcome::RejectionRecorded { .. })));
    let late = world.deliver(&approval).await.unwrap();

    assert!(matches!(late, Outcome::Ignored { .. }), "{late:?}");
    assert!(world.central_keys().await.is_empty());
    let group = format!("{}-111111111111", world.world.names.dev_group);
    assert!(world.central_versions(&group).await.is_empty());
}

fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    *event.pointer_mut(pointer).expect("field exists") = value;
    event
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_and_creates_nothing() {
    let _alone = EMULATOR.write().await;
    let world = TestWorld::new().await;
    let source = world.world.dev_package.clone();
    let good = world.decide(&source, true).await;
    let foreign = {
        let other_bucket = format!("{}-other", world.world.names.dev_bucket);
        promote_cli::local::create_bucket(world.dev(), &other_bucket).await.unwrap();
        let model = upload(&world, &other_bucket, "model.tar.gz", vec![1; 1024]).await;
        let arn = register_version(world.dev(), &world.world.names.dev_group, &model, None).await.unwrap();
        world.decide(&arn, true).await
    };
    let stranger: ModelPackageArn = "arn:aws:sagemaker:us-east-1:555555555555:model-package/churn/1".parse().unwrap();
    let long_group = format!("arn:aws:sagemaker:us-east-1:111111111111:model-package/{}/1", "g".repeat(64));
    let cases = [
        (with(good.clone(), "/source", json!("my.app")), "Rejected.InvalidEvent"),
        (with(good.clone(), "/detail-type", json!("Object Created")), "Rejected.InvalidEvent"),
        (with(good.clone(), "/detail/ModelPackageArn", json!(null)), "Rejected.InvalidEvent"),
        (with(good.clone(), "/account", json!("333333333333")), "Rejected.InvalidEvent"),
        (with(with(good.clone(), "/detail/ModelPackageArn", json!(long_group)), "/detail/ModelPackageGroupName", json!(null)), "Rejected.InvalidEvent"),
        (with(good.clone(), "/id", json!("x".repeat(100_000))), "Rejected.InvalidEvent"),
        (promote_cli::local::approval_event(&stranger, "Approved"), "Rejected.UnknownSourceAccount"),
        (foreign, "Rejected.ForeignBucket"),
    ];
    let before = world.snapshot().await;

    for (event, expected) in cases {
        let error = world.deliver(&event).await.expect_err("rejected");
        assert_eq!(error.error_type(), expected, "{error}");
        assert_eq!(world.snapshot().await, before, "state changed after {expected}: {error}");
    }
    assert!(before.central_objects.is_empty() && before.ledger.is_empty());
}

#[tokio::test]
async fn a_large_artifact_is_copied_in_parallel_parts_and_arrives_whole() {
    let _shared = EMULATOR.read().await;
    let copy = CopySettings { multipart_threshold: 8 * MIB, part_size: 5 * MIB, concurrency: 4 };
    let world = TestWorld::with_copy_settings(copy).await;
    let bytes: Vec<u8> = (0..(32 * MIB + 12345)).map(|i| (i * 2_654_435_761 % 251) as u8).collect();
    let model = upload(&world, &world.world.names.dev_bucket, "large/model.tar.gz", bytes.clone()).await;
    let arn = register_version(world.dev(), &world.world.names.dev_group, &model, None).await.unwrap();
    let event = world.decide(&arn, true).await;

    let summary = promoted(world.deliver(&event).await.expect("promotion"));

    let artifact = &summary.artifacts[0];
    assert_eq!(artifact.size, bytes.len() as u64);
    assert!(world.object(&artifact.central).await == bytes, "bytes differ after the multipart copy");
    assert_eq!(world.open_multipart_uploads().await, 0);
    let head = world.s3().head_object().bucket(artifact.central.bucket()).key(artifact.central.key()).send().await.unwrap();
    assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("aws:kms"));
    // A multipart object's ETag ends in its part count: 32 MiB and a bit in 5 MiB parts.
    assert!(head.e_tag().is_some_and(|etag| etag.ends_with("-7\"")), "not copied in 7 parts: {:?}", head.e_tag());
}

#[tokio::test]
async fn a_copy_whose_checksum_differs_fails_and_leaves_no_version_then_heals_on_redelivery() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let event = world.decide(&world.world.dev_package, true).await;
    let mut corrupting = world.ports.clone();
    corrupting.artifacts = Arc::new(CorruptCopies { inner: world.ports.artifacts.clone(), bucket: world.world.names.artifact_bucket.clone() });

    let error = world.deliver_with(&corrupting, &event).await.expect_err("mismatch");

    assert_eq!(error.error_type(), "Retryable.CopyMismatch");
    assert!(error.to_string().contains("checksum differs"), "{error}");
    let group = format!("{}-111111111111", world.world.names.dev_group);
    assert!(world.central_versions(&group).await.is_empty());
    assert!(world.central_keys().await.is_empty(), "the bad copy is deleted");
    assert!(world.group_card_versions(&group).await.is_empty());

    let summary = promoted(world.deliver(&event).await.expect("redelivery"));
    assert_eq!(world.central_versions(&group).await.len(), 1);
    assert_eq!(world.object(&summary.artifacts[0].central).await, world.object(&summary.artifacts[0].source).await);
}

async fn crash_then_redeliver(crash: Crash) {
    let world = TestWorld::new().await;
    let event = world.decide(&world.world.dev_package, true).await;
    let mut crashing = world.ports.clone();
    crashing.central_registry = Arc::new(CrashingRegistry::once(world.ports.central_registry.clone(), crash));

    let error = world.deliver_with(&crashing, &event).await.expect_err("crash");
    assert_eq!(error.error_type(), "Retryable.CreateModelPackage");
    let copied = world.central_keys().await;
    assert_eq!(copied.len(), 3, "artifacts were copied before the crash");

    let summary = promoted(world.deliver(&event).await.expect("redelivery completes the promotion"));

    let group = format!("{}-111111111111", world.world.names.dev_group);
    let versions = world.central_versions(&group).await;
    assert_eq!(versions.len(), 1, "exactly one central version after {crash:?}");
    assert_eq!(versions[0].model_package_arn(), Some(summary.central_package.as_str()));
    assert_eq!(world.central_keys().await, copied);
    assert_eq!(world.group_card_versions(&group).await.len(), 1);
    assert_eq!(world.ports.ledger.get(&world.world.dev_package).await.unwrap().unwrap().state.as_str(), "Promoted");
}

#[tokio::test]
async fn a_crash_between_copy_and_registration_is_completed_by_the_next_delivery() {
    let _shared = EMULATOR.read().await;
    crash_then_redeliver(Crash::BeforeRegistration).await;
}

#[tokio::test]
async fn a_crash_after_registration_before_the_ledger_write_does_not_duplicate_the_version() {
    let _shared = EMULATOR.read().await;
    crash_then_redeliver(Crash::AfterRegistration).await;
}

#[tokio::test]
async fn a_second_version_of_the_same_model_gets_a_card_of_its_own_and_leaves_the_first_untouched() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let first = promoted(world.deliver(&world.decide(&world.world.dev_package, true).await).await.unwrap());
    let model = upload(&world, &world.world.names.dev_bucket, "v2/model.tar.gz", vec![7; 4096]).await;
    let second = register_version(world.dev(), &world.world.names.dev_group, &model, None).await.unwrap();

    let summary = promoted(world.deliver(&world.decide(&second, true).await).await.unwrap());

    assert_ne!(summary.model_card, first.model_card);
    assert_eq!(summary.model_card_version, 1);
    let cards = world.card_versions(&summary.model_card).await;
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].1["model_package_details"]["model_package_arn"], summary.central_package.to_string());
    let first_card = world.card_versions(&first.model_card).await;
    assert_eq!(first_card.len(), 1, "the first version's card has no version of the second's");
    assert_eq!(first_card[0].1["model_package_details"]["model_package_arn"], first.central_package.to_string());
    assert!(summary.artifacts[0].central.key().contains("/2/model/0/"), "{}", summary.artifacts[0].central);
    let uri: S3Uri = summary.artifacts[0].central.clone();
    assert_eq!(world.object(&uri).await, vec![7; 4096]);
}

/// The digest a registry of moto reports for `repository:tag`, read back.
async fn tagged_digest(account: &aws_config::SdkConfig, repository: &str, tag: &str) -> Option<String> {
    let ecr = aws_sdk_ecr::Client::new(account);
    let out =
        ecr.describe_images().repository_name(repository).image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag(tag).build()).send().await.ok()?;
    out.image_details().first().and_then(|d| d.image_digest()).map(str::to_owned)
}

#[tokio::test]
async fn a_dev_image_is_registered_as_the_central_repository_at_the_digest_moto_reports_for_the_replicated_copy() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let repository = promote_cli::local::dev_repository(&world.world.names.dev_group).unwrap();
    let tag = promote_cli::local::SERVING_TAG;
    let central_digest = tagged_digest(world.central(), repository.as_str(), tag).await.expect("the local world replicated the dev image");
    assert_eq!(tagged_digest(world.dev(), repository.as_str(), tag).await.as_deref(), Some(central_digest.as_str()), "replication keeps the digest");
    let event = world.decide(&world.world.dev_package, true).await;

    let summary = promoted(world.deliver(&event).await.expect("promotion"));

    let versions = world.central_versions(summary.central_group.as_str()).await;
    let container = &versions[0].inference_specification().unwrap().containers()[0];
    let pinned = format!("222222222222.dkr.ecr.us-east-1.amazonaws.com/{repository}@{central_digest}");
    assert_eq!(container.image(), Some(pinned.as_str()));
    assert_eq!(container.image_digest(), Some(central_digest.as_str()));
    let cards = world.card_versions(&summary.model_card).await;
    assert_eq!(cards[0].1["model_overview"]["inference_environment"]["container_image"], json!([pinned]), "the card shows what runs");
}

#[tokio::test]
async fn a_tag_pushed_again_in_dev_after_the_approval_is_refused_and_nothing_is_promoted() {
    let _shared = EMULATOR.read().await;
    let world = TestWorld::new().await;
    let source = world.world.dev_package.clone();
    let event = world.decide(&source, true).await;
    let group = &world.world.names.dev_group;
    let approved = tagged_digest(world.dev(), promote_cli::local::dev_repository(group).unwrap().as_str(), promote_cli::local::SERVING_TAG).await.unwrap();

    // A rebuilt image pushed under the approved tag: the dev repository's tags are mutable, the
    // central repository's are not, so the rebuild never replicates.
    let rebuilt = promote_cli::local::push_serving_image(world.dev(), group, "rebuilt", promote_cli::local::SERVING_TAG).await.unwrap();
    assert_ne!(rebuilt.digest, approved);
    assert_eq!(rebuilt.replicated, None, "the central repository keeps its tag");

    let error = world.deliver(&event).await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.ImageChanged");
    assert!(error.to_string().contains(&rebuilt.digest) && error.to_string().contains(&approved), "{error}");
    assert!(world.central_versions(&format!("{group}-111111111111")).await.is_empty(), "nothing is registered");
    assert!(world.central_keys().await.is_empty(), "nothing is copied");
    assert_eq!(world.ports.ledger.get(&source).await.unwrap(), None, "nothing is claimed");
}

//! Each decision over the fakes, by its end state: what the central registry holds, what the
//! ledger claimed, what was copied, which registries were asked.

use super::*;
use crate::fakes::{PromoteWorld, PROMOTE_WORLD_DIGEST, PROMOTE_WORLD_IMAGE};
use crate::promotion::Outcome;

const MOVED: &str = "sha256:0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0bad";
const CENTRAL_REPOSITORY: &str = "model-promotion/churn-prediction-111111111111";
const CENTRAL_PINNED: &str =
    "222222222222.dkr.ecr.us-east-1.amazonaws.com/model-promotion/churn-prediction-111111111111@sha256:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const XGBOOST: &str = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1";

fn container(image: &str, recorded: Option<&str>) -> Container {
    Container { image: image.into(), image_digest: recorded.map(str::to_owned), ..Container::default() }
}

/// Nothing behind the claim happened: no claim, no copy, no version.
fn assert_untouched(world: &PromoteWorld) {
    assert!(world.ledger.records.lock().unwrap().is_empty(), "nothing is claimed");
    assert!(world.central_versions().is_empty(), "nothing is registered");
    assert!(world.store.keys_in("model-promotion-artifacts-222222222222").is_empty(), "nothing is copied");
}

#[tokio::test]
async fn a_replicated_dev_image_is_registered_as_the_central_repository_at_its_digest() {
    let world = PromoteWorld::new();

    let outcome = world.deliver_approval().await.expect("promoted");

    assert!(matches!(outcome, Outcome::Promoted(_)), "{outcome:?}");
    let versions = world.central_versions();
    assert_eq!(versions.len(), 1);
    let registered = &versions[0].inference.containers[0];
    assert_eq!(registered.image, CENTRAL_PINNED);
    assert_eq!(registered.image_digest.as_deref(), Some(PROMOTE_WORLD_DIGEST));
    // The dev tag was resolved through the dev read role, the digest looked up centrally.
    assert_eq!(world.dev_images.calls(), [format!("resolve {PROMOTE_WORLD_IMAGE}")]);
    assert_eq!(world.central_images.calls(), [format!("find {CENTRAL_REPOSITORY}@{PROMOTE_WORLD_DIGEST}")]);
}

#[tokio::test]
async fn a_tag_moved_since_the_approval_is_refused_with_nothing_claimed_or_registered() {
    let world = PromoteWorld::new();
    // Re-pushed in dev after the approval (and replicated too: the central copy changes nothing).
    world.dev_images.push(PROMOTE_WORLD_IMAGE, MOVED);
    world.central_images.replicated(&CENTRAL_REPOSITORY.parse().unwrap(), MOVED);

    let error = world.deliver_approval().await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.ImageChanged");
    let message = error.to_string();
    assert!(message.contains(MOVED) && message.contains(PROMOTE_WORLD_DIGEST), "{message}");
    assert_untouched(&world);
}

#[tokio::test]
async fn an_image_not_yet_replicated_is_waited_for_and_promoted_once_it_arrives() {
    let world = PromoteWorld::running(container(PROMOTE_WORLD_IMAGE, Some(PROMOTE_WORLD_DIGEST)));
    world.dev_images.push(PROMOTE_WORLD_IMAGE, PROMOTE_WORLD_DIGEST);

    let error = world.deliver_approval().await.unwrap_err();

    assert_eq!(error.error_type(), "Retryable.ImageNotReplicated");
    let message = error.to_string();
    assert!(message.contains(CENTRAL_REPOSITORY) && message.contains(PROMOTE_WORLD_DIGEST), "says what it waits for: {message}");
    assert_untouched(&world);

    world.central_images.replicated(&CENTRAL_REPOSITORY.parse().unwrap(), PROMOTE_WORLD_DIGEST);
    world.deliver_approval().await.expect("promoted once replicated");
    assert_eq!(world.central_versions()[0].inference.containers[0].image, CENTRAL_PINNED);
}

#[tokio::test]
async fn an_allow_listed_aws_image_is_pinned_where_it_is_without_any_central_copy() {
    let world = PromoteWorld::running(container(XGBOOST, Some(PROMOTE_WORLD_DIGEST)));
    world.dev_images.push(XGBOOST, PROMOTE_WORLD_DIGEST);

    world.deliver_approval().await.expect("promoted");

    let registered = &world.central_versions()[0].inference.containers[0];
    assert_eq!(registered.image, format!("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost@{PROMOTE_WORLD_DIGEST}"));
    assert_eq!(registered.image_digest.as_deref(), Some(PROMOTE_WORLD_DIGEST));
    assert_eq!(world.dev_images.calls(), [format!("resolve {XGBOOST}")]);
    assert!(world.central_images.calls().is_empty(), "the central registry is never asked for an AWS image");
}

#[tokio::test]
async fn an_allow_listed_aws_image_whose_tag_moved_is_refused_too() {
    let world = PromoteWorld::running(container(XGBOOST, Some(PROMOTE_WORLD_DIGEST)));
    world.dev_images.push(XGBOOST, MOVED);

    let error = world.deliver_approval().await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.ImageChanged");
    assert_untouched(&world);
}

#[tokio::test]
async fn a_registry_outside_ecr_or_another_accounts_ecr_is_refused_before_any_call() {
    for image in [
        "xgboost:1.7-1",
        "ghcr.io/team/churn:1",
        "public.ecr.aws/sagemaker/churn:1",
        "555555555555.dkr.ecr.us-east-1.amazonaws.com/model-promotion/churn-prediction-111111111111:serving-1",
    ] {
        let world = PromoteWorld::running(container(image, None));

        let error = world.deliver_approval().await.unwrap_err();

        assert_eq!(error.error_type(), "Rejected.ForeignImageRegistry", "{image}");
        assert_untouched(&world);
        assert!(world.dev_images.calls().is_empty() && world.central_images.calls().is_empty(), "{image}");
    }
}

#[tokio::test]
async fn a_dev_image_outside_the_models_replicated_repository_is_refused_and_told_where_to_go() {
    let world = PromoteWorld::running(container("111111111111.dkr.ecr.us-east-1.amazonaws.com/churn-serving:1", None));

    let error = world.deliver_approval().await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.ImageOutsideModelRepository");
    assert!(error.to_string().contains(CENTRAL_REPOSITORY), "{error}");
    assert_untouched(&world);
}

#[tokio::test]
async fn a_malformed_image_or_recorded_digest_is_refused() {
    for (image, recorded) in [(format!("{PROMOTE_WORLD_IMAGE}@sha256:abc"), None), (PROMOTE_WORLD_IMAGE.to_owned(), Some("md5:abc"))] {
        let world = PromoteWorld::running(container(&image, recorded));
        let error = world.deliver_approval().await.unwrap_err();
        assert_eq!(error.error_type(), "Rejected.InvalidImage", "{image} {recorded:?}");
        assert_untouched(&world);
    }
}

#[tokio::test]
async fn a_tag_no_longer_in_the_dev_registry_is_refused() {
    let world = PromoteWorld::running(container(PROMOTE_WORLD_IMAGE, Some(PROMOTE_WORLD_DIGEST)));
    world.central_images.replicated(&CENTRAL_REPOSITORY.parse().unwrap(), PROMOTE_WORLD_DIGEST);

    let error = world.deliver_approval().await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.ImageNotFound");
    assert_untouched(&world);
}

#[tokio::test]
async fn a_tag_sagemaker_recorded_no_digest_for_is_pinned_at_what_it_names_now() {
    let world = PromoteWorld::running(container(PROMOTE_WORLD_IMAGE, None));
    world.dev_images.push(PROMOTE_WORLD_IMAGE, PROMOTE_WORLD_DIGEST);
    world.central_images.replicated(&CENTRAL_REPOSITORY.parse().unwrap(), PROMOTE_WORLD_DIGEST);

    world.deliver_approval().await.expect("promoted");

    assert_eq!(world.central_versions()[0].inference.containers[0].image, CENTRAL_PINNED);
}

#[tokio::test]
async fn an_image_named_by_digest_needs_no_resolution() {
    let by_digest = format!("111111111111.dkr.ecr.us-east-1.amazonaws.com/{CENTRAL_REPOSITORY}@{PROMOTE_WORLD_DIGEST}");
    let world = PromoteWorld::running(container(&by_digest, None));
    world.central_images.replicated(&CENTRAL_REPOSITORY.parse().unwrap(), PROMOTE_WORLD_DIGEST);

    world.deliver_approval().await.expect("promoted");

    assert!(world.dev_images.calls().is_empty());
    assert_eq!(world.central_versions()[0].inference.containers[0].image, CENTRAL_PINNED);
}

#[tokio::test]
async fn a_reference_whose_digest_contradicts_the_recorded_one_is_refused() {
    let both = format!("{PROMOTE_WORLD_IMAGE}@{MOVED}");
    let world = PromoteWorld::running(container(&both, Some(PROMOTE_WORLD_DIGEST)));

    let error = world.deliver_approval().await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.ImageChanged");
    assert_untouched(&world);
}

#[tokio::test]
async fn a_refusal_no_redelivery_can_change_wins_over_a_wait() {
    let world = PromoteWorld::new();
    let mut package = world.dev.packages.lock().unwrap().values().next().cloned().unwrap();
    // The first container waits for replication, the second moved.
    package.inference.containers = vec![container(PROMOTE_WORLD_IMAGE, Some(MOVED)), container(XGBOOST, Some(PROMOTE_WORLD_DIGEST))];
    world.dev.add(package);
    world.dev_images.push(PROMOTE_WORLD_IMAGE, MOVED);
    world.dev_images.push(XGBOOST, MOVED);

    let error = world.deliver_approval().await.unwrap_err();

    assert_eq!(error.error_type(), "Rejected.ImageChanged", "{error}");
    assert_untouched(&world);
}

//! The dev teams' serving images, in moto's ECR. moto stores manifests and computes a digest
//! from their layer digests (not from the manifest's bytes, as ECR does), so every digest here
//! is the one moto reports, read back, never computed. moto replicates nothing either: the local
//! world plays ECR's cross-account replication where AWS would perform it, right after each push
//! to a dev repository, by putting the same manifest and tag into the central account's
//! repository of the same name, created as the central account's repository creation template
//! creates it (immutable tags, scan on push).

use anyhow::{Context as _, Result};
use aws_config::SdkConfig;
use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration, ImageTagMutability};
use promotion_core::domain::ids::{AccountId, GroupName, ModelPackageArn};
use promotion_core::domain::image::{central_repository, RepositoryName};
use promotion_core::domain::naming::{central_group_name, hex_sha256};

use super::{session_in, CENTRAL_ACCOUNT, DEV_ACCOUNT, REGION};

/// The tag every local serving image is pushed under.
pub const SERVING_TAG: &str = "serving-1";

/// An image pushed to a dev repository, and replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// By tag, as the dev version names it.
    pub image: String,
    /// What moto reported for the dev push.
    pub digest: String,
    pub repository: RepositoryName,
    /// What moto reported for the central copy; `None` when the central repository refused it
    /// (its tags are immutable: a tag pushed again in dev never replicates).
    pub replicated: Option<String>,
}

/// The dev repository of `group`'s serving image: the model's central repository's name, which
/// ECR replication keeps.
pub fn dev_repository(group: &str) -> Result<RepositoryName> {
    let group: GroupName = group.parse()?;
    let dev: AccountId = DEV_ACCOUNT.parse()?;
    Ok(central_repository(&central_group_name(&ModelPackageArn::new(REGION, &dev, &group, 1))))
}

/// A serving image's manifest (Docker image manifest v2); `build` makes its layers, and so the
/// image, differ.
pub fn manifest(group: &str, build: &str) -> String {
    let blob = |what: &str| format!("sha256:{}", hex_sha256(format!("{group} {build} {what}").as_bytes()));
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469, "digest": blob("config") },
        "layers": [
            { "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 29_124_339, "digest": blob("base") },
            { "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 4_187_112, "digest": blob("serving") },
        ],
    })
    .to_string()
}

/// Pushes `group`'s serving image of `build` under `tag` to its dev repository (mutable, as dev
/// repositories are by default), then plays the replication into the central account.
pub async fn push_serving_image(dev: &SdkConfig, group: &str, build: &str, tag: &str) -> Result<PushedImage> {
    let repository = dev_repository(group)?;
    let manifest = manifest(group, build);
    let ecr = aws_sdk_ecr::Client::new(dev);
    ensure_repository(&ecr, &repository, ImageTagMutability::Mutable, false).await?;
    let digest = put_image(&ecr, &repository, &manifest, tag).await?.context("a mutable dev repository takes any push")?;
    let central = aws_sdk_ecr::Client::new(&session_in(dev, CENTRAL_ACCOUNT).await?);
    ensure_repository(&central, &repository, ImageTagMutability::Immutable, true).await?;
    let replicated = put_image(&central, &repository, &manifest, tag).await?;
    let image = format!("{DEV_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}:{tag}");
    Ok(PushedImage { image, digest, repository, replicated })
}

async fn ensure_repository(ecr: &aws_sdk_ecr::Client, repository: &RepositoryName, tags: ImageTagMutability, scan_on_push: bool) -> Result<()> {
    let created = ecr
        .create_repository()
        .repository_name(repository.as_str())
        .image_tag_mutability(tags)
        .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(scan_on_push).build())
        .send()
        .await;
    match created {
        Err(e) if !e.as_service_error().is_some_and(|e| e.is_repository_already_exists_exception()) => {
            Err(e).with_context(|| format!("create repository {repository}"))
        }
        _ => Ok(()),
    }
}

/// PutImage; the digest moto reports for the tag, or `None` when an immutable tag kept another image.
async fn put_image(ecr: &aws_sdk_ecr::Client, repository: &RepositoryName, manifest: &str, tag: &str) -> Result<Option<String>> {
    match ecr.put_image().repository_name(repository.as_str()).image_manifest(manifest).image_tag(tag).send().await {
        Ok(out) => Ok(out.image().and_then(|i| i.image_id()).and_then(ImageIdentifier::image_digest).map(str::to_owned)),
        // Either the same manifest under the same tag (pushed before: nothing changes), or an
        // immutable tag that holds another image.
        Err(e) if e.as_service_error().is_some_and(|e| e.is_image_already_exists_exception()) => {
            let tagged = ecr
                .batch_get_image()
                .repository_name(repository.as_str())
                .image_ids(ImageIdentifier::builder().image_tag(tag).build())
                .send()
                .await
                .with_context(|| format!("read {repository}:{tag} back"))?;
            let same = tagged.images().iter().find(|i| i.image_manifest() == Some(manifest));
            Ok(same.and_then(|i| i.image_id()).and_then(ImageIdentifier::image_digest).map(str::to_owned))
        }
        Err(e) => Err(e).with_context(|| format!("put image {repository}:{tag}")),
    }
}

//! ECR: what an image names now in its registry, and whether a repository holds a digest.

use async_trait::async_trait;
use aws_sdk_ecr::config::Region;
use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;

use promotion_core::domain::image::{EcrRegistry, ImageDigest, ImageRef, RepositoryName};
use promotion_core::ports::{FailureKind, ImageRegistry, PortError, PortResult};

use crate::errors::classify;

/// Every manifest type an image may be stored as: offered all, ECR answers with the manifest as
/// stored and its digest, never a conversion (offered one type, ECR converts to it, with
/// another digest).
const MANIFEST_TYPES: [&str; 5] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// ECR as the credentials of `client` see it.
pub struct EcrImages {
    client: Client,
}

impl EcrImages {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A client in `region` (an image's registry is regional), with this one's credentials and
    /// interceptors.
    fn in_region(&self, region: &str) -> Client {
        if self.client.config().region().map(Region::as_ref) == Some(region) {
            return self.client.clone();
        }
        Client::from_conf(self.client.config().to_builder().region(Region::new(region.to_owned())).build())
    }
}

#[async_trait]
impl ImageRegistry for EcrImages {
    /// `BatchGetImage`: the call a pull makes, so it answers for AWS's registries as well.
    async fn resolve(&self, image: &ImageRef) -> PortResult<Option<ImageDigest>> {
        let id = match (&image.digest, &image.tag) {
            (Some(digest), _) => ImageIdentifier::builder().image_digest(digest.as_str()),
            (None, tag) => ImageIdentifier::builder().set_image_tag(tag.clone()),
        };
        let sent = self
            .in_region(&image.registry.region)
            .batch_get_image()
            .registry_id(image.registry.account.as_str())
            .repository_name(image.repository.as_str())
            .image_ids(id.build())
            .set_accepted_media_types(Some(MANIFEST_TYPES.map(str::to_owned).to_vec()))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => return Ok(None),
            Err(e) => return Err(classify("BatchGetImage", &e)),
        };
        if let Some(failure) = out.failures().iter().find(|f| f.failure_code().map(|c| c.as_str()) != Some("ImageNotFound")) {
            let code = failure.failure_code().map(|c| c.as_str().to_owned()).unwrap_or_default();
            return Err(PortError::new("BatchGetImage", FailureKind::Terminal, format!("{image}: {code} {}", failure.failure_reason().unwrap_or_default())));
        }
        let reported = out.images().iter().find_map(|i| i.image_id().and_then(ImageIdentifier::image_digest));
        reported.map(|digest| digest.parse().map_err(|e| PortError::new("BatchGetImage", FailureKind::Terminal, format!("{e}")))).transpose()
    }

    /// `DescribeImages` by digest in this account's registry: the registry it names and the
    /// digest it reports are read back.
    async fn find(&self, repository: &RepositoryName, digest: &ImageDigest) -> PortResult<Option<ImageRef>> {
        let sent = self
            .client
            .describe_images()
            .repository_name(repository.as_str())
            .image_ids(ImageIdentifier::builder().image_digest(digest.as_str()).build())
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_image_not_found_exception() || e.is_repository_not_found_exception()) => return Ok(None),
            Err(e) => return Err(classify("DescribeImages", &e)),
        };
        let Some(detail) = out.image_details().iter().find(|d| d.image_digest() == Some(digest.as_str())) else {
            return Ok(None);
        };
        let invalid = |what: String| PortError::new("DescribeImages", FailureKind::Terminal, what);
        let account = detail.registry_id().unwrap_or_default().parse().map_err(|e| invalid(format!("{e}")))?;
        let region = self.client.config().region().map(|r| r.as_ref().to_owned()).ok_or_else(|| invalid("the client has no region".into()))?;
        Ok(Some(ImageRef::at(EcrRegistry { account, region }, repository.clone(), digest.clone())))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
    use aws_sdk_ecr::operation::describe_images::{DescribeImagesError, DescribeImagesOutput};
    use aws_sdk_ecr::types::error::ImageNotFoundException;
    use aws_sdk_ecr::types::{Image, ImageDetail, ImageFailure, ImageFailureCode};
    use aws_smithy_mocks::{mock, RuleMode};

    use super::*;

    const DIGEST: &str = "sha256:5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
    const XGBOOST: &str = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1";

    fn image(raw: &str) -> ImageRef {
        raw.parse().unwrap()
    }

    // moto ignores both registryId and acceptedMediaTypes: the request's shape is checked here.
    #[tokio::test]
    async fn a_tag_is_resolved_in_the_images_own_registry_with_every_manifest_type_accepted() {
        let rule = mock!(Client::batch_get_image)
            .match_requests(|r| {
                r.registry_id() == Some("683313688378")
                    && r.repository_name() == Some("sagemaker-xgboost")
                    && r.image_ids().len() == 1
                    && r.image_ids()[0].image_tag() == Some("1.7-1")
                    && r.image_ids()[0].image_digest().is_none()
                    && r.accepted_media_types().len() == MANIFEST_TYPES.len()
                    && r.accepted_media_types().iter().any(|t| t == "application/vnd.oci.image.index.v1+json")
            })
            .then_output(|| {
                BatchGetImageOutput::builder()
                    .images(Image::builder().image_id(ImageIdentifier::builder().image_tag("1.7-1").image_digest(DIGEST).build()).build())
                    .build()
            });
        let images = EcrImages::new(mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&rule]));

        let digest = images.resolve(&image(XGBOOST)).await.unwrap();

        assert_eq!(digest.as_ref().map(ImageDigest::as_str), Some(DIGEST));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_tag_the_registry_lacks_resolves_to_nothing_and_another_failure_is_an_error() {
        let missing = mock!(Client::batch_get_image).then_output(|| {
            BatchGetImageOutput::builder()
                .failures(ImageFailure::builder().failure_code(ImageFailureCode::ImageNotFound).failure_reason("Requested image not found").build())
                .build()
        });
        let kms = mock!(Client::batch_get_image).then_output(|| {
            BatchGetImageOutput::builder()
                .failures(ImageFailure::builder().failure_code(ImageFailureCode::KmsError).failure_reason("key disabled").build())
                .build()
        });
        let images = EcrImages::new(mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&missing, &kms]));

        assert_eq!(images.resolve(&image(XGBOOST)).await.unwrap(), None);
        let error = images.resolve(&image(XGBOOST)).await.unwrap_err();
        assert_eq!(error.kind, FailureKind::Terminal);
        assert!(error.message.contains("KmsError") && error.message.contains("key disabled"), "{error}");
    }

    #[tokio::test]
    async fn a_digest_is_found_in_the_central_registry_as_it_reports_it_and_missing_is_nothing() {
        let repository: RepositoryName = "model-promotion/churn-prediction-111111111111".parse().unwrap();
        let found = mock!(Client::describe_images)
            .match_requests(|r| {
                r.registry_id().is_none()
                    && r.repository_name() == Some("model-promotion/churn-prediction-111111111111")
                    && r.image_ids().len() == 1
                    && r.image_ids()[0].image_digest() == Some(DIGEST)
            })
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .image_details(
                        ImageDetail::builder()
                            .registry_id("222222222222")
                            .repository_name("model-promotion/churn-prediction-111111111111")
                            .image_digest(DIGEST)
                            .build(),
                    )
                    .build()
            });
        let missing = mock!(Client::describe_images).then_error(|| {
            DescribeImagesError::ImageNotFoundException(
                ImageNotFoundException::builder()
                    .message("The image does not exist")
                    .meta(aws_sdk_ecr::error::ErrorMetadata::builder().code("ImageNotFoundException").build())
                    .build(),
            )
        });
        let images = EcrImages::new(mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&found, &missing]));

        let pinned = images.find(&repository, &DIGEST.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(pinned.to_string(), format!("222222222222.dkr.ecr.us-east-1.amazonaws.com/model-promotion/churn-prediction-111111111111@{DIGEST}"));
        assert_eq!(images.find(&repository, &DIGEST.parse().unwrap()).await.unwrap(), None);
    }
}

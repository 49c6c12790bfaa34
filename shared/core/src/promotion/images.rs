//! Every container of a promoted version runs an image pinned by digest. A dev image reaches
//! the central account by ECR replication (set up by the infra, server-side, as the image is
//! pushed); promote-model waits for it, answering with a retryable error, and registers the
//! central repository at that digest. An image of AWS's own registries is pinned where it is.
//! A tag that names another image than the dev version recorded when it was approved is refused.
//! Everything here reads: it runs before the claim, beside the HEADs of the artifacts.

use futures::future::join_all;
use tracing::info;

use crate::domain::event::StateChange;
use crate::domain::ids::truncated;
use crate::domain::image::{central_repository, AwsImageRegistries, ImageDigest, ImageError, ImageRef, RepositoryName};
use crate::domain::naming::central_group_name;
use crate::domain::package::Container;
use crate::failure::Failure;
use crate::ports::{ImageRegistry, PromotePorts};

use super::error::PromoteError;

/// Where a container's image comes from, decided from the reference alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// An image of AWS's registries: pinned where it is.
    Aws,
    /// An image of the source account's registry, replicated into `central`.
    Dev { central: RepositoryName },
}

/// A container's image as the dev version names it, checked before any call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    image: ImageRef,
    origin: Origin,
    /// The digest the version was approved with: the reference's own, or the one SageMaker
    /// recorded (`ImageDigest`) when the version was registered.
    approved: Option<ImageDigest>,
}

impl Wanted {
    fn of(container: &Container, change: &StateChange, aws: &AwsImageRegistries) -> Result<Self, PromoteError> {
        let image: ImageRef = container.image.parse().map_err(|error| match error {
            ImageError::NotEcr { image, registry } => PromoteError::ForeignImageRegistry { image, registry },
            other => PromoteError::InvalidImage(other),
        })?;
        let recorded = container.image_digest.as_deref().map(str::parse::<ImageDigest>).transpose().map_err(PromoteError::InvalidImage)?;
        if let (Some(named), Some(recorded)) = (&image.digest, &recorded) {
            if named != recorded {
                return Err(PromoteError::ImageChanged { image: container.image.clone(), approved: recorded.clone(), now: named.clone() });
            }
        }
        let approved = image.digest.clone().or(recorded);
        let account = &image.registry.account;
        let origin = if aws.contains(account) {
            Origin::Aws
        } else if account == &change.account {
            let central = central_repository(&central_group_name(&change.package));
            if image.repository != central {
                return Err(PromoteError::ImageOutsideModelRepository { image: container.image.clone(), repository: central, account: account.clone() });
            }
            Origin::Dev { central }
        } else {
            return Err(PromoteError::ForeignImageRegistry { image: container.image.clone(), registry: image.registry.to_string() });
        };
        Ok(Self { image, origin, approved })
    }
}

/// What the registries answered of one wanted image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    /// What the image names in its registry now (`None`: nothing).
    now: Option<ImageDigest>,
    /// The central image at that digest, for a dev image.
    central: Option<ImageRef>,
}

/// The pinned reference, or why there is none (a pure decision over what was observed).
fn decide(wanted: &Wanted, observed: Observed) -> Result<ImageRef, PromoteError> {
    let written = wanted.image.to_string();
    let now = observed.now.ok_or_else(|| PromoteError::ImageNotFound(written.clone()))?;
    if let Some(approved) = &wanted.approved {
        if approved != &now {
            return Err(PromoteError::ImageChanged { image: written, approved: approved.clone(), now });
        }
    }
    match &wanted.origin {
        Origin::Aws => Ok(ImageRef::at(wanted.image.registry.clone(), wanted.image.repository.clone(), now)),
        Origin::Dev { central } => match observed.central {
            Some(pinned) if pinned.digest.as_ref() == Some(&now) => Ok(pinned),
            _ => Err(PromoteError::ImageNotReplicated { image: written, repository: central.clone(), digest: now }),
        },
    }
}

/// The version's containers with their images pinned, or why not.
pub(super) async fn pin_images(
    ports: &PromotePorts,
    aws: &AwsImageRegistries,
    change: &StateChange,
    containers: &[Container],
) -> Result<Vec<Container>, PromoteError> {
    let wanted: Vec<Wanted> = containers.iter().map(|c| Wanted::of(c, change, aws)).collect::<Result<_, _>>()?;
    let dev = ports.sessions.images(&change.account).await?;
    let observed = join_all(wanted.iter().map(|w| observe(dev.as_ref(), ports.central_images.as_ref(), w))).await;
    let (mut images, mut refusals) = (Vec::new(), Vec::new());
    for ((container, wanted), seen) in containers.iter().zip(&wanted).zip(observed) {
        let decision = seen.and_then(|seen| decide(wanted, seen));
        log(change, container, &decision);
        match decision {
            Ok(image) => images.push(image),
            Err(refusal) => refusals.push(refusal),
        }
    }
    // A refusal that no redelivery can change wins over one worth waiting for.
    refusals.sort_by_key(Failure::is_retryable);
    if let Some(refusal) = refusals.into_iter().next() {
        return Err(refusal);
    }
    let pinned = containers.iter().zip(images).map(|(container, image)| Container {
        image: image.to_string(),
        image_digest: image.digest.as_ref().map(ToString::to_string),
        ..container.clone()
    });
    Ok(pinned.collect())
}

/// One wave: the dev tag's digest beside the central look-up of the approved digest; only a tag
/// SageMaker recorded no digest for needs the first answer before the second question.
async fn observe(dev: &dyn ImageRegistry, central: &dyn ImageRegistry, wanted: &Wanted) -> Result<Observed, PromoteError> {
    let resolve = async {
        match &wanted.image.digest {
            // A digest names one image for good: there is nothing to resolve.
            Some(digest) => Ok(Some(digest.clone())),
            None => dev.resolve(&wanted.image).await,
        }
    };
    let Origin::Dev { central: repository } = &wanted.origin else {
        return Ok(Observed { now: resolve.await?, central: None });
    };
    let Some(approved) = &wanted.approved else {
        let now = resolve.await?;
        let found = match &now {
            Some(digest) => central.find(repository, digest).await?,
            None => None,
        };
        return Ok(Observed { now, central: found });
    };
    let (now, found) = tokio::try_join!(resolve, central.find(repository, approved))?;
    Ok(Observed { now, central: found })
}

fn log(change: &StateChange, container: &Container, decision: &Result<ImageRef, PromoteError>) {
    let (decision, pinned, error) = match decision {
        Ok(pinned) => ("image pinned", Some(pinned.to_string()), None),
        Err(error) => ("image refused", None, Some(error.error_type())),
    };
    let image = truncated(&container.image);
    info!(event_id = %change.event_id, package = %change.package, %image, pinned, error_type = error, decision, "promotion");
}

#[cfg(test)]
mod tests;

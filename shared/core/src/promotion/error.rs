use crate::domain::copy::CopyMismatch;
use crate::domain::event::EventError;
use crate::domain::ids::{AccountId, ModelPackageArn, S3Uri};
use crate::domain::image::{ImageDigest, ImageError, RepositoryName};
use crate::failure::Failure;
use crate::ports::PortError;

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
    #[error("account {0} is not an allow-listed source account")]
    UnknownAccount(AccountId),
    #[error("the registry described {described} when asked for {requested}")]
    PackageMismatch { requested: ModelPackageArn, described: ModelPackageArn },
    #[error("{package} is {status} in the dev registry, not Approved: the event is stale or forged")]
    NotApprovedInDev { package: ModelPackageArn, status: &'static str },
    #[error("{0} names no inference container: there is nothing to deploy")]
    NoContainers(ModelPackageArn),
    #[error("artifact {uri} is outside the buckets configured for account {account}")]
    ForeignBucket { uri: S3Uri, account: AccountId },
    #[error("the package names {0} artifacts, more than the {max} a promotion carries", max = crate::domain::lineage::MAX_ARTIFACTS)]
    TooManyArtifacts(usize),
    #[error("artifact {0} does not exist")]
    MissingArtifact(S3Uri),
    #[error("copy of {from} to {to} is not whole: {mismatch}")]
    CopyMismatch { from: S3Uri, to: S3Uri, mismatch: CopyMismatch },
    #[error("promotion of {0} is in progress in another invocation")]
    InProgressElsewhere(ModelPackageArn),
    #[error("{0} was revoked in dev after its promotion; approve a new version instead")]
    Revoked(ModelPackageArn),
    #[error("the ledger marks {0} promoted but lacks its central version")]
    LedgerIncomplete(ModelPackageArn),
    #[error("a container image of the version is malformed: {0}")]
    InvalidImage(ImageError),
    #[error("image `{image}` is in registry {registry}: only the source account's own ECR registry and the allow-listed AWS registries are admitted")]
    ForeignImageRegistry { image: String, registry: String },
    #[error(
        "image `{image}` is not in the dev repository that ECR replicates to this model's central repository: push it to `{repository}` in account {account}"
    )]
    ImageOutsideModelRepository { image: String, repository: RepositoryName, account: AccountId },
    #[error("image `{image}` names {now} now, not {approved} as when the version was approved: register and approve a new version")]
    ImageChanged { image: String, approved: ImageDigest, now: ImageDigest },
    #[error("image `{0}` is not in its registry")]
    ImageNotFound(String),
    #[error(
        "waiting for ECR to replicate {digest} (`{image}`) into the central repository `{repository}`; a tag pushed again in dev \
         never replicates into the central repository's immutable tags: push the image under a new tag and register a new version"
    )]
    ImageNotReplicated { image: String, repository: RepositoryName, digest: ImageDigest },
    #[error(transparent)]
    Aws(#[from] PortError),
}

impl Failure for PromoteError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::InProgressElsewhere(_) | Self::CopyMismatch { .. } | Self::ImageNotReplicated { .. } => true,
            Self::Aws(port) => port.is_retryable(),
            _ => false,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::UnknownAccount(_) => "UnknownSourceAccount",
            Self::PackageMismatch { .. } => "PackageMismatch",
            Self::NotApprovedInDev { .. } => "NotApprovedInDev",
            Self::NoContainers(_) => "NoContainers",
            Self::ForeignBucket { .. } => "ForeignBucket",
            Self::TooManyArtifacts(_) => "TooManyArtifacts",
            Self::MissingArtifact(_) => "MissingArtifact",
            Self::CopyMismatch { .. } => "CopyMismatch",
            Self::InProgressElsewhere(_) => "PromotionInProgress",
            Self::Revoked(_) => "VersionRevoked",
            Self::LedgerIncomplete(_) => "LedgerIncomplete",
            Self::InvalidImage(_) => "InvalidImage",
            Self::ForeignImageRegistry { .. } => "ForeignImageRegistry",
            Self::ImageOutsideModelRepository { .. } => "ImageOutsideModelRepository",
            Self::ImageChanged { .. } => "ImageChanged",
            Self::ImageNotFound(_) => "ImageNotFound",
            Self::ImageNotReplicated { .. } => "ImageNotReplicated",
            Self::Aws(port) => port.operation,
        }
    }
}

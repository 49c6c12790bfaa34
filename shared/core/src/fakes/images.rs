//! Amazon ECR as one account sees it: the registries it reads (its own, AWS's), each repository
//! with its tags and the digests it holds. Replication is a test's explicit `push` into the
//! central account's fake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::image::{EcrRegistry, ImageDigest, ImageRef, RepositoryName};
use crate::ports::{ImageRegistry, PortResult};

#[derive(Debug, Clone, Default)]
struct Repository {
    tags: BTreeMap<String, ImageDigest>,
    digests: BTreeSet<ImageDigest>,
}

pub struct FakeImages {
    /// The account's own registry: where `find` looks.
    own: EcrRegistry,
    repositories: Mutex<BTreeMap<(EcrRegistry, RepositoryName), Repository>>,
    /// Every call: `resolve IMAGE` or `find REPOSITORY@DIGEST`.
    pub calls: Mutex<Vec<String>>,
}

impl FakeImages {
    /// The view of `account` in us-east-1.
    pub fn of(account: &str) -> Self {
        let own = EcrRegistry { account: account.parse().expect("account"), region: "us-east-1".into() };
        Self { own, repositories: Mutex::default(), calls: Mutex::default() }
    }

    /// Pushes `digest` to the repository `image` names, under its tag if it has one (moving the
    /// tag, as a mutable repository lets a re-push do).
    pub fn push(&self, image: &str, digest: &str) {
        let image: ImageRef = image.parse().expect("an ECR image");
        let digest: ImageDigest = digest.parse().expect("a digest");
        let mut repositories = self.repositories.lock().unwrap();
        let repository = repositories.entry((image.registry, image.repository)).or_default();
        if let Some(tag) = image.tag {
            repository.tags.insert(tag, digest.clone());
        }
        repository.digests.insert(digest);
    }

    /// The image `repository` of this account's registry at `digest`, as ECR replication puts it.
    pub fn replicated(&self, repository: &RepositoryName, digest: &str) {
        self.push(&format!("{}/{repository}@{digest}", self.own), digest);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ImageRegistry for FakeImages {
    async fn resolve(&self, image: &ImageRef) -> PortResult<Option<ImageDigest>> {
        self.calls.lock().unwrap().push(format!("resolve {image}"));
        let repositories = self.repositories.lock().unwrap();
        let Some(repository) = repositories.get(&(image.registry.clone(), image.repository.clone())) else {
            return Ok(None);
        };
        Ok(match (&image.digest, &image.tag) {
            (Some(digest), _) => repository.digests.get(digest).cloned(),
            (None, Some(tag)) => repository.tags.get(tag).cloned(),
            (None, None) => None,
        })
    }

    async fn find(&self, repository: &RepositoryName, digest: &ImageDigest) -> PortResult<Option<ImageRef>> {
        self.calls.lock().unwrap().push(format!("find {repository}@{digest}"));
        let repositories = self.repositories.lock().unwrap();
        let held = repositories.get(&(self.own.clone(), repository.clone())).is_some_and(|r| r.digests.contains(digest));
        Ok(held.then(|| ImageRef::at(self.own.clone(), repository.clone(), digest.clone())))
    }
}

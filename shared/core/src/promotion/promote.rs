use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::config::PromoteConfig;
use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::card::{self, CardInput, MetricGroups, METRICS_READ_MAX};
use crate::domain::copy::ObjectInfo;
use crate::domain::event::StateChange;
use crate::domain::fingerprint::{release_fingerprint, ModelDataObject, ReleaseFingerprint};
use crate::domain::ids::{GroupName, ModelPackageArn};
use crate::domain::ledger::{Claim, ClaimResult, CopiedArtifact, PromotionRecord, PromotionState};
use crate::domain::lineage;
use crate::domain::naming::{central_artifact_uri, central_description, central_group_name};
use crate::domain::package::{Artifact, ArtifactSlot, NewPackage, RegisteredPackage, Report};
use crate::ports::{FailureKind, ModelCards, PromotePorts};

use super::copy::CopyJob;
use super::error::PromoteError;
use super::images::pin_images;
use super::outcome::{Outcome, PromotionSummary};
use super::policy::{self, Held};
use super::Invocation;

pub const PROMOTED_DETAIL_TYPE: &str = "ModelPromoted";

/// A card's first version: what creating it gives.
const FIRST_CARD_VERSION: u32 = 1;
/// How long a claim outlives its last renewal: a crashed invocation blocks redeliveries no longer.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Renewals come often enough that a slow ledger call does not let a live claim lapse.
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// The end of this invocation's claim as the ledger last confirmed it.
struct ConfirmedLease(Mutex<DateTime<Utc>>);

impl ConfirmedLease {
    fn until(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn confirm(&self, until: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = until;
    }
}

pub(super) struct Promotion<'a> {
    pub ports: &'a PromotePorts,
    pub config: &'a PromoteConfig,
    pub change: &'a StateChange,
    pub allowed_buckets: &'a [String],
    pub invocation: &'a Invocation,
}

impl Promotion<'_> {
    pub async fn run(&self) -> Result<Outcome, PromoteError> {
        // Everything before the claim only reads, so bad input leaves no trace.
        let (package, sources) = match self.read_source().await {
            Ok(read) => read,
            Err(refused @ PromoteError::NotApprovedInDev { .. }) => return self.decided_since(refused).await,
            Err(error) => return Err(error),
        };
        let owner = uuid::Uuid::new_v4().to_string();
        let record = match self.claim(&owner).await {
            Ok(ClaimResult::Granted(record)) => record,
            Ok(ClaimResult::Held(record)) => return self.already_handled(record),
            Err(error) => {
                // The claim may have taken effect with its answer lost: free it now, not at the
                // lease, or the redeliveries would find it held by nobody alive.
                self.release(&owner).await;
                return Err(error);
            }
        };
        self.log("claimed", &record);
        let lease = ConfirmedLease(Mutex::new(record.lease_until.unwrap_or(self.invocation.deadline)));
        let promoted = tokio::select! {
            // A finished promotion wins over a renewal answered at the same moment.
            biased;
            promoted = self.promote(&package, &sources, record, &owner, &lease) => promoted,
            lost = self.keep_claim(&owner, &lease) => Err(lost),
        };
        match promoted {
            Ok(summary) => Ok(Outcome::Promoted(summary)),
            Err(error) => {
                self.release(&owner).await;
                Err(error)
            }
        }
    }

    /// The end of a lease taken or renewed now: never past the invocation's own deadline.
    fn lease_from_now(&self) -> DateTime<Utc> {
        (Utc::now() + CLAIM_LEASE).min(self.invocation.deadline)
    }

    /// Renews the claim while the promotion works (a copy of many gigabytes outlasts one lease),
    /// and ends the work once the claim is lost or has lapsed: another delivery may hold it then.
    async fn keep_claim(&self, owner: &str, lease: &ConfirmedLease) -> PromoteError {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let until = self.lease_from_now();
            // A renewal that hangs must not outlive the lease it is meant to extend.
            let left = (lease.until() - Utc::now()).to_std().unwrap_or_default();
            match tokio::time::timeout(left, self.ports.ledger.renew(&self.change.package, owner, until)).await {
                Ok(Ok(())) => lease.confirm(until),
                Ok(Err(lost)) if lost.kind == FailureKind::Conflict => return PromoteError::InProgressElsewhere(self.change.package.clone()),
                Ok(Err(error)) if Utc::now() >= lease.until() => return error.into(),
                Ok(Err(error)) => warn!(%error, "claim not renewed; the lease still runs"),
                Err(_) => return PromoteError::InProgressElsewhere(self.change.package.clone()),
            }
        }
    }

    /// Frees this invocation's claim, if it holds one, for the next delivery.
    async fn release(&self, owner: &str) {
        if let Err(release) = self.ports.ledger.release(&self.change.package, owner).await {
            warn!(event_id = %self.change.event_id, package = %self.change.package, %release, "claim not released; it lapses at the lease");
        }
    }

    /// The package, its images pinned by digest (beside a HEAD of each of its artifacts), all checked.
    async fn read_source(&self) -> Result<(RegisteredPackage, Vec<ObjectInfo>), PromoteError> {
        let registry = self.ports.sessions.registry(&self.change.account).await?;
        let mut package = registry.describe_package(&self.change.package).await?;
        policy::check_source(self.change, &package, self.allowed_buckets)?;
        let heads = package.artifacts.iter().map(|artifact| async move {
            let head = self.ports.artifacts.head(&artifact.uri, &self.change.account).await?;
            head.ok_or_else(|| PromoteError::MissingArtifact(artifact.uri.clone()))
        });
        let heads = futures::stream::iter(heads).buffered(self.config.copy.concurrency.max(1)).try_collect();
        let pinned = pin_images(self.ports, &self.config.aws_image_registries, self.change, &package.inference.containers);
        let (sources, containers) = tokio::try_join!(heads, pinned)?;
        // What the central version registers, its card shows and its fingerprint covers.
        package.inference.containers = containers;
        Ok((package, sources))
    }

    async fn claim(&self, owner: &str) -> Result<ClaimResult, PromoteError> {
        let claim = Claim {
            source: self.change.package.clone(),
            event_id: self.change.event_id.clone(),
            event_time: self.change.time,
            owner: owner.to_owned(),
            lease_until: self.lease_from_now(),
            now: Utc::now(),
        };
        Ok(self.ports.ledger.claim(&claim).await?)
    }

    /// The dev registry no longer says Approved: what the ledger knows of the version answers a
    /// redelivery; an approval it never saw is stale or forged.
    async fn decided_since(&self, refused: PromoteError) -> Result<Outcome, PromoteError> {
        match self.ports.ledger.get(&self.change.package).await? {
            Some(record) => self.already_handled(record),
            None => Err(refused),
        }
    }

    fn already_handled(&self, record: PromotionRecord) -> Result<Outcome, PromoteError> {
        self.log("duplicate", &record);
        match policy::held(&record) {
            Held::Promoted => Ok(Outcome::AlreadyPromoted(summary_of(&record)?)),
            Held::InProgressElsewhere => Err(PromoteError::InProgressElsewhere(record.source)),
            Held::Revoked => Err(PromoteError::Revoked(record.source)),
            Held::Superseded => {
                Ok(Outcome::Ignored { source: record.source, reason: format!("a later rejection in dev ({}) supersedes this approval", record.decided_at) })
            }
        }
    }

    /// The calls run in as few waves as their inputs allow: the copies, the fence beside the
    /// metrics read, the registration, the card beside the event, and one ledger write.
    async fn promote(
        &self,
        package: &RegisteredPackage,
        sources: &[ObjectInfo],
        mut record: PromotionRecord,
        owner: &str,
        lease: &ConfirmedLease,
    ) -> Result<PromotionSummary, PromoteError> {
        let group = central_group_name(&self.change.package);
        record.central_group = Some(group.clone());
        // Past the first claim, an earlier holder may have left copies, uploads or a central
        // version behind: they are looked for. A first claim knows there are none. (Records of
        // the release before the count show their progress as copied artifacts.)
        let resumed = record.claims > 1 || !record.artifacts.is_empty();
        record.artifacts = self.copy_artifacts(package, sources, &group, resumed).await?;
        record.fingerprint = Some(release_fingerprint(&package.inference, &ModelDataObject::of_copies(&record.artifacts)));
        self.log("artifacts copied", &record);

        // The fence before the one step that must not happen twice: the claim is still this
        // delivery's (a successor after a lapsed lease, or a second grant of a ledger that is not
        // atomic, finds it taken), and the lease runs a full term again.
        let (fenced, metrics) = tokio::join!(self.fence(owner, lease), self.metrics(&record.artifacts));
        let metrics = fenced.and(metrics)?;
        let central = self.register(package, &record, &group, resumed).await?;
        record.central_package = Some(central.clone());
        self.log("registered", &record);

        let promoted_at = Utc::now();
        record.promoted_at = Some(promoted_at);
        // The event goes out before the record says Promoted, so that a failure of either is
        // published again on redelivery. A first claim creates the card, whose first version is
        // 1: the event need not wait for it. A resumed one may find the card written already.
        // The audit chain's head, which the last write extends, is read beside them; a failed
        // read only leaves it to the last write.
        let prepared = async {
            if let Err(error) = self.ports.ledger.prepare_finish(&self.change.package).await {
                warn!(event_id = %self.change.event_id, package = %self.change.package, %error, "audit chain head not read ahead");
            }
            Ok::<_, PromoteError>(())
        };
        if resumed {
            let card = self.write_card(package, &record, &group, &central, metrics, promoted_at, resumed);
            let (written, ()) = tokio::try_join!(card, prepared)?;
            record.card_version = Some(written);
            self.publish(&summary_of(&record)?).await?;
        } else {
            let announced = summary_of(&PromotionRecord { card_version: Some(FIRST_CARD_VERSION), ..record.clone() })?;
            let card = self.write_card(package, &record, &group, &central, metrics, promoted_at, resumed);
            let (written, (), ()) = tokio::try_join!(card, self.publish(&announced), prepared)?;
            record.card_version = Some(written);
        }
        let summary = summary_of(&record)?;
        let card_version = summary.model_card_version;
        record.state = PromotionState::Promoted;
        record.owner = None;
        record.lease_until = None;
        let entry = self.audit(AuditAction::Promoted, json!({ "central_package": central, "model_card_version": card_version }));
        self.ports.ledger.finish(&record, owner, &entry).await?;
        self.log("promoted", &record);
        Ok(summary)
    }

    async fn publish(&self, summary: &PromotionSummary) -> Result<(), PromoteError> {
        Ok(self.ports.events.publish(PROMOTED_DETAIL_TYPE, &serde_json::to_value(summary).unwrap_or(Value::Null)).await?)
    }

    async fn fence(&self, owner: &str, lease: &ConfirmedLease) -> Result<(), PromoteError> {
        let until = self.lease_from_now();
        match self.ports.ledger.renew(&self.change.package, owner, until).await {
            Ok(()) => {
                lease.confirm(until);
                Ok(())
            }
            Err(lost) if lost.kind == FailureKind::Conflict => Err(PromoteError::InProgressElsewhere(self.change.package.clone())),
            Err(error) => Err(error.into()),
        }
    }

    async fn ensure_group(&self, package: &RegisteredPackage, group: &GroupName) -> Result<(), PromoteError> {
        let description = format!("Central copies of {} from account {}", package.arn.group(), self.change.account);
        Ok(self.ports.central_registry.ensure_group(group, &description).await?)
    }

    /// Every artifact copied at once (each large one in parallel parts as well), in the package's order.
    async fn copy_artifacts(
        &self,
        package: &RegisteredPackage,
        sources: &[ObjectInfo],
        group: &GroupName,
        resumed: bool,
    ) -> Result<Vec<CopiedArtifact>, PromoteError> {
        let job = CopyJob {
            store: self.ports.artifacts.as_ref(),
            settings: &self.config.copy,
            source_owner: &self.change.account,
            central_owner: &self.config.central_account,
            resumed,
        };
        let copies = package.artifacts.iter().zip(sources).map(|(artifact, source)| {
            let destination = central_artifact_uri(&self.config.artifact_bucket, group, &package.arn, artifact.slot, &artifact.uri);
            let job = &job;
            async move { job.copy(artifact, source, &destination).await }
        });
        futures::stream::iter(copies).buffered(self.config.copy.concurrency.max(1)).try_collect().await
    }

    /// Creates the central version once: a resumed promotion first looks for the one an earlier
    /// holder may have created before it could record it.
    async fn register(&self, package: &RegisteredPackage, record: &PromotionRecord, group: &GroupName, resumed: bool) -> Result<ModelPackageArn, PromoteError> {
        if let Some(central) = &record.central_package {
            return Ok(central.clone());
        }
        let registry = &self.ports.central_registry;
        let description = central_description(&self.change.package);
        if resumed {
            if let Some(found) = registry.find_recent_by_description(group, &description).await? {
                return Ok(found);
            }
        }
        let fingerprint = record.fingerprint.as_ref().ok_or_else(|| PromoteError::LedgerIncomplete(record.source.clone()))?;
        let new = self.new_package(package, record, group, &description, fingerprint);
        // The group exists for every version but a model's first: it is created only when the
        // registry says it is missing, which saves a call on every later promotion.
        match registry.create_package(&new).await {
            Err(missing) if missing.kind == FailureKind::NotFound => {
                self.ensure_group(package, group).await?;
                Ok(registry.create_package(&new).await?)
            }
            created => Ok(created?),
        }
    }

    fn new_package(
        &self,
        package: &RegisteredPackage,
        record: &PromotionRecord,
        group: &GroupName,
        description: &str,
        fingerprint: &ReleaseFingerprint,
    ) -> NewPackage {
        let artifacts = record.artifacts.iter().map(|a| Artifact { slot: a.slot, uri: a.central.clone(), content_type: a.content_type.clone() }).collect();
        NewPackage {
            group: group.clone(),
            description: description.to_owned(),
            inference: package.inference.clone(),
            artifacts,
            // Nothing of the clock: every delivery sends the same request, so SageMaker's client
            // token can answer a repeated one with the version the first made.
            customer_metadata: lineage::lineage(&self.change.package, &self.change.event_id, self.change.time, &record.artifacts, fingerprint),
            client_token: crate::domain::naming::hex_sha256(self.change.package.as_str().as_bytes())[..32].to_owned(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_card(
        &self,
        package: &RegisteredPackage,
        record: &PromotionRecord,
        group: &GroupName,
        central: &ModelPackageArn,
        metrics: Option<MetricGroups>,
        promoted_at: chrono::DateTime<Utc>,
        resumed: bool,
    ) -> Result<u32, PromoteError> {
        let content = card::card_content(&CardInput {
            group,
            source: &self.change.package,
            central,
            event_id: &self.change.event_id,
            promoted_at: &promoted_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            inference: &package.inference,
            artifacts: &record.artifacts,
            metrics,
            fingerprint: record.fingerprint.as_ref().ok_or_else(|| PromoteError::LedgerIncomplete(record.source.clone()))?,
        });
        let cards = self.ports.cards.as_ref();
        let name = card::card_name(central);
        if resumed {
            return upsert_card(cards, &name, &content).await;
        }
        // A first claim made this central version: its card cannot exist yet.
        match cards.create(&name, &content).await {
            Err(error) if error.kind == FailureKind::Conflict => upsert_card(cards, &name, &content).await,
            created => Ok(created?),
        }
    }

    /// Metrics make the card richer but a report too large or unreadable is not worth failing a
    /// promotion over; a transient failure is, or the card would lack them for good.
    async fn metrics(&self, artifacts: &[CopiedArtifact]) -> Result<Option<MetricGroups>, PromoteError> {
        let Some(report) = artifacts.iter().find(|a| a.slot == ArtifactSlot::Metrics(Report::ModelQualityStatistics)) else {
            return Ok(None);
        };
        match self.ports.artifacts.read_small(&report.central, METRICS_READ_MAX).await {
            Ok(bytes) => Ok(card::metric_groups(&bytes)),
            Err(error) if error.is_retryable() => Err(error.into()),
            Err(error) => {
                warn!(event_id = %self.change.event_id, package = %self.change.package, %error, "metrics left off the card");
                Ok(None)
            }
        }
    }

    fn audit(&self, action: AuditAction, detail: Value) -> AuditEntry {
        AuditEntry { source: self.change.package.clone(), at: self.change.time, event_id: self.change.event_id.clone(), action, detail }
    }

    fn log(&self, decision: &str, record: &PromotionRecord) {
        info!(
            event_id = %self.change.event_id,
            package = %self.change.package,
            request_id = %self.invocation.request_id,
            decision,
            state = record.state.as_str(),
            central_package = record.central_package.as_ref().map(ToString::to_string),
            "promotion"
        );
    }
}

/// One card version per central version, whatever the number of deliveries.
async fn upsert_card(cards: &dyn ModelCards, name: &str, content: &Value) -> Result<u32, PromoteError> {
    let wanted = card::described_version(content);
    match cards.describe(name).await? {
        Some(existing) if card::described_version(&existing.content) == wanted => Ok(existing.version),
        Some(_) => Ok(cards.update(name, content, None).await?),
        None => match cards.create(name, content).await {
            Err(error) if error.kind == FailureKind::Conflict => Ok(cards.update(name, content, None).await?),
            created => Ok(created?),
        },
    }
}

fn summary_of(record: &PromotionRecord) -> Result<PromotionSummary, PromoteError> {
    let incomplete = || PromoteError::LedgerIncomplete(record.source.clone());
    let group = record.central_group.clone().ok_or_else(incomplete)?;
    let central = record.central_package.clone().ok_or_else(incomplete)?;
    Ok(PromotionSummary {
        source: record.source.clone(),
        event_id: record.event_id.clone(),
        model_card: card::card_name(&central),
        central_group: group,
        central_package: central,
        artifacts: record.artifacts.clone(),
        model_card_version: record.card_version.ok_or_else(incomplete)?,
    })
}

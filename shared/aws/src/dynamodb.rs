//! DynamoDB: the promotion ledger. One item per source version (`sk = PROMOTION`) holds the
//! claim and the outcome. Audit entries are in a table of their own, only ever put: `audit`.

mod audit;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use promotion_core::domain::audit::AuditEntry;
use promotion_core::domain::chain::StoredChain;
use promotion_core::domain::identity::{Approver, Gate};
use promotion_core::domain::ids::{GroupName, ModelPackageArn, Stage};
use promotion_core::domain::ledger::{Claim, ClaimResult, DeploymentRecord, PromotionRecord, PromotionState, StartClaim, TestRecord};
use promotion_core::ports::{ApproverRecords, AuditTrail, DeploymentRecords, FailureKind, PortError, PortResult, PromotionLedger, StartClaims, TestRecords};

use crate::errors::classify;
pub use audit::AuditTable;
use audit::{ChainError, Chained};

type Item = HashMap<String, AttributeValue>;

const PROMOTION_SK: &str = "PROMOTION";
/// On a central version's partition: the source version whose promotion made it.
const PROMOTED_FROM_SK: &str = "PROMOTED_FROM";
/// On a version's partition, one item per gate: who approved it there (`APPROVER#DevApproval`…).
const APPROVER_SK_PREFIX: &str = "APPROVER#";
/// On a central version's partition, one item per pipeline execution started for it.
const EXECUTION_SK_PREFIX: &str = "EXECUTION#";
/// The table's key attributes; the expressions below name them too.
pub const PARTITION_KEY: &str = "pk";
pub const SORT_KEY: &str = "sk";

pub struct DynamoLedger {
    client: Client,
    table: String,
    /// Where the ledger's audit entries go, the finished promotion's among them.
    audit: AuditTable,
}

impl DynamoLedger {
    pub fn new(client: Client, table: &str, audit: AuditTable) -> Self {
        Self { client, table: table.to_owned(), audit }
    }

    /// One item, read consistently.
    async fn item(&self, key: Item) -> PortResult<Option<Item>> {
        let out = self.client.get_item().table_name(&self.table).set_key(Some(key)).consistent_read(true).send().await.map_err(|e| classify("GetItem", &e))?;
        Ok(out.item)
    }

    /// Every item of `package`'s partition whose sort key starts with `prefix`, read consistently, all pages.
    async fn items_under(&self, package: &ModelPackageArn, prefix: &str) -> PortResult<Vec<Item>> {
        let pages: Vec<_> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(&partition(package)))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(|e| classify("Query", &e))?;
        Ok(pages.into_iter().flat_map(|page| page.items.unwrap_or_default()).collect())
    }

    async fn read(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        let item = self.item(key(source, PROMOTION_SK)).await?;
        item.as_ref().map(record_from_item).transpose()
    }
}

fn partition(package: &ModelPackageArn) -> String {
    format!("PACKAGE#{package}")
}

fn item_key(pk: String, sk: &str) -> Item {
    HashMap::from([(PARTITION_KEY.to_owned(), AttributeValue::S(pk)), (SORT_KEY.to_owned(), s(sk))])
}

fn deployment_key(stage: Stage, endpoint: &str) -> Item {
    item_key(format!("ENDPOINT#{stage}#{endpoint}"), "CURRENT")
}

fn test_key(execution_id: &str, package: &ModelPackageArn, stage: Stage) -> Item {
    item_key(format!("TEST#{execution_id}"), &format!("{stage}#{package}"))
}

fn start_key(event_id: &str) -> Item {
    item_key(format!("START#{event_id}"), "START")
}

fn key(package: &ModelPackageArn, sort: &str) -> Item {
    item_key(partition(package), sort)
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn millis(time: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(time.timestamp_millis().to_string())
}

fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn is_condition_failure(error: &PortError) -> bool {
    error.kind == FailureKind::Conflict
}

#[async_trait]
impl PromotionLedger for DynamoLedger {
    /// `promotion_core::promotion::policy::claim_granted` as a condition expression, applied
    /// atomically; `tests/it/claim_cases.rs` holds the two to the same answers on every claim case.
    async fn claim(&self, claim: &Claim) -> PortResult<ClaimResult> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&claim.source, PROMOTION_SK)))
            .update_expression(
                "SET #state = :in_progress, #owner = :owner, lease_until = :lease, event_id = :event_id, \
                 decided_at = :event_time, source_arn = :source, claims = if_not_exists(claims, :zero) + :one REMOVE reason",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :in_progress AND (lease_until < :now OR #owner = :owner)) \
                 OR (#state = :rejected AND decided_at < :event_time)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", s(PromotionState::InProgress.as_str()))
            .expression_attribute_values(":rejected", s(PromotionState::RejectedInDev.as_str()))
            .expression_attribute_values(":owner", s(&claim.owner))
            .expression_attribute_values(":lease", millis(claim.lease_until))
            .expression_attribute_values(":now", millis(claim.now))
            .expression_attribute_values(":event_id", s(&claim.event_id))
            .expression_attribute_values(":event_time", millis(claim.event_time))
            .expression_attribute_values(":source", s(claim.source.as_str()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e));
        match updated {
            Ok(out) => Ok(ClaimResult::Granted(record_from_item(out.attributes().unwrap_or(&HashMap::new()))?)),
            Err(error) if is_condition_failure(&error) => match self.read(&claim.source).await? {
                Some(record) => Ok(ClaimResult::Held(record)),
                // Released and deleted between the two calls: the next delivery claims it.
                None => Err(PortError::new("UpdateItem", FailureKind::Retryable, "claim raced with a release")),
            },
            Err(error) => Err(error),
        }
    }

    async fn get(&self, source: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        self.read(source).await
    }

    async fn save(&self, record: &PromotionRecord, owner: &str) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(record)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await
            .map_err(|e| classify("PutItem", &e))
            .map_err(|e| if is_condition_failure(&e) { lost_claim(&record.source) } else { e })?;
        Ok(())
    }

    /// The record, the pointer from the central version and the chained audit entry in one
    /// transaction: all or nothing, however often another writer advances the chain first.
    async fn finish(&self, record: &PromotionRecord, owner: &str, entry: &AuditEntry) -> PortResult<()> {
        let held = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item_from_record(record)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner));
        let mut beside = vec![transact_put(held)?];
        if let Some(central) = &record.central_package {
            let mut pointer = key(central, PROMOTED_FROM_SK);
            pointer.insert("source_arn".into(), s(record.source.as_str()));
            beside.push(transact_put(Put::builder().table_name(&self.table).set_item(Some(pointer)))?);
        }
        // The SDK's retry of a call whose answer was lost repeats the attempt's token: DynamoDB
        // then answers the first outcome instead of failing the owner's condition it wrote away.
        match self.audit.chain_with(entry, &beside, Some(owner)).await {
            Ok(Chained::Now) => Ok(()),
            Ok(Chained::Already) => Err(PortError::new("TransactWriteItems", FailureKind::Retryable, "the promotion's audit entry is chained already")),
            // Only the record's own condition failing means the claim is gone.
            Err(ChainError::Beside) => Err(lost_claim(&record.source)),
            Err(ChainError::Port(error)) => Err(error),
        }
    }

    async fn renew(&self, source: &ModelPackageArn, owner: &str, lease_until: DateTime<Utc>) -> PortResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(source, PROMOTION_SK)))
            .update_expression("SET lease_until = :lease")
            .condition_expression("#owner = :owner AND #state = :in_progress")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":in_progress", s(PromotionState::InProgress.as_str()))
            .expression_attribute_values(":lease", millis(lease_until))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        Ok(())
    }

    async fn release(&self, source: &ModelPackageArn, owner: &str) -> PortResult<()> {
        match self.renew(source, owner, DateTime::UNIX_EPOCH).await {
            Err(error) if !is_condition_failure(&error) => Err(error),
            _ => Ok(()),
        }
    }

    async fn record_decision(&self, record: &PromotionRecord) -> PortResult<bool> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_from_record(record)))
            .condition_expression("attribute_not_exists(pk) OR (#state <> :in_progress AND decided_at <= :decided_at)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(PromotionState::InProgress.as_str()))
            .expression_attribute_values(":decided_at", millis(record.decided_at))
            .send()
            .await
            .map_err(|e| classify("PutItem", &e));
        match written {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn promotions(&self) -> PortResult<Vec<PromotionRecord>> {
        let pages: Vec<_> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :promotion")
            .expression_attribute_values(":promotion", s(PROMOTION_SK))
            .into_paginator()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(|e| classify("Scan", &e))?;
        pages.iter().flat_map(|page| page.items()).map(record_from_item).collect()
    }

    async fn prepare_finish(&self, source: &ModelPackageArn) -> PortResult<()> {
        self.audit.prepare(source).await
    }

    async fn promotion_of(&self, central: &ModelPackageArn) -> PortResult<Option<PromotionRecord>> {
        let item = self.item(key(central, PROMOTED_FROM_SK)).await?;
        let source = item.as_ref().and_then(|item| item.get("source_arn")).and_then(|v| v.as_s().ok()).and_then(|arn| arn.parse().ok());
        match source {
            Some(source) => self.read(&source).await,
            None => Ok(None),
        }
    }
}

#[async_trait]
impl TestRecords for DynamoLedger {
    async fn record_test(&self, record: &TestRecord) -> PortResult<()> {
        let mut item = test_key(&record.execution_id, &record.package, record.stage);
        item.insert("test".into(), s(&serde_json::to_string(record).expect("test record serializes")));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| classify("PutItem", &e))?;
        Ok(())
    }

    async fn test_record(&self, execution_id: &str, package: &ModelPackageArn, stage: Stage) -> PortResult<Option<TestRecord>> {
        let item = self.item(test_key(execution_id, package, stage)).await?;
        let Some(raw) = item.as_ref().and_then(|item| item.get("test")).and_then(|v| v.as_s().ok()) else {
            return Ok(None);
        };
        serde_json::from_str(raw).map(Some).map_err(|e| PortError::new("Ledger", FailureKind::Terminal, format!("test record: {e}")))
    }
}

/// The ledger's audit role is the audit table's.
#[async_trait]
impl AuditTrail for DynamoLedger {
    async fn append(&self, entry: &AuditEntry) -> PortResult<()> {
        self.audit.append(entry).await
    }

    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>> {
        self.audit.history(package).await
    }

    async fn chained_models(&self) -> PortResult<Vec<GroupName>> {
        self.audit.chained_models().await
    }

    async fn chain(&self, model: &GroupName) -> PortResult<StoredChain> {
        self.audit.chain(model).await
    }
}

#[async_trait]
impl DeploymentRecords for DynamoLedger {
    async fn deployment(&self, stage: Stage, endpoint: &str) -> PortResult<Option<DeploymentRecord>> {
        let item = self.item(deployment_key(stage, endpoint)).await?;
        let Some(raw) = item.as_ref().and_then(|item| item.get("deployment")).and_then(|v| v.as_s().ok()) else {
            return Ok(None);
        };
        serde_json::from_str(raw).map(Some).map_err(|e| PortError::new("Ledger", FailureKind::Terminal, format!("deployment record: {e}")))
    }

    async fn record_deployment(&self, record: &DeploymentRecord) -> PortResult<()> {
        let mut item = deployment_key(record.stage, &record.endpoint);
        item.insert("deployment".into(), s(&serde_json::to_string(record).expect("deployment serializes")));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(|e| classify("PutItem", &e))?;
        Ok(())
    }
}

#[async_trait]
impl StartClaims for DynamoLedger {
    async fn claim_start(&self, event_id: &str, lease_until: DateTime<Utc>, now: DateTime<Utc>) -> PortResult<StartClaim> {
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some({
                let mut item = start_key(event_id);
                item.insert("lease_until".into(), millis(lease_until));
                item
            }))
            .condition_expression("attribute_not_exists(pk) OR (attribute_not_exists(execution_id) AND lease_until < :now)")
            .expression_attribute_values(":now", millis(now))
            .send()
            .await
            .map_err(|e| classify("PutItem", &e));
        match claimed {
            Ok(_) => Ok(StartClaim::Granted),
            Err(error) if is_condition_failure(&error) => {
                let item = self.item(start_key(event_id)).await?;
                let started = item.as_ref().and_then(|item| item.get("execution_id")).and_then(|v| v.as_s().ok()).cloned();
                Ok(started.map_or(StartClaim::Busy, |execution_id| StartClaim::Started { execution_id }))
            }
            Err(error) => Err(error),
        }
    }

    async fn record_start(&self, event_id: &str, execution_id: &str) -> PortResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(start_key(event_id)))
            .update_expression("SET execution_id = :execution")
            .expression_attribute_values(":execution", s(execution_id))
            .send()
            .await
            .map_err(|e| classify("UpdateItem", &e))?;
        Ok(())
    }

    /// A plain put: the item is the same whichever delivery writes it.
    async fn record_execution(&self, package: &ModelPackageArn, execution_id: &str) -> PortResult<()> {
        let mut item = key(package, &format!("{EXECUTION_SK_PREFIX}{execution_id}"));
        item.insert("execution_id".into(), s(execution_id));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(|e| classify("PutItem", &e))?;
        Ok(())
    }

    async fn executions_of(&self, package: &ModelPackageArn) -> PortResult<Vec<String>> {
        let items = self.items_under(package, EXECUTION_SK_PREFIX).await?;
        Ok(items.iter().filter_map(|item| item.get("execution_id")?.as_s().ok().cloned()).collect())
    }
}

/// Who approved a version at one gate: the first record of its version and gate stays.
#[async_trait]
impl ApproverRecords for DynamoLedger {
    async fn record_approver(&self, approver: &Approver) -> PortResult<bool> {
        let mut item = key(&approver.package, &format!("{APPROVER_SK_PREFIX}{}", approver.gate.as_str()));
        item.insert("gate".into(), s(approver.gate.as_str()));
        item.insert("event_id".into(), s(&approver.event_id));
        item.insert("at".into(), s(&iso(approver.at)));
        item.insert("approver".into(), s(&serde_json::to_string(approver).expect("an approver serializes")));
        if let Some(principal) = &approver.principal {
            item.insert("principal".into(), s(principal));
        }
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await
            .map_err(|e| classify("PutItem", &e));
        match written {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn approvers(&self, package: &ModelPackageArn) -> PortResult<Vec<Approver>> {
        let mut approvers = self
            .items_under(package, APPROVER_SK_PREFIX)
            .await?
            .iter()
            .map(|item| {
                let raw = item.get("approver").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
                serde_json::from_str::<Approver>(raw).map_err(|e| PortError::new("Ledger", FailureKind::Terminal, format!("approver record: {e}")))
            })
            .collect::<PortResult<Vec<_>>>()?;
        approvers.sort_by_key(|approver| Gate::ALL.iter().position(|gate| *gate == approver.gate));
        Ok(approvers)
    }
}

fn transact_put(put: aws_sdk_dynamodb::types::builders::PutBuilder) -> PortResult<TransactWriteItem> {
    let put = put.build().map_err(|e| PortError::new("TransactWriteItems", FailureKind::Terminal, e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn lost_claim(source: &ModelPackageArn) -> PortError {
    PortError::new("ClaimLost", FailureKind::Retryable, format!("the claim on {source} passed to another invocation"))
}

fn item_from_record(record: &PromotionRecord) -> Item {
    let mut item = key(&record.source, PROMOTION_SK);
    item.insert("source_arn".into(), s(record.source.as_str()));
    item.insert("state".into(), s(record.state.as_str()));
    item.insert("event_id".into(), s(&record.event_id));
    item.insert("decided_at".into(), millis(record.decided_at));
    item.insert("claims".into(), AttributeValue::N(record.claims.to_string()));
    item.insert("artifacts".into(), s(&serde_json::to_string(&record.artifacts).expect("artifacts serialize")));
    let optional = [
        ("owner", record.owner.clone().map(|o| s(&o))),
        ("lease_until", record.lease_until.map(millis)),
        ("central_group", record.central_group.as_ref().map(|g| s(g.as_str()))),
        ("central_package", record.central_package.as_ref().map(|p| s(p.as_str()))),
        ("card_version", record.card_version.map(|v| AttributeValue::N(v.to_string()))),
        ("promoted_at", record.promoted_at.map(|t| s(&iso(t)))),
        ("reason", record.reason.as_ref().map(|r| s(r))),
        ("fingerprint", record.fingerprint.as_ref().map(|f| s(f.as_str()))),
    ];
    item.extend(optional.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value?))));
    item
}

fn record_from_item(item: &Item) -> PortResult<PromotionRecord> {
    let corrupt = |what: &str| PortError::new("Ledger", FailureKind::Terminal, format!("ledger item has no valid {what}"));
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str);
    let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
    let time = |name: &str| number(name).and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    let source: ModelPackageArn = text("source_arn").and_then(|a| a.parse().ok()).ok_or_else(|| corrupt("source_arn"))?;
    let state = text("state").and_then(PromotionState::parse).ok_or_else(|| corrupt("state"))?;
    let mut record = PromotionRecord::new(source, state, text("event_id").unwrap_or_default(), time("decided_at").ok_or_else(|| corrupt("decided_at"))?);
    record.owner = text("owner").map(str::to_owned);
    record.lease_until = time("lease_until");
    record.central_group = text("central_group").and_then(|g| g.parse().ok());
    record.central_package = text("central_package").and_then(|p| p.parse().ok());
    record.artifacts = text("artifacts").map(serde_json::from_str).transpose().map_err(|_| corrupt("artifacts"))?.unwrap_or_default();
    record.claims = number("claims").and_then(|v| u32::try_from(v).ok()).unwrap_or_default();
    record.card_version = number("card_version").and_then(|v| u32::try_from(v).ok());
    record.promoted_at = text("promoted_at").and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
    record.reason = text("reason").map(str::to_owned);
    record.fingerprint = text("fingerprint").map(str::parse).transpose().map_err(|_| corrupt("fingerprint"))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
    use aws_smithy_mocks::{mock, RuleMode};

    use super::*;

    fn claim() -> Claim {
        // The ledger keeps milliseconds.
        let now = Utc.timestamp_millis_opt(Utc::now().timestamp_millis()).unwrap();
        Claim {
            source: "arn:aws:sagemaker:us-east-1:111111111111:model-package/churn/3".parse().unwrap(),
            event_id: "e-1".into(),
            event_time: now,
            owner: "me".into(),
            lease_until: now + chrono::Duration::minutes(5),
            now,
        }
    }

    fn throttled() -> UpdateItemError {
        UpdateItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .meta(ErrorMetadata::builder().code("ProvisionedThroughputExceededException").build())
                .build(),
        )
    }

    fn granted(claim: &Claim) -> UpdateItemOutput {
        let mut record = PromotionRecord::new(claim.source.clone(), PromotionState::InProgress, &claim.event_id, claim.event_time);
        record.owner = Some(claim.owner.clone());
        UpdateItemOutput::builder().set_attributes(Some(item_from_record(&record))).build()
    }

    fn retrying(attempts: u32) -> impl Fn(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
        move |config| config.retry_config(RetryConfig::standard().with_max_attempts(attempts).with_initial_backoff(Duration::from_millis(1)))
    }

    fn ledger(client: Client) -> DynamoLedger {
        DynamoLedger::new(client.clone(), "ledger", AuditTable::new(client, "audit", &"222222222222".parse().unwrap()))
    }

    fn finished() -> (PromotionRecord, AuditEntry) {
        let claim = claim();
        let mut record = PromotionRecord::new(claim.source.clone(), PromotionState::Promoted, &claim.event_id, claim.event_time);
        record.claims = 1;
        record.central_package = Some("arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1".parse().unwrap());
        let entry = AuditEntry::now(&claim.source, &claim.event_id, promotion_core::domain::audit::AuditAction::Promoted, serde_json::json!({}));
        (record, entry)
    }

    fn no_head() -> aws_sdk_dynamodb::operation::get_item::GetItemOutput {
        aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build()
    }

    #[tokio::test]
    async fn the_final_write_is_one_transaction_of_record_pointer_and_chained_entry_with_a_token_dynamodb_accepts() {
        let owner = "0f8fad5b-d9cb-469f-a165-70867728950e".to_owned();
        let head = mock!(Client::get_item).match_requests(|request| request.table_name() == Some("audit")).then_output(no_head);
        let rule = mock!(Client::transact_write_items)
            .match_requests(move |request| {
                let tables: Vec<_> = request.transact_items().iter().filter_map(|item| item.put()).map(|put| put.table_name()).collect();
                request.client_request_token().is_some_and(|token| token.len() == 36) && tables == ["ledger", "ledger", "audit", "audit", "audit"]
            })
            .then_output(|| aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&head, &rule]);
        let (record, entry) = finished();

        ledger(client).finish(&record, &owner, &entry).await.expect("one transaction, a valid token");
        assert_eq!((head.num_calls(), rule.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_transaction_cancelled_by_the_owner_condition_is_a_lost_claim_and_by_a_conflict_a_retry() {
        let (record, entry) = finished();
        for (reason, expected) in
            [("ConditionalCheckFailed", "ClaimLost"), ("TransactionConflict", "TransactWriteItems"), ("ThrottlingError", "TransactWriteItems")]
        {
            let head = mock!(Client::get_item).then_output(no_head);
            let rule = mock!(Client::transact_write_items).then_error(audit::tests::cancelled([reason, "None", "None", "None", "None"]));
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&head, &rule], retrying(1));
            let error = ledger(client).finish(&record, "me", &entry).await.expect_err(reason);
            assert_eq!((error.operation, error.kind), (expected, FailureKind::Retryable), "{reason}: {error}");
        }
    }

    #[tokio::test]
    async fn a_throttled_claim_is_retried_with_backoff_until_it_succeeds() {
        let claim = claim();
        let output = granted(&claim);
        let rule = mock!(Client::update_item).sequence().error(throttled).times(2).output(move || output.clone()).build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], retrying(3));

        let result = ledger(client).claim(&claim).await.expect("claimed after retries");

        assert!(matches!(result, ClaimResult::Granted(record) if record.owner.as_deref() == Some("me")));
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn throttling_that_outlasts_the_retries_is_reported_retryable() {
        let rule = mock!(Client::update_item).sequence().error(throttled).times(3).build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], retrying(3));

        let error = ledger(client).claim(&claim()).await.unwrap_err();

        assert_eq!(error.kind, FailureKind::Retryable);
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn a_lost_condition_is_not_retried_and_reads_the_holder() {
        let claim = claim();
        let mut holder = PromotionRecord::new(claim.source.clone(), PromotionState::Promoted, "e-0", claim.event_time);
        holder.central_group = Some("churn-111111111111".parse().unwrap());
        let item = item_from_record(&holder);
        let lost = mock!(Client::update_item).then_error(|| {
            UpdateItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .message("The conditional request failed")
                    .meta(ErrorMetadata::builder().code("ConditionalCheckFailedException").build())
                    .build(),
            )
        });
        let read =
            mock!(Client::get_item).then_output(move || aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().set_item(Some(item.clone())).build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&lost, &read], retrying(3));

        let result = ledger(client).claim(&claim).await.unwrap();

        assert_eq!(lost.num_calls(), 1);
        assert!(matches!(result, ClaimResult::Held(record) if record == holder));
    }
}

//! The audit table: append-only, one hash chain per model (`promotion_core::domain::chain`).
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | head | `HEAD#{model}` | `HEAD` | `seq`, `hash` of the chain's newest entry |
//! | entry | `CHAIN#{model}` | `SEQ#{seq, 20 digits}` | `seq`, `model`, `previous`, `hash` and what it records |
//! | identity | `IDENTITY#{model}` | `{package}#{event id}#{action}` | `package`, `event_id`, `action`, `seq`: where the entry was chained |
//!
//! Every write is a conditional Put, never an update or a delete: the head's on the head read
//! just before (seq and hash), the entry's and the identity's on their absence, the three in one
//! TransactWriteItems. A writer that lost the race for the head reads it again and retries; a
//! redelivered entry fails only its identity's condition and is done.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rand::Rng;

use promotion_core::domain::audit::AuditEntry;
use promotion_core::domain::chain::{chain_model, race_backoff, Head, Identity, Link, Recorded, StoredChain, CHAIN_ATTEMPTS};
use promotion_core::domain::ids::{AccountId, GroupName, ModelPackageArn};
use promotion_core::ports::{AuditTrail, FailureKind, PortError, PortResult};

use super::{s, transact_put, Item, PARTITION_KEY, SORT_KEY};
use crate::errors::classify;

const HEAD_PREFIX: &str = "HEAD#";
const CHAIN_PREFIX: &str = "CHAIN#";
const SEQ_PREFIX: &str = "SEQ#";
const IDENTITY_PREFIX: &str = "IDENTITY#";

pub struct AuditTable {
    client: Client,
    table: String,
    /// Tells a central version (its group is its model) from a dev version.
    central_account: AccountId,
    /// Heads read ahead (`prepare`): the next chaining of that model tries them first.
    read_ahead: std::sync::Mutex<std::collections::HashMap<GroupName, Head>>,
}

/// How an entry's chaining ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chained {
    Now,
    /// A write of the same package, event and action was chained before.
    Already,
}

/// Why the chaining transaction did not commit.
#[derive(Debug)]
pub(super) enum ChainError {
    /// The condition of a write beside the entry failed.
    Beside,
    Port(PortError),
}

impl From<PortError> for ChainError {
    fn from(error: PortError) -> Self {
        Self::Port(error)
    }
}

/// What the cancellation of one attempt says.
enum Cancelled {
    Beside,
    /// Another writer advanced the head (or holds it in a transaction): read it again.
    LostRace,
    Duplicate,
}

impl AuditTable {
    pub fn new(client: Client, table: &str, central_account: &AccountId) -> Self {
        Self { client, table: table.to_owned(), central_account: central_account.clone(), read_ahead: Default::default() }
    }

    /// Reads the head of `package`'s chain now, for the next chaining of its model to start from.
    pub(super) async fn prepare(&self, package: &ModelPackageArn) -> PortResult<()> {
        let model = self.model(package);
        let head = self.head(&model).await?.unwrap_or_else(Head::genesis);
        self.read_ahead.lock().expect("read-ahead lock").insert(model, head);
        Ok(())
    }

    /// The head read ahead for `model`, once; else the head as it is now.
    async fn current_head(&self, model: &GroupName, attempt: u32) -> PortResult<Head> {
        let ahead = if attempt == 1 { self.read_ahead.lock().expect("read-ahead lock").remove(model) } else { None };
        match ahead {
            Some(head) => Ok(head),
            None => Ok(self.head(model).await?.unwrap_or_else(Head::genesis)),
        }
    }

    fn model(&self, package: &ModelPackageArn) -> GroupName {
        chain_model(package, &self.central_account)
    }

    /// Chains `entry` to its model's head together with `beside` (writes that happen with it or
    /// not at all), one TransactWriteItems per attempt; `token` names each attempt's request
    /// (given the head it extends) so that the SDK's retry of a lost answer is answered, not redone.
    pub(super) async fn chain_with(&self, entry: &AuditEntry, beside: &[TransactWriteItem], token: Option<&str>) -> Result<Chained, ChainError> {
        let model = self.model(&entry.source);
        let recorded = Recorded::of(entry);
        for attempt in 1..=CHAIN_ATTEMPTS {
            let head = self.current_head(&model, attempt).await?;
            let (link, next) = head.next(&model, recorded.clone());
            let mut items = beside.to_vec();
            items.extend([self.head_put(&model, &head, &next)?, self.entry_put(&link)?, self.identity_put(&link)?]);
            let written = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .set_client_request_token(token.map(|token| attempt_token(token, head.seq)))
                .send()
                .await;
            let error = match written {
                Ok(_) => {
                    tracing::info!(model = %model, seq = link.seq, package = %entry.source, event_id = %entry.event_id, action = %entry.action, "audit entry chained");
                    return Ok(Chained::Now);
                }
                Err(error) => error,
            };
            match cancellation(&error, beside.len()) {
                Some(Cancelled::Duplicate) => return Ok(Chained::Already),
                Some(Cancelled::Beside) => return Err(ChainError::Beside),
                Some(Cancelled::LostRace) if attempt < CHAIN_ATTEMPTS => {
                    tracing::debug!(model = %model, seq = link.seq, attempt, "lost the race for the audit chain's head");
                    let jitter: f64 = rand::thread_rng().gen();
                    tokio::time::sleep(race_backoff(attempt, jitter)).await;
                }
                Some(Cancelled::LostRace) => break,
                None => return Err(ChainError::Port(transaction_failure(&error))),
            }
        }
        Err(ChainError::Port(PortError::new(
            "TransactWriteItems",
            FailureKind::Retryable,
            format!("the audit chain of {model} kept moving: {CHAIN_ATTEMPTS} attempts lost the race for its head"),
        )))
    }

    async fn head(&self, model: &GroupName) -> PortResult<Option<Head>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("{HEAD_PREFIX}{model}"), "HEAD")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        Ok(out.item().map(|item| Head { seq: number(item, "seq"), hash: text(item, "hash") }))
    }

    /// The head moves from `head` to `next`, on condition that it is still at `head`.
    fn head_put(&self, model: &GroupName, head: &Head, next: &Head) -> PortResult<TransactWriteItem> {
        let mut item = key(format!("{HEAD_PREFIX}{model}"), "HEAD");
        item.insert("seq".into(), AttributeValue::N(next.seq.to_string()));
        item.insert("hash".into(), s(&next.hash));
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = if head.seq == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#seq = :seq AND #hash = :hash")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#hash", "hash")
                .expression_attribute_values(":seq", AttributeValue::N(head.seq.to_string()))
                .expression_attribute_values(":hash", s(&head.hash))
        };
        transact_put(put)
    }

    fn entry_put(&self, link: &Link) -> PortResult<TransactWriteItem> {
        let mut item = key(format!("{CHAIN_PREFIX}{}", link.model), &format!("{SEQ_PREFIX}{:020}", link.position));
        item.insert("seq".into(), AttributeValue::N(link.seq.to_string()));
        for (name, value) in [
            ("model", &link.model),
            ("previous", &link.previous),
            ("hash", &link.hash),
            ("package", &link.recorded.package),
            ("event_id", &link.recorded.event_id),
            ("action", &link.recorded.action),
            ("at", &link.recorded.at),
            ("detail", &link.recorded.detail),
        ] {
            item.insert(name.into(), s(value));
        }
        transact_put(Put::builder().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(pk)"))
    }

    fn identity_put(&self, link: &Link) -> PortResult<TransactWriteItem> {
        let identity = Identity::of(link);
        let sort = format!("{}#{}#{}", identity.package, identity.event_id, identity.action);
        let mut item = key(format!("{IDENTITY_PREFIX}{}", link.model), &sort);
        item.insert("seq".into(), AttributeValue::N(identity.seq.to_string()));
        for (name, value) in [("package", &identity.package), ("event_id", &identity.event_id), ("action", &identity.action)] {
            item.insert(name.into(), s(value));
        }
        transact_put(Put::builder().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(pk)"))
    }

    async fn links(&self, model: &GroupName) -> PortResult<Vec<Link>> {
        let mut links: Vec<Link> = self.partition(&format!("{CHAIN_PREFIX}{model}")).await?.iter().map(link_from_item).collect();
        links.sort_by_key(|link| link.position);
        Ok(links)
    }

    async fn identities(&self, model: &GroupName) -> PortResult<Vec<Identity>> {
        let items = self.partition(&format!("{IDENTITY_PREFIX}{model}")).await?;
        Ok(items
            .iter()
            .map(|item| Identity { package: text(item, "package"), event_id: text(item, "event_id"), action: text(item, "action"), seq: number(item, "seq") })
            .collect())
    }

    /// Every item of one partition, read consistently.
    async fn partition(&self, pk: &str) -> PortResult<Vec<Item>> {
        let pages: Vec<_> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .into_paginator()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(|e| classify("Query", &e))?;
        Ok(pages.into_iter().flat_map(|page| page.items.unwrap_or_default()).collect())
    }
}

#[async_trait::async_trait]
impl AuditTrail for AuditTable {
    async fn append(&self, entry: &AuditEntry) -> PortResult<()> {
        match self.chain_with(entry, &[], None).await {
            Ok(_) => Ok(()),
            Err(ChainError::Port(error)) => Err(error),
            Err(ChainError::Beside) => unreachable!("an append writes nothing beside its entry"),
        }
    }

    async fn history(&self, package: &ModelPackageArn) -> PortResult<Vec<AuditEntry>> {
        let links = self.links(&self.model(package)).await?;
        let mine = links.iter().filter(|link| link.recorded.package == package.as_str());
        let mut entries = mine.map(|link| link.entry().map_err(PortError::from)).collect::<PortResult<Vec<_>>>()?;
        entries.sort_by_key(|e| e.at);
        Ok(entries)
    }

    /// Every model with a head, an entry or an identity (one missing any has lost it: verification
    /// says so).
    async fn chained_models(&self) -> PortResult<Vec<GroupName>> {
        let pages: Vec<_> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :head) OR begins_with(pk, :chain) OR begins_with(pk, :identity)")
            .expression_attribute_values(":head", s(HEAD_PREFIX))
            .expression_attribute_values(":chain", s(CHAIN_PREFIX))
            .expression_attribute_values(":identity", s(IDENTITY_PREFIX))
            .projection_expression("pk")
            .into_paginator()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(|e| classify("Scan", &e))?;
        let partitions = pages.iter().flat_map(|page| page.items()).map(|item| text(item, PARTITION_KEY));
        let prefixes = [HEAD_PREFIX, CHAIN_PREFIX, IDENTITY_PREFIX];
        let models: BTreeSet<String> = partitions.filter_map(|pk| prefixes.iter().find_map(|prefix| pk.strip_prefix(prefix)).map(str::to_owned)).collect();
        Ok(models.into_iter().filter_map(|model| model.parse().ok()).collect())
    }

    async fn chain(&self, model: &GroupName) -> PortResult<StoredChain> {
        let (links, head, identities) = tokio::try_join!(self.links(model), self.head(model), self.identities(model))?;
        Ok(StoredChain { links, head, identities })
    }
}

/// Reads what is stored as it is: a missing or mistyped attribute reads empty (or 0), so that
/// verification names the entry instead of the read failing.
fn link_from_item(item: &Item) -> Link {
    let position = text(item, SORT_KEY).strip_prefix(SEQ_PREFIX).and_then(|seq| seq.parse().ok()).unwrap_or_default();
    Link {
        position,
        seq: number(item, "seq"),
        model: text(item, "model"),
        previous: text(item, "previous"),
        hash: text(item, "hash"),
        recorded: Recorded {
            package: text(item, "package"),
            event_id: text(item, "event_id"),
            action: text(item, "action"),
            at: text(item, "at"),
            detail: text(item, "detail"),
        },
    }
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PARTITION_KEY.to_owned(), AttributeValue::S(pk)), (SORT_KEY.to_owned(), s(sk))])
}

fn text(item: &Item, name: &str) -> String {
    item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

fn number(item: &Item, name: &str) -> u64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or_default()
}

/// A request token per attempt (DynamoDB takes at most 36 characters): the same caller's token
/// and the head the attempt extends.
fn attempt_token(token: &str, head_seq: u64) -> String {
    promotion_core::domain::naming::hex_sha256(format!("{token}#{head_seq}").as_bytes())[..36].to_owned()
}

/// A cancellation for throttling or a conflicting transaction is worth a retry.
fn transaction_failure(error: &SdkError<TransactWriteItemsError, HttpResponse>) -> PortError {
    let mut failure = classify("TransactWriteItems", error);
    if error.as_service_error().is_some_and(|e| e.is_transaction_canceled_exception()) {
        failure.kind = FailureKind::Retryable;
    }
    failure
}

/// Reads a cancelled transaction's reasons: `beside` writes first, then the head, the entry and
/// the identity. `None` for any other failure.
fn cancellation(error: &SdkError<TransactWriteItemsError, HttpResponse>, beside: usize) -> Option<Cancelled> {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error() else {
        return None;
    };
    let codes: Vec<&str> = cancelled.cancellation_reasons().iter().map(|reason| reason.code().unwrap_or("None")).collect();
    let failed = |index: usize, code: &str| codes.get(index) == Some(&code);
    if (0..beside).any(|index| failed(index, "ConditionalCheckFailed")) {
        return Some(Cancelled::Beside);
    }
    if failed(beside + 2, "ConditionalCheckFailed") {
        return Some(Cancelled::Duplicate);
    }
    let chain = beside..beside + 3;
    let raced = codes.iter().enumerate().any(|(index, code)| chain.contains(&index) && matches!(*code, "ConditionalCheckFailed" | "TransactionConflict"));
    raced.then_some(Cancelled::LostRace)
}

#[cfg(test)]
pub(super) mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput};
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_smithy_mocks::{mock, RuleMode};
    use promotion_core::domain::audit::AuditAction;

    use super::*;

    /// A transaction cancelled with one reason per item, in order.
    pub fn cancelled<const N: usize>(reasons: [&'static str; N]) -> impl Fn() -> TransactWriteItemsError {
        move || {
            let mut cancelled = TransactionCanceledException::builder().meta(ErrorMetadata::builder().code("TransactionCanceledException").build());
            for reason in reasons {
                cancelled = cancelled.cancellation_reasons(CancellationReason::builder().code(reason).build());
            }
            TransactWriteItemsError::TransactionCanceledException(cancelled.build())
        }
    }

    fn entry() -> AuditEntry {
        let package = "arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1".parse().unwrap();
        AuditEntry::now(&package, "job-1", AuditAction::DeployStarted, serde_json::json!({ "stage": "test" }))
    }

    fn table(client: Client) -> AuditTable {
        AuditTable::new(client, "audit", &"222222222222".parse().unwrap())
    }

    fn head_at(seq: u64, hash: &'static str) -> impl Fn() -> GetItemOutput {
        move || {
            let mut item = key(format!("{HEAD_PREFIX}churn-111111111111"), "HEAD");
            item.insert("seq".into(), AttributeValue::N(seq.to_string()));
            item.insert("hash".into(), s(hash));
            GetItemOutput::builder().set_item(Some(item)).build()
        }
    }

    fn put(request: &TransactWriteItemsInput, index: usize) -> &Put {
        request.transact_items()[index].put().expect("a put")
    }

    fn written() -> TransactWriteItemsOutput {
        TransactWriteItemsOutput::builder().build()
    }

    #[tokio::test]
    async fn an_append_puts_head_entry_and_identity_each_on_a_condition_and_nothing_else() {
        let head = mock!(Client::get_item).match_requests(|r| r.consistent_read() == Some(true)).then_output(head_at(4, "ab"));
        let write = mock!(Client::transact_write_items)
            .match_requests(|request| {
                let (head, entry, identity) = (put(request, 0), put(request, 1), put(request, 2));
                let values = head.expression_attribute_values().unwrap();
                request.transact_items().len() == 3
                    && request.transact_items().iter().all(|item| item.update().is_none() && item.delete().is_none())
                    && head.condition_expression() == Some("#seq = :seq AND #hash = :hash")
                    && values[":seq"] == AttributeValue::N("4".into())
                    && values[":hash"] == s("ab")
                    && head.item()["seq"] == AttributeValue::N("5".into())
                    && entry.item()["sk"] == s("SEQ#00000000000000000005")
                    && entry.item()["previous"] == s("ab")
                    && entry.condition_expression() == Some("attribute_not_exists(pk)")
                    && identity.item()["pk"] == s("IDENTITY#churn-111111111111")
                    && identity.item()["sk"] == s("arn:aws:sagemaker:us-east-1:222222222222:model-package/churn-111111111111/1#job-1#deploy-started")
                    && identity.item()["seq"] == AttributeValue::N("5".into())
                    && identity.condition_expression() == Some("attribute_not_exists(pk)")
            })
            .then_output(written);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&head, &write]);

        table(client).append(&entry()).await.expect("chained");

        assert_eq!((head.num_calls(), write.num_calls()), (1, 1), "two calls per append");
    }

    #[tokio::test]
    async fn an_append_that_lost_the_race_reads_the_head_again_and_extends_the_new_one() {
        let first = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let lost = mock!(Client::transact_write_items)
            .match_requests(|request| put(request, 0).condition_expression() == Some("attribute_not_exists(pk)"))
            .then_error(cancelled(["ConditionalCheckFailed", "None", "None"]));
        let moved = mock!(Client::get_item).then_output(head_at(1, "cd"));
        let extended = mock!(Client::transact_write_items)
            .match_requests(|request| put(request, 1).item()["sk"] == s("SEQ#00000000000000000002") && put(request, 1).item()["previous"] == s("cd"))
            .then_output(written);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &lost, &moved, &extended]);

        table(client).append(&entry()).await.expect("chained on the second attempt");

        assert_eq!(extended.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_redelivered_entry_fails_only_its_identity_and_is_done() {
        let head = mock!(Client::get_item).then_output(head_at(7, "ef"));
        let duplicate = mock!(Client::transact_write_items).then_error(cancelled(["None", "None", "ConditionalCheckFailed"]));
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&head, &duplicate]);

        table(client).append(&entry()).await.expect("a redelivery is no failure");

        assert_eq!(duplicate.num_calls(), 1, "not chained again");
    }

    #[tokio::test(start_paused = true)]
    async fn an_append_that_keeps_losing_the_race_gives_up_retryable_after_the_bound() {
        let heads = mock!(Client::get_item).sequence().output(head_at(3, "aa")).times(CHAIN_ATTEMPTS as usize).build();
        let lost =
            mock!(Client::transact_write_items).sequence().error(cancelled(["ConditionalCheckFailed", "None", "None"])).times(CHAIN_ATTEMPTS as usize).build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&heads, &lost]);

        let error = table(client).append(&entry()).await.expect_err("bounded");

        assert_eq!(error.kind, FailureKind::Retryable, "{error}");
        assert!(error.message.contains("lost the race"), "{error}");
        assert_eq!((heads.num_calls(), lost.num_calls()), (CHAIN_ATTEMPTS as usize, CHAIN_ATTEMPTS as usize));
    }

    #[test]
    fn what_is_stored_is_read_back_verbatim_even_when_tampered_with() {
        let (link, _) = Head::genesis().next(&"churn-111111111111".parse().unwrap(), Recorded::of(&entry()));
        let mut item = key(format!("{CHAIN_PREFIX}churn-111111111111"), "SEQ#00000000000000000001");
        item.insert("seq".into(), AttributeValue::N("1".into()));
        for (name, value) in [("model", &link.model), ("previous", &link.previous), ("hash", &link.hash), ("package", &link.recorded.package)] {
            item.insert(name.into(), s(value));
        }
        for (name, value) in
            [("event_id", &link.recorded.event_id), ("action", &link.recorded.action), ("at", &link.recorded.at), ("detail", &link.recorded.detail)]
        {
            item.insert(name.into(), s(value));
        }
        assert_eq!(link_from_item(&item), link);
        item.insert("seq".into(), s("not a number"));
        item.remove("detail");
        let read = link_from_item(&item);
        assert_eq!((read.position, read.seq, read.recorded.detail.as_str()), (1, 0, ""));
    }
}

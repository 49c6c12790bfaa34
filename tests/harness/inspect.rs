//! Reads the emulator's state back, to assert outcomes and to prove that nothing was created.

use std::collections::BTreeMap;

use aws_sdk_sagemaker::operation::describe_model_package::DescribeModelPackageOutput;
use promotion_core::domain::ids::S3Uri;
use serde_json::Value;

use super::TestWorld;

impl TestWorld {
    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(self.central())
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        promotion_aws::s3::client(self.central())
    }

    /// Every version of a central group, oldest first.
    pub async fn central_versions(&self, group: &str) -> Vec<DescribeModelPackageOutput> {
        let Ok(listed) = self.sagemaker().list_model_packages().model_package_group_name(group).max_results(100).send().await else {
            return Vec::new();
        };
        let mut versions = Vec::new();
        for summary in listed.model_package_summary_list() {
            let arn = summary.model_package_arn().expect("arn");
            versions.push(self.sagemaker().describe_model_package().model_package_name(arn).send().await.expect("describe"));
        }
        versions.sort_by_key(|v| v.model_package_version());
        versions
    }

    pub async fn object(&self, uri: &S3Uri) -> Vec<u8> {
        let out = self.s3().get_object().bucket(uri.bucket()).key(uri.key()).send().await.expect("get object");
        out.body.collect().await.expect("body").to_vec()
    }

    pub async fn central_keys(&self) -> Vec<String> {
        let out = self.s3().list_objects_v2().bucket(&self.world.names.artifact_bucket).send().await.expect("list");
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    /// Every central object as `key size etag`: an overwrite shows as well as a new key.
    pub async fn central_objects(&self) -> Vec<String> {
        let out = self.s3().list_objects_v2().bucket(&self.world.names.artifact_bucket).send().await.expect("list");
        out.contents().iter().map(|o| format!("{} {} {}", o.key().unwrap_or_default(), o.size().unwrap_or_default(), o.e_tag().unwrap_or_default())).collect()
    }

    pub async fn open_multipart_uploads(&self) -> usize {
        let out = self.s3().list_multipart_uploads().bucket(&self.world.names.artifact_bucket).send().await.expect("list uploads");
        out.uploads().len()
    }

    /// The card's versions (oldest first) with their content.
    pub async fn card_versions(&self, name: &str) -> Vec<(i32, Value)> {
        let Ok(listed) = self.sagemaker().list_model_card_versions().model_card_name(name).send().await else {
            return Vec::new();
        };
        let mut versions = Vec::new();
        for summary in listed.model_card_version_summary_list() {
            let version = summary.model_card_version().expect("version");
            let card = self.sagemaker().describe_model_card().model_card_name(name).model_card_version(version).send().await.expect("card");
            versions.push((version, serde_json::from_str(card.content().expect("content")).expect("json")));
        }
        versions.sort_by_key(|(v, _)| *v);
        versions
    }

    pub async fn ledger_items(&self) -> Vec<BTreeMap<String, String>> {
        self.table_items(&self.world.names.ledger_table).await
    }

    /// The audit table's items: each entry, its identity, and each model's chain head.
    pub async fn audit_items(&self) -> Vec<BTreeMap<String, String>> {
        self.table_items(&self.world.names.audit_table).await
    }

    async fn table_items(&self, table: &str) -> Vec<BTreeMap<String, String>> {
        let out = aws_sdk_dynamodb::Client::new(self.central()).scan().table_name(table).send().await.expect("scan");
        out.items().iter().map(|item| item.iter().map(|(k, v)| (k.clone(), format!("{v:?}"))).collect()).collect()
    }

    /// The service's events on the central bus, as the queue subscribed to them received them.
    pub async fn published_events(&self) -> Vec<Value> {
        let bodies = self.drain(&self.world.events_queue_url).await;
        bodies.iter().map(|body| serde_json::from_str(body).expect("event json")).collect()
    }

    /// The approval requests sent to the governance officers' topic.
    pub async fn approval_requests(&self) -> Vec<String> {
        self.drain(&self.world.approvals_inbox_url).await
    }

    async fn drain(&self, queue_url: &str) -> Vec<String> {
        let sqs = aws_sdk_sqs::Client::new(self.central());
        let mut bodies = Vec::new();
        loop {
            let out = sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await.expect("receive");
            if out.messages().is_empty() {
                return bodies;
            }
            for message in out.messages() {
                bodies.push(message.body().expect("body").to_owned());
                let receipt = message.receipt_handle().map(str::to_owned);
                sqs.delete_message().queue_url(queue_url).set_receipt_handle(receipt).send().await.expect("delete");
            }
        }
    }

    /// Every model package group of the central account, sorted, over all pages.
    pub async fn all_groups(&self) -> Vec<String> {
        let pages: Vec<_> = self.sagemaker().list_model_package_groups().max_results(100).into_paginator().items().send().collect().await;
        let mut names: Vec<String> = pages.into_iter().map(|g| g.expect("groups").model_package_group_name.unwrap_or_default()).collect();
        names.sort();
        names
    }

    /// The versions (oldest first, card by card) of every card of a central group's versions:
    /// each central version has a card of its own, `{group}-v{version}`.
    pub async fn group_card_versions(&self, group: &str) -> Vec<(i32, Value)> {
        let prefix = format!("{group}-v");
        let mut versions = Vec::new();
        for card in self.all_cards().await.into_iter().filter(|name| name.strip_prefix(&prefix).is_some_and(|v| v.parse::<u32>().is_ok())) {
            versions.extend(self.card_versions(&card).await);
        }
        versions
    }

    /// Every model card of the central account, sorted, over all pages.
    pub async fn all_cards(&self) -> Vec<String> {
        let pages: Vec<_> = self.sagemaker().list_model_cards().max_results(100).into_paginator().items().send().collect().await;
        let mut names: Vec<String> = pages.into_iter().map(|c| c.expect("cards").model_card_name.unwrap_or_default()).collect();
        names.sort();
        names
    }

    /// What a rejected event must leave untouched: buckets, central objects, groups, cards, ledger
    /// and audit trail.
    pub async fn snapshot(&self) -> Snapshot {
        let buckets = self.s3().list_buckets().send().await.expect("buckets");
        Snapshot {
            buckets: buckets.buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect(),
            central_objects: self.central_objects().await,
            groups: self.all_groups().await,
            cards: self.all_cards().await,
            ledger: self.ledger_items().await,
            audit: self.audit_items().await,
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub buckets: Vec<String>,
    pub central_objects: Vec<String>,
    pub groups: Vec<String>,
    pub cards: Vec<String>,
    pub ledger: Vec<BTreeMap<String, String>>,
    pub audit: Vec<BTreeMap<String, String>>,
}

//! SNS: the approval topic the governance officers subscribe to.

use async_trait::async_trait;
use aws_sdk_sns::Client;

use promotion_core::ports::{Notifier, PortResult};

use crate::errors::classify;

pub struct Topic {
    client: Client,
    arn: String,
}

impl Topic {
    pub fn new(client: Client, arn: &str) -> Self {
        Self { client, arn: arn.to_owned() }
    }
}

#[async_trait]
impl Notifier for Topic {
    async fn notify(&self, subject: &str, message: &str) -> PortResult<()> {
        // SNS subjects stop at 100 characters.
        let subject: String = subject.chars().take(100).collect();
        self.client.publish().topic_arn(&self.arn).subject(subject).message(message).send().await.map_err(|e| classify("Publish", &e))?;
        Ok(())
    }
}

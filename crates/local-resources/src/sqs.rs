//! Reading and deleting a queue's messages in moto, as Lambda's SQS event
//! source mapping does (the rehearsal delivers them to the function).

use std::collections::BTreeMap;

use crate::client::{xml_all, xml_blocks, xml_first};
use crate::{MotoServer, Result};

const SQS: &str = "2012-11-05";

/// One message as ReceiveMessage returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    /// `SentTimestamp`, `ApproximateReceiveCount`, `SenderId`, ...
    pub attributes: BTreeMap<String, String>,
}

impl MotoServer {
    /// ReceiveMessage on `queue_url` (at most `max` messages, 1 to 10,
    /// waiting up to `wait_seconds` for one), as the administrator, with
    /// every system attribute. The messages become invisible for the
    /// queue's visibility timeout, as on AWS.
    pub async fn receive_messages(
        &self,
        queue_url: &str,
        max: u32,
        wait_seconds: u32,
    ) -> Result<Vec<SqsMessage>> {
        let max = max.clamp(1, 10).to_string();
        let wait = wait_seconds.to_string();
        let xml = self
            .query(
                None,
                "sqs",
                SQS,
                "ReceiveMessage",
                &[
                    ("QueueUrl", queue_url),
                    ("MaxNumberOfMessages", &max),
                    ("WaitTimeSeconds", &wait),
                    ("AttributeName.1", "All"),
                ],
            )
            .await?;
        Ok(xml_blocks(&xml, "Message")
            .into_iter()
            .map(|m| {
                let get = |t| xml_first(m, t).unwrap_or_default();
                let names = xml_blocks(m, "Attribute")
                    .into_iter()
                    .filter_map(|a| Some((xml_first(a, "Name")?, xml_first(a, "Value")?)));
                SqsMessage {
                    message_id: get("MessageId"),
                    receipt_handle: get("ReceiptHandle"),
                    body: xml_all(m, "Body").into_iter().next().unwrap_or_default(),
                    md5_of_body: get("MD5OfBody"),
                    attributes: names.collect(),
                }
            })
            .collect())
    }

    /// DeleteMessage (a message the function processed).
    pub async fn delete_message(&self, queue_url: &str, receipt_handle: &str) -> Result<()> {
        self.query(
            None,
            "sqs",
            SQS,
            "DeleteMessage",
            &[("QueueUrl", queue_url), ("ReceiptHandle", receipt_handle)],
        )
        .await
        .map(|_| ())
    }
}

//! Reading and deleting a queue's messages in moto, as Lambda's SQS event
//! source mapping does (the rehearsal delivers them to the function).

use std::collections::BTreeMap;

use crate::client::{Credentials, xml_all, xml_blocks, xml_first};
use crate::{Error, MotoServer, Result};

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
        self.receive_messages_as(None, queue_url, max, wait_seconds)
            .await
    }

    /// [`MotoServer::receive_messages`] signed with `creds` (a function's
    /// execution role, as Lambda's event source mapping polls), or as the
    /// administrator when `None`.
    pub async fn receive_messages_as(
        &self,
        creds: Option<&Credentials>,
        queue_url: &str,
        max: u32,
        wait_seconds: u32,
    ) -> Result<Vec<SqsMessage>> {
        let max = max.clamp(1, 10).to_string();
        let wait = wait_seconds.to_string();
        let xml = self
            .query(
                creds,
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
        self.delete_message_as(None, queue_url, receipt_handle)
            .await
    }

    /// [`MotoServer::delete_message`] signed with `creds` (or as the
    /// administrator).
    pub async fn delete_message_as(
        &self,
        creds: Option<&Credentials>,
        queue_url: &str,
        receipt_handle: &str,
    ) -> Result<()> {
        self.query(
            creds,
            "sqs",
            SQS,
            "DeleteMessage",
            &[("QueueUrl", queue_url), ("ReceiptHandle", receipt_handle)],
        )
        .await
        .map(|_| ())
    }
}

/// The permissions Lambda's SQS event source mapping needs on the queue, in
/// its execution role (AWS Lambda Developer Guide, "Creating and
/// configuring an Amazon SQS event source mapping",
/// https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html,
/// "Setting up Lambda execution role permissions": the
/// AWSLambdaSQSQueueExecutionRole managed policy has them; it allows
/// sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes).
pub const POLLER_ACTIONS: [&str; 3] = ["ReceiveMessage", "DeleteMessage", "GetQueueAttributes"];

impl MotoServer {
    /// The first of [`POLLER_ACTIONS`] that `creds` may not call on the
    /// queue, or `None` when it may call them all. Nothing is received or
    /// deleted: moto checks IAM before it reads the request's parameters
    /// (moto/core/responses.py `call_action`), so ReceiveMessage is asked
    /// for 11 messages and DeleteMessage for an unknown receipt handle, and
    /// an allowed call fails with a parameter error instead of AccessDenied.
    pub async fn missing_poller_permission(
        &self,
        creds: &Credentials,
        queue_url: &str,
    ) -> Result<Option<&'static str>> {
        for action in POLLER_ACTIONS {
            let params: &[(&str, &str)] = match action {
                "ReceiveMessage" => &[("QueueUrl", queue_url), ("MaxNumberOfMessages", "11")],
                "DeleteMessage" => &[
                    ("QueueUrl", queue_url),
                    ("ReceiptHandle", "rehearsal-permission-check"),
                ],
                _ => &[("QueueUrl", queue_url), ("AttributeName.1", "QueueArn")],
            };
            match self.query(Some(creds), "sqs", SQS, action, params).await {
                Ok(_) => {}
                Err(Error::Aws { code, .. })
                    if code == "AccessDenied" || code == "AccessDeniedException" =>
                {
                    return Ok(Some(action));
                }
                Err(Error::Aws { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

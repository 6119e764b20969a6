//! The two functions' configuration as a deployment hands it to them, and Lambda's SQS event
//! records as the event source mapping builds them: written once here, so every test, the demo
//! and the benchmark run the binaries the same way.

use aws_credential_types::Credentials;
use aws_sdk_sqs::types::Message;
use serde_json::{Map, Value, json};

use crate::Moto;

/// The settings every deployment of both functions has (README "Configuration").
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    pub dmm_base_url: &'a str,
    pub dmm_api_key_secret_name: &'a str,
    pub bucket_name: &'a str,
    pub sqs_queue_url: &'a str,
}

impl Deployment<'_> {
    /// The environment of a function of this deployment acting as `credentials` against `moto`.
    pub fn env(&self, moto: &Moto, credentials: &Credentials) -> Vec<(String, String)> {
        let mut env = moto.lambda_env(credentials);
        env.extend(
            [
                ("dmm_base_url", self.dmm_base_url),
                ("dmm_api_key_secret_name", self.dmm_api_key_secret_name),
                ("bucket_name", self.bucket_name),
                ("sqs_queue_url", self.sqs_queue_url),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    }

    /// poll_feed's environment for a harness that invokes it on demand: each invocation reads
    /// the feed to its end once (`poll_interval_ms=0`), so an invocation returns as soon as it
    /// caught up instead of polling on until its deadline as a deployed one does. A test of
    /// continuous polling overrides the interval.
    pub fn poll_feed_env(&self, moto: &Moto, credentials: &Credentials) -> Vec<(String, String)> {
        with_overrides(self.env(moto, credentials), &[POLL_ONCE])
    }
}

/// `poll_interval_ms=0`: poll_feed reads the feed once per invocation.
pub const POLL_ONCE: (&str, &str) = ("poll_interval_ms", "0");

/// `env` with `overrides` replacing variables of the same name or added.
pub fn with_overrides<K: AsRef<str>, V: AsRef<str>>(
    mut env: Vec<(String, String)>,
    overrides: &[(K, V)],
) -> Vec<(String, String)> {
    for (name, value) in overrides {
        env.retain(|(k, _)| k != name.as_ref());
        env.push((name.as_ref().to_owned(), value.as_ref().to_owned()));
    }
    env
}

/// The record Lambda's event source mapping makes of a message it received from `queue_arn`.
pub fn sqs_record(message: &Message, queue_arn: &str, region: &str) -> Value {
    let attributes: Map<String, Value> = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
        .collect();
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": message.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}

/// Where a FIFO message sits: its group, deduplication id, sequence number and how often it was
/// received.
#[derive(Debug, Clone, Copy)]
pub struct FifoDelivery<'a> {
    pub message_id: &'a str,
    pub group: &'a str,
    pub deduplication_id: &'a str,
    pub sequence: u64,
    pub receive_count: u32,
}

/// A record built without a queue, for what a FIFO queue would not produce on its own (the same
/// message delivered again, arbitrary orders): the same shape [`sqs_record`] gives a message
/// received from `queue_arn`.
pub fn fifo_record(body: &str, delivery: FifoDelivery<'_>, queue_arn: &str, region: &str) -> Value {
    let FifoDelivery {
        message_id,
        group,
        deduplication_id,
        sequence,
        receive_count,
    } = delivery;
    json!({
        "messageId": message_id,
        "receiptHandle": format!("handle-{message_id}-{receive_count}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000001",
            "SequenceNumber": format!("{sequence:020}"),
            "MessageGroupId": group,
            "MessageDeduplicationId": deduplication_id,
        },
        "messageAttributes": {},
        "md5OfBody": "not-checked",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_or_add() {
        let env = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ];
        let env = with_overrides(env, &[("a", "9"), ("c", "3")]);
        assert_eq!(
            env,
            [("b", "2"), ("a", "9"), ("c", "3")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn a_built_record_has_the_shape_of_a_received_one() {
        let message = Message::builder()
            .message_id("m1")
            .receipt_handle("r1")
            .body("{}")
            .md5_of_body("x")
            .attributes(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
                "g1",
            )
            .build();
        let received = sqs_record(&message, "arn:q", "eu-central-1");
        let built = fifo_record(
            "{}",
            FifoDelivery {
                message_id: "m1",
                group: "g1",
                deduplication_id: "d1",
                sequence: 1,
                receive_count: 1,
            },
            "arn:q",
            "eu-central-1",
        );
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&received), keys(&built));
        assert_eq!(
            received["attributes"]["MessageGroupId"],
            built["attributes"]["MessageGroupId"]
        );
        assert_eq!(received["eventSourceARN"], built["eventSourceARN"]);
    }
}

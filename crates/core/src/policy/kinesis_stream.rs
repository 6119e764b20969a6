//! `kinesis_stream` ports: consuming a Kinesis data stream, including with the KCL and
//! enhanced fan-out.

use super::arn::{Arn, Partition};
use super::document::Statement;

/// A Kinesis data stream, `arn:aws:kinesis:region:account:stream/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KinesisStream {
    partition: Partition,
    region: String,
    account: String,
    name: String,
}

impl KinesisStream {
    pub(crate) fn from_arn(arn: &Arn) -> Result<Self, String> {
        let name = arn.resource().strip_prefix("stream/").unwrap_or_default();
        if name.contains("/consumer/") {
            return Err("which is a stream consumer ARN; name the stream itself (arn:aws:kinesis:region:account:stream/name)".into());
        }
        if name.is_empty()
            || name.len() > 128
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(
                "which is not a Kinesis stream ARN (arn:aws:kinesis:region:account:stream/name)"
                    .into(),
            );
        }
        Ok(KinesisStream {
            partition: arn.partition(),
            region: arn.region().to_owned(),
            account: arn.account().to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:{}:kinesis:{}:{}:stream/{}",
            self.partition, self.region, self.account, self.name
        )
    }

    /// Reading shards on the stream; registering an enhanced fan-out consumer, which the KCL
    /// does on start; and subscribing through the consumers of this stream only
    /// (`stream/<name>/consumer/*`, the consumer ARN namespace, not every resource below the
    /// stream).
    pub(crate) fn statements(&self) -> Vec<Statement> {
        let stream = self.arn();
        vec![
            Statement::allow(
                "KinesisReadStream",
                &[
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:ListShards",
                    "kinesis:RegisterStreamConsumer",
                ],
                [stream.clone()],
            ),
            Statement::allow(
                "KinesisFanOut",
                &["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"],
                [format!("{stream}/consumer/*")],
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::PolicyDocument;

    fn stream(arn: &str) -> Result<KinesisStream, String> {
        KinesisStream::from_arn(&Arn::parse(arn).unwrap())
    }

    #[test]
    fn policy_for_a_stream() {
        let stream = stream("arn:aws:kinesis:eu-central-1:111122223333:stream/orders.v1").unwrap();
        assert_eq!(
            PolicyDocument::new(stream.statements()).to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"KinesisReadStream","Effect":"Allow","Action":["kinesis:DescribeStream","kinesis:DescribeStreamSummary","kinesis:GetRecords","kinesis:GetShardIterator","kinesis:ListShards","kinesis:RegisterStreamConsumer"],"Resource":"arn:aws:kinesis:eu-central-1:111122223333:stream/orders.v1"},"#,
                r#"{"Sid":"KinesisFanOut","Effect":"Allow","Action":["kinesis:DescribeStreamConsumer","kinesis:SubscribeToShard"],"Resource":"arn:aws:kinesis:eu-central-1:111122223333:stream/orders.v1/consumer/*"}]}"#
            )
        );
    }

    #[test]
    fn arn_round_trips_in_every_partition() {
        for arn in [
            "arn:aws:kinesis:us-east-1:111122223333:stream/s",
            "arn:aws-cn:kinesis:cn-north-1:111122223333:stream/s",
            "arn:aws-us-gov:kinesis:us-gov-west-1:111122223333:stream/s_1-2.3",
        ] {
            assert_eq!(stream(arn).unwrap().arn(), arn);
        }
    }

    #[test]
    fn rejects_other_kinesis_resources() {
        for arn in [
            "arn:aws:kinesis:us-east-1:111122223333:stream/",
            "arn:aws:kinesis:us-east-1:111122223333:stream/a/b",
            "arn:aws:kinesis:us-east-1:111122223333:stream/s/consumer/c:1700000000",
            "arn:aws:kinesis:us-east-1:111122223333:streams/s",
            "arn:aws:kinesis:us-east-1:111122223333:s",
            "arn:aws:kinesis:us-east-1:111122223333:stream/a:b",
        ] {
            assert!(stream(arn).is_err(), "{arn}");
        }
        assert!(
            stream("arn:aws:kinesis:us-east-1:111122223333:stream/s/consumer/c:1")
                .unwrap_err()
                .contains("consumer ARN")
        );
        let long = format!(
            "arn:aws:kinesis:us-east-1:111122223333:stream/{}",
            "s".repeat(129)
        );
        assert!(stream(&long).is_err());
    }
}

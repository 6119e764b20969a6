//! The kinds of output port the catalogue grants, as `custom.output-port-type` names them.

use std::fmt;

/// The kinds of access the catalogue can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortType {
    S3Bucket,
    S3Folder,
    GlueTable,
    KinesisStream,
    MskTopic,
}

impl PortType {
    /// The value of `custom.output-port-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortType::S3Bucket => "s3_bucket",
            PortType::S3Folder => "s3_folder",
            PortType::GlueTable => "glue_table",
            PortType::KinesisStream => "kinesis_stream",
            PortType::MskTopic => "msk_topic",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "s3_bucket" => Some(PortType::S3Bucket),
            "s3_folder" => Some(PortType::S3Folder),
            "glue_table" => Some(PortType::GlueTable),
            "kinesis_stream" => Some(PortType::KinesisStream),
            "msk_topic" => Some(PortType::MskTopic),
            _ => None,
        }
    }

    /// What a port of this type may name, for messages about ARNs it cannot use.
    pub(super) fn takes(self) -> &'static str {
        match self {
            PortType::S3Bucket => "an S3 bucket ARN and optionally a KMS key ARN",
            PortType::S3Folder => "an S3 folder ARN and optionally a KMS key ARN",
            PortType::GlueTable => {
                "a Glue table ARN (and its catalog and database ARNs), an Athena workgroup ARN, \
                 the table's S3 ARN and optionally a KMS key ARN"
            }
            PortType::KinesisStream => "a Kinesis stream ARN and optionally a KMS key ARN",
            PortType::MskTopic => "MSK cluster, topic and consumer group ARNs",
        }
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

//! KMS keys of encrypted output ports (`custom.aws-kms-key-arn`).
//!
//! Reading SSE-KMS objects or an encrypted stream needs `kms:Decrypt` on the key. Granted
//! unconditionally, it would let the consumer decrypt anything else under that key; with
//! `kms:ViaService` it only works when S3, Glue or Kinesis ask KMS on the consumer's behalf,
//! i.e. while reading the data the port grants.

use super::arn::{Arn, Partition};
use super::document::Statement;

/// A KMS key, `arn:aws:kms:region:account:key/<key id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KmsKey {
    partition: Partition,
    region: String,
    arn: String,
}

impl KmsKey {
    /// Only key ARNs: IAM authorises `kms:Decrypt` on the key, so an alias ARN in a policy
    /// grants nothing.
    pub(crate) fn from_arn(arn: &Arn) -> Result<Self, String> {
        if arn.resource().starts_with("alias/") {
            return Err("which is a KMS alias; IAM authorises kms:Decrypt on the key, so use the key ARN (arn:aws:kms:region:account:key/id)".into());
        }
        let valid = arn.resource().strip_prefix("key/").is_some_and(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !valid {
            return Err("which is not a KMS key ARN (arn:aws:kms:region:account:key/id)".into());
        }
        Ok(KmsKey {
            partition: arn.partition(),
            region: arn.region().to_owned(),
            arn: arn.to_string(),
        })
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// `kms:Decrypt` through `services` (e.g. `s3`) in the key's region: a service can only use
    /// a key of its own region, so the endpoint names are `<service>.<key region>.<dns suffix>`.
    pub(crate) fn statement(&self, services: &[&str]) -> Statement {
        Statement::allow("KmsDecrypt", &["kms:Decrypt"], [self.arn.clone()]).with_condition(
            "StringEquals",
            "kms:ViaService",
            services.iter().map(|service| {
                format!("{service}.{}.{}", self.region, self.partition.dns_suffix())
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::PolicyDocument;

    fn key(arn: &str) -> Result<KmsKey, String> {
        KmsKey::from_arn(&Arn::parse(arn).unwrap())
    }

    #[test]
    fn decrypt_only_through_the_named_services() {
        let key =
            key("arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
                .unwrap();
        assert_eq!(
            PolicyDocument::new(vec![key.statement(&["s3"])]).to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"KmsDecrypt","Effect":"Allow","Action":"kms:Decrypt","#,
                r#""Resource":"arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","#,
                r#""Condition":{"StringEquals":{"kms:ViaService":"s3.eu-central-1.amazonaws.com"}}}]}"#
            )
        );
        let json = PolicyDocument::new(vec![key.statement(&["glue", "s3"])]).to_json();
        assert!(json.contains(r#""kms:ViaService":["glue.eu-central-1.amazonaws.com","s3.eu-central-1.amazonaws.com"]"#), "{json}");
    }

    #[test]
    fn service_endpoints_follow_the_partition() {
        let cn = key(
            "arn:aws-cn:kms:cn-northwest-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        let json = PolicyDocument::new(vec![cn.statement(&["kinesis"])]).to_json();
        assert!(
            json.contains(r#""kms:ViaService":"kinesis.cn-northwest-1.amazonaws.com.cn""#),
            "{json}"
        );
        let gov = key("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/k-1").unwrap();
        let json = PolicyDocument::new(vec![gov.statement(&["s3"])]).to_json();
        assert!(
            json.contains(r#""kms:ViaService":"s3.us-gov-west-1.amazonaws.com""#),
            "{json}"
        );
        assert_eq!(gov.region(), "us-gov-west-1");
    }

    #[test]
    fn rejects_aliases_and_other_kms_resources() {
        assert!(
            key("arn:aws:kms:eu-central-1:111122223333:alias/data")
                .unwrap_err()
                .contains("alias")
        );
        for arn in [
            "arn:aws:kms:eu-central-1:111122223333:key/",
            "arn:aws:kms:eu-central-1:111122223333:key/a/b",
            "arn:aws:kms:eu-central-1:111122223333:key/a_b",
            "arn:aws:kms:eu-central-1:111122223333:keys/a",
        ] {
            assert!(key(arn).is_err(), "{arn}");
        }
    }
}

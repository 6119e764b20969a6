//! Strict parsing of Amazon Resource Names taken from DMM.
//!
//! An ARN in a custom field ends up verbatim in the `Resource` of an IAM policy, so anything IAM
//! would interpret — a wildcard, a `${…}` policy variable, whitespace — would widen the grant.
//! The parser therefore accepts a deliberately narrow character set and rejects everything
//! else, instead of trying to escape it.

use std::fmt;
use std::str::FromStr;

use super::account::AccountId;
use crate::text::shown;

/// Longest ARN accepted; IAM itself rejects resource ARNs beyond 2048 characters.
pub const MAX_ARN_LEN: usize = 2048;

/// The AWS partitions the integration can run in.
///
/// Every ARN in a policy must name the partition the policy lives in; a policy in `aws` that
/// names an `aws-cn` bucket is accepted by IAM but grants nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
}

impl Partition {
    pub fn as_str(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }

    /// The partition of a region such as `eu-central-1`, so that ARNs the integration builds
    /// itself (from an `s3://` location) land in the partition it is deployed to.
    ///
    /// ISO partitions are refused: their service endpoints and condition values are not
    /// covered by the catalogue.
    pub fn from_region(region: &str) -> Result<Self, ArnError> {
        if !is_region_shaped(region) {
            return Err(ArnError::InvalidRegion(shown(region)));
        }
        if region.starts_with("cn-") {
            Ok(Partition::AwsCn)
        } else if region.starts_with("us-gov-") {
            Ok(Partition::AwsUsGov)
        } else if region
            .split('-')
            .nth(1)
            .is_some_and(|s| s.starts_with("iso"))
        {
            Err(ArnError::UnsupportedRegion(region.to_owned()))
        } else {
            Ok(Partition::Aws)
        }
    }

    /// The DNS suffix of service endpoints, which `kms:ViaService` values end with.
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
            Partition::AwsCn => "amazonaws.com.cn",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "aws" => Some(Partition::Aws),
            "aws-cn" => Some(Partition::AwsCn),
            "aws-us-gov" => Some(Partition::AwsUsGov),
            _ => None,
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not an acceptable ARN. Used as the `reason` of
/// [`PolicyError::InvalidArn`](super::PolicyError::InvalidArn); values inside are already
/// shortened for display.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("it is empty")]
    Empty,
    #[error("it is {0} characters long; at most {MAX_ARN_LEN} are accepted")]
    TooLong(usize),
    #[error(
        "it contains the wildcard `{0}`; only the integration itself adds wildcards to a policy"
    )]
    Wildcard(char),
    #[error("it contains `{0}`, which is not allowed in an ARN here")]
    ForbiddenChar(String),
    #[error("it does not start with `arn:`")]
    NotAnArn,
    #[error("it has {0} of the 6 parts arn:partition:service:region:account:resource")]
    MissingParts(usize),
    #[error("partition `{0}` is not one of aws, aws-cn, aws-us-gov")]
    UnknownPartition(String),
    #[error("`{0}` is not an AWS service name")]
    InvalidService(String),
    #[error("`{0}` is not an AWS region")]
    InvalidRegion(String),
    #[error("region `{0}` is in an ISO partition, which the integration does not support")]
    UnsupportedRegion(String),
    #[error("region `{region}` belongs to partition {actual}, not {partition}")]
    RegionOutsidePartition {
        region: String,
        partition: Partition,
        actual: Partition,
    },
    #[error("{0} ARNs need a region")]
    MissingRegion(String),
    #[error("{0} ARNs have no region")]
    UnexpectedRegion(String),
    #[error("{0} ARNs need a 12-digit account id")]
    MissingAccount(String),
    #[error("`{0}` is not a 12-digit AWS account id")]
    InvalidAccount(String),
    #[error("the resource part is empty")]
    EmptyResource,
}

/// A syntactically valid ARN whose every character is safe to put into a policy.
///
/// Only the structure common to all services is checked here, plus the region/account rules of
/// the services the catalogue uses; what a resource part must look like is decided by the port
/// type that uses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    partition: Partition,
    service: String,
    region: String,
    account: String,
    resource: String,
}

/// Which of region and account a service's ARNs carry.
enum Scope {
    /// Global services with per-account resources (`arn:aws:iam::123456789012:role/x`).
    Account,
    /// Regional services (`arn:aws:kinesis:eu-central-1:123456789012:stream/x`).
    Regional,
    /// Services the catalogue does not know; only the syntax of each part is checked.
    Unknown,
}

fn scope(service: &str) -> Scope {
    match service {
        "iam" | "sts" => Scope::Account,
        "athena" | "glue" | "kafka" | "kinesis" | "kms" => Scope::Regional,
        _ => Scope::Unknown,
    }
}

/// Characters an ARN may contain besides ASCII letters and digits. Deliberately excludes `*` and
/// `?` (IAM wildcards), `$` (policy variables), whitespace, quotes and backslashes.
const ARN_PUNCTUATION: &str = "-_.:/+=,@!'()";

impl Arn {
    pub fn parse(input: &str) -> Result<Self, ArnError> {
        if input.is_empty() {
            return Err(ArnError::Empty);
        }
        let length = input.chars().count();
        if length > MAX_ARN_LEN {
            return Err(ArnError::TooLong(length));
        }
        for c in input.chars() {
            if c == '*' || c == '?' {
                return Err(ArnError::Wildcard(c));
            }
            if !(c.is_ascii_alphanumeric() || ARN_PUNCTUATION.contains(c)) {
                return Err(ArnError::ForbiddenChar(c.escape_default().to_string()));
            }
        }
        let parts: Vec<&str> = input.splitn(6, ':').collect();
        if parts[0] != "arn" {
            return Err(ArnError::NotAnArn);
        }
        let [_, partition, service, region, account, resource] = parts[..] else {
            return Err(ArnError::MissingParts(parts.len()));
        };
        let partition = Partition::parse(partition)
            .ok_or_else(|| ArnError::UnknownPartition(shown(partition)))?;
        if service.is_empty()
            || service.len() > 64
            || !service
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ArnError::InvalidService(shown(service)));
        }
        if !region.is_empty() {
            let actual = Partition::from_region(region)?;
            if actual != partition {
                return Err(ArnError::RegionOutsidePartition {
                    region: region.to_owned(),
                    partition,
                    actual,
                });
            }
        }
        if !account.is_empty() && AccountId::parse(account).is_none() {
            return Err(ArnError::InvalidAccount(shown(account)));
        }
        match scope(service) {
            Scope::Account => {
                if !region.is_empty() {
                    return Err(ArnError::UnexpectedRegion(service.to_owned()));
                }
                if account.is_empty() {
                    return Err(ArnError::MissingAccount(service.to_owned()));
                }
            }
            Scope::Regional => {
                if region.is_empty() {
                    return Err(ArnError::MissingRegion(service.to_owned()));
                }
                if account.is_empty() {
                    return Err(ArnError::MissingAccount(service.to_owned()));
                }
            }
            Scope::Unknown => {}
        }
        if resource.is_empty() {
            return Err(ArnError::EmptyResource);
        }
        Ok(Arn {
            partition,
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource: resource.to_owned(),
        })
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Empty for services without regions (S3, IAM).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Empty for S3 bucket and object ARNs.
    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }
}

impl FromStr for Arn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arn::parse(s)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// `eu-central-1`, `us-gov-west-1`, `ap-southeast-5`: two letters, one or more lowercase words,
/// and a number.
fn is_region_shaped(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && region.len() <= 32
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Arn, ArnError> {
        Arn::parse(s)
    }

    #[test]
    fn parses_the_arns_the_catalogue_uses() {
        let arn = parse("arn:aws:kinesis:eu-central-1:123456789012:stream/orders").unwrap();
        assert_eq!(arn.partition(), Partition::Aws);
        assert_eq!(arn.service(), "kinesis");
        assert_eq!(arn.region(), "eu-central-1");
        assert_eq!(arn.account(), "123456789012");
        assert_eq!(arn.resource(), "stream/orders");

        let arn = parse("arn:aws:s3:::my-bucket/some/folder").unwrap();
        assert_eq!((arn.region(), arn.account()), ("", ""));
        assert_eq!(arn.resource(), "my-bucket/some/folder");

        let arn = parse("arn:aws-cn:iam::123456789012:role/team/consumer").unwrap();
        assert_eq!(arn.partition(), Partition::AwsCn);
        assert_eq!(arn.resource(), "role/team/consumer");

        let arn = parse("arn:aws-us-gov:glue:us-gov-west-1:123456789012:table/db/t").unwrap();
        assert_eq!(arn.partition(), Partition::AwsUsGov);
    }

    #[test]
    fn resource_may_contain_colons() {
        let arn =
            parse("arn:aws:kinesis:eu-west-1:123456789012:stream/s/consumer/c:1700000000").unwrap();
        assert_eq!(arn.resource(), "stream/s/consumer/c:1700000000");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "arn:aws:s3:::bucket",
            "arn:aws:s3:::bucket/a/b=1/c",
            "arn:aws:kafka:us-east-1:123456789012:topic/c/0a1b-2/t.x",
            "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
            "arn:aws:iam::123456789012:role/a/b/c",
        ] {
            assert_eq!(parse(s).unwrap().to_string(), s);
            assert_eq!(s.parse::<Arn>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_wildcards_anywhere() {
        for s in [
            "arn:aws:s3:::bucket/*",
            "arn:aws:s3:::buck?t",
            "arn:aws:*:eu-west-1:123456789012:stream/x",
            "arn:*:s3:::bucket",
            "arn:aws:kinesis:eu-west-1:*:stream/x",
            "*",
        ] {
            assert!(matches!(parse(s), Err(ArnError::Wildcard(_))), "{s}");
        }
    }

    #[test]
    fn rejects_policy_variables_whitespace_control_and_unicode() {
        for s in [
            "arn:aws:s3:::bucket/${aws:username}",
            "arn:aws:s3:::bucket ",
            " arn:aws:s3:::bucket",
            "arn:aws:s3:::bu\tcket",
            "arn:aws:s3:::bucket\n",
            "arn:aws:s3:::bucket\u{0}",
            "arn:aws:s3:::bücket",
            "arn:aws:s3:::bucket\u{202e}",
            "arn:aws:s3:::bucket\"",
            "arn:aws:s3:::bucket\\x",
        ] {
            assert!(matches!(parse(s), Err(ArnError::ForbiddenChar(_))), "{s:?}");
        }
    }

    #[test]
    fn rejects_structural_errors() {
        assert_eq!(parse(""), Err(ArnError::Empty));
        assert_eq!(parse("bucket"), Err(ArnError::NotAnArn));
        assert_eq!(parse("ARN:aws:s3:::b"), Err(ArnError::NotAnArn));
        assert_eq!(parse("arn:aws:s3"), Err(ArnError::MissingParts(3)));
        assert_eq!(parse("arn:aws:s3::"), Err(ArnError::MissingParts(5)));
        assert_eq!(parse("arn:aws:s3:::"), Err(ArnError::EmptyResource));
        assert_eq!(
            parse("arn::s3:::b"),
            Err(ArnError::UnknownPartition(String::new()))
        );
        assert_eq!(
            parse("arn:aws-iso:s3:::b"),
            Err(ArnError::UnknownPartition("aws-iso".into()))
        );
        assert_eq!(
            parse("arn:aws::::b"),
            Err(ArnError::InvalidService(String::new()))
        );
        assert_eq!(
            parse("arn:aws:S3:::b"),
            Err(ArnError::InvalidService("S3".into()))
        );
    }

    #[test]
    fn checks_region_and_account_per_service() {
        assert_eq!(
            parse("arn:aws:kinesis::123456789012:stream/x"),
            Err(ArnError::MissingRegion("kinesis".into()))
        );
        assert_eq!(
            parse("arn:aws:kinesis:eu-west-1::stream/x"),
            Err(ArnError::MissingAccount("kinesis".into()))
        );
        assert_eq!(
            parse("arn:aws:iam:eu-west-1:123456789012:role/x"),
            Err(ArnError::UnexpectedRegion("iam".into()))
        );
        assert_eq!(
            parse("arn:aws:iam:::role/x"),
            Err(ArnError::MissingAccount("iam".into()))
        );
        for account in ["12345678901", "1234567890123", "12345678901a", "aws"] {
            assert_eq!(
                parse(&format!("arn:aws:glue:eu-west-1:{account}:catalog")),
                Err(ArnError::InvalidAccount(account.into()))
            );
        }
        assert_eq!(
            parse("arn:aws:glue:eu-west-1a:123456789012:catalog"),
            Err(ArnError::InvalidRegion("eu-west-1a".into()))
        );
        assert_eq!(
            parse("arn:aws:glue:EU-west-1:123456789012:catalog"),
            Err(ArnError::InvalidRegion("EU-west-1".into()))
        );
    }

    #[test]
    fn region_must_belong_to_the_partition() {
        assert_eq!(
            parse("arn:aws:kinesis:cn-north-1:123456789012:stream/x"),
            Err(ArnError::RegionOutsidePartition {
                region: "cn-north-1".into(),
                partition: Partition::Aws,
                actual: Partition::AwsCn
            })
        );
        assert!(matches!(
            parse("arn:aws-us-gov:kinesis:us-east-1:123456789012:stream/x"),
            Err(ArnError::RegionOutsidePartition { .. })
        ));
    }

    #[test]
    fn rejects_overlong_input_before_looking_at_it() {
        let long = format!("arn:aws:s3:::{}", "a".repeat(10 * 1024));
        assert_eq!(parse(&long), Err(ArnError::TooLong(long.len())));
        let exactly = format!("arn:aws:s3:::{}", "a".repeat(MAX_ARN_LEN - 13));
        assert!(parse(&exactly).is_ok());
    }

    #[test]
    fn partition_from_region() {
        assert_eq!(Partition::from_region("eu-central-1"), Ok(Partition::Aws));
        assert_eq!(Partition::from_region("us-east-1"), Ok(Partition::Aws));
        assert_eq!(Partition::from_region("ap-southeast-5"), Ok(Partition::Aws));
        assert_eq!(
            Partition::from_region("cn-northwest-1"),
            Ok(Partition::AwsCn)
        );
        assert_eq!(
            Partition::from_region("us-gov-west-1"),
            Ok(Partition::AwsUsGov)
        );
        assert_eq!(
            Partition::from_region("us-iso-east-1"),
            Err(ArnError::UnsupportedRegion("us-iso-east-1".into()))
        );
        assert_eq!(
            Partition::from_region("eu-isoe-west-1"),
            Err(ArnError::UnsupportedRegion("eu-isoe-west-1".into()))
        );
        for bad in [
            "",
            "eu",
            "eu-central",
            "eu-central-",
            "europe-central-1",
            "eu--1",
            "eu-central-123",
            "eu_central_1",
        ] {
            assert!(
                matches!(Partition::from_region(bad), Err(ArnError::InvalidRegion(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn dns_suffix_per_partition() {
        assert_eq!(Partition::Aws.dns_suffix(), "amazonaws.com");
        assert_eq!(Partition::AwsUsGov.dns_suffix(), "amazonaws.com");
        assert_eq!(Partition::AwsCn.dns_suffix(), "amazonaws.com.cn");
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(input in any::<String>()) {
            let _ = Arn::parse(&input);
        }

        #[test]
        fn never_panics_on_arn_like_input(input in "arn(:[a-z0-9*?$ /-]{0,12}){0,7}") {
            let _ = Arn::parse(&input);
        }

        #[test]
        fn accepted_arns_round_trip_and_are_safe(input in "arn:aws(-cn)?:[a-z0-9]{1,8}:(|eu-west-1|cn-north-1):(|[0-9]{12}):[ -~]{1,40}") {
            if let Ok(arn) = Arn::parse(&input) {
                prop_assert_eq!(arn.to_string(), input.clone());
                prop_assert!(!input.contains(['*', '?', '$', ' ']));
            }
        }
    }
}

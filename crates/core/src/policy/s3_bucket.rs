//! `s3_bucket` ports: read access to a whole bucket.

use super::arn::Partition;
use super::document::Statement;

/// A general purpose S3 bucket whose name follows the current naming rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Bucket {
    partition: Partition,
    name: String,
}

impl S3Bucket {
    /// Validates the name, so that a typo or an injected pattern is reported instead of being
    /// written into a policy that would match nothing (or too much).
    pub(crate) fn new(partition: Partition, name: &str) -> Result<Self, String> {
        match bucket_name_problem(name) {
            None => Ok(S3Bucket {
                partition,
                name: name.to_owned(),
            }),
            Some(problem) => Err(format!(
                "`{}` is not a valid S3 bucket name: {problem}",
                crate::text::shown(name)
            )),
        }
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn arn(&self) -> String {
        format!("arn:{}:s3:::{}", self.partition, self.name)
    }

    /// Listing and locating the bucket, reading every object in it.
    pub(crate) fn statements(&self) -> Vec<Statement> {
        vec![
            Statement::allow(
                "S3ListBucket",
                &["s3:GetBucketLocation", "s3:ListBucket"],
                [self.arn()],
            ),
            Statement::allow(
                "S3ReadObjects",
                &["s3:GetObject"],
                [format!("{}/*", self.arn())],
            ),
        ]
    }
}

/// Suffixes S3 reserves for access point aliases, directory buckets and table buckets, whose
/// ARNs and permissions differ from general purpose buckets.
const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];

/// The first naming rule `name` breaks, per the S3 documentation for general purpose buckets.
pub(crate) fn bucket_name_problem(name: &str) -> Option<&'static str> {
    if name.len() < 3 || name.len() > 63 {
        return Some("it must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Some("only lowercase letters, digits, `.` and `-` are allowed");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some("it must begin and end with a letter or digit");
    }
    if name.contains("..") {
        return Some("it must not contain two adjacent periods");
    }
    if name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some("it must not be formatted as an IP address");
    }
    if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
    {
        return Some("it uses a prefix or suffix S3 reserves for other kinds of buckets");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::PolicyDocument;

    #[test]
    fn policy_for_a_bucket() {
        let bucket = S3Bucket::new(Partition::Aws, "sales-data").unwrap();
        assert_eq!(
            PolicyDocument::new(bucket.statements()).to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"S3ListBucket","Effect":"Allow","Action":["s3:GetBucketLocation","s3:ListBucket"],"Resource":"arn:aws:s3:::sales-data"},"#,
                r#"{"Sid":"S3ReadObjects","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::sales-data/*"}]}"#
            )
        );
    }

    #[test]
    fn arn_follows_the_partition() {
        assert_eq!(
            S3Bucket::new(Partition::AwsCn, "b-1").unwrap().arn(),
            "arn:aws-cn:s3:::b-1"
        );
        assert_eq!(
            S3Bucket::new(Partition::AwsUsGov, "b-1").unwrap().arn(),
            "arn:aws-us-gov:s3:::b-1"
        );
    }

    #[test]
    fn accepts_valid_names() {
        for name in ["abc", "my.bucket-1", "a1b", "0-0", &"a".repeat(63)] {
            assert_eq!(bucket_name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for name in [
            "",
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "my bucket",
            "-bucket",
            "bucket-",
            ".bucket",
            "bucket.",
            "my..bucket",
            "192.168.5.4",
            "xn--bucket",
            "sthree-bucket",
            "amzn-s3-demo-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "bucket.mrap",
            "bucket--usw2-az1--x-s3",
            "bucket--table-s3",
            "bück",
        ] {
            assert!(bucket_name_problem(name).is_some(), "{name}");
        }
        assert_eq!(
            S3Bucket::new(Partition::Aws, "My_Bucket").unwrap_err(),
            "`My_Bucket` is not a valid S3 bucket name: only lowercase letters, digits, `.` and `-` are allowed"
        );
    }
}

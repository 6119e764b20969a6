//! `s3_folder` ports: read access to one folder (key prefix) of a bucket, and nothing outside it.
//!
//! Also home of [`S3Location`], the S3 side of a port however it was written (an S3 ARN in a
//! custom field or an `s3://` URL in `server.location`), which Glue tables reuse for their data.

use super::arn::{Arn, MAX_ARN_LEN, Partition};
use super::document::Statement;
use super::s3_bucket::S3Bucket;
use crate::text::shown;

/// A folder: a bucket and a key prefix of one or more `/`-separated segments, stored without
/// leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Folder {
    bucket: S3Bucket,
    path: String,
}

/// Characters a folder segment may contain besides ASCII letters and digits: S3's "safe"
/// characters plus `=` (Hive-style partitions such as `dt=2024-01-01`) and a few others that are
/// inert in IAM. Never `*`, `?` or `$`, which IAM would interpret in a resource or `StringLike`.
const SEGMENT_PUNCTUATION: &str = "-_.:+=,@!'()";

impl S3Folder {
    /// `path` may end with one `/` (`sales/2024/` and `sales/2024` are the same folder). Empty,
    /// `.` and `..` segments are refused: S3 would take them literally, but every reader would
    /// take them as navigation, so the grant would not be what the provider meant.
    pub(crate) fn new(bucket: S3Bucket, path: &str) -> Result<Self, String> {
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        if trimmed.is_empty() {
            return Err("the folder part after the bucket name is empty".into());
        }
        for segment in trimmed.split('/') {
            if segment.is_empty() {
                return Err(format!(
                    "folder `{}` has an empty segment (`//` or a leading `/`)",
                    shown(path)
                ));
            }
            if segment == "." || segment == ".." {
                return Err(format!(
                    "folder `{}` has a `{segment}` segment",
                    shown(path)
                ));
            }
            if let Some(c) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || SEGMENT_PUNCTUATION.contains(*c)))
            {
                return Err(format!(
                    "folder `{}` contains `{}`; folders may use letters, digits and {SEGMENT_PUNCTUATION}",
                    shown(path),
                    c.escape_default()
                ));
            }
        }
        Ok(S3Folder {
            bucket,
            path: trimmed.to_owned(),
        })
    }

    pub fn bucket(&self) -> &S3Bucket {
        &self.bucket
    }

    /// The key prefix without trailing `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn arn(&self) -> String {
        format!("{}/{}", self.bucket.arn(), self.path)
    }

    /// Locating the bucket, listing inside the folder, reading objects below it.
    ///
    /// Listing is limited with `s3:prefix` to `<folder>/` and `<folder>/*` (the `/`-terminated
    /// form is what consoles and Athena send for "the folder itself"). The bare `<folder>` is
    /// deliberately not allowed: listing with prefix `sales` also returns `sales-private/` and
    /// `sales.csv`, which are outside the folder. A list request without a prefix has no
    /// `s3:prefix` key, so `StringLike` fails and it is denied.
    pub(crate) fn statements(&self) -> Vec<Statement> {
        let bucket = self.bucket.arn();
        vec![
            Statement::allow(
                "S3BucketLocation",
                &["s3:GetBucketLocation"],
                [bucket.clone()],
            ),
            Statement::allow("S3ListFolder", &["s3:ListBucket"], [bucket]).with_condition(
                "StringLike",
                "s3:prefix",
                [format!("{}/", self.path), format!("{}/*", self.path)],
            ),
            Statement::allow(
                "S3ReadFolder",
                &["s3:GetObject"],
                [format!("{}/*", self.arn())],
            ),
        ]
    }
}

/// Where a port's S3 data lives: a whole bucket or one folder of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum S3Location {
    Bucket(S3Bucket),
    Folder(S3Folder),
}

impl S3Location {
    /// From an S3 ARN: `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/folder`.
    pub(crate) fn from_arn(arn: &Arn) -> Result<Self, String> {
        if !arn.region().is_empty() || !arn.account().is_empty() {
            return Err(
                "which is not an S3 bucket or folder ARN: those have no region or account (arn:aws:s3:::bucket/folder)"
                    .into(),
            );
        }
        match arn.resource().split_once('/') {
            None => S3Bucket::new(arn.partition(), arn.resource()).map(S3Location::Bucket),
            Some((bucket, path)) => {
                let bucket = S3Bucket::new(arn.partition(), bucket)?;
                S3Folder::new(bucket, path).map(S3Location::Folder)
            }
        }
    }

    /// From `server.location`: `s3://bucket`, `s3://bucket/` or `s3://bucket/folder[/]`.
    /// The URL carries no partition, so the integration's own is used.
    ///
    /// Globs such as `s3://bucket/folder/*.json` (common in data contracts) are refused rather
    /// than widened to the folder: granting more than the provider wrote must be a decision
    /// made in DMM, by setting a folder.
    pub(crate) fn from_url(url: &str, partition: Partition) -> Result<Self, String> {
        if url.chars().count() > MAX_ARN_LEN {
            return Err(format!("it is longer than {MAX_ARN_LEN} characters"));
        }
        let rest = url
            .strip_prefix("s3://")
            .ok_or("it does not start with s3://")?;
        if rest.contains(['*', '?']) {
            return Err(
                "it contains a wildcard; name the folder itself, e.g. s3://bucket/folder/".into(),
            );
        }
        match rest.split_once('/') {
            None | Some((_, "")) => {
                let bucket = rest.strip_suffix('/').unwrap_or(rest);
                S3Bucket::new(partition, bucket).map(S3Location::Bucket)
            }
            Some((bucket, path)) => {
                let bucket = S3Bucket::new(partition, bucket)?;
                S3Folder::new(bucket, path).map(S3Location::Folder)
            }
        }
    }

    pub fn bucket(&self) -> &S3Bucket {
        match self {
            S3Location::Bucket(bucket) => bucket,
            S3Location::Folder(folder) => folder.bucket(),
        }
    }

    pub(crate) fn statements(&self) -> Vec<Statement> {
        match self {
            S3Location::Bucket(bucket) => bucket.statements(),
            S3Location::Folder(folder) => folder.statements(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::PolicyDocument;

    fn folder(partition: Partition, bucket: &str, path: &str) -> Result<S3Folder, String> {
        S3Folder::new(S3Bucket::new(partition, bucket).unwrap(), path)
    }

    #[test]
    fn policy_for_a_folder() {
        let folder = folder(Partition::Aws, "sales-data", "orders/v1").unwrap();
        assert_eq!(
            PolicyDocument::new(folder.statements()).to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"S3BucketLocation","Effect":"Allow","Action":"s3:GetBucketLocation","Resource":"arn:aws:s3:::sales-data"},"#,
                r#"{"Sid":"S3ListFolder","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::sales-data","#,
                r#""Condition":{"StringLike":{"s3:prefix":["orders/v1/","orders/v1/*"]}}},"#,
                r#"{"Sid":"S3ReadFolder","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::sales-data/orders/v1/*"}]}"#
            )
        );
    }

    #[test]
    fn policy_follows_the_partition() {
        let json = PolicyDocument::new(
            folder(Partition::AwsUsGov, "b-1", "f")
                .unwrap()
                .statements(),
        )
        .to_json();
        assert!(
            json.contains(r#""Resource":"arn:aws-us-gov:s3:::b-1/f/*""#),
            "{json}"
        );
        assert!(!json.contains("arn:aws:"), "{json}");
    }

    #[test]
    fn a_trailing_slash_names_the_same_folder() {
        assert_eq!(
            folder(Partition::Aws, "b-1", "a/b/").unwrap(),
            folder(Partition::Aws, "b-1", "a/b").unwrap()
        );
        assert_eq!(folder(Partition::Aws, "b-1", "a/b/").unwrap().path(), "a/b");
    }

    #[test]
    fn accepts_hive_partitions_and_safe_punctuation() {
        for path in ["dt=2024-01-01", "a/b_c/d.e", "x(1)/y!z", "k:v/a+b,c@d'e"] {
            assert!(folder(Partition::Aws, "b-1", path).is_ok(), "{path}");
        }
    }

    #[test]
    fn rejects_unsafe_folders() {
        for path in [
            "", "/", "//", "/a", "a//b", "a/../b", "..", "a/.", "./a", "a b", "a\tb", "ä",
            "a/${x}", "a\\b", "a\"b", "a#b",
        ] {
            assert!(folder(Partition::Aws, "b-1", path).is_err(), "{path:?}");
        }
    }

    #[test]
    fn location_from_arn() {
        let bucket = Arn::parse("arn:aws:s3:::b-1").unwrap();
        assert_eq!(
            S3Location::from_arn(&bucket).unwrap(),
            S3Location::Bucket(S3Bucket::new(Partition::Aws, "b-1").unwrap())
        );
        let folder_arn = Arn::parse("arn:aws-cn:s3:::b-1/x/y/").unwrap();
        assert_eq!(
            S3Location::from_arn(&folder_arn).unwrap(),
            S3Location::Folder(folder(Partition::AwsCn, "b-1", "x/y").unwrap())
        );
        for bad in [
            "arn:aws:s3:::b-1/",
            "arn:aws:s3:::b-1//x",
            "arn:aws:s3:::b-1/x/../y",
            "arn:aws:s3:::B-1",
            "arn:aws:s3:eu-west-1:123456789012:accesspoint/x",
            "arn:aws:s3:::a",
        ] {
            assert!(
                S3Location::from_arn(&Arn::parse(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn location_from_url() {
        let bucket = S3Location::Bucket(S3Bucket::new(Partition::AwsCn, "b-1").unwrap());
        assert_eq!(
            S3Location::from_url("s3://b-1", Partition::AwsCn).unwrap(),
            bucket
        );
        assert_eq!(
            S3Location::from_url("s3://b-1/", Partition::AwsCn).unwrap(),
            bucket
        );
        assert_eq!(
            S3Location::from_url("s3://b-1/p/q/", Partition::Aws).unwrap(),
            S3Location::Folder(folder(Partition::Aws, "b-1", "p/q").unwrap())
        );
        for bad in [
            "s3://",
            "s3:///x",
            "s3://b-1//",
            "s3://b-1/x//y",
            "s3://b-1/../x",
            "s3://b-1/x/*.json",
            "s3://b-1/x/?",
            "s3a://b-1/x",
            "https://b-1.s3.amazonaws.com/x",
            "S3://b-1",
            "s3://b_1/x",
        ] {
            assert!(S3Location::from_url(bad, Partition::Aws).is_err(), "{bad}");
        }
        assert_eq!(
            S3Location::from_url("s3://b-1/x/*.json", Partition::Aws).unwrap_err(),
            "it contains a wildcard; name the folder itself, e.g. s3://bucket/folder/"
        );
        let huge = format!("s3://b-1/{}", "a".repeat(10 * 1024));
        assert!(
            S3Location::from_url(&huge, Partition::Aws)
                .unwrap_err()
                .contains("longer than")
        );
    }
}

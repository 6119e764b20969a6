//! `glue_table` ports: a Glue Data Catalog table queried with Athena.
//!
//! A query needs three things at once: running it in an Athena workgroup, reading the table's
//! definition (which IAM checks on the catalog, the database and the table), and reading the
//! table's data in S3. The reference integration granted only `athena:StartQueryExecution` and
//! `glue:GetTable`, with which no query can finish.
//!
//! On a lake governed by Lake Formation (ADR 022) the data is not granted in IAM: Lake
//! Formation holds the table permissions and vends S3 credentials to Athena, so IAM keeps only
//! the query, the table definition and `lakeformation:GetDataAccess`.

use super::arn::{Arn, Partition};
use super::document::Statement;
use super::s3_folder::S3Location;

/// A Glue table, identified by its ARN `arn:aws:glue:region:account:table/database/table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GlueTableRef {
    partition: Partition,
    region: String,
    account: String,
    database: String,
    table: String,
}

/// An Athena workgroup, `arn:aws:athena:region:account:workgroup/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AthenaWorkgroup {
    arn: String,
    region: String,
}

/// The Glue resources a `glue_table` port may name: the table itself, and optionally the
/// catalog and database ARNs the reference integration's README asks for, which must then agree
/// with the table (the catalogue derives them from the table either way).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum GlueResource {
    Catalog {
        region: String,
        account: String,
    },
    Database {
        region: String,
        account: String,
        database: String,
    },
    Table(GlueTableRef),
}

/// A table ready to be granted: table, workgroup and how its data is read, checked against each
/// other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GlueTable {
    table: GlueTableRef,
    workgroup: AthenaWorkgroup,
    data: TableData,
}

/// Where a consumer's permission to read the table's data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TableData {
    /// The consumer's IAM policy, on the table's S3 location.
    Iam(S3Location),
    /// Lake Formation, which vends credentials for the location it has registered; a location
    /// named on the port is not granted, and not needed.
    LakeFormation,
}

/// Custom field of a `glue_table` output port choosing how its table is granted (`iam` or
/// `lake-formation`); without it the deployment's `glue_access_mode` decides.
pub const GLUE_ACCESS_FIELD: &str = "aws-glue-access-mode";

/// Who enforces read access to a Glue table's data (ADR 022).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum GlueAccess {
    /// IAM alone: the consumer role is granted the table's data in S3.
    #[default]
    Iam,
    /// Lake Formation: `SELECT` and `DESCRIBE` are granted in Lake Formation, which vends the
    /// data's credentials; the table's `IAMAllowedPrincipals` grant has been removed, so an IAM
    /// grant alone would give the consumer nothing.
    LakeFormation,
}

impl GlueAccess {
    /// `iam` or `lake-formation` (`lake_formation` is accepted too: Terraform spells it so).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "iam" => Some(Self::Iam),
            "lake-formation" | "lake_formation" => Some(Self::LakeFormation),
            _ => None,
        }
    }
}

impl std::str::FromStr for GlueAccess {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Self::parse(value).ok_or_else(|| "expected `iam` or `lake_formation`".to_owned())
    }
}

impl GlueResource {
    pub(crate) fn from_arn(arn: &Arn) -> Result<Self, String> {
        let (region, account) = (arn.region().to_owned(), arn.account().to_owned());
        let parts: Vec<&str> = arn.resource().split('/').collect();
        match parts[..] {
            ["catalog"] => Ok(GlueResource::Catalog { region, account }),
            ["database", database] => Ok(GlueResource::Database {
                region,
                account,
                database: glue_name(database, "database")?.to_owned(),
            }),
            ["table", database, table] => Ok(GlueResource::Table(GlueTableRef {
                partition: arn.partition(),
                region,
                account,
                database: glue_name(database, "database")?.to_owned(),
                table: glue_name(table, "table")?.to_owned(),
            })),
            _ => Err(
                "which is not a Glue catalog, database or table ARN (…:catalog, …:database/db, …:table/db/table)"
                    .into(),
            ),
        }
    }

    /// Why this catalog or database ARN does not belong to `table`, if it does not. (A second
    /// table ARN is a duplicate, which the port resolver reports itself.)
    pub(crate) fn mismatch(&self, table: &GlueTableRef) -> Option<String> {
        match self {
            GlueResource::Catalog { region, account }
            | GlueResource::Database {
                region, account, ..
            } if (region, account) != (&table.region, &table.account) => Some(format!(
                "is in {region}/{account}, but the Glue table is in {}/{}",
                table.region, table.account
            )),
            GlueResource::Database { database, .. } if *database != table.database => {
                Some(format!(
                    "names database `{database}`, but the Glue table is in database `{}`",
                    table.database
                ))
            }
            _ => None,
        }
    }
}

impl AthenaWorkgroup {
    pub(crate) fn from_arn(arn: &Arn) -> Result<Self, String> {
        let valid = arn
            .resource()
            .strip_prefix("workgroup/")
            .is_some_and(|name| {
                !name.is_empty()
                    && name.len() <= 128
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if valid {
            Ok(AthenaWorkgroup {
                arn: arn.to_string(),
                region: arn.region().to_owned(),
            })
        } else {
            Err("which is not an Athena workgroup ARN (arn:aws:athena:region:account:workgroup/name)".into())
        }
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }
}

impl GlueTableRef {
    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn prefix(&self) -> String {
        format!(
            "arn:{}:glue:{}:{}",
            self.partition, self.region, self.account
        )
    }

    /// The three resources IAM checks for reading a table's metadata: catalog, database, table.
    fn arns(&self) -> [String; 3] {
        let prefix = self.prefix();
        [
            format!("{prefix}:catalog"),
            format!("{prefix}:database/{}", self.database),
            format!("{prefix}:table/{}/{}", self.database, self.table),
        ]
    }
}

impl GlueTable {
    /// Athena queries only the Data Catalog of its own region, so a workgroup elsewhere could
    /// never read the table.
    pub(crate) fn new(
        table: GlueTableRef,
        workgroup: AthenaWorkgroup,
        access: GlueAccess,
        location: Option<S3Location>,
    ) -> Result<Self, String> {
        if workgroup.region != table.region {
            return Err(format!(
                "the Athena workgroup is in region {}, but the Glue table is in {}; Athena reads the catalog of its own region",
                workgroup.region, table.region
            ));
        }
        let data = match (access, location) {
            (GlueAccess::Iam, Some(location)) => TableData::Iam(location),
            (GlueAccess::Iam, None) => {
                return Err("a table granted with IAM needs its S3 location".into());
            }
            (GlueAccess::LakeFormation, _) => TableData::LakeFormation,
        };
        Ok(GlueTable {
            table,
            workgroup,
            data,
        })
    }

    pub fn table(&self) -> &GlueTableRef {
        &self.table
    }

    pub fn workgroup(&self) -> &AthenaWorkgroup {
        &self.workgroup
    }

    /// The S3 location the grant reads: only a table granted with IAM has one.
    pub fn location(&self) -> Option<&S3Location> {
        match &self.data {
            TableData::Iam(location) => Some(location),
            TableData::LakeFormation => None,
        }
    }

    pub fn access(&self) -> GlueAccess {
        match self.data {
            TableData::Iam(_) => GlueAccess::Iam,
            TableData::LakeFormation => GlueAccess::LakeFormation,
        }
    }

    /// Running and reading queries in the workgroup, reading the table definition and its
    /// partitions, and reading the data: as for an `s3_folder` (or `s3_bucket`) port, or, under
    /// Lake Formation, by asking Lake Formation for the data's credentials (an action without
    /// resource-level permissions: Lake Formation decides which data, per its own grants).
    pub(crate) fn statements(&self) -> Vec<Statement> {
        let mut statements = vec![
            Statement::allow(
                "AthenaQuery",
                &[
                    "athena:GetQueryExecution",
                    "athena:GetQueryResults",
                    "athena:GetWorkGroup",
                    "athena:StartQueryExecution",
                    "athena:StopQueryExecution",
                ],
                [self.workgroup.arn.clone()],
            ),
            Statement::allow(
                "GlueReadTable",
                &[
                    "glue:BatchGetPartition",
                    "glue:GetDatabase",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:GetTable",
                ],
                self.table.arns(),
            ),
        ];
        match &self.data {
            TableData::Iam(location) => statements.extend(location.statements()),
            TableData::LakeFormation => statements.push(Statement::allow(
                "LakeFormationDataAccess",
                &["lakeformation:GetDataAccess"],
                ["*".to_owned()],
            )),
        }
        statements
    }
}

/// Glue stores database and table names in lowercase; an ARN with other characters would name a
/// table that cannot exist, and the grant would silently match nothing.
fn glue_name<'a>(name: &'a str, what: &str) -> Result<&'a str, String> {
    if !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Ok(name)
    } else {
        Err(format!(
            "whose {what} name `{}` is not a Glue name (lowercase letters, digits, `_` and `-`)",
            crate::text::shown(name)
        ))
    }
}

/// The policy of the table `sales/orders` in account 111122223333 (eu-central-1, workgroup
/// `primary`, data in `s3://sales-data/orders/`), as the tests here and of `port.rs` expect it.
#[cfg(test)]
pub(super) const SALES_ORDERS_POLICY: &str = concat!(
    r#"{"Version":"2012-10-17","Statement":["#,
    r#"{"Sid":"AthenaQuery","Effect":"Allow","Action":["athena:GetQueryExecution","athena:GetQueryResults","athena:GetWorkGroup","athena:StartQueryExecution","athena:StopQueryExecution"],"Resource":"arn:aws:athena:eu-central-1:111122223333:workgroup/primary"},"#,
    r#"{"Sid":"GlueReadTable","Effect":"Allow","Action":["glue:BatchGetPartition","glue:GetDatabase","glue:GetPartition","glue:GetPartitions","glue:GetTable"],"Resource":["arn:aws:glue:eu-central-1:111122223333:catalog","arn:aws:glue:eu-central-1:111122223333:database/sales","arn:aws:glue:eu-central-1:111122223333:table/sales/orders"]},"#,
    r#"{"Sid":"S3BucketLocation","Effect":"Allow","Action":"s3:GetBucketLocation","Resource":"arn:aws:s3:::sales-data"},"#,
    r#"{"Sid":"S3ListFolder","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::sales-data","Condition":{"StringLike":{"s3:prefix":["orders/","orders/*"]}}},"#,
    r#"{"Sid":"S3ReadFolder","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::sales-data/orders/*"}]}"#
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::PolicyDocument;

    fn table(arn: &str) -> GlueTableRef {
        match GlueResource::from_arn(&Arn::parse(arn).unwrap()).unwrap() {
            GlueResource::Table(t) => t,
            other => panic!("not a table: {other:?}"),
        }
    }

    fn workgroup(arn: &str) -> AthenaWorkgroup {
        AthenaWorkgroup::from_arn(&Arn::parse(arn).unwrap()).unwrap()
    }

    fn location(arn: &str) -> S3Location {
        S3Location::from_arn(&Arn::parse(arn).unwrap()).unwrap()
    }

    #[test]
    fn policy_for_a_table() {
        let glue = GlueTable::new(
            table("arn:aws:glue:eu-central-1:111122223333:table/sales/orders"),
            workgroup("arn:aws:athena:eu-central-1:111122223333:workgroup/primary"),
            GlueAccess::Iam,
            Some(location("arn:aws:s3:::sales-data/orders")),
        )
        .unwrap();
        assert_eq!(
            PolicyDocument::new(glue.statements()).to_json(),
            SALES_ORDERS_POLICY
        );
    }

    #[test]
    fn under_lake_formation_iam_keeps_the_query_and_the_definition_but_no_data() {
        let glue = GlueTable::new(
            table("arn:aws:glue:eu-central-1:111122223333:table/sales/orders"),
            workgroup("arn:aws:athena:eu-central-1:111122223333:workgroup/primary"),
            GlueAccess::LakeFormation,
            None,
        )
        .unwrap();
        let json = PolicyDocument::new(glue.statements()).to_json();
        let iam_mode = SALES_ORDERS_POLICY;
        let query_and_definition = &iam_mode[..iam_mode.find(r#",{"Sid":"S3"#).unwrap()];
        assert_eq!(
            json,
            format!(
                "{query_and_definition},{}]}}",
                r#"{"Sid":"LakeFormationDataAccess","Effect":"Allow","Action":"lakeformation:GetDataAccess","Resource":"*"}"#
            )
        );
        assert!(!json.contains("s3:"), "{json}");
    }

    #[test]
    fn access_modes_parse_in_either_spelling_and_nothing_else() {
        assert_eq!(GlueAccess::parse(" IAM "), Some(GlueAccess::Iam));
        assert_eq!(
            GlueAccess::parse("lake-formation"),
            Some(GlueAccess::LakeFormation)
        );
        assert_eq!(
            "lake_formation".parse::<GlueAccess>(),
            Ok(GlueAccess::LakeFormation)
        );
        assert_eq!(GlueAccess::parse("lakeformation"), None);
        assert_eq!(GlueAccess::parse(""), None);
    }

    #[test]
    fn a_table_in_a_whole_bucket_reads_the_bucket() {
        let glue = GlueTable::new(
            table("arn:aws-cn:glue:cn-north-1:111122223333:table/db/t"),
            workgroup("arn:aws-cn:athena:cn-north-1:111122223333:workgroup/wg"),
            GlueAccess::Iam,
            Some(location("arn:aws-cn:s3:::tables")),
        )
        .unwrap();
        let json = PolicyDocument::new(glue.statements()).to_json();
        assert!(json.contains(r#""Sid":"S3ReadObjects","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws-cn:s3:::tables/*""#), "{json}");
        assert!(
            json.contains("arn:aws-cn:glue:cn-north-1:111122223333:catalog"),
            "{json}"
        );
    }

    #[test]
    fn workgroup_must_be_in_the_tables_region() {
        let error = GlueTable::new(
            table("arn:aws:glue:eu-central-1:111122223333:table/db/t"),
            workgroup("arn:aws:athena:eu-west-1:111122223333:workgroup/wg"),
            GlueAccess::Iam,
            Some(location("arn:aws:s3:::tables")),
        )
        .unwrap_err();
        assert!(error.contains("eu-west-1"), "{error}");
    }

    #[test]
    fn parses_catalog_database_and_table_arns() {
        assert_eq!(
            GlueResource::from_arn(
                &Arn::parse("arn:aws:glue:eu-west-1:111122223333:catalog").unwrap()
            ),
            Ok(GlueResource::Catalog {
                region: "eu-west-1".into(),
                account: "111122223333".into()
            })
        );
        assert_eq!(
            GlueResource::from_arn(
                &Arn::parse("arn:aws:glue:eu-west-1:111122223333:database/db_1").unwrap()
            ),
            Ok(GlueResource::Database {
                region: "eu-west-1".into(),
                account: "111122223333".into(),
                database: "db_1".into()
            })
        );
        let t = table("arn:aws:glue:eu-west-1:111122223333:table/db_1/t-2");
        assert_eq!(
            (t.database(), t.table(), t.region(), t.account()),
            ("db_1", "t-2", "eu-west-1", "111122223333")
        );
    }

    #[test]
    fn rejects_other_glue_resources_and_bad_names() {
        for arn in [
            "arn:aws:glue:eu-west-1:111122223333:table/db",
            "arn:aws:glue:eu-west-1:111122223333:table/db/t/x",
            "arn:aws:glue:eu-west-1:111122223333:table//t",
            "arn:aws:glue:eu-west-1:111122223333:table/Sales/orders",
            "arn:aws:glue:eu-west-1:111122223333:table/db/t.x",
            "arn:aws:glue:eu-west-1:111122223333:database/",
            "arn:aws:glue:eu-west-1:111122223333:catalog/x",
            "arn:aws:glue:eu-west-1:111122223333:connection/c",
            "arn:aws:glue:eu-west-1:111122223333:userDefinedFunction/db/f",
        ] {
            assert!(
                GlueResource::from_arn(&Arn::parse(arn).unwrap()).is_err(),
                "{arn}"
            );
        }
    }

    #[test]
    fn rejects_non_workgroup_athena_arns() {
        for arn in [
            "arn:aws:athena:eu-west-1:111122223333:datacatalog/c",
            "arn:aws:athena:eu-west-1:111122223333:workgroup/",
            "arn:aws:athena:eu-west-1:111122223333:workgroup/a/b",
            "arn:aws:athena:eu-west-1:111122223333:workgroup/a:b",
        ] {
            assert!(
                AthenaWorkgroup::from_arn(&Arn::parse(arn).unwrap()).is_err(),
                "{arn}"
            );
        }
    }

    #[test]
    fn catalog_and_database_must_match_the_table() {
        let t = table("arn:aws:glue:eu-west-1:111122223333:table/db/t");
        let parse = |arn: &str| GlueResource::from_arn(&Arn::parse(arn).unwrap()).unwrap();
        assert_eq!(
            parse("arn:aws:glue:eu-west-1:111122223333:catalog").mismatch(&t),
            None
        );
        assert_eq!(
            parse("arn:aws:glue:eu-west-1:111122223333:database/db").mismatch(&t),
            None
        );
        assert!(
            parse("arn:aws:glue:eu-west-2:111122223333:catalog")
                .mismatch(&t)
                .is_some()
        );
        assert!(
            parse("arn:aws:glue:eu-west-1:444455556666:database/db")
                .mismatch(&t)
                .is_some()
        );
        assert!(
            parse("arn:aws:glue:eu-west-1:111122223333:database/other")
                .mismatch(&t)
                .is_some()
        );
    }
}

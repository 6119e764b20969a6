//! The trust boundary (ADR 017): a grant reads only what the provider data product owns, and
//! lands only on a role the consumer owns.
//!
//! Everything an output port names is free text in DMM, editable by whoever edits the data
//! product, so a port naming a bucket proves nothing. Proof comes from outside DMM:
//!
//! - **tags on the AWS resource**: `dmm-data-product` = the owning data product's id, or
//!   `dmm-team` = its owner team (`info.owner` of the data product document);
//! - **the operator map** (`ownership_map`): owner team → ARN patterns, for organisations that
//!   cannot tag.
//!
//! The integration's own buckets, and any bucket the operator protects, are never granted,
//! whatever tags or map say. The Athena workgroup must be the provider's or the consumer's (whoever
//! can query in a workgroup can read its other users' results), and MSK consumer groups must
//! carry the consumer's id as their name or name prefix.
//!
//! The decisions here are pure; tags are read through [`ResourceTags`], which the AWS adapter
//! implements per account and region.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use wildmatch::WildMatch;

use super::{Permanent, ReconcileError, Retry};
use crate::policy::{
    Arn, PolicyDocument, PortAccess, PortResource, S3Bucket, S3Location, policy_size,
};
use crate::text::shown;

/// Tag naming the data product that owns a resource or a consumer role.
pub const PRODUCT_TAG: &str = "dmm-data-product";
/// Tag naming the team that owns a resource or a consumer role.
pub const TEAM_TAG: &str = "dmm-team";

/// Largest policy one agreement may put on a consumer role (characters, as IAM counts them
/// without whitespace): IAM's limit for one customer managed policy, so one agreement can never
/// take most of a role's 10,240-character inline budget.
pub const MAX_AGREEMENT_POLICY_SIZE: usize = 6_144;

/// Most MSK consumer groups one agreement may grant.
pub const MAX_CONSUMER_GROUPS: usize = 10;

/// `ownership_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnershipMode {
    /// A grant without proof is refused (and an existing one revoked) with an error status.
    #[default]
    Enforce,
    /// Grants as the Python reference did, and reports every missing proof (WARN log, the
    /// `OwnershipUnproven` metric, the dry run's ownership column).
    Audit,
    /// No tag is read and nothing is reported.
    Off,
}

impl FromStr for OwnershipMode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "enforce" => Ok(Self::Enforce),
            "audit" => Ok(Self::Audit),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "`{}` is not one of enforce, audit, off",
                shown(other)
            )),
        }
    }
}

/// A resource's tags (key → value).
pub type Tags = BTreeMap<String, String>;

/// Who may prove ownership: the data products and teams whose tag values count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    pub products: BTreeSet<String>,
    pub teams: BTreeSet<String>,
}

impl Owners {
    /// A data product and, when its document names one, its owner team.
    pub fn product(id: &str, owner_team: Option<&str>) -> Self {
        Self {
            products: BTreeSet::from([id.to_owned()]),
            teams: owner_team.into_iter().map(str::to_owned).collect(),
        }
    }

    pub fn team(id: &str) -> Self {
        Self {
            products: BTreeSet::new(),
            teams: BTreeSet::from([id.to_owned()]),
        }
    }

    fn union(&self, other: &Owners) -> Owners {
        Owners {
            products: self.products.union(&other.products).cloned().collect(),
            teams: self.teams.union(&other.teams).cloned().collect(),
        }
    }

    /// Whether `tags` name one of these owners.
    pub fn proven_by(&self, tags: &Tags) -> bool {
        tags.get(PRODUCT_TAG)
            .is_some_and(|v| self.products.contains(v))
            || tags.get(TEAM_TAG).is_some_and(|v| self.teams.contains(v))
    }

    /// The tags that would prove ownership, for messages.
    pub fn expected(&self) -> String {
        let options: Vec<String> = self
            .products
            .iter()
            .map(|p| format!("{PRODUCT_TAG}={}", shown(p)))
            .chain(
                self.teams
                    .iter()
                    .map(|t| format!("{TEAM_TAG}={}", shown(t))),
            )
            .collect();
        options.join(" or ")
    }
}

/// The operator map (`ownership_map`): owner team id → ARN patterns (`*` and `?` wildcards in
/// the resource part only) of what the team owns.
#[derive(Debug, Clone, Default)]
pub struct OwnerMap(BTreeMap<String, Vec<(String, WildMatch)>>);

/// Services whose ARNs the map may name: those of the resources a grant reads.
const MAPPABLE_SERVICES: &[&str] = &["s3", "glue", "kinesis", "kafka", "kms", "athena"];

impl OwnerMap {
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(teams) = value else {
            return Err("must be a JSON object of team id → list of ARN patterns".into());
        };
        let mut map = BTreeMap::new();
        for (team, patterns) in teams {
            if team.trim().is_empty() {
                return Err("a team id is empty".into());
            }
            let Value::Array(patterns) = patterns else {
                return Err(format!(
                    "team `{}`: must be a list of ARN patterns",
                    shown(&team)
                ));
            };
            let mut parsed = Vec::with_capacity(patterns.len());
            for pattern in patterns {
                let Value::String(pattern) = pattern else {
                    return Err(format!(
                        "team `{}`: every pattern must be a string",
                        shown(&team)
                    ));
                };
                validate_pattern(&pattern).map_err(|reason| {
                    format!("team `{}`: `{}` {reason}", shown(&team), shown(&pattern))
                })?;
                let matcher = WildMatch::new(&pattern);
                parsed.push((pattern, matcher));
            }
            map.insert(team, parsed);
        }
        Ok(Self(map))
    }

    /// The pattern of one of `teams` that covers `arn`.
    pub fn covering(&self, teams: &BTreeSet<String>, arn: &str) -> Option<&str> {
        teams
            .iter()
            .filter_map(|team| self.0.get(team))
            .flatten()
            .find(|(_, matcher)| matcher.matches(arn))
            .map(|(pattern, _)| pattern.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A pattern is an ARN of a mappable service whose partition, service, region and account are
/// literal; wildcards are allowed only in the resource part, and a bare `*` resource is refused
/// (it would hand a team every bucket or table of the account).
fn validate_pattern(pattern: &str) -> Result<(), String> {
    let parts: Vec<&str> = pattern.splitn(6, ':').collect();
    let [_, _, service, region, account, resource] = parts[..] else {
        return Err("is not an ARN pattern (arn:partition:service:region:account:resource)".into());
    };
    if [parts[0], parts[1], service, region, account]
        .iter()
        .any(|p| p.contains(['*', '?']))
    {
        return Err("has a wildcard outside the resource part".into());
    }
    if !MAPPABLE_SERVICES.contains(&service) {
        return Err(format!(
            "names service `{}`; the map covers only {}",
            shown(service),
            MAPPABLE_SERVICES.join(", ")
        ));
    }
    if resource.trim_matches(['*', '?', '/']).is_empty() {
        return Err("matches every resource of the service; name a prefix".into());
    }
    // Validated like every other ARN, with the wildcards standing for one ordinary character.
    Arn::parse(&pattern.replace(['*', '?'], "x"))
        .map(|_| ())
        .map_err(|e| format!("is not a valid ARN pattern: {e}"))
}

/// `ownership_check`, `ownership_map` and the never-grantable buckets.
#[derive(Debug, Clone, Default)]
pub struct OwnershipPolicy {
    pub mode: OwnershipMode,
    pub map: OwnerMap,
    /// The state bucket, the artifacts bucket and `protected_bucket_names`.
    pub protected_buckets: BTreeSet<String>,
}

/// Where the tags proving a resource's owner are read: the resource itself, in the account that
/// holds it (`None`: the integration's own) and, for regional services, the ARN's region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TagSource {
    S3Bucket { name: String },
    Glue { arn: String, region: String },
    KinesisStream { arn: String, region: String },
    MskCluster { arn: String, region: String },
    KmsKey { arn: String, region: String },
    AthenaWorkgroup { arn: String, region: String },
}

impl TagSource {
    /// What it is, for messages: "S3 bucket `orders-lake`".
    pub fn describe(&self) -> String {
        match self {
            Self::S3Bucket { name } => format!("S3 bucket `{name}`"),
            Self::Glue { arn, .. } => match arn.split(':').nth(5).unwrap_or_default() {
                r if r.starts_with("database/") => format!("Glue database `{arn}`"),
                _ => format!("Glue table `{arn}`"),
            },
            Self::KinesisStream { arn, .. } => format!("Kinesis stream `{arn}`"),
            Self::MskCluster { arn, .. } => format!("MSK cluster `{arn}`"),
            Self::KmsKey { arn, .. } => format!("KMS key `{arn}`"),
            Self::AthenaWorkgroup { arn, .. } => format!("Athena workgroup `{arn}`"),
        }
    }
}

/// Why tags could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TagError {
    /// AWS refused the read (access denied, validation): reading again gives the same answer.
    #[error("the integration may not read the tags of {resource} ({code})")]
    Refused { resource: String, code: String },
    /// Throttling, a service fault, a timeout.
    #[error("reading the tags of {resource} failed: {reason}")]
    Unavailable { resource: String, reason: String },
}

/// Reads the tags of a resource a grant names.
pub trait ResourceTags: Sync {
    /// The resource's tags; an empty map when it has none or does not exist (neither proves
    /// anything).
    fn tags(
        &self,
        account: Option<&str>,
        source: &TagSource,
    ) -> impl Future<Output = Result<Tags, TagError>> + Send;
}

/// One resource a grant reads and who may own it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The ARN the operator map is matched against.
    pub arn: String,
    /// The account holding it (`None`: the integration's own).
    pub account: Option<String>,
    /// Any one of these, tagged for an owner, is proof (a Glue table or its database).
    pub sources: Vec<TagSource>,
    pub owners: Owners,
    /// The side whose team the operator map is asked about.
    pub map_teams: BTreeSet<String>,
    /// `provider data product `orders`` or `provider or consumer`, for messages.
    pub whose: String,
}

/// An ownership proof that is missing in `audit` mode: reported, not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding(pub String);

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The two parties of an agreement, as the ownership rules see them.
#[derive(Debug, Clone)]
pub struct Parties {
    pub provider_product: String,
    pub provider: Owners,
    /// The consumer data product's or team's id: MSK consumer groups carry it.
    pub consumer_id: String,
    pub consumer: Owners,
}

/// The buckets a grant reads (none for a table granted through Lake Formation).
fn buckets(access: &PortAccess) -> Vec<&S3Bucket> {
    match access.resource() {
        PortResource::S3Bucket(bucket) => vec![bucket],
        PortResource::S3Folder(folder) => vec![folder.bucket()],
        PortResource::GlueTable(table) => table
            .location()
            .map(S3Location::bucket)
            .into_iter()
            .collect(),
        PortResource::KinesisStream(_) | PortResource::MskTopic(_) => vec![],
    }
}

/// Refuses a grant on the integration's own buckets or one the operator protects. Checked in
/// every mode: these hold the grant ledger and external ids (or the code), and no tag makes them
/// a data product's.
pub fn check_protected(
    policy: &OwnershipPolicy,
    access: &PortAccess,
) -> Result<(), Box<Permanent>> {
    match buckets(access)
        .into_iter()
        .find(|b| policy.protected_buckets.contains(b.name()))
    {
        Some(bucket) => Err(Box::new(Permanent::ProtectedBucket(
            bucket.name().to_owned(),
        ))),
        None => Ok(()),
    }
}

/// Refuses a policy larger than one agreement may take from a role.
pub fn check_size(document: &PolicyDocument) -> Result<(), Box<Permanent>> {
    let size = policy_size(&document.to_json());
    if size > MAX_AGREEMENT_POLICY_SIZE {
        return Err(Box::new(Permanent::PolicyTooLarge {
            size,
            limit: MAX_AGREEMENT_POLICY_SIZE,
        }));
    }
    Ok(())
}

/// MSK consumer groups must carry the consumer's id (exactly, or followed by `-`, `.` or `_`),
/// so a port cannot hand one consumer another's group offsets; and one agreement takes at most
/// [`MAX_CONSUMER_GROUPS`].
pub fn check_groups(access: &PortAccess, consumer_id: &str) -> Option<Permanent> {
    let PortResource::MskTopic(topic) = access.resource() else {
        return None;
    };
    if topic.groups().len() > MAX_CONSUMER_GROUPS {
        return Some(Permanent::TooManyGroups {
            count: topic.groups().len(),
            limit: MAX_CONSUMER_GROUPS,
        });
    }
    let owned = |group: &str| {
        group
            .strip_prefix(consumer_id)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '.', '_']))
    };
    topic
        .groups()
        .iter()
        .find(|g| !owned(g))
        .map(|group| Permanent::ForeignConsumerGroup {
            group: group.clone(),
            consumer: shown(consumer_id),
        })
}

/// The resources of `access` that need proof: provider data (buckets, table, stream, cluster,
/// key) must be the provider's; the Athena workgroup the provider's or the consumer's.
/// `account` is the account holding the port's resources (`None`: the integration's own).
pub fn claims(access: &PortAccess, account: Option<&str>, parties: &Parties) -> Vec<Claim> {
    let account = account.map(str::to_owned);
    let provider = |arn: String, sources: Vec<TagSource>| Claim {
        arn,
        account: account.clone(),
        sources,
        owners: parties.provider.clone(),
        map_teams: parties.provider.teams.clone(),
        whose: format!(
            "provider data product `{}`",
            shown(&parties.provider_product)
        ),
    };
    let mut claims: Vec<Claim> = buckets(access)
        .into_iter()
        .map(|b| {
            provider(
                b.arn(),
                vec![TagSource::S3Bucket {
                    name: b.name().to_owned(),
                }],
            )
        })
        .collect();
    match access.resource() {
        PortResource::S3Bucket(_) | PortResource::S3Folder(_) => {}
        PortResource::GlueTable(glue) => {
            let table = glue.table();
            let prefix = format!(
                "arn:{}:glue:{}:{}",
                table.partition(),
                table.region(),
                table.account()
            );
            let table_arn = format!("{prefix}:table/{}/{}", table.database(), table.table());
            let database_arn = format!("{prefix}:database/{}", table.database());
            let region = table.region().to_owned();
            claims.push(provider(
                table_arn.clone(),
                vec![
                    TagSource::Glue {
                        arn: table_arn,
                        region: region.clone(),
                    },
                    TagSource::Glue {
                        arn: database_arn,
                        region: region.clone(),
                    },
                ],
            ));
            let workgroup = glue.workgroup().arn().to_owned();
            let owners = parties.provider.union(&parties.consumer);
            claims.push(Claim {
                arn: workgroup.clone(),
                account: account.clone(),
                sources: vec![TagSource::AthenaWorkgroup {
                    arn: workgroup,
                    region,
                }],
                map_teams: owners.teams.clone(),
                owners,
                whose: "provider or the consumer".to_owned(),
            });
        }
        PortResource::KinesisStream(stream) => claims.push(provider(
            stream.arn(),
            vec![TagSource::KinesisStream {
                arn: stream.arn(),
                region: stream.region().to_owned(),
            }],
        )),
        PortResource::MskTopic(topic) => {
            let cluster = topic.cluster();
            claims.push(provider(
                cluster.arn(),
                vec![TagSource::MskCluster {
                    arn: cluster.arn(),
                    region: cluster.region().to_owned(),
                }],
            ));
        }
    }
    if let Some(key) = access.kms_key() {
        claims.push(provider(
            key.arn().to_owned(),
            vec![TagSource::KmsKey {
                arn: key.arn().to_owned(),
                region: key.region().to_owned(),
            }],
        ));
    }
    claims
}

/// Decides one claim: the operator map first (no AWS call), then the tags of each source.
/// `Ok(None)`: proven; `Ok(Some(cause))`: not proven.
async fn prove_one<T: ResourceTags>(
    map: &OwnerMap,
    tags: &T,
    claim: &Claim,
) -> Result<Option<Permanent>, ReconcileError> {
    if map.covering(&claim.map_teams, &claim.arn).is_some() {
        return Ok(None);
    }
    for source in &claim.sources {
        let found = match tags.tags(claim.account.as_deref(), source).await {
            Ok(found) => found,
            Err(e @ TagError::Unavailable { .. }) => return Err(Retry::Tags(e).into()),
            Err(e @ TagError::Refused { .. }) => return Ok(Some(Permanent::TagsUnreadable(e))),
        };
        if claim.owners.proven_by(&found) {
            return Ok(None);
        }
    }
    let resource = claim
        .sources
        .first()
        .map(TagSource::describe)
        .unwrap_or_else(|| format!("`{}`", claim.arn));
    let tagged_on = if claim.sources.len() > 1 {
        " on the table or its database"
    } else {
        ""
    };
    let map_note = if claim.map_teams.is_empty() {
        "no owner team is known to look up in the operator map (ownership_map)".to_owned()
    } else {
        format!(
            "the operator map (ownership_map) gives team {} no pattern covering it",
            claim
                .map_teams
                .iter()
                .map(|t| format!("`{}`", shown(t)))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    };
    Ok(Some(Permanent::NotOwned {
        resource,
        whose: claim.whose.clone(),
        expected: format!("{}{tagged_on}", claim.owners.expected()),
        map_note,
    }))
}

/// Checks every claim under `policy.mode`. `enforce`: the first unproven claim refuses the
/// grant; `audit`: unproven claims become findings; `off`: nothing is read.
pub async fn prove<T: ResourceTags>(
    policy: &OwnershipPolicy,
    tags: &T,
    claims: &[Claim],
) -> Result<Vec<Finding>, ReconcileError> {
    if policy.mode == OwnershipMode::Off {
        return Ok(Vec::new());
    }
    let mut findings = Vec::new();
    for claim in claims {
        if let Some(cause) = prove_one(&policy.map, tags, claim).await? {
            match policy.mode {
                OwnershipMode::Enforce => return Err(cause.into()),
                _ => findings.push(Finding(cause.to_string())),
            }
        }
    }
    Ok(findings)
}

/// What a consumer role's tags must show.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleOwnership {
    pub mode: OwnershipMode,
    pub owners: Owners,
    /// `consumer data product `shipments`` or `consumer team `analytics``.
    pub consumer: String,
}

impl RoleOwnership {
    /// `Ok(None)`: the role is the consumer's (or the check is off); `Ok(Some)`: it is not, in
    /// `audit` mode; `Err`: it is not, in `enforce` mode.
    pub fn check(&self, role: &str, tags: &Tags) -> Result<Option<Finding>, Box<Permanent>> {
        if self.mode == OwnershipMode::Off || self.owners.proven_by(tags) {
            return Ok(None);
        }
        let cause = Permanent::RoleNotOwned {
            role: role.to_owned(),
            consumer: self.consumer.clone(),
            expected: self.owners.expected(),
        };
        match self.mode {
            OwnershipMode::Enforce => Err(Box::new(cause)),
            _ => Ok(Some(Finding(cause.to_string()))),
        }
    }
}

/// Tags read once per invocation: ten agreements on one bucket cost one GetBucketTagging.
/// Failed reads are not kept, so a later agreement tries again.
pub struct CachedTags<'a, T> {
    inner: &'a T,
    cache: Mutex<BTreeMap<TagKey, Arc<Tags>>>,
}

/// A resource in an account (`None`: the integration's own).
type TagKey = (Option<String>, TagSource);

impl<'a, T> CachedTags<'a, T> {
    pub fn new(inner: &'a T) -> Self {
        Self {
            inner,
            cache: Mutex::default(),
        }
    }
}

impl<T: ResourceTags> ResourceTags for CachedTags<'_, T> {
    async fn tags(&self, account: Option<&str>, source: &TagSource) -> Result<Tags, TagError> {
        let key = (account.map(str::to_owned), source.clone());
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(Tags::clone(hit));
        }
        let tags = self.inner.tags(account, source).await?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::new(tags.clone()));
        Ok(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use crate::policy::{Context, Partition, resolve_port};

    const ACCOUNT: &str = "111122223333";
    const TABLE: &str = "arn:aws:glue:eu-central-1:111122223333:table/sales/orders";
    const DATABASE: &str = "arn:aws:glue:eu-central-1:111122223333:database/sales";
    const WORKGROUP: &str = "arn:aws:athena:eu-central-1:111122223333:workgroup/sales";
    const KEY: &str =
        "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    /// In-memory tags per source; `refused` and `unavailable` sources fail.
    #[derive(Default)]
    struct FakeTags {
        tags: BTreeMap<String, Tags>,
        refused: BTreeSet<String>,
        unavailable: BTreeSet<String>,
        reads: AtomicUsize,
    }

    fn key(source: &TagSource) -> String {
        match source {
            TagSource::S3Bucket { name } => format!("arn:aws:s3:::{name}"),
            TagSource::Glue { arn, .. }
            | TagSource::KinesisStream { arn, .. }
            | TagSource::MskCluster { arn, .. }
            | TagSource::KmsKey { arn, .. }
            | TagSource::AthenaWorkgroup { arn, .. } => arn.clone(),
        }
    }

    impl FakeTags {
        fn tag(mut self, arn: &str, k: &str, v: &str) -> Self {
            self.tags
                .entry(arn.to_owned())
                .or_default()
                .insert(k.to_owned(), v.to_owned());
            self
        }
    }

    impl ResourceTags for FakeTags {
        async fn tags(&self, _account: Option<&str>, source: &TagSource) -> Result<Tags, TagError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let arn = key(source);
            if self.refused.contains(&arn) {
                return Err(TagError::Refused {
                    resource: source.describe(),
                    code: "AccessDeniedException".into(),
                });
            }
            if self.unavailable.contains(&arn) {
                return Err(TagError::Unavailable {
                    resource: source.describe(),
                    reason: "ThrottlingException".into(),
                });
            }
            Ok(self.tags.get(&arn).cloned().unwrap_or_default())
        }
    }

    fn access(custom: Value) -> PortAccess {
        resolve_port(
            &json!({"id": "p", "custom": custom}),
            &Context::new(Partition::Aws),
        )
        .unwrap()
    }

    fn glue_port() -> PortAccess {
        access(json!({
            "output-port-type": "glue_table",
            "aws-glue-table-arn": TABLE,
            "aws-athena-workgroup-arn": WORKGROUP,
            "aws-s3-folder-arn": "arn:aws:s3:::sales-lake/orders",
            "aws-kms-key-arn": KEY,
        }))
    }

    fn parties() -> Parties {
        Parties {
            provider_product: "orders".into(),
            provider: Owners::product("orders", Some("sales")),
            consumer_id: "shipments".into(),
            consumer: Owners::product("shipments", Some("logistics")),
        }
    }

    fn policy(mode: OwnershipMode) -> OwnershipPolicy {
        OwnershipPolicy {
            mode,
            ..OwnershipPolicy::default()
        }
    }

    #[test]
    fn modes_parse_and_default_to_enforce() {
        assert_eq!(OwnershipMode::default(), OwnershipMode::Enforce);
        assert_eq!("audit".parse(), Ok(OwnershipMode::Audit));
        assert_eq!("off".parse(), Ok(OwnershipMode::Off));
        assert!(
            "Enforce"
                .parse::<OwnershipMode>()
                .unwrap_err()
                .contains("enforce, audit, off")
        );
    }

    #[test]
    fn the_map_is_validated_like_every_arn() {
        let map = OwnerMap::parse(
            r#"{"sales": ["arn:aws:s3:::sales-*", "arn:aws:glue:eu-central-1:111122223333:table/sales/*"]}"#,
        )
        .unwrap();
        let sales = BTreeSet::from(["sales".to_owned()]);
        assert_eq!(
            map.covering(&sales, "arn:aws:s3:::sales-lake"),
            Some("arn:aws:s3:::sales-*")
        );
        assert!(map.covering(&sales, TABLE).is_some());
        assert_eq!(map.covering(&sales, "arn:aws:s3:::payroll"), None);
        let other = BTreeSet::from(["hr".to_owned()]);
        assert_eq!(map.covering(&other, "arn:aws:s3:::sales-lake"), None);
        for (bad, needle) in [
            (r#"{"sales": ["arn:aws:s3:::*"]}"#, "every resource"),
            (
                r#"{"sales": ["arn:aws:glue:*:111122223333:table/x/*"]}"#,
                "outside the resource",
            ),
            (
                r#"{"sales": ["arn:aws:iam::111122223333:role/*"]}"#,
                "service `iam`",
            ),
            (
                r#"{"sales": ["arn:aws:kinesis:eu-central-1:1234:stream/x*"]}"#,
                "valid ARN",
            ),
            (r#"{"sales": ["s3://sales-*"]}"#, "not an ARN pattern"),
            (r#"{"sales": "arn:aws:s3:::sales-*"}"#, "list"),
            (r#"["arn:aws:s3:::sales-*"]"#, "JSON object"),
            (r#"{"sales": [1]}"#, "string"),
        ] {
            let error = OwnerMap::parse(bad).unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    #[test]
    fn a_glue_port_claims_bucket_table_workgroup_and_key() {
        let claims = claims(&glue_port(), Some(ACCOUNT), &parties());
        let arns: Vec<&str> = claims.iter().map(|c| c.arn.as_str()).collect();
        assert_eq!(arns, ["arn:aws:s3:::sales-lake", TABLE, WORKGROUP, KEY]);
        assert_eq!(claims[1].sources.len(), 2, "the table or its database");
        assert_eq!(
            claims[2].owners.products,
            BTreeSet::from(["orders".to_owned(), "shipments".to_owned()]),
            "the workgroup may be the provider's or the consumer's"
        );
        assert_eq!(
            claims[3].owners,
            parties().provider,
            "the key is provider data"
        );
        assert!(claims.iter().all(|c| c.account.as_deref() == Some(ACCOUNT)));
    }

    #[tokio::test]
    async fn enforce_refuses_the_first_unproven_resource_with_an_actionable_cause() {
        let tags = FakeTags::default()
            .tag("arn:aws:s3:::sales-lake", TEAM_TAG, "sales")
            .tag(DATABASE, PRODUCT_TAG, "orders")
            .tag(WORKGROUP, PRODUCT_TAG, "shipments");
        let claims = claims(&glue_port(), None, &parties());
        let error = prove(&policy(OwnershipMode::Enforce), &tags, &claims)
            .await
            .unwrap_err();
        let ReconcileError::Permanent(cause) = error else {
            panic!("permanent expected");
        };
        assert_eq!(
            cause.to_string(),
            format!(
                "the KMS key `{KEY}` is not proven to belong to the provider data product \
                 `orders`: it needs the tag dmm-data-product=orders or dmm-team=sales, and the \
                 operator map (ownership_map) gives team `sales` no pattern covering it"
            )
        );
    }

    #[tokio::test]
    async fn the_map_proves_without_reading_tags_and_tags_of_another_owner_do_not() {
        let tags = FakeTags::default()
            .tag("arn:aws:s3:::sales-lake", PRODUCT_TAG, "payroll")
            .tag(TABLE, TEAM_TAG, "hr");
        let mut enforce = policy(OwnershipMode::Enforce);
        enforce.map = OwnerMap::parse(
            r#"{"sales": ["arn:aws:s3:::sales-*", "arn:aws:glue:eu-central-1:111122223333:table/sales/*",
                "arn:aws:athena:eu-central-1:111122223333:workgroup/sales",
                "arn:aws:kms:eu-central-1:111122223333:key/*"]}"#,
        )
        .unwrap();
        let claims = claims(&glue_port(), None, &parties());
        assert_eq!(prove(&enforce, &tags, &claims).await.unwrap(), []);
        assert_eq!(tags.reads.load(Ordering::SeqCst), 0);

        enforce.map = OwnerMap::default();
        let cause = prove(&enforce, &tags, &claims)
            .await
            .unwrap_err()
            .to_string();
        assert!(cause.contains("S3 bucket `sales-lake`"), "{cause}");
    }

    #[tokio::test]
    async fn audit_reports_every_missing_proof_and_off_reads_nothing() {
        let tags = FakeTags::default().tag(TABLE, TEAM_TAG, "sales");
        let claims = claims(&glue_port(), None, &parties());
        let findings = prove(&policy(OwnershipMode::Audit), &tags, &claims)
            .await
            .unwrap();
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert!(findings[0].0.contains("S3 bucket `sales-lake`"));
        assert!(findings[1].0.contains("Athena workgroup"));
        assert!(
            findings[1]
                .0
                .contains("dmm-data-product=orders or dmm-data-product=shipments"),
            "{}",
            findings[1]
        );
        let reads = tags.reads.load(Ordering::SeqCst);
        assert_eq!(
            prove(&policy(OwnershipMode::Off), &tags, &claims)
                .await
                .unwrap(),
            []
        );
        assert_eq!(tags.reads.load(Ordering::SeqCst), reads, "off reads no tag");
    }

    #[tokio::test]
    async fn a_refused_read_is_a_cause_and_a_failed_one_a_retry() {
        let stream = access(json!({
            "output-port-type": "kinesis_stream",
            "aws-kinesis-stream-arn": "arn:aws:kinesis:eu-central-1:111122223333:stream/orders"}));
        let claims = claims(&stream, None, &parties());
        let mut tags = FakeTags::default();
        tags.refused.insert(claims[0].arn.clone());
        let error = prove(&policy(OwnershipMode::Enforce), &tags, &claims)
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            ReconcileError::Permanent(Permanent::TagsUnreadable(_))
        ));
        assert!(
            error
                .to_string()
                .contains("may not read the tags of Kinesis stream"),
            "{error}"
        );

        let mut tags = FakeTags::default();
        tags.unavailable.insert(claims[0].arn.clone());
        let error = prove(&policy(OwnershipMode::Audit), &tags, &claims)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ReconcileError::Retry(Retry::Tags(_))),
            "{error}"
        );
    }

    #[test]
    fn protected_buckets_are_refused_in_every_mode() {
        let mut off = policy(OwnershipMode::Off);
        off.protected_buckets.insert("sales-lake".into());
        let error = check_protected(&off, &glue_port()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`sales-lake` is the integration's own"),
            "{error}"
        );
        let folder = access(
            json!({"output-port-type": "s3_folder", "aws-s3-folder-arn": "arn:aws:s3:::other/x"}),
        );
        assert!(check_protected(&off, &folder).is_ok());
    }

    #[test]
    fn consumer_groups_carry_the_consumer_id_and_are_capped() {
        let topic = |groups: &[&str]| {
            let mut custom = json!({
                "output-port-type": "msk_topic",
                "aws-msk-topic-arn": "arn:aws:kafka:eu-central-1:111122223333:topic/events/abcd-1/orders"});
            for (i, g) in groups.iter().enumerate() {
                custom[format!("aws-msk-group-{i}-arn")] = json!(format!(
                    "arn:aws:kafka:eu-central-1:111122223333:group/events/abcd-1/{g}"
                ));
            }
            access(custom)
        };
        assert!(
            check_groups(
                &topic(&["shipments", "shipments-eu", "shipments.v2"]),
                "shipments"
            )
            .is_none()
        );
        let foreign = check_groups(&topic(&["shipmentsx"]), "shipments").unwrap();
        assert!(
            foreign
                .to_string()
                .contains("`shipmentsx` is not the consumer's"),
            "{foreign}"
        );
        assert!(check_groups(&topic(&["billing"]), "shipments").is_some());
        let many: Vec<String> = (0..11).map(|i| format!("shipments-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            check_groups(&topic(&many), "shipments"),
            Some(Permanent::TooManyGroups {
                count: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn one_agreement_takes_at_most_one_managed_policy_of_a_role() {
        assert!(check_size(&glue_port().policy()).is_ok());
        let many = (0..200)
            .map(|i| {
                crate::policy::Statement::allow(
                    &format!("S{i}"),
                    &["s3:GetObject"],
                    [format!("arn:aws:s3:::b/{i}/*")],
                )
            })
            .collect();
        let error = check_size(&PolicyDocument::new(many)).unwrap_err();
        assert!(error.to_string().contains("at most 6144"), "{error}");
    }

    #[test]
    fn a_role_is_the_consumers_only_with_its_tag() {
        let check = |mode| RoleOwnership {
            mode,
            owners: Owners::product("shipments", Some("logistics")),
            consumer: "consumer data product `shipments`".into(),
        };
        let tagged = |k: &str, v: &str| Tags::from([(k.to_owned(), v.to_owned())]);
        let enforce = check(OwnershipMode::Enforce);
        assert!(matches!(
            enforce.check("r", &tagged(PRODUCT_TAG, "shipments")),
            Ok(None)
        ));
        assert!(matches!(
            enforce.check("r", &tagged(TEAM_TAG, "logistics")),
            Ok(None)
        ));
        let error = enforce
            .check("shared", &tagged(PRODUCT_TAG, "billing"))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the consumer role `shared` is not proven to belong to the consumer data product \
             `shipments`: it needs the tag dmm-data-product=shipments or dmm-team=logistics"
        );
        assert!(matches!(
            check(OwnershipMode::Audit).check("shared", &Tags::new()),
            Ok(Some(_))
        ));
        assert!(matches!(
            check(OwnershipMode::Off).check("shared", &Tags::new()),
            Ok(None)
        ));
    }

    #[tokio::test]
    async fn tags_are_read_once_per_invocation() {
        let inner = FakeTags::default().tag("arn:aws:s3:::b", PRODUCT_TAG, "orders");
        let cached = CachedTags::new(&inner);
        let source = TagSource::S3Bucket { name: "b".into() };
        for _ in 0..3 {
            assert_eq!(
                cached.tags(None, &source).await.unwrap()[PRODUCT_TAG],
                "orders"
            );
        }
        cached.tags(Some(ACCOUNT), &source).await.unwrap();
        assert_eq!(
            inner.reads.load(Ordering::SeqCst),
            2,
            "one read per account and resource"
        );
    }
}

//! The consumer's IAM role, and the guard that keeps the integration from writing to roles it
//! must not touch.
//!
//! The role comes from DMM, where anyone who can edit a data product or team can set it. Without
//! a guard, the integration (which may put inline policies on roles) would be a way to attach
//! data access to an administrator's role, to a service-linked role, or to the integration's
//! own roles.

use std::fmt;

use serde_json::Value;

use super::Context;
use super::arn::{Arn, Partition};
use super::error::PolicyError;
use super::name::{MAX_ROLE_NAME_LEN, is_access_role_name, is_iam_name, is_iam_name_char};
use crate::text::shown;

/// Custom field of the consumer data product or team naming a role in the integration's own
/// account, as in the reference integration.
pub const ROLE_NAME_FIELD: &str = "aws-role-name";
/// Custom field naming a role by ARN, in any account.
pub const ROLE_ARN_FIELD: &str = "aws-role-arn";

/// IAM's limit for role paths.
const MAX_PATH_LEN: usize = 512;

/// A valid IAM role name (`[\w+=,.@-]{1,64}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(name: &str) -> Result<Self, String> {
        if is_iam_name(name, MAX_ROLE_NAME_LEN) {
            Ok(RoleName(name.to_owned()))
        } else if name.is_empty() || name.len() > MAX_ROLE_NAME_LEN {
            Err(format!(
                "role names are 1 to {MAX_ROLE_NAME_LEN} characters long"
            ))
        } else {
            Err("role names may only use letters, digits and _+=,.@-".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IAM role ARN, `arn:aws:iam::123456789012:role/optional/path/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleArn {
    partition: Partition,
    account: String,
    path: String,
    name: RoleName,
}

impl RoleArn {
    pub fn parse(value: &str) -> Result<Self, String> {
        let arn = Arn::parse(value).map_err(|e| e.to_string())?;
        if arn.service() != "iam" {
            return Err(format!(
                "it is an ARN of service `{}`, not iam",
                arn.service()
            ));
        }
        let Some(path_and_name) = arn.resource().strip_prefix("role/") else {
            return Err("its resource is not `role/…`".into());
        };
        let (path, name) = match path_and_name.rsplit_once('/') {
            Some((path, name)) => (format!("/{path}/"), name),
            None => ("/".to_owned(), path_and_name),
        };
        if !is_path(&path) {
            return Err(format!(
                "role path `{}` has an empty segment or is too long",
                shown(&path)
            ));
        }
        Ok(RoleArn {
            partition: arn.partition(),
            account: arn.account().to_owned(),
            path,
            name: RoleName::parse(name)?,
        })
    }

    pub fn partition(&self) -> Partition {
        self.partition
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// The path as written in the ARN. IAM identifies roles by name alone, so this is only a
    /// claim by whoever edited DMM; see [`RoleGuard::check`].
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn name(&self) -> &RoleName {
        &self.name
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:role{}{}",
            self.partition, self.account, self.path, self.name
        )
    }
}

/// `/` or `/segment/…/`, without empty segments.
fn is_path(path: &str) -> bool {
    path.len() <= MAX_PATH_LEN
        && path.starts_with('/')
        && path.ends_with('/')
        && (path == "/" || path[1..path.len() - 1].split('/').all(|s| !s.is_empty()))
}

/// Whose role receives the grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConsumerRole {
    /// `custom.aws-role-name`: a role in the account the integration runs in (the reference
    /// integration's only option).
    OwnAccount(RoleName),
    /// `custom.aws-role-arn`: a role in any account of the partition; the way to name a role in
    /// another account.
    Arn(RoleArn),
}

impl ConsumerRole {
    /// Reads the consumer data product's or team's `custom` map. When both fields are set they
    /// must name the same role, so an old `aws-role-name` left next to a new ARN cannot silently
    /// redirect the grant.
    pub fn from_custom(custom: &Value, ctx: &Context) -> Result<Self, PolicyError> {
        let name = string_field(custom, ROLE_NAME_FIELD)?;
        let arn = string_field(custom, ROLE_ARN_FIELD)?;
        let parsed_name = name
            .map(|name| {
                RoleName::parse(name).map_err(|reason| PolicyError::InvalidRoleName {
                    value: shown(name),
                    reason,
                })
            })
            .transpose()?;
        let parsed_arn = arn
            .map(|arn| {
                let invalid = |reason: String| PolicyError::InvalidRoleArn {
                    value: shown(arn),
                    reason,
                };
                let parsed = RoleArn::parse(arn).map_err(invalid)?;
                if parsed.partition() != ctx.partition() {
                    return Err(invalid(format!(
                        "it is in partition {}, but the integration runs in {}",
                        parsed.partition(),
                        ctx.partition()
                    )));
                }
                Ok(parsed)
            })
            .transpose()?;
        match (parsed_name, parsed_arn) {
            (None, None) => Err(PolicyError::MissingRole),
            (Some(name), None) => Ok(ConsumerRole::OwnAccount(name)),
            (None, Some(arn)) => Ok(ConsumerRole::Arn(arn)),
            // Role names are unique ignoring case.
            (Some(name), Some(arn)) if name.as_str().eq_ignore_ascii_case(arn.name().as_str()) => {
                Ok(ConsumerRole::Arn(arn))
            }
            (Some(name), Some(arn)) => Err(PolicyError::ConflictingRoleFields {
                name: name.to_string(),
                arn: arn.to_string(),
            }),
        }
    }

    pub fn name(&self) -> &RoleName {
        match self {
            ConsumerRole::OwnAccount(name) => name,
            ConsumerRole::Arn(arn) => arn.name(),
        }
    }

    /// The account of the role, when DMM names one; `None` means the integration's own.
    pub fn account(&self) -> Option<&str> {
        match self {
            ConsumerRole::OwnAccount(_) => None,
            ConsumerRole::Arn(arn) => Some(arn.account()),
        }
    }
}

/// A custom field that is a non-empty string, if set.
fn string_field<'a>(
    custom: &'a Value,
    field: &'static str,
) -> Result<Option<&'a str>, PolicyError> {
    match custom.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) if value.is_empty() => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(PolicyError::RoleFieldNotAString { field }),
    }
}

/// Which roles the integration may write inline policies to.
///
/// Always refused, whatever the configuration: the integration's own roles (`protected` names),
/// service-linked and AWS-reserved roles (path `/aws-service-role/` or `/aws-reserved/`, names
/// `AWSServiceRoleFor*` and `AWSReservedSSO_*`), the administrator roles AWS Organizations,
/// Control Tower and CloudFormation StackSets create (`OrganizationAccountAccessRole`,
/// `AWSControlTowerExecution`, `AWSCloudFormationStackSetExecutionRole`), and the
/// integration's own access roles (`dmm-access-*`), so one agreement cannot be stacked onto
/// another's grant. These comparisons ignore case, as IAM does for role names.
///
/// Configurable allowlist: the role's path must start with `path_prefix` and its name must match
/// `name_pattern` (`*` matches any run of characters; case-sensitive). The default, path prefix
/// `/` and pattern `*`, allows every other role, like the reference integration; narrowing it
/// (say `/data-consumers/` or `dmm-consumer-*`) bounds what a DMM editor can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGuard {
    path_prefix: String,
    name_pattern: String,
    /// Lowercased, may contain `*`.
    protected: Vec<String>,
}

/// Default of [`RoleGuard`]'s path prefix: every path.
pub const DEFAULT_ROLE_PATH_PREFIX: &str = "/";
/// Default of [`RoleGuard`]'s name pattern: every name.
pub const DEFAULT_ROLE_NAME_PATTERN: &str = "*";

const RESERVED_NAMES: [(&str, &str); 3] = [
    (
        "organizationaccountaccessrole",
        "AWS Organizations administrator role",
    ),
    (
        "awscontroltowerexecution",
        "AWS Control Tower administrator role",
    ),
    (
        "awscloudformationstacksetexecutionrole",
        "CloudFormation StackSets administrator role",
    ),
];

impl Default for RoleGuard {
    fn default() -> Self {
        RoleGuard {
            path_prefix: DEFAULT_ROLE_PATH_PREFIX.to_owned(),
            name_pattern: DEFAULT_ROLE_NAME_PATTERN.to_owned(),
            protected: Vec::new(),
        }
    }
}

impl RoleGuard {
    /// `protected_role_names` are the integration's own roles (names, `*` allowed).
    pub fn new<I, S>(
        path_prefix: &str,
        name_pattern: &str,
        protected_role_names: I,
    ) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if !is_path(path_prefix)
            || !path_prefix.bytes().all(|b| b.is_ascii_graphic())
            || path_prefix.contains(['*', '?'])
        {
            return Err(PolicyError::InvalidRoleGuard(format!(
                "path prefix `{}` must be an IAM path such as `/` or `/data-consumers/`",
                shown(path_prefix)
            )));
        }
        if !is_pattern(name_pattern) {
            return Err(PolicyError::InvalidRoleGuard(format!(
                "name pattern `{}` must be a role name, optionally with `*` wildcards",
                shown(name_pattern)
            )));
        }
        let mut protected = Vec::new();
        for name in protected_role_names {
            let name = name.as_ref();
            if !is_pattern(name) {
                return Err(PolicyError::InvalidRoleGuard(format!(
                    "protected role `{}` must be a role name, optionally with `*` wildcards",
                    shown(name)
                )));
            }
            protected.push(name.to_ascii_lowercase());
        }
        Ok(RoleGuard {
            path_prefix: path_prefix.to_owned(),
            name_pattern: name_pattern.to_owned(),
            protected,
        })
    }

    /// The path prefix of managed roles; cross-account access roles are created under it.
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// Whether the role `name` at `path` may receive a grant.
    ///
    /// IAM identifies a role by name alone, so the path in a role ARN from DMM is only a claim:
    /// call this with the path IAM reports for the role (`GetRole`) before writing. Calling it
    /// earlier with the claimed path as well is cheap and fails fast on obvious cases.
    pub fn check(&self, name: &RoleName, path: &str) -> Result<(), PolicyError> {
        let lower = name.as_str().to_ascii_lowercase();
        let protected = |reason: &'static str| {
            Err(PolicyError::ProtectedRole {
                role: name.to_string(),
                reason,
            })
        };
        if path.starts_with("/aws-service-role/") || lower.starts_with("awsservicerolefor") {
            return protected("service-linked role");
        }
        if path.starts_with("/aws-reserved/") || lower.starts_with("awsreservedsso_") {
            return protected("AWS-reserved role");
        }
        if let Some((_, reason)) = RESERVED_NAMES
            .iter()
            .find(|(reserved, _)| *reserved == lower)
        {
            return protected(reason);
        }
        if is_access_role_name(&lower) {
            return protected("access role of an agreement, managed by the integration");
        }
        if self
            .protected
            .iter()
            .any(|pattern| glob_matches(pattern, &lower))
        {
            return protected("role of the integration itself");
        }
        let not_allowed = |reason: String| {
            Err(PolicyError::RoleNotAllowed {
                role: name.to_string(),
                reason,
            })
        };
        if !is_path(path) {
            return not_allowed(format!("its path `{}` is not an IAM path", shown(path)));
        }
        if !path.starts_with(&self.path_prefix) {
            return not_allowed(format!(
                "its path `{}` is not under `{}`",
                shown(path),
                self.path_prefix
            ));
        }
        if !glob_matches(&self.name_pattern, name.as_str()) {
            return not_allowed(format!("its name does not match `{}`", self.name_pattern));
        }
        Ok(())
    }
}

fn is_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= MAX_ROLE_NAME_LEN
        && pattern.chars().all(|c| c == '*' || is_iam_name_char(c))
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (including none).
/// Linear backtracking on the last `*`, so no pattern can make it slow.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            last_star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = last_star {
            p = star + 1;
            t = matched + 1;
            last_star = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ctx() -> Context {
        Context::new(Partition::Aws)
    }

    fn name(value: &str) -> RoleName {
        RoleName::parse(value).unwrap()
    }

    #[test]
    fn role_names() {
        assert_eq!(
            name("consumer+x=y,z.w@v_u-1").as_str(),
            "consumer+x=y,z.w@v_u-1"
        );
        assert!(RoleName::parse(&"r".repeat(64)).is_ok());
        for bad in [
            "",
            &"r".repeat(65),
            "a b",
            "a/b",
            "a*",
            "rölle",
            "a:b",
            "a\n",
        ] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn role_arns_with_and_without_path() {
        let arn = RoleArn::parse("arn:aws:iam::111122223333:role/consumer").unwrap();
        assert_eq!(
            (arn.account(), arn.path(), arn.name().as_str()),
            ("111122223333", "/", "consumer")
        );
        assert_eq!(arn.to_string(), "arn:aws:iam::111122223333:role/consumer");
        let arn = RoleArn::parse("arn:aws-cn:iam::111122223333:role/teams/sales/consumer").unwrap();
        assert_eq!(
            (arn.path(), arn.name().as_str()),
            ("/teams/sales/", "consumer")
        );
        assert_eq!(arn.partition(), Partition::AwsCn);
        assert_eq!(
            arn.to_string(),
            "arn:aws-cn:iam::111122223333:role/teams/sales/consumer"
        );
    }

    #[test]
    fn rejects_what_is_not_a_role_arn() {
        for bad in [
            "consumer",
            "arn:aws:iam::111122223333:user/consumer",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::111122223333:role//consumer",
            "arn:aws:iam::111122223333:role/a//consumer",
            "arn:aws:iam::111122223333:role/*",
            "arn:aws:iam::111122223333:role/a:b",
            "arn:aws:iam:::role/consumer",
            "arn:aws:iam::aws:role/consumer",
            "arn:aws:sts::111122223333:assumed-role/consumer/session",
            "arn:aws:s3:::consumer",
            "arn:aws:iam::111122223333:role/consumer ",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
        let deep = format!(
            "arn:aws:iam::111122223333:role/{}/consumer",
            "p".repeat(600)
        );
        assert!(RoleArn::parse(&deep).is_err());
    }

    #[test]
    fn consumer_role_from_name_or_arn() {
        assert_eq!(
            ConsumerRole::from_custom(&json!({"aws-role-name": "consumer"}), &ctx()).unwrap(),
            ConsumerRole::OwnAccount(name("consumer"))
        );
        let by_arn = ConsumerRole::from_custom(
            &json!({"aws-role-arn": "arn:aws:iam::111122223333:role/x/consumer"}),
            &ctx(),
        )
        .unwrap();
        assert_eq!(by_arn.name().as_str(), "consumer");
        assert_eq!(by_arn.account(), Some("111122223333"));
        assert_eq!(ConsumerRole::OwnAccount(name("c")).account(), None);
        let both = ConsumerRole::from_custom(
            &json!({"aws-role-name": "Consumer", "aws-role-arn": "arn:aws:iam::111122223333:role/consumer"}),
            &ctx(),
        )
        .unwrap();
        assert_eq!(both, by_arn_of("arn:aws:iam::111122223333:role/consumer"));
    }

    fn by_arn_of(arn: &str) -> ConsumerRole {
        ConsumerRole::Arn(RoleArn::parse(arn).unwrap())
    }

    #[test]
    fn consumer_role_errors() {
        assert_eq!(
            ConsumerRole::from_custom(&json!({}), &ctx()),
            Err(PolicyError::MissingRole)
        );
        assert_eq!(
            ConsumerRole::from_custom(&Value::Null, &ctx()),
            Err(PolicyError::MissingRole)
        );
        assert_eq!(
            ConsumerRole::from_custom(&json!({"aws-role-name": "", "aws-role-arn": null}), &ctx()),
            Err(PolicyError::MissingRole)
        );
        assert_eq!(
            ConsumerRole::from_custom(&json!({"aws-role-name": 7}), &ctx()),
            Err(PolicyError::RoleFieldNotAString {
                field: "aws-role-name"
            })
        );
        assert!(matches!(
            ConsumerRole::from_custom(&json!({"aws-role-name": "a b"}), &ctx()),
            Err(PolicyError::InvalidRoleName { .. })
        ));
        assert!(matches!(
            ConsumerRole::from_custom(
                &json!({"aws-role-arn": "arn:aws:iam::111122223333:role/*"}),
                &ctx()
            ),
            Err(PolicyError::InvalidRoleArn { .. })
        ));
        let error = ConsumerRole::from_custom(
            &json!({"aws-role-arn": "arn:aws-cn:iam::111122223333:role/c"}),
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "consumer: custom field `aws-role-arn` holds `arn:aws-cn:iam::111122223333:role/c`, which is not an IAM role ARN: \
             it is in partition aws-cn, but the integration runs in aws"
        );
        assert_eq!(
            ConsumerRole::from_custom(
                &json!({"aws-role-name": "old", "aws-role-arn": "arn:aws:iam::111122223333:role/new"}),
                &ctx()
            ),
            Err(PolicyError::ConflictingRoleFields {
                name: "old".into(),
                arn: "arn:aws:iam::111122223333:role/new".into()
            })
        );
        let huge = "r".repeat(10 * 1024);
        let error =
            ConsumerRole::from_custom(&json!({ "aws-role-name": huge }), &ctx()).unwrap_err();
        assert!(error.to_string().len() < 300, "{error}");
    }

    fn guard() -> RoleGuard {
        RoleGuard::new("/", "*", ["dmm-integration-*", "Poll_Feed"]).unwrap()
    }

    #[test]
    fn default_guard_allows_ordinary_roles() {
        let guard = RoleGuard::default();
        assert_eq!(guard, RoleGuard::new("/", "*", [] as [&str; 0]).unwrap());
        assert_eq!(guard.check(&name("consumer"), "/"), Ok(()));
        assert_eq!(guard.check(&name("consumer"), "/teams/sales/"), Ok(()));
    }

    #[test]
    fn refuses_reserved_and_service_linked_roles() {
        let guard = guard();
        for (role, path) in [
            (
                "AWSServiceRoleForECS",
                "/aws-service-role/ecs.amazonaws.com/",
            ),
            ("anything", "/aws-service-role/x/"),
            ("awsservicerolefortest", "/"),
            (
                "AWSReservedSSO_Admin_0123456789abcdef",
                "/aws-reserved/sso.amazonaws.com/",
            ),
            ("AWSReservedSSO_Admin_0123456789abcdef", "/"),
            ("anything", "/aws-reserved/x/"),
            ("OrganizationAccountAccessRole", "/"),
            ("organizationaccountaccessrole", "/"),
            ("AWSControlTowerExecution", "/"),
            ("AWSCloudFormationStackSetExecutionRole", "/"),
            ("dmm-access-123", "/"),
            ("DMM-ACCESS-123", "/"),
        ] {
            assert!(
                matches!(
                    guard.check(&name(role), path),
                    Err(PolicyError::ProtectedRole { .. })
                ),
                "{role} {path}"
            );
        }
    }

    #[test]
    fn refuses_the_integrations_own_roles_ignoring_case() {
        let guard = guard();
        for role in [
            "dmm-integration-manage-iam-policies",
            "DMM-Integration-poll-feed",
            "poll_feed",
            "POLL_FEED",
        ] {
            assert_eq!(
                guard.check(&name(role), "/"),
                Err(PolicyError::ProtectedRole {
                    role: role.into(),
                    reason: "role of the integration itself"
                })
            );
        }
        assert_eq!(guard.check(&name("poll_feed2"), "/"), Ok(()));
    }

    #[test]
    fn allowlist_by_path_and_name() {
        let guard = RoleGuard::new("/data-consumers/", "dmm-consumer-*", ["integration"]).unwrap();
        assert_eq!(
            guard.check(&name("dmm-consumer-sales"), "/data-consumers/"),
            Ok(())
        );
        assert_eq!(
            guard.check(&name("dmm-consumer-sales"), "/data-consumers/eu/"),
            Ok(())
        );
        assert_eq!(
            guard.check(&name("dmm-consumer-sales"), "/"),
            Err(PolicyError::RoleNotAllowed {
                role: "dmm-consumer-sales".into(),
                reason: "its path `/` is not under `/data-consumers/`".into()
            })
        );
        assert!(matches!(
            guard.check(&name("dmm-consumer-sales"), "/data-consumers-evil/"),
            Err(PolicyError::RoleNotAllowed { .. })
        ));
        assert_eq!(
            guard.check(&name("admin"), "/data-consumers/"),
            Err(PolicyError::RoleNotAllowed {
                role: "admin".into(),
                reason: "its name does not match `dmm-consumer-*`".into()
            })
        );
        assert!(matches!(
            guard.check(&name("DMM-Consumer-sales"), "/data-consumers/"),
            Err(PolicyError::RoleNotAllowed { .. })
        ));
        assert!(matches!(
            guard.check(&name("dmm-consumer-x"), "data-consumers/"),
            Err(PolicyError::RoleNotAllowed { .. })
        ));
        assert!(matches!(
            guard.check(&name("integration"), "/data-consumers/"),
            Err(PolicyError::ProtectedRole { .. })
        ));
    }

    #[test]
    fn rejects_invalid_guard_configuration() {
        for (prefix, pattern, protected) in [
            ("", "*", "x"),
            ("data", "*", "x"),
            ("/data", "*", "x"),
            ("/a//", "*", "x"),
            ("/a b/", "*", "x"),
            ("/a*/", "*", "x"),
            ("/", "", "x"),
            ("/", "a/b", "x"),
            ("/", "a?", "x"),
            ("/", "*", ""),
            ("/", "*", "a b"),
        ] {
            assert!(
                matches!(
                    RoleGuard::new(prefix, pattern, [protected]),
                    Err(PolicyError::InvalidRoleGuard(_))
                ),
                "{prefix:?} {pattern:?} {protected:?}"
            );
        }
    }

    #[test]
    fn glob() {
        for (pattern, text) in [
            ("*", ""),
            ("*", "abc"),
            ("a*", "a"),
            ("a*c", "abbbc"),
            ("*b*", "abc"),
            ("a**b", "ab"),
            ("abc", "abc"),
            ("*a*a*a*b", "aaaaaaab"),
        ] {
            assert!(glob_matches(pattern, text), "{pattern} {text}");
        }
        for (pattern, text) in [
            ("", "a"),
            ("a", ""),
            ("a*c", "abcd"),
            ("abc", "abd"),
            ("*a*a*a*b", &"a".repeat(50)),
        ] {
            assert!(!glob_matches(pattern, text), "{pattern} {text}");
        }
    }

    proptest! {
        #[test]
        fn glob_star_matches_everything(text in "[a-z]{0,20}") {
            prop_assert!(glob_matches("*", &text));
            prop_assert!(glob_matches(&text, &text));
        }

        #[test]
        fn role_parsing_never_panics(value in any::<String>()) {
            let _ = RoleArn::parse(&value);
            let _ = RoleName::parse(&value);
            let _ = ConsumerRole::from_custom(&json!({"aws-role-arn": value.clone(), "aws-role-name": value}), &ctx());
        }

        #[test]
        fn guard_never_panics(name in "[A-Za-z0-9_+=,.@-]{1,64}", path in "[ -~]{0,30}") {
            let _ = guard().check(&RoleName::parse(&name).unwrap(), &path);
        }
    }
}

//! IAM policy documents: building, reading back, comparing and sizing.
//!
//! The reconciler writes a policy only when it differs from what IAM already holds, and only when
//! it fits the role's inline policy budget. Both decisions need the document as IAM sees it:
//! IAM returns it URL-encoded, in whatever order and with whatever string-versus-array choices
//! it was written, and counts its size without whitespace.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::de::Error as _;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::PolicyError;
use crate::text::shown;

/// The policy language version every document the catalogue builds declares; without it IAM
/// falls back to 2008-10-17, which lacks policy variables and some condition operators.
pub const POLICY_VERSION: &str = "2012-10-17";

/// IAM's quota for the sum of all inline policies of one role, in characters excluding
/// whitespace. It is not adjustable, so exceeding it is a permanent error.
pub const ROLE_INLINE_POLICY_LIMIT: usize = 10_240;

/// Effect of a statement. The catalogue only builds `Allow`; `Deny` exists so documents edited by
/// someone else can still be read and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// Condition block: operator (`StringLike`) → condition key (`s3:prefix`) → values.
pub type Conditions = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// One statement of an identity-based policy.
#[derive(Debug, Clone)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Conditions,
}

impl Statement {
    /// An `Allow` statement. The `sid` is stable per statement kind so that a document written
    /// twice is byte-identical and a reader of the role can tell the statements apart.
    pub fn allow<R>(sid: &str, actions: &[&str], resources: R) -> Self
    where
        R: IntoIterator,
        R::Item: Into<String>,
    {
        Statement {
            sid: Some(sid.to_owned()),
            effect: Effect::Allow,
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            resources: resources.into_iter().map(Into::into).collect(),
            conditions: Conditions::new(),
        }
    }

    /// Adds `operator: { key: values }`; several values of one key are alternatives, as in IAM.
    pub fn with_condition<V>(mut self, operator: &str, key: &str, values: V) -> Self
    where
        V: IntoIterator,
        V::Item: Into<String>,
    {
        self.conditions
            .entry(operator.to_owned())
            .or_default()
            .entry(key.to_owned())
            .or_default()
            .extend(values.into_iter().map(Into::into));
        self
    }

    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The statement with its parts replaced, for packing several grants into one document
    /// (`policy::packing`): without a `Sid`, since a document's Sids must be unique.
    pub(crate) fn rebuilt(
        effect: Effect,
        actions: Vec<String>,
        resources: Vec<String>,
        conditions: Conditions,
    ) -> Self {
        Statement {
            sid: None,
            effect,
            actions,
            resources,
            conditions,
        }
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    pub fn conditions(&self) -> &Conditions {
        &self.conditions
    }

    /// The statement with everything IAM treats as insignificant normalised away: order and
    /// duplicates of actions, resources and condition values, and the case of action names and
    /// condition keys (both case-insensitive in IAM).
    fn canonical(&self) -> CanonicalStatement {
        CanonicalStatement {
            sid: self.sid.clone(),
            effect: self.effect,
            actions: self
                .actions
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            resources: self.resources.iter().cloned().collect(),
            conditions: self
                .conditions
                .iter()
                .map(|(operator, keys)| {
                    let keys = keys
                        .iter()
                        .map(|(key, values)| {
                            (key.to_ascii_lowercase(), values.iter().cloned().collect())
                        })
                        .collect();
                    (operator.clone(), keys)
                })
                .collect(),
        }
    }
}

type CanonicalConditions = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CanonicalStatement {
    sid: Option<String>,
    effect: Effect,
    actions: BTreeSet<String>,
    resources: BTreeSet<String>,
    conditions: CanonicalConditions,
}

/// Structural equality: two statements are equal when IAM would evaluate them identically for
/// the reasons listed on `canonical`, whatever their JSON spelling.
impl PartialEq for Statement {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl Eq for Statement {}

/// An identity-based IAM policy, as the catalogue writes it and as it reads one back from IAM.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    version: String,
    statements: Vec<Statement>,
}

impl PolicyDocument {
    pub fn new(statements: Vec<Statement>) -> Self {
        PolicyDocument {
            version: POLICY_VERSION.to_owned(),
            statements,
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Compact JSON, the form sent to IAM: no whitespace, so what is sent is exactly what counts
    /// against the size quota.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy document always serialises")
    }

    /// Reads a document as `GetRolePolicy` returns it: URL-encoded per the IAM API, or plain
    /// JSON when an SDK or a test double already decoded it.
    ///
    /// Only the elements the catalogue writes are understood; a document that uses others
    /// (`NotAction`, `Principal`, …) was not written by the integration and is reported as
    /// unreadable, which the caller treats as "differs".
    pub fn from_iam(raw: &str) -> Result<Self, PolicyError> {
        let json = decode_iam_document(raw)?;
        serde_json::from_str(&json).map_err(|e| PolicyError::InvalidDocument(shown(&e.to_string())))
    }

    /// Size as IAM counts it against [`ROLE_INLINE_POLICY_LIMIT`].
    pub fn size(&self) -> usize {
        policy_size(&self.to_json())
    }

    fn canonical(&self) -> (String, BTreeSet<CanonicalStatement>) {
        (
            self.version.clone(),
            self.statements.iter().map(Statement::canonical).collect(),
        )
    }
}

/// Structural equality: statement order, duplicate statements, and everything
/// [`Statement`]'s equality ignores do not count as a change, so an unchanged grant is never
/// written again.
impl PartialEq for PolicyDocument {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl Eq for PolicyDocument {}

/// Turns a document as IAM returns it into JSON text. A JSON document starts with `{`; anything
/// else is taken to be URL-encoded (RFC 3986, where `+` is a literal plus).
pub fn decode_iam_document(raw: &str) -> Result<Cow<'_, str>, PolicyError> {
    if raw.trim_start().starts_with('{') {
        return Ok(Cow::Borrowed(raw));
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| {
            PolicyError::InvalidDocument("the URL-encoded document is not valid UTF-8".into())
        })
}

/// Characters of a (decoded) policy document as IAM counts them for its size quotas: every
/// character except whitespace. Works on any document, including inline policies the catalogue
/// cannot parse, because they all share the role's budget.
pub fn policy_size(json: &str) -> usize {
    json.chars().filter(|c| !c.is_whitespace()).count()
}

/// Checks, before anything is written, that `policy` fits next to the role's other inline
/// policies. `other_policy_sizes` are the [`policy_size`]s of every inline policy of the role
/// except the one `policy` replaces (same name), because IAM replaces it rather than adding to it.
pub fn check_inline_policy_budget(
    role: &str,
    policy_name: &str,
    policy: &PolicyDocument,
    other_policy_sizes: impl IntoIterator<Item = usize>,
) -> Result<(), PolicyError> {
    let used: usize = other_policy_sizes.into_iter().sum();
    let size = policy.size();
    let available = ROLE_INLINE_POLICY_LIMIT.saturating_sub(used);
    if size <= available {
        Ok(())
    } else {
        Err(PolicyError::PolicyTooLarge {
            role: shown(role),
            policy: shown(policy_name),
            size,
            used,
            available,
            limit: ROLE_INLINE_POLICY_LIMIT,
        })
    }
}

/// A list written the way IAM's own examples do: a lone value as a string, several as an array.
/// Saves characters of the shared size budget without changing the meaning.
struct OneOrMany<'a>(&'a [String]);

impl Serialize for OneOrMany<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [single] => serializer.serialize_str(single),
            many => {
                let mut seq = serializer.serialize_seq(Some(many.len()))?;
                for value in many {
                    seq.serialize_element(value)?;
                }
                seq.end()
            }
        }
    }
}

struct ConditionKeys<'a>(&'a BTreeMap<String, Vec<String>>);

impl Serialize for ConditionKeys<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, values) in self.0 {
            map.serialize_entry(key, &OneOrMany(values))?;
        }
        map.end()
    }
}

struct ConditionBlock<'a>(&'a Conditions);

impl Serialize for ConditionBlock<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (operator, keys) in self.0 {
            map.serialize_entry(operator, &ConditionKeys(keys))?;
        }
        map.end()
    }
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(sid) = &self.sid {
            map.serialize_entry("Sid", sid)?;
        }
        map.serialize_entry("Effect", self.effect.as_str())?;
        map.serialize_entry("Action", &OneOrMany(&self.actions))?;
        map.serialize_entry("Resource", &OneOrMany(&self.resources))?;
        if !self.conditions.is_empty() {
            map.serialize_entry("Condition", &ConditionBlock(&self.conditions))?;
        }
        map.end()
    }
}

impl Serialize for PolicyDocument {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("Version", &self.version)?;
        map.serialize_entry("Statement", &self.statements)?;
        map.end()
    }
}

/// What IAM accepts where a list is expected: a single value or an array of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawList<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> RawList<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            RawList::One(value) => vec![value],
            RawList::Many(values) => values,
        }
    }
}

/// Condition values may be written as JSON booleans or numbers; IAM compares them as strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawScalar {
    String(String),
    Bool(bool),
    Number(serde_json::Number),
}

impl RawScalar {
    fn into_string(self) -> String {
        match self {
            RawScalar::String(s) => s,
            RawScalar::Bool(b) => b.to_string(),
            RawScalar::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    #[serde(rename = "Sid")]
    sid: Option<String>,
    #[serde(rename = "Effect")]
    effect: String,
    #[serde(rename = "Action")]
    action: RawList<String>,
    #[serde(rename = "Resource")]
    resource: RawList<String>,
    #[serde(rename = "Condition", default)]
    condition: BTreeMap<String, BTreeMap<String, RawList<RawScalar>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    #[serde(rename = "Version")]
    version: Option<String>,
    #[serde(rename = "Statement")]
    statement: RawList<RawStatement>,
}

impl<'de> Deserialize<'de> for PolicyDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawDocument::deserialize(deserializer)?;
        let statements = raw
            .statement
            .into_vec()
            .into_iter()
            .map(|s| {
                let effect = match s.effect.as_str() {
                    "Allow" => Effect::Allow,
                    "Deny" => Effect::Deny,
                    other => {
                        return Err(D::Error::custom(format!(
                            "unknown Effect `{}`",
                            shown(other)
                        )));
                    }
                };
                let actions = s.action.into_vec();
                let resources = s.resource.into_vec();
                if actions.is_empty() || resources.is_empty() {
                    return Err(D::Error::custom(
                        "a statement has an empty Action or Resource",
                    ));
                }
                let conditions = s
                    .condition
                    .into_iter()
                    .map(|(operator, keys)| {
                        let keys = keys
                            .into_iter()
                            .map(|(key, values)| {
                                (
                                    key,
                                    values
                                        .into_vec()
                                        .into_iter()
                                        .map(RawScalar::into_string)
                                        .collect(),
                                )
                            })
                            .collect();
                        (operator, keys)
                    })
                    .collect();
                Ok(Statement {
                    sid: s.sid,
                    effect,
                    actions,
                    resources,
                    conditions,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PolicyDocument {
            // IAM's default when a document omits Version.
            version: raw.version.unwrap_or_else(|| "2008-10-17".to_owned()),
            statements,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PolicyDocument {
        PolicyDocument::new(vec![
            Statement::allow("S3ListFolder", &["s3:ListBucket"], ["arn:aws:s3:::b"])
                .with_condition("StringLike", "s3:prefix", ["f/", "f/*"]),
            Statement::allow("S3ReadFolder", &["s3:GetObject"], ["arn:aws:s3:::b/f/*"]),
        ])
    }

    const SAMPLE_JSON: &str = concat!(
        r#"{"Version":"2012-10-17","Statement":["#,
        r#"{"Sid":"S3ListFolder","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","#,
        r#""Condition":{"StringLike":{"s3:prefix":["f/","f/*"]}}},"#,
        r#"{"Sid":"S3ReadFolder","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/f/*"}]}"#
    );

    #[test]
    fn serialises_to_compact_json_in_iam_order() {
        assert_eq!(sample().to_json(), SAMPLE_JSON);
    }

    #[test]
    fn several_values_are_arrays() {
        let doc = PolicyDocument::new(vec![Statement::allow(
            "X",
            &["a:B", "a:C"],
            ["arn:aws:s3:::x", "arn:aws:s3:::y"],
        )]);
        assert_eq!(
            doc.to_json(),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"X","Effect":"Allow","Action":["a:B","a:C"],"Resource":["arn:aws:s3:::x","arn:aws:s3:::y"]}]}"#
        );
    }

    #[test]
    fn reads_plain_and_url_encoded_documents() {
        let plain = PolicyDocument::from_iam(SAMPLE_JSON).unwrap();
        assert_eq!(plain.to_json(), SAMPLE_JSON);
        let encoded: String =
            percent_encoding::utf8_percent_encode(SAMPLE_JSON, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        assert!(encoded.starts_with("%7B"));
        let decoded = PolicyDocument::from_iam(&encoded).unwrap();
        assert_eq!(decoded.to_json(), SAMPLE_JSON);
    }

    #[test]
    fn reads_what_iam_returns_for_a_pretty_printed_document() {
        // IAM keeps the submitted formatting; this is GetRolePolicy's answer for a document
        // written with newlines and indentation.
        let raw = "%7B%0A%20%20%22Version%22%3A%20%222012-10-17%22%2C%0A%20%20%22Statement%22%3A%20%7B%0A%20%20%20%20%22Effect%22%3A%20%22Allow%22%2C%0A%20%20%20%20%22Action%22%3A%20%22s3%3AGetObject%22%2C%0A%20%20%20%20%22Resource%22%3A%20%22arn%3Aaws%3As3%3A%3A%3Ab%2F%2A%22%0A%20%20%7D%0A%7D";
        let doc = PolicyDocument::from_iam(raw).unwrap();
        assert_eq!(doc.statements().len(), 1);
        assert_eq!(doc.statements()[0].actions(), ["s3:GetObject"]);
        assert_eq!(doc.statements()[0].resources(), ["arn:aws:s3:::b/*"]);
    }

    #[test]
    fn a_literal_plus_stays_a_plus() {
        let raw = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2Fa+b%22%7D%7D";
        let doc = PolicyDocument::from_iam(raw).unwrap();
        assert_eq!(doc.statements()[0].resources(), ["arn:aws:s3:::b/a+b"]);
    }

    #[test]
    fn rejects_unreadable_documents() {
        for raw in [
            "",
            "%7B",
            "not json",
            "%FF%FE",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"s3:*","Resource":"*"}]}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"s3:GetObject","Resource":"*"}]}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            r#"{"Version":"2012-10-17","Id":"x","Statement":[]}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"x"},"Action":"sts:AssumeRole","Resource":"*"}]}"#,
        ] {
            assert!(
                matches!(
                    PolicyDocument::from_iam(raw),
                    Err(PolicyError::InvalidDocument(_))
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_missing_version_is_iams_default_and_differs() {
        let doc = PolicyDocument::from_iam(
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        )
        .unwrap();
        assert_eq!(doc.version(), "2008-10-17");
        let ours = PolicyDocument::new(vec![Statement {
            sid: None,
            ..Statement::allow("", &["s3:GetObject"], ["arn:aws:s3:::b/*"])
        }]);
        assert_ne!(doc, ours);
    }

    #[test]
    fn structural_equality_ignores_order_spelling_and_duplicates() {
        let reordered = r#"{
            "Version": "2012-10-17",
            "Statement": [
                {"Resource": ["arn:aws:s3:::b/f/*"], "Action": ["S3:GETOBJECT", "s3:GetObject"], "Effect": "Allow", "Sid": "S3ReadFolder"},
                {"Sid": "S3ListFolder", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::b",
                 "Condition": {"StringLike": {"S3:Prefix": ["f/*", "f/"]}}}
            ]
        }"#;
        assert_eq!(PolicyDocument::from_iam(reordered).unwrap(), sample());
        let duplicated = format!(
            r#"{{"Version":"2012-10-17","Statement":[{0},{0},{1}]}}"#,
            serde_json::to_string(&sample().statements()[0]).unwrap(),
            serde_json::to_string(&sample().statements()[1]).unwrap()
        );
        assert_eq!(PolicyDocument::from_iam(&duplicated).unwrap(), sample());
    }

    #[test]
    fn structural_equality_sees_real_changes() {
        let base = sample();
        let changes = [
            SAMPLE_JSON.replace("b/f/*", "b/g/*"),
            SAMPLE_JSON.replace("\"f/\",", ""),
            SAMPLE_JSON.replace("S3ReadFolder", "Other"),
            SAMPLE_JSON.replace(
                "\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\"",
                "\"Effect\":\"Deny\",\"Action\":\"s3:GetObject\"",
            ),
            SAMPLE_JSON.replace("StringLike", "StringEquals"),
            SAMPLE_JSON.replace("arn:aws:s3:::b\"", "arn:aws:s3:::B\""),
            SAMPLE_JSON.replace("2012-10-17", "2008-10-17"),
            SAMPLE_JSON.replace("\"s3:GetObject\"", "[\"s3:GetObject\",\"s3:PutObject\"]"),
        ];
        for changed in changes {
            assert_ne!(changed, SAMPLE_JSON);
            assert_ne!(
                PolicyDocument::from_iam(&changed).unwrap(),
                base,
                "{changed}"
            );
        }
    }

    #[test]
    fn condition_values_of_any_json_scalar_compare_as_strings() {
        let with_bool = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":true}}}}"#;
        let with_string = with_bool.replace("true", "\"true\"");
        assert_eq!(
            PolicyDocument::from_iam(with_bool).unwrap(),
            PolicyDocument::from_iam(&with_string).unwrap()
        );
    }

    #[test]
    fn size_excludes_whitespace() {
        assert_eq!(policy_size(" { \"a\" :\n\t1 } "), 7);
        assert_eq!(sample().size(), SAMPLE_JSON.len());
        let pretty = serde_json::to_string_pretty(&sample()).unwrap();
        assert_eq!(policy_size(&pretty), SAMPLE_JSON.len());
    }

    #[test]
    fn budget_counts_the_other_inline_policies() {
        let size = sample().size();
        let fits_exactly = ROLE_INLINE_POLICY_LIMIT - size;
        assert_eq!(
            check_inline_policy_budget("r", "p", &sample(), [fits_exactly]),
            Ok(())
        );
        assert_eq!(
            check_inline_policy_budget(
                "r",
                "p",
                &sample(),
                [fits_exactly / 2, fits_exactly - fits_exactly / 2]
            ),
            Ok(())
        );
        assert_eq!(check_inline_policy_budget("r", "p", &sample(), []), Ok(()));
        assert_eq!(
            check_inline_policy_budget("r", "p", &sample(), [fits_exactly + 1]),
            Err(PolicyError::PolicyTooLarge {
                role: "r".into(),
                policy: "p".into(),
                size,
                used: fits_exactly + 1,
                available: size - 1,
                limit: ROLE_INLINE_POLICY_LIMIT,
            })
        );
        assert_eq!(
            check_inline_policy_budget("r", "p", &sample(), [ROLE_INLINE_POLICY_LIMIT, 5_000]),
            Err(PolicyError::PolicyTooLarge {
                role: "r".into(),
                policy: "p".into(),
                size,
                used: ROLE_INLINE_POLICY_LIMIT + 5_000,
                available: 0,
                limit: ROLE_INLINE_POLICY_LIMIT,
            })
        );
    }

    #[test]
    fn a_policy_alone_larger_than_the_quota_never_fits() {
        let resources: Vec<String> = (0..400)
            .map(|i| format!("arn:aws:s3:::bucket-{i:04}/*"))
            .collect();
        let huge = PolicyDocument::new(vec![Statement::allow("Big", &["s3:GetObject"], resources)]);
        assert!(huge.size() > ROLE_INLINE_POLICY_LIMIT);
        assert!(matches!(
            check_inline_policy_budget("r", "p", &huge, []),
            Err(PolicyError::PolicyTooLarge { used: 0, .. })
        ));
    }

    fn statement() -> impl proptest::strategy::Strategy<Value = Statement> {
        use proptest::prelude::*;
        let list = || prop::collection::vec("[a-z0-9:/*._-]{1,12}", 1..4);
        (
            "[A-Za-z0-9]{1,8}",
            list(),
            list(),
            prop::collection::btree_map(
                "String(Like|Equals)",
                prop::collection::btree_map("[a-z]{1,3}:[a-z]{1,5}", list(), 1..3),
                0..2,
            ),
        )
            .prop_map(|(sid, actions, resources, conditions)| {
                let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
                let mut statement = Statement::allow(&sid, &actions, resources);
                statement.conditions = conditions;
                statement
            })
    }

    proptest::proptest! {
        #[test]
        fn documents_round_trip_and_ignore_statement_order(
            statements in proptest::collection::vec(statement(), 1..5),
            rotation in 0usize..5,
        ) {
            let doc = PolicyDocument::new(statements.clone());
            let read_back = PolicyDocument::from_iam(&doc.to_json()).unwrap();
            proptest::prop_assert_eq!(&read_back, &doc);
            proptest::prop_assert_eq!(read_back.to_json(), doc.to_json());
            let mut rotated = statements;
            let by = rotation % rotated.len();
            rotated.rotate_left(by);
            proptest::prop_assert_eq!(PolicyDocument::new(rotated), doc);
        }

        #[test]
        fn reading_never_panics(raw in proptest::prelude::any::<String>()) {
            let _ = PolicyDocument::from_iam(&raw);
            let _ = policy_size(&raw);
        }
    }
}

//! Packing the grants of many agreements on one role into few policy documents (ADR 023).
//!
//! IAM caps what a role can hold: 10,240 characters of inline policy in total, and customer
//! managed policies of 6,144 characters each, ten attached by default (twenty at most). One
//! inline policy per agreement tops out at a few dozen agreements. Packing merges statements
//! across agreements where IAM evaluates the merge exactly as the separate statements:
//!
//! - statements with the same effect, actions and conditions become one statement whose resources
//!   are the union (resources are alternatives);
//! - statements with the same effect, actions and resources whose conditions test one key with
//!   one operator become one statement whose values are the union (values of one key are
//!   alternatives), without the `StringLike` values another value already matches. Conditions on
//!   several keys are never merged: keys are all required, and a union per key would admit
//!   combinations no agreement granted.
//!
//! Sids are dropped (they must be unique in a document and cost characters); the result is sorted,
//! so the same grants always pack into the same text.

use std::collections::{BTreeMap, BTreeSet};

use super::document::{Conditions, Effect, PolicyDocument, Statement, policy_size};

/// IAM's limit for one customer managed policy, in characters excluding whitespace.
pub const MANAGED_POLICY_LIMIT: usize = 6_144;

/// The actions of a statement as IAM compares them (case-insensitive, unordered).
fn action_set(statement: &Statement) -> BTreeSet<String> {
    statement
        .actions()
        .iter()
        .map(|a| a.to_ascii_lowercase())
        .collect()
}

/// The single (operator, key) a statement's condition tests, if it tests exactly one.
fn single_condition(conditions: &Conditions) -> Option<(&str, &str)> {
    match conditions.iter().collect::<Vec<_>>()[..] {
        [(operator, keys)] if keys.len() == 1 => keys
            .keys()
            .next()
            .map(|key| (operator.as_str(), key.as_str())),
        _ => None,
    }
}

type ConditionKey = (String, String);
type ResourceGroup = (Effect, BTreeSet<String>, BTreeSet<String>, ConditionKey);
type ConditionGroup = (
    Effect,
    BTreeSet<String>,
    BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
);

/// One document holding every statement of `documents`, merged where IAM's evaluation is the
/// same.
pub fn pack<'a>(documents: impl IntoIterator<Item = &'a PolicyDocument>) -> PolicyDocument {
    // Phase 1: one key, one operator, same resources: union of the values.
    let mut by_resources: BTreeMap<ResourceGroup, (Vec<String>, BTreeSet<String>)> =
        BTreeMap::new();
    let mut others: Vec<Statement> = Vec::new();
    for statement in documents.into_iter().flat_map(PolicyDocument::statements) {
        match single_condition(statement.conditions()) {
            Some((operator, key)) => {
                let values = &statement.conditions()[operator][key];
                let group = (
                    statement.effect(),
                    action_set(statement),
                    statement.resources().iter().cloned().collect(),
                    (operator.to_owned(), key.to_owned()),
                );
                let entry = by_resources
                    .entry(group)
                    .or_insert_with(|| (statement.actions().to_vec(), BTreeSet::new()));
                entry.1.extend(values.iter().cloned());
            }
            None => others.push(statement.clone()),
        }
    }
    let merged_values = by_resources.into_iter().map(
        |((effect, _, resources, (operator, key)), (actions, values))| {
            let values = if operator == "StringLike" {
                without_covered(values)
            } else {
                values
            };
            let conditions = Conditions::from([(
                operator,
                BTreeMap::from([(key, values.into_iter().collect())]),
            )]);
            Statement::rebuilt(effect, actions, resources.into_iter().collect(), conditions)
        },
    );
    // Phase 2: same effect, actions and conditions: union of the resources.
    let mut by_conditions: BTreeMap<ConditionGroup, (Vec<String>, BTreeSet<String>)> =
        BTreeMap::new();
    for statement in merged_values.chain(others) {
        let conditions = statement
            .conditions()
            .iter()
            .map(|(operator, keys)| {
                let keys = keys
                    .iter()
                    .map(|(key, values)| (key.clone(), values.iter().cloned().collect()))
                    .collect();
                (operator.clone(), keys)
            })
            .collect();
        let group = (statement.effect(), action_set(&statement), conditions);
        let entry = by_conditions
            .entry(group)
            .or_insert_with(|| (sorted(statement.actions()), BTreeSet::new()));
        entry.1.extend(statement.resources().iter().cloned());
    }
    let statements = by_conditions
        .into_iter()
        .map(|((effect, _, conditions), (actions, resources))| {
            let conditions = conditions
                .into_iter()
                .map(|(operator, keys)| {
                    let keys = keys
                        .into_iter()
                        .map(|(key, values)| (key, values.into_iter().collect()))
                        .collect();
                    (operator, keys)
                })
                .collect();
            Statement::rebuilt(effect, actions, resources.into_iter().collect(), conditions)
        })
        .collect();
    PolicyDocument::new(statements)
}

/// `StringLike` values without those another value of the set matches anyway: `orders/` when
/// `orders/*` is there (`*` also matches nothing). Each S3 folder grant lists both, so this
/// saves a fifth of a packed folder grant.
fn without_covered(values: BTreeSet<String>) -> BTreeSet<String> {
    values
        .iter()
        .filter(|v| !values.contains(&format!("{v}*")))
        .cloned()
        .collect()
}

fn sorted(actions: &[String]) -> Vec<String> {
    let mut actions = actions.to_vec();
    actions.sort();
    actions.dedup();
    actions
}

/// The size IAM counts for the packed document of `documents`.
pub fn packed_size<'a>(documents: impl IntoIterator<Item = &'a PolicyDocument>) -> usize {
    policy_size(&pack(documents).to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::S3Location;
    use crate::policy::arn::Arn;

    fn folder(arn: &str) -> PolicyDocument {
        PolicyDocument::new(
            S3Location::from_arn(&Arn::parse(arn).unwrap())
                .unwrap()
                .statements(),
        )
    }

    #[test]
    fn folders_of_one_bucket_share_their_statements() {
        let packed = pack(&[
            folder("arn:aws:s3:::lake/orders"),
            folder("arn:aws:s3:::lake/returns"),
        ]);
        assert_eq!(
            packed.to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Effect":"Allow","Action":"s3:GetBucketLocation","Resource":"arn:aws:s3:::lake"},"#,
                r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":["arn:aws:s3:::lake/orders/*","arn:aws:s3:::lake/returns/*"]},"#,
                r#"{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::lake","Condition":{"StringLike":{"s3:prefix":["orders/*","returns/*"]}}}]}"#
            )
        );
    }

    #[test]
    fn list_conditions_of_different_buckets_stay_apart_unless_they_are_equal() {
        let apart = pack(&[
            folder("arn:aws:s3:::lake/orders"),
            folder("arn:aws:s3:::archive/returns"),
        ])
        .to_json();
        assert_eq!(apart.matches("s3:ListBucket").count(), 2, "{apart}");
        assert_eq!(apart.matches("s3:GetObject").count(), 1, "{apart}");
        // The same folder in two buckets: one condition for both is exactly the two grants.
        let same = pack(&[
            folder("arn:aws:s3:::lake/orders"),
            folder("arn:aws:s3:::archive/orders"),
        ])
        .to_json();
        assert!(
            same.contains(r#""Action":"s3:ListBucket","Resource":["arn:aws:s3:::archive","arn:aws:s3:::lake"],"Condition":{"StringLike":{"s3:prefix":"orders/*"}}"#),
            "{same}"
        );
    }

    #[test]
    fn conditions_on_several_keys_are_never_merged() {
        let two_keys = |vpc: &str, prefix: &str| {
            PolicyDocument::new(vec![
                Statement::allow("L", &["s3:ListBucket"], ["arn:aws:s3:::lake"])
                    .with_condition("StringLike", "s3:prefix", [prefix])
                    .with_condition("StringEquals", "aws:SourceVpc", [vpc]),
            ])
        };
        let packed = pack(&[two_keys("vpc-1", "a/*"), two_keys("vpc-2", "b/*")]);
        assert_eq!(packed.statements().len(), 2, "{}", packed.to_json());
    }

    /// What IAM would decide for one request, for the statements the catalogue writes: exact
    /// actions, `*` globs in resources and `StringLike` values, every condition key required.
    fn allows(
        document: &PolicyDocument,
        action: &str,
        resource: &str,
        prefix: Option<&str>,
    ) -> bool {
        fn glob(pattern: &str, text: &str) -> bool {
            wildmatch::WildMatch::new(pattern).matches(text)
        }
        document.statements().iter().any(|s| {
            s.actions().iter().any(|a| a == action)
                && s.resources().iter().any(|r| glob(r, resource))
                && s.conditions().iter().all(|(operator, keys)| {
                    keys.iter().all(|(key, values)| {
                        match (operator.as_str(), key.as_str(), prefix) {
                            ("StringLike", "s3:prefix", Some(p)) => {
                                values.iter().any(|v| glob(v, p))
                            }
                            _ => false,
                        }
                    })
                })
        })
    }

    proptest::proptest! {
        /// Packing never widens or narrows a grant: every request the separate documents allow
        /// the packed one allows, and nothing else.
        #[test]
        fn packing_allows_exactly_what_the_grants_allow(
            grants in proptest::collection::vec((0..3usize, 0..4usize), 1..8),
            probes in proptest::collection::vec((0..3usize, 0..5usize, 0..3usize, 0..3usize), 20),
        ) {
            let bucket = |b: usize| format!("bucket-{b}");
            let name = |f: usize| format!("f{f}");
            let documents: Vec<PolicyDocument> = grants
                .iter()
                .map(|(b, f)| folder(&format!("arn:aws:s3:::{}/{}", bucket(*b), name(*f))))
                .collect();
            let packed = pack(&documents);
            for (b, f, action, shape) in probes {
                let action = ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"][action];
                let (resource, prefix) = match action {
                    "s3:GetObject" => (format!("arn:aws:s3:::{}/{}/{}", bucket(b), name(f), ["x", "y/z", ""][shape]), None),
                    "s3:ListBucket" => (format!("arn:aws:s3:::{}", bucket(b)), Some([format!("{}/", name(f)), format!("{}/a", name(f)), name(f)][shape].clone())),
                    _ => (format!("arn:aws:s3:::{}", bucket(b)), None),
                };
                let separately = documents.iter().any(|d| allows(d, action, &resource, prefix.as_deref()));
                proptest::prop_assert_eq!(
                    separately,
                    allows(&packed, action, &resource, prefix.as_deref()),
                    "{} {} {:?} in {}", action, resource, prefix, packed.to_json()
                );
            }
        }
    }

    /// How many S3 folder grants of one bucket one managed policy holds (ADR 023's capacity
    /// figures): with names like the benchmark's, a little over a hundred.
    #[test]
    fn a_managed_policy_holds_about_a_hundred_folder_grants() {
        let mut documents = Vec::new();
        while packed_size(&documents) <= MANAGED_POLICY_LIMIT {
            documents.push(folder(&format!(
                "arn:aws:s3:::orders-lake/parts/p{:04}",
                documents.len()
            )));
        }
        let fits = documents.len() - 1;
        assert!((100..=120).contains(&fits), "{fits}");
        let inline = folder("arn:aws:s3:::orders-lake/parts/p0000").size();
        assert!(
            (20..=40).contains(&(crate::policy::ROLE_INLINE_POLICY_LIMIT / inline)),
            "one inline policy per agreement: {} a role",
            crate::policy::ROLE_INLINE_POLICY_LIMIT / inline
        );
    }

    #[test]
    fn packing_is_the_same_whatever_the_order_and_repeats() {
        let (a, b) = (
            folder("arn:aws:s3:::lake/orders"),
            folder("arn:aws:s3:::lake/returns"),
        );
        assert_eq!(pack([&a, &b]).to_json(), pack([&b, &a, &b]).to_json());
        assert!(packed_size([&a, &b]) < a.size() + b.size());
    }
}

//! Names of the IAM objects the integration creates for an agreement.
//!
//! The inline policy keeps the reference integration's name `DMM_DataUsageAgreement_<id>`, so a
//! deployment that switches from the Python integration still finds, compares and revokes the
//! policies it already wrote. Agreement ids are chosen by DMM (or its users) and may not be
//! valid IAM names; those are mapped to a different prefix with a hash of the raw id, which keeps
//! the mapping deterministic (revocation recomputes the same name) and collision-resistant, and
//! keeps mapped names disjoint from direct ones.

use sha2::{Digest, Sha256};

use super::error::PolicyError;

/// Prefix of the inline policy per agreement, as in the reference integration.
pub const POLICY_NAME_PREFIX: &str = "DMM_DataUsageAgreement_";
/// Prefix of policy names for ids that cannot be used verbatim. Differs from
/// [`POLICY_NAME_PREFIX`] at the fifth character, so no direct name can equal a mapped one.
pub const MAPPED_POLICY_NAME_PREFIX: &str = "DMM_DUA_";
/// Prefix of the cross-account access role per agreement.
pub const ACCESS_ROLE_NAME_PREFIX: &str = "dmm-access-";
/// Prefix of access role names for ids that cannot be used verbatim; differs from
/// [`ACCESS_ROLE_NAME_PREFIX`] at the eighth character, also ignoring case.
pub const MAPPED_ACCESS_ROLE_NAME_PREFIX: &str = "dmm-acc-";

/// IAM's length limit for policy names.
pub const MAX_POLICY_NAME_LEN: usize = 128;
/// IAM's length limit for role names.
pub const MAX_ROLE_NAME_LEN: usize = 64;

/// Hex digits of SHA-256 kept in a mapped name: 64 bits, so a collision needs around four
/// billion mapped ids.
const HASH_HEX_LEN: usize = 16;

/// Whether `c` may appear in an IAM user, role or policy name (`[\w+=,.@-]`, ASCII only).
pub(crate) fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// Whether `name` is a valid IAM name of at most `max_len` characters.
pub(crate) fn is_iam_name(name: &str, max_len: usize) -> bool {
    !name.is_empty() && name.len() <= max_len && name.chars().all(is_iam_name_char)
}

/// The inline policy that grants an agreement's access on the consumer role.
pub fn policy_name(agreement_id: &str) -> Result<String, PolicyError> {
    if agreement_id.is_empty() {
        return Err(PolicyError::EmptyAgreementId);
    }
    let direct = format!("{POLICY_NAME_PREFIX}{agreement_id}");
    if is_iam_name(&direct, MAX_POLICY_NAME_LEN) {
        Ok(direct)
    } else {
        Ok(mapped(
            MAPPED_POLICY_NAME_PREFIX,
            agreement_id,
            MAX_POLICY_NAME_LEN,
        ))
    }
}

/// The access role created in the provider account for a cross-account agreement.
///
/// Role names are unique ignoring case, so unlike policy names an id is used verbatim only when
/// it has no uppercase letters: `Orders` and `orders` must not share a role.
pub fn access_role_name(agreement_id: &str) -> Result<String, PolicyError> {
    if agreement_id.is_empty() {
        return Err(PolicyError::EmptyAgreementId);
    }
    let direct = format!("{ACCESS_ROLE_NAME_PREFIX}{agreement_id}");
    if is_iam_name(&direct, MAX_ROLE_NAME_LEN)
        && !agreement_id.chars().any(|c| c.is_ascii_uppercase())
    {
        Ok(direct)
    } else {
        Ok(mapped(
            MAPPED_ACCESS_ROLE_NAME_PREFIX,
            agreement_id,
            MAX_ROLE_NAME_LEN,
        ))
    }
}

/// Whether an inline policy found on a role was written by this integration (or by the
/// reference integration), so drift reconciliation touches nothing else.
pub fn is_policy_name(name: &str) -> bool {
    is_name(
        name,
        POLICY_NAME_PREFIX,
        MAPPED_POLICY_NAME_PREFIX,
        MAX_POLICY_NAME_LEN,
    )
}

/// Whether a role is an access role this integration creates. Such roles are never accepted as
/// consumer roles, so one agreement cannot be chained onto another's grant.
pub fn is_access_role_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    is_name(
        &lower,
        ACCESS_ROLE_NAME_PREFIX,
        MAPPED_ACCESS_ROLE_NAME_PREFIX,
        MAX_ROLE_NAME_LEN,
    )
}

fn is_name(name: &str, direct_prefix: &str, mapped_prefix: &str, max_len: usize) -> bool {
    if !is_iam_name(name, max_len) {
        return false;
    }
    if let Some(id) = name.strip_prefix(direct_prefix) {
        return !id.is_empty();
    }
    match name
        .strip_prefix(mapped_prefix)
        .and_then(|rest| rest.rsplit_once('-'))
    {
        Some((_, hash)) => {
            hash.len() == HASH_HEX_LEN
                && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        None => false,
    }
}

/// `<prefix><sanitised id>-<hash>`: the readable part helps an operator find the agreement, the
/// hash of the raw id makes the name unique.
fn mapped(prefix: &str, agreement_id: &str, max_len: usize) -> String {
    let hash = hex::encode(Sha256::digest(agreement_id.as_bytes()));
    let readable_len = max_len - prefix.len() - 1 - HASH_HEX_LEN;
    let readable: String = agreement_id
        .chars()
        .take(readable_len)
        .map(|c| if is_iam_name_char(c) { c } else { '_' })
        .collect();
    format!("{prefix}{readable}-{}", &hash[..HASH_HEX_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_ids_keep_the_reference_name() {
        assert_eq!(
            policy_name("f3a0c2de-5b1e-4c3a-9e57-0a5d0c1b2e3f").unwrap(),
            "DMM_DataUsageAgreement_f3a0c2de-5b1e-4c3a-9e57-0a5d0c1b2e3f"
        );
        assert_eq!(
            policy_name("Orders_v2.1+x=y,z@w").unwrap(),
            "DMM_DataUsageAgreement_Orders_v2.1+x=y,z@w"
        );
        let longest = "a".repeat(MAX_POLICY_NAME_LEN - POLICY_NAME_PREFIX.len());
        assert_eq!(
            policy_name(&longest).unwrap(),
            format!("{POLICY_NAME_PREFIX}{longest}")
        );
    }

    #[test]
    fn invalid_ids_are_mapped() {
        let name = policy_name("orders/2024 v1").unwrap();
        assert_eq!(
            name,
            format!(
                "DMM_DUA_orders_2024_v1-{}",
                &hex::encode(Sha256::digest(b"orders/2024 v1"))[..16]
            )
        );
        let too_long = "a".repeat(MAX_POLICY_NAME_LEN - POLICY_NAME_PREFIX.len() + 1);
        let name = policy_name(&too_long).unwrap();
        assert_eq!(name.len(), MAX_POLICY_NAME_LEN);
        assert!(name.starts_with(MAPPED_POLICY_NAME_PREFIX));
        let name = policy_name("übersicht").unwrap();
        assert!(name.starts_with("DMM_DUA__bersicht-"), "{name}");
    }

    #[test]
    fn mapping_is_deterministic_and_separates_ids_that_sanitise_alike() {
        assert_eq!(policy_name("a/b").unwrap(), policy_name("a/b").unwrap());
        assert_ne!(policy_name("a/b").unwrap(), policy_name("a b").unwrap());
        assert_ne!(policy_name("a/b").unwrap(), policy_name("a_b").unwrap());
        let long_a = format!("{}a", "x".repeat(200));
        let long_b = format!("{}b", "x".repeat(200));
        assert_ne!(policy_name(&long_a).unwrap(), policy_name(&long_b).unwrap());
    }

    #[test]
    fn a_valid_id_cannot_forge_a_mapped_name() {
        let mapped = policy_name("a/b").unwrap();
        let suffix = mapped.strip_prefix(MAPPED_POLICY_NAME_PREFIX).unwrap();
        assert_ne!(policy_name(suffix).unwrap(), mapped);
        assert_ne!(policy_name(&mapped).unwrap(), mapped);
    }

    #[test]
    fn empty_ids_are_rejected() {
        assert_eq!(policy_name(""), Err(PolicyError::EmptyAgreementId));
        assert_eq!(access_role_name(""), Err(PolicyError::EmptyAgreementId));
    }

    #[test]
    fn access_role_names() {
        assert_eq!(
            access_role_name("f3a0c2de-5b1e-4c3a").unwrap(),
            "dmm-access-f3a0c2de-5b1e-4c3a"
        );
        let longest = "a".repeat(MAX_ROLE_NAME_LEN - ACCESS_ROLE_NAME_PREFIX.len());
        assert_eq!(
            access_role_name(&longest).unwrap(),
            format!("dmm-access-{longest}")
        );
        let uuid = "f3a0c2de-5b1e-4c3a-9e57-0a5d0c1b2e3f";
        assert_eq!(
            access_role_name(uuid).unwrap(),
            format!("dmm-access-{uuid}")
        );
        let too_long = format!("{longest}b");
        let name = access_role_name(&too_long).unwrap();
        assert!(
            name.starts_with(&format!("dmm-acc-{}-", &too_long[..39])),
            "{name}"
        );
        assert_eq!(name.len(), MAX_ROLE_NAME_LEN);
    }

    #[test]
    fn access_role_names_differ_for_ids_that_differ_only_in_case() {
        let lower = access_role_name("orders").unwrap();
        let upper = access_role_name("Orders").unwrap();
        let shout = access_role_name("ORDERS").unwrap();
        assert_eq!(lower, "dmm-access-orders");
        assert!(upper.starts_with("dmm-acc-Orders-"));
        let folded: Vec<String> = [&lower, &upper, &shout]
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        assert_ne!(folded[0], folded[1]);
        assert_ne!(folded[1], folded[2]);
        assert_ne!(folded[0], folded[2]);
    }

    #[test]
    fn recognises_own_policy_names() {
        assert!(is_policy_name("DMM_DataUsageAgreement_123"));
        assert!(is_policy_name(&policy_name("a/b").unwrap()));
        assert!(is_policy_name(&policy_name(&"é".repeat(300)).unwrap()));
        assert!(!is_policy_name("DMM_DataUsageAgreement_"));
        assert!(!is_policy_name("dmm_datausageagreement_123"));
        assert!(!is_policy_name("DMM_DUA_x"));
        assert!(!is_policy_name("DMM_DUA_x-0123456789ABCDEF"));
        assert!(!is_policy_name("DMM_DUA_x-0123456789abcde"));
        assert!(!is_policy_name("AdminAccess"));
        assert!(!is_policy_name(&format!(
            "DMM_DataUsageAgreement_{}",
            "a".repeat(200)
        )));
    }

    #[test]
    fn recognises_own_access_role_names_ignoring_case() {
        assert!(is_access_role_name("dmm-access-123"));
        assert!(is_access_role_name("DMM-Access-123"));
        assert!(is_access_role_name(&access_role_name("Orders").unwrap()));
        assert!(is_access_role_name(
            &access_role_name("Orders").unwrap().to_ascii_uppercase()
        ));
        assert!(!is_access_role_name("dmm-access-"));
        assert!(!is_access_role_name("dmm-acc-x"));
        assert!(!is_access_role_name("consumer"));
    }

    proptest! {
        #[test]
        fn policy_names_are_always_valid_and_ours(id in any::<String>()) {
            if let Ok(name) = policy_name(&id) {
                prop_assert!(is_iam_name(&name, MAX_POLICY_NAME_LEN), "{}", name);
                prop_assert!(is_policy_name(&name));
                prop_assert_eq!(policy_name(&id).unwrap(), name);
            } else {
                prop_assert!(id.is_empty());
            }
        }

        #[test]
        fn role_names_are_always_valid_and_ours(id in any::<String>()) {
            if let Ok(name) = access_role_name(&id) {
                prop_assert!(is_iam_name(&name, MAX_ROLE_NAME_LEN), "{}", name);
                prop_assert!(is_access_role_name(&name));
            } else {
                prop_assert!(id.is_empty());
            }
        }

        #[test]
        fn iam_like_ids_get_valid_names(id in "[A-Za-z0-9_+=,.@/ -]{1,150}") {
            prop_assert!(is_iam_name(&policy_name(&id).unwrap(), MAX_POLICY_NAME_LEN));
            prop_assert!(is_iam_name(&access_role_name(&id).unwrap(), MAX_ROLE_NAME_LEN));
        }

        #[test]
        fn distinct_ids_get_distinct_names(a in "[a-z/ ]{1,6}", b in "[a-z/ ]{1,6}") {
            prop_assume!(a != b);
            prop_assert_ne!(policy_name(&a).unwrap(), policy_name(&b).unwrap());
            prop_assert_ne!(
                access_role_name(&a).unwrap().to_ascii_lowercase(),
                access_role_name(&b).unwrap().to_ascii_lowercase()
            );
        }
    }
}

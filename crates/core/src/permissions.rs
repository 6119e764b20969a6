//! The AWS actions each function performs, declared once.
//!
//! Terraform grants each function's role exactly these actions; a test parses `terraform/` and
//! fails when the two disagree, so least privilege cannot silently drift from the code.

/// Actions `poll_feed` calls itself.
pub const POLL_FEED_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    // ListBucket lets a missing checkpoint read as 404 (start from the beginning) instead of 403.
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    // SendMessageBatch is authorised as sqs:SendMessage.
    "sqs:SendMessage",
];

/// Actions `manage_iam_policies` calls itself.
pub const MANAGE_IAM_POLICIES_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    // Reconcile requests (data product changes, the drift sweep); SendMessageBatch is
    // authorised as sqs:SendMessage.
    "sqs:SendMessage",
    "iam:GetRole",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    // Cross-account (ADR 003): the hub assumes each managed account's management role, and in
    // the provider account creates, updates and deletes the per-agreement access role.
    "sts:AssumeRole",
    "iam:CreateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:TagRole",
    "iam:DeleteRole",
    // Access roles made before permissions boundaries get the boundary (ADR 017).
    "iam:PutRolePermissionsBoundary",
    // The packed layout's managed policies (ADR 023).
    "iam:ListAttachedRolePolicies",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:ListPolicyVersions",
    "iam:CreatePolicy",
    "iam:TagPolicy",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicyVersion",
    "iam:DeletePolicy",
    // LAKE_FORMATION_ACTIONS and LAKE_FORMATION_GRANTOR_ACTIONS.
    "lakeformation:GrantPermissions",
    "lakeformation:RevokePermissions",
    "lakeformation:ListPermissions",
    "glue:GetDatabase",
    "glue:GetTable",
    // OWNERSHIP_TAG_ACTIONS.
    "s3:GetBucketTagging",
    "glue:GetTags",
    "kinesis:ListTagsForStream",
    "kafka:ListTagsForResource",
    "kms:ListResourceTags",
    "athena:ListTagsForResource",
];

/// Ownership proofs (ADR 017): reading the tags of the resources a port names, one action per
/// service. Part of [`MANAGE_IAM_POLICIES_ACTIONS`]; a managed account's management role has
/// them too, since tags are read in the account that holds the resource.
pub const OWNERSHIP_TAG_ACTIONS: &[&str] = &[
    "s3:GetBucketTagging",
    "glue:GetTags",
    "kinesis:ListTagsForStream",
    "kafka:ListTagsForResource",
    "kms:ListResourceTags",
    "athena:ListTagsForResource",
];

/// Lake Formation grants of `glue_table` ports (ADR 022), in the account holding the table. Part
/// of [`MANAGE_IAM_POLICIES_ACTIONS`] and of a managed account's management role. IAM cannot scope
/// them to resources; Lake Formation's grantable permissions do.
pub const LAKE_FORMATION_ACTIONS: &[&str] = &[
    "lakeformation:GrantPermissions",
    "lakeformation:RevokePermissions",
    "lakeformation:ListPermissions",
];

/// What Lake Formation requires in IAM of whoever grants or revokes on a named database or table,
/// data lake administrators included: reading the entry. Lake Formation checks them on the
/// caller of [`LAKE_FORMATION_ACTIONS`]; the function's code never calls them itself. Scoped to
/// the account's Glue catalog, databases and tables.
pub const LAKE_FORMATION_GRANTOR_ACTIONS: &[&str] = &["glue:GetDatabase", "glue:GetTable"];

/// Actions the Lambda service performs with `manage_iam_policies`' role to feed it from SQS
/// (the event source mapping); the function's code never calls them.
pub const MANAGE_IAM_POLICIES_EVENT_SOURCE_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_may_read_every_tag_the_ownership_check_reads() {
        for action in OWNERSHIP_TAG_ACTIONS
            .iter()
            .chain(LAKE_FORMATION_ACTIONS)
            .chain(LAKE_FORMATION_GRANTOR_ACTIONS)
        {
            assert!(MANAGE_IAM_POLICIES_ACTIONS.contains(action), "{action}");
        }
    }
}

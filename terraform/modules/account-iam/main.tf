# Internal module: what the integration may do to IAM in one account, written once for the hub's
# manage_iam_policies role (terraform/iam.tf) and for the management role of every managed account
# (modules/managed-account), ADR 014 and ADR 017. Not meant to be used on its own:
# crates/core/tests/integration/terraform_consistency.rs holds it to the code.

locals {
  role_arn_prefix = "arn:${var.partition}:iam::${var.account_id}:role"

  # Roles the integration may write to: the path prefix, and the name pattern when one is set.
  # A name is the last path segment, so with a pattern both `<prefix><pattern>` (directly under
  # the prefix) and `<prefix>*/<pattern>` (deeper paths) are needed.
  managed_role_arns = var.managed_role_name_pattern == "*" ? [
    "${local.role_arn_prefix}${var.managed_role_path_prefix}*",
    ] : [
    "${local.role_arn_prefix}${var.managed_role_path_prefix}${var.managed_role_name_pattern}",
    "${local.role_arn_prefix}${var.managed_role_path_prefix}*/${var.managed_role_name_pattern}",
  ]

  # Cross-account access roles (ADR 003) the account holds when it is the provider account of an
  # agreement: named `dmm-access-<id>`, or `dmm-acc-<readable id>-<hash>` for ids that cannot be
  # used verbatim (crates/core/src/policy/name.rs), always directly under the managed path. They
  # are not subject to managed_role_name_pattern: the names are the integration's own. (An ARN
  # wildcard also matches `/`, so these also match roles on a path below `<prefix>dmm-access-…/`;
  # the tag conditions are what keeps writes on roles the integration created.)
  # The packed layout's customer managed policies (ADR 023): `dmm-grants-<role>-<n>` on the path
  # `/dmm-integration/` (crates/core/src/reconcile/packed.rs), created only with the managed-by tag
  # and changed only while they carry it.
  packed_policy_arns = ["arn:${var.partition}:iam::${var.account_id}:policy/dmm-integration/dmm-grants-*"]

  access_role_arns = [
    "${local.role_arn_prefix}${var.managed_role_path_prefix}dmm-access-*",
    "${local.role_arn_prefix}${var.managed_role_path_prefix}dmm-acc-*",
  ]
  # aws_iam_policy.access_role_boundary, spelled out so plans know it (reconcile/iam.rs
  # access_role_boundary_arn derives the same ARN in every account).
  access_role_boundary_arn = "arn:${var.partition}:iam::${var.account_id}:policy/${aws_iam_policy.access_role_boundary.name}"
  # The tag the integration puts on every access role it creates; CreateRole/TagRole require it
  # in the request, DeleteRole/UpdateAssumeRolePolicy/Put-/DeleteRolePolicy on the role.
  managed_by_tag_key   = "managed-by"
  managed_by_tag_value = "dmm-integration-aws"
  # Every tag key the integration sets on an access role (nothing else may be set through it).
  access_role_tag_keys = [local.managed_by_tag_key, "dmm-agreement-id"]

  # Never written to, whatever the allowlist says: the caller's roles and the operator's list,
  # the administrator roles of AWS Organizations, Control Tower and StackSets (the code refuses
  # them too, crates/core/src/policy/role.rs), and service-linked and AWS-reserved roles. Role
  # names are unique in an account whatever the path, so `*/<name>` catches every path.
  protected_role_names = distinct(concat(var.protected_role_names, [
    "OrganizationAccountAccessRole",
    "AWSControlTowerExecution",
    "AWSCloudFormationStackSetExecutionRole",
  ]))
  protected_role_arns = concat(
    flatten([for name in local.protected_role_names : [
      "${local.role_arn_prefix}/${name}",
      "${local.role_arn_prefix}/*/${name}",
    ]]),
    [
      "${local.role_arn_prefix}/aws-service-role/*",
      "${local.role_arn_prefix}/aws-reserved/*",
    ],
  )
}

# IAM writes only on the managed-role allowlist (path prefix + name pattern) and on the
# integration's own cross-account access roles, never with Resource "*", and an explicit Deny on
# the integration's own roles and AWS-reserved roles that wins over any Allow (also over one a
# later, broader policy might add). The access-role statements are needed when the account is
# the provider account of a cross-account agreement.
data "aws_iam_policy_document" "account_iam" {
  # Reading and revoking are not tag-conditioned: a grant whose role lost its owner tag must still
  # be revoked (fail closed).
  statement {
    sid    = "ReadAndRevokeInlinePoliciesOfAllowlistedRoles"
    effect = "Allow"
    actions = [
      "iam:GetRole",
      "iam:ListRolePolicies",
      "iam:GetRolePolicy",
      "iam:DeleteRolePolicy",
    ]
    resources = local.managed_role_arns
  }

  # Granting only onto roles that carry an owner tag (ADR 017): the code checks the tag's value
  # against the consumer; IAM makes sure a bug in the code cannot write onto an untagged role.
  # Two statements, because IAM conditions within one statement are ANDed.
  statement {
    sid       = "GrantOnRolesOwnedByADataProduct"
    effect    = "Allow"
    actions   = ["iam:PutRolePolicy"]
    resources = local.managed_role_arns

    condition {
      test     = "Null"
      variable = "iam:ResourceTag/dmm-data-product"
      values   = ["false"]
    }
  }

  statement {
    sid       = "GrantOnRolesOwnedByATeam"
    effect    = "Allow"
    actions   = ["iam:PutRolePolicy"]
    resources = local.managed_role_arns

    condition {
      test     = "Null"
      variable = "iam:ResourceTag/dmm-team"
      values   = ["false"]
    }
  }

  # ownership_check = audit or off grants onto untagged roles as the Python reference did.
  dynamic "statement" {
    for_each = var.ownership_check == "enforce" ? [] : ["ownership_check is ${var.ownership_check}"]

    content {
      sid       = "GrantOnAnyAllowlistedRoleWithoutOwnershipCheck"
      effect    = "Allow"
      actions   = ["iam:PutRolePolicy"]
      resources = local.managed_role_arns
    }
  }

  # Reads are not tag-conditioned: a missing access role must answer NoSuchEntity, not
  # AccessDenied (a missing role has no tags to match).
  statement {
    sid    = "ReadAccessRoles"
    effect = "Allow"
    actions = [
      "iam:GetRole",
      "iam:ListRolePolicies",
      "iam:GetRolePolicy",
    ]
    resources = local.access_role_arns
  }

  # CreateRole with Tags is also authorised as TagRole. Both only with the managed-by tag in the
  # request and no tag keys but the integration's own (so it cannot set tags other policies
  # might use for access decisions).
  statement {
    sid       = "CreateAccessRoles"
    effect    = "Allow"
    actions   = ["iam:CreateRole", "iam:TagRole"]
    resources = local.access_role_arns

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.managed_by_tag_key}"
      values   = [local.managed_by_tag_value]
    }
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = local.access_role_tag_keys
    }
    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.access_role_boundary_arn]
    }
  }

  # Changing or deleting an access role only when it carries the managed-by tag: a role of the
  # same name the integration did not create is never touched.
  statement {
    sid    = "ManageOwnAccessRoles"
    effect = "Allow"
    actions = [
      "iam:UpdateAssumeRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:DeleteRole",
    ]
    resources = local.access_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:ResourceTag/${local.managed_by_tag_key}"
      values   = [local.managed_by_tag_value]
    }
  }

  # The data policy only onto an access role that has the boundary; the boundary itself only set
  # to exactly that policy (access roles made before boundaries existed get it this way).
  statement {
    sid    = "WriteDataPoliciesOfBoundedAccessRoles"
    effect = "Allow"
    actions = [
      "iam:PutRolePolicy",
      "iam:PutRolePermissionsBoundary",
    ]
    resources = local.access_role_arns

    condition {
      test     = "StringEquals"
      variable = "iam:ResourceTag/${local.managed_by_tag_key}"
      values   = [local.managed_by_tag_value]
    }
    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.access_role_boundary_arn]
    }
  }

  statement {
    sid       = "NeverRemoveAccessRoleBoundaries"
    effect    = "Deny"
    actions   = ["iam:DeleteRolePermissionsBoundary"]
    resources = local.access_role_arns
  }

  # The packed layout (ADR 023): reading the role's attached policies, and attaching and
  # detaching only the integration's own packed policies.
  statement {
    sid       = "AttachPackedPoliciesToAllowlistedRoles"
    effect    = "Allow"
    actions   = ["iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = local.managed_role_arns

    condition {
      test     = "ArnLike"
      variable = "iam:PolicyARN"
      values   = local.packed_policy_arns
    }
  }

  statement {
    sid       = "ReadPackedPolicies"
    effect    = "Allow"
    actions   = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]
    resources = local.packed_policy_arns
  }

  statement {
    sid       = "CreatePackedPolicies"
    effect    = "Allow"
    actions   = ["iam:CreatePolicy", "iam:TagPolicy"]
    resources = local.packed_policy_arns

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.managed_by_tag_key}"
      values   = [local.managed_by_tag_value]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = [local.managed_by_tag_key]
    }
  }

  statement {
    sid       = "ChangeOwnPackedPolicies"
    effect    = "Allow"
    actions   = ["iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:DeletePolicy"]
    resources = local.packed_policy_arns

    condition {
      test     = "StringEquals"
      variable = "iam:ResourceTag/${local.managed_by_tag_key}"
      values   = [local.managed_by_tag_value]
    }
  }

  # Ownership proofs (ADR 017): the tags of the resources an output port names, read-only, in the
  # account that holds them (permissions::OWNERSHIP_TAG_ACTIONS).
  statement {
    sid       = "ReadBucketOwnerTags"
    effect    = "Allow"
    actions   = ["s3:GetBucketTagging"]
    resources = ["arn:${var.partition}:s3:::*"]
  }

  statement {
    sid    = "ReadOwnerTagsOfCatalogStreamsClustersKeysAndWorkgroups"
    effect = "Allow"
    actions = [
      "glue:GetTags",
      "kinesis:ListTagsForStream",
      "kafka:ListTagsForResource",
      "kms:ListResourceTags",
      "athena:ListTagsForResource",
    ]
    resources = [
      "arn:${var.partition}:glue:*:${var.account_id}:database/*",
      "arn:${var.partition}:glue:*:${var.account_id}:table/*",
      "arn:${var.partition}:kinesis:*:${var.account_id}:stream/*",
      "arn:${var.partition}:kafka:*:${var.account_id}:cluster/*",
      "arn:${var.partition}:kms:*:${var.account_id}:key/*",
      "arn:${var.partition}:athena:*:${var.account_id}:workgroup/*",
    ]
  }

  # Lake Formation grants of glue_table ports (ADR 022). These actions have no resource-level
  # permissions in IAM: Lake Formation itself decides on which tables the integration may grant
  # (it must be a data lake administrator or hold SELECT and DESCRIBE with the grant option), so
  # IAM can only allow them or not (permissions::LAKE_FORMATION_ACTIONS).
  statement {
    #checkov:skip=CKV_AWS_356:Lake Formation's grant APIs have no resource-level permissions; Lake Formation's own grantable permissions scope them.
    sid    = "GrantTablesThroughLakeFormation"
    effect = "Allow"
    actions = [
      "lakeformation:GrantPermissions",
      "lakeformation:RevokePermissions",
      "lakeformation:ListPermissions",
    ]
    resources = ["*"]
  }

  # Lake Formation requires of a grantor, data lake administrators included, that it may read the
  # database or table it grants on (permissions::LAKE_FORMATION_GRANTOR_ACTIONS).
  statement {
    sid     = "ReadCatalogEntriesToGrantThem"
    effect  = "Allow"
    actions = ["glue:GetDatabase", "glue:GetTable"]
    resources = [
      "arn:${var.partition}:glue:*:${var.account_id}:catalog",
      "arn:${var.partition}:glue:*:${var.account_id}:database/*",
      "arn:${var.partition}:glue:*:${var.account_id}:table/*",
    ]
  }

  statement {
    sid       = "NeverTouchProtectedRoles"
    effect    = "Deny"
    actions   = ["iam:*"]
    resources = local.protected_role_arns
  }
}

# The permissions boundary of every cross-account access role the integration creates in this
# account (ADR 017): the catalogue's read actions only (policy::CATALOGUE_ACTIONS), so an access
# role can never do more than read, whatever data policy it carries. The integration may create
# access roles, and write their data policy, only with this boundary, and may never remove it.
data "aws_iam_policy_document" "access_role_boundary" {
  #checkov:skip=CKV_AWS_356:A permissions boundary caps what any policy of the role can grant; the role's own data policy names the resources.
  #checkov:skip=CKV_AWS_111:Read-only actions; the boundary caps, the data policy scopes.
  #checkov:skip=CKV_AWS_108:A permissions boundary grants nothing by itself; it caps the access role's own data policy, which names the one bucket or folder, to reads.
  statement {
    sid    = "AtMostTheCatalogueReadActions"
    effect = "Allow"
    actions = [
      "s3:GetBucketLocation",
      "s3:ListBucket",
      "s3:GetObject",
      "kms:Decrypt",
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:GetWorkGroup",
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
      "glue:BatchGetPartition",
      "glue:GetDatabase",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:GetTable",
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamConsumer",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
      "kinesis:RegisterStreamConsumer",
      "kinesis:SubscribeToShard",
      "kafka-cluster:AlterGroup",
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeCluster",
      "kafka-cluster:DescribeGroup",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:ReadData",
      "lakeformation:GetDataAccess",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "access_role_boundary" {
  # The code derives the ARN from this exact name (reconcile/iam.rs ACCESS_ROLE_BOUNDARY_NAME).
  name        = "dmm-integration-access-role-boundary"
  path        = "/"
  description = "Permissions boundary of the Data Mesh Manager integration's access roles: read only"
  policy      = data.aws_iam_policy_document.access_role_boundary.json
}

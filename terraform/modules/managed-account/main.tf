# The management role of one managed account (ADR 003, ADR 014). The integration's hub assumes it
# with an external id and, in this account:
#   - writes the per-agreement inline policies on consumer roles under the managed path
#     (GetRole, ListRolePolicies, GetRolePolicy, PutRolePolicy, DeleteRolePolicy), and
#   - when this account is the provider account of a cross-account agreement, creates, updates
#     and deletes the agreement's access role (dmm-access-<id> / dmm-acc-<id>-<hash>) directly
#     under that path, only with and on the integration's managed-by tag.
#   - reads the owner tags of the resources output ports name (ADR 017).
# Nothing else: no iam:PassRole, no managed policies, no writes to other services, never Resource "*",
# and an explicit Deny on itself and on the roles no integration may touch.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  role_arn_prefix = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role"

  # Consumer roles: the path prefix, and the name pattern when one is set (a name is the last
  # path segment, so with a pattern both `<prefix><pattern>` and `<prefix>*/<pattern>`).
  managed_role_arns = var.managed_role_name_pattern == "*" ? [
    "${local.role_arn_prefix}${var.managed_role_path_prefix}*",
    ] : [
    "${local.role_arn_prefix}${var.managed_role_path_prefix}${var.managed_role_name_pattern}",
    "${local.role_arn_prefix}${var.managed_role_path_prefix}*/${var.managed_role_name_pattern}",
  ]

  # Access roles, named as in crates/core/src/policy/name.rs, directly under the managed path.
  access_role_arns = [
    "${local.role_arn_prefix}${var.managed_role_path_prefix}dmm-access-*",
    "${local.role_arn_prefix}${var.managed_role_path_prefix}dmm-acc-*",
  ]
  # aws_iam_policy.access_role_boundary, spelled out so plans know it.
  access_role_boundary_arn = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:policy/${aws_iam_policy.access_role_boundary.name}"
  managed_by_tag_key       = "managed-by"
  managed_by_tag_value     = "dmm-integration-aws"
  access_role_tag_keys     = [local.managed_by_tag_key, "dmm-agreement-id"]

  # Never touched: this role itself, the operator's list, the AWS administrator roles, and
  # service-linked and AWS-reserved roles (role names are unique in an account, whatever the
  # path, so `*/<name>` catches every path).
  protected_role_names = distinct(concat(
    [var.role_name],
    var.protected_role_names,
    ["OrganizationAccountAccessRole", "AWSControlTowerExecution", "AWSCloudFormationStackSetExecutionRole"],
  ))
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

# --- Trust: exactly the hub's manage_iam_policies role, with the external id -------------------

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "HubManageIamPoliciesWithExternalId"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [var.hub_role_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.external_id]
    }
  }
}

resource "aws_iam_role" "management" {
  name                 = var.role_name
  path                 = var.role_path
  description          = "Data Mesh Manager integration: manages inline policies and access roles under ${var.managed_role_path_prefix} for ${var.hub_role_arn}"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  permissions_boundary = var.permissions_boundary_arn
  # IAM's smallest maximum (1 hour); the hub requests shorter sessions itself (ADR 003).
  max_session_duration = 3600
  tags                 = var.tags
}

# --- Permissions: the IAM actions the integration calls in a managed account -------------------

data "aws_iam_policy_document" "management" {
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
  # request and no tag keys but the integration's own.
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

  # Changing or deleting an access role only when it carries the managed-by tag.
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

  # Ownership proofs (ADR 017): the tags of the resources an output port names, read-only, in the
  # account that holds them (permissions::OWNERSHIP_TAG_ACTIONS).
  statement {
    sid       = "ReadBucketOwnerTags"
    effect    = "Allow"
    actions   = ["s3:GetBucketTagging"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::*"]
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
      "arn:${data.aws_partition.current.partition}:glue:*:${data.aws_caller_identity.current.account_id}:database/*",
      "arn:${data.aws_partition.current.partition}:glue:*:${data.aws_caller_identity.current.account_id}:table/*",
      "arn:${data.aws_partition.current.partition}:kinesis:*:${data.aws_caller_identity.current.account_id}:stream/*",
      "arn:${data.aws_partition.current.partition}:kafka:*:${data.aws_caller_identity.current.account_id}:cluster/*",
      "arn:${data.aws_partition.current.partition}:kms:*:${data.aws_caller_identity.current.account_id}:key/*",
      "arn:${data.aws_partition.current.partition}:athena:*:${data.aws_caller_identity.current.account_id}:workgroup/*",
    ]
  }

  statement {
    sid       = "NeverTouchProtectedRoles"
    effect    = "Deny"
    actions   = ["iam:*"]
    resources = local.protected_role_arns
  }
}

resource "aws_iam_role_policy" "management" {
  name   = "dmm-integration-management"
  role   = aws_iam_role.management.id
  policy = data.aws_iam_policy_document.management.json
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

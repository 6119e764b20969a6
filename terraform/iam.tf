# One role per function, least privilege: each role allows exactly the actions its function's code
# calls (crates/core/src/permissions.rs), on exactly that function's resources, plus writing its
# own log group. crates/core/tests/terraform_consistency.rs checks this file against the code.
# Policies are split by concern (one aws_iam_role_policy each), so a new concern such as the
# cross-account sts:AssumeRole statement is one more document and one more role policy.

data "aws_iam_policy_document" "lambda_assume_role" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "poll_feed" {
  name               = local.poll_feed_role_name
  description        = "Execution role of ${local.poll_feed_function_name}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

resource "aws_iam_role" "manage_iam_policies" {
  name               = local.manage_iam_policies_role_name
  description        = "Execution role of ${local.manage_iam_policies_function_name}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume_role.json
}

# --- Logging: the Lambda service writes the function's output to its own log group -------------

data "aws_iam_policy_document" "poll_feed_logging" {
  statement {
    sid       = "WriteOwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.poll_feed.arn}:*"]
  }
}

resource "aws_iam_role_policy" "poll_feed_logging" {
  name   = "logging"
  role   = aws_iam_role.poll_feed.id
  policy = data.aws_iam_policy_document.poll_feed_logging.json
}

data "aws_iam_policy_document" "manage_iam_policies_logging" {
  statement {
    sid       = "WriteOwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.manage_iam_policies.arn}:*"]
  }
}

resource "aws_iam_role_policy" "manage_iam_policies_logging" {
  name   = "logging"
  role   = aws_iam_role.manage_iam_policies.id
  policy = data.aws_iam_policy_document.manage_iam_policies_logging.json
}

# --- poll_feed: POLL_FEED_ACTIONS ---------------------------------------------------------------

data "aws_iam_policy_document" "poll_feed" {
  statement {
    sid       = "ReadDmmApiKey"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.dmm_api_key.arn]
  }

  statement {
    sid       = "ReadWriteCheckpoint"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.bucket_arn}/${var.last_event_id_object_name}"]
  }

  # Lets a missing checkpoint read as 404 (start at the beginning) instead of 403, and nothing else.
  statement {
    sid       = "ListCheckpointOnly"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringEquals"
      variable = "s3:prefix"
      values   = [var.last_event_id_object_name]
    }
  }

  # manage_iam_policies' last batch, for the connector document (ADR 018).
  statement {
    sid       = "ReadManageIamPoliciesHealth"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/${local.health_key}"]
  }

  # SendMessageBatch is authorised as sqs:SendMessage.
  statement {
    sid       = "ForwardEvents"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
  }
}

resource "aws_iam_role_policy" "poll_feed" {
  name   = "poll-feed"
  role   = aws_iam_role.poll_feed.id
  policy = data.aws_iam_policy_document.poll_feed.json
}

# --- manage_iam_policies: MANAGE_IAM_POLICIES_ACTIONS + MANAGE_IAM_POLICIES_EVENT_SOURCE_ACTIONS ----

data "aws_iam_policy_document" "manage_iam_policies" {
  statement {
    sid       = "ReadDmmApiKey"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.dmm_api_key.arn]
  }

  # Reconcile requests (data product changes, the drift sweep), in the agreements' FIFO groups.
  # SendMessageBatch is authorised as sqs:SendMessage.
  statement {
    sid       = "RequestReconciles"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]
  }

  statement {
    sid       = "ReadWriteGrantLedger"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${local.ledger_prefix}*"]
  }

  statement {
    sid       = "RecordHealth"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/${local.health_key}"]
  }

  statement {
    sid       = "ListGrantLedgerOnly"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.ledger_prefix, "${local.ledger_prefix}*"]
    }
  }

  # Used by the Lambda service on the function's behalf (the SQS event source mapping).
  statement {
    sid       = "ConsumeEvents"
    effect    = "Allow"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.events.arn]
  }
}

resource "aws_iam_role_policy" "manage_iam_policies" {
  name   = "manage-iam-policies"
  role   = aws_iam_role.manage_iam_policies.id
  policy = data.aws_iam_policy_document.manage_iam_policies.json
}

# IAM writes only on the managed-role allowlist (path prefix + name pattern) and on the
# integration's own cross-account access roles, never with Resource "*", and an explicit Deny on
# the integration's own roles and AWS-reserved roles that wins over any Allow (also over one a
# later, broader policy might add). The access-role statements are needed when this account is
# the provider account of a cross-account agreement; modules/managed-account gives the
# management role in every other account the same statements (ADR 014).
data "aws_iam_policy_document" "manage_iam_policies_iam" {
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

  # Ownership proofs (ADR 017): the tags of the resources an output port names, read-only, in the
  # account that holds them (permissions::OWNERSHIP_TAG_ACTIONS).
  statement {
    sid       = "ReadBucketOwnerTags"
    effect    = "Allow"
    actions   = ["s3:GetBucketTagging"]
    resources = ["arn:${local.partition}:s3:::*"]
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
      "arn:${local.partition}:glue:*:${local.account_id}:database/*",
      "arn:${local.partition}:glue:*:${local.account_id}:table/*",
      "arn:${local.partition}:kinesis:*:${local.account_id}:stream/*",
      "arn:${local.partition}:kafka:*:${local.account_id}:cluster/*",
      "arn:${local.partition}:kms:*:${local.account_id}:key/*",
      "arn:${local.partition}:athena:*:${local.account_id}:workgroup/*",
    ]
  }

  statement {
    sid       = "NeverTouchProtectedRoles"
    effect    = "Deny"
    actions   = ["iam:*"]
    resources = local.protected_role_arns
  }
}

resource "aws_iam_role_policy" "manage_iam_policies_iam" {
  name   = "manage-iam-policies-iam"
  role   = aws_iam_role.manage_iam_policies.id
  policy = data.aws_iam_policy_document.manage_iam_policies_iam.json
}

# --- manage_iam_policies, cross-account: sts:AssumeRole on exactly the configured management roles --
# No statement (and no role policy, as IAM rejects a policy without statements) when
# var.managed_accounts is empty.

data "aws_iam_policy_document" "manage_iam_policies_assume_management_roles" {
  dynamic "statement" {
    for_each = length(local.management_role_arns) > 0 ? ["managed accounts configured"] : []

    content {
      sid       = "AssumeManagementRolesOfManagedAccounts"
      effect    = "Allow"
      actions   = ["sts:AssumeRole"]
      resources = local.management_role_arns
    }
  }
}

resource "aws_iam_role_policy" "manage_iam_policies_assume_management_roles" {
  count = length(local.management_role_arns) > 0 ? 1 : 0

  name   = "manage-iam-policies-assume-management-roles"
  role   = aws_iam_role.manage_iam_policies.id
  policy = data.aws_iam_policy_document.manage_iam_policies_assume_management_roles.json
}

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
    resources = ["${local.bucket_arn}/${local.ledger_prefix}*", "${local.bucket_arn}/${local.holders_prefix}*", "${local.bucket_arn}/${local.role_records_prefix}*"]
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
      # The role records are never listed, but S3 answers a read of a missing object with 403
      # instead of 404 unless the reader may list its key.
      values = [local.ledger_prefix, "${local.ledger_prefix}*", local.holders_prefix, "${local.holders_prefix}*", "${local.role_records_prefix}*"]
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

# IAM writes and the ownership tag reads in this account: the same statements as the management
# role of every managed account (ADR 014), written once in modules/account-iam.
module "account_iam" {
  source = "./modules/account-iam"

  partition                 = local.partition
  account_id                = local.account_id
  managed_role_path_prefix  = var.managed_role_path_prefix
  managed_role_name_pattern = var.managed_role_name_pattern
  protected_role_names      = local.protected_role_names
  ownership_check           = var.ownership_check
}

resource "aws_iam_role_policy" "manage_iam_policies_iam" {
  name   = "manage-iam-policies-iam"
  role   = aws_iam_role.manage_iam_policies.id
  policy = module.account_iam.policy_json
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

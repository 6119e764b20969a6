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
# The same statements as the hub's own account, written once in modules/account-iam; this role
# itself is protected like the hub's function roles.
module "account_iam" {
  source = "../account-iam"

  partition                 = data.aws_partition.current.partition
  account_id                = data.aws_caller_identity.current.account_id
  managed_role_path_prefix  = var.managed_role_path_prefix
  managed_role_name_pattern = var.managed_role_name_pattern
  protected_role_names      = concat([var.role_name], var.protected_role_names)
  ownership_check           = var.ownership_check
}

resource "aws_iam_role_policy" "management" {
  name   = "dmm-integration-management"
  role   = aws_iam_role.management.id
  policy = module.account_iam.policy_json
}

# The access-role boundary moved into modules/account-iam; an existing deployment keeps its policy.
moved {
  from = aws_iam_policy.access_role_boundary
  to   = module.account_iam.aws_iam_policy.access_role_boundary
}

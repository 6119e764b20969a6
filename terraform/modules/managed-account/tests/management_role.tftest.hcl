# `terraform test` (Terraform >= 1.7) with the real hashicorp/aws provider and no AWS access:
# only the policy documents are rendered (locally, by the provider), the account id is
# overridden. Run by scripts/check-terraform.sh when the provider can be installed.

provider "aws" {
  region                      = "eu-central-1"
  access_key                  = "offline"
  secret_key                  = "offline"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}

override_data {
  target = data.aws_caller_identity.current
  values = {
    account_id = "222222222222"
  }
}

variables {
  hub_role_arn = "arn:aws:iam::111111111111:role/DMM_integration__manage_iam_policies"
  external_id  = "0123456789abcdef"
}

run "trusts_exactly_the_hub_role_with_the_external_id" {
  command = plan

  assert {
    condition = nonsensitive(jsondecode(data.aws_iam_policy_document.trust.json)) == {
      Version = "2012-10-17"
      Statement = [{
        Sid       = "HubManageIamPoliciesWithExternalId"
        Effect    = "Allow"
        Action    = "sts:AssumeRole"
        Principal = { AWS = "arn:aws:iam::111111111111:role/DMM_integration__manage_iam_policies" }
        Condition = { StringEquals = { "sts:ExternalId" = "0123456789abcdef" } }
      }]
    }
    error_message = "The trust policy must name exactly hub_role_arn, with sts:ExternalId = external_id."
  }
  assert {
    condition     = aws_iam_role.management.max_session_duration == 3600
    error_message = "Sessions must be as short as IAM allows."
  }
}

run "allows_only_the_integrations_iam_actions_on_the_managed_path" {
  command = plan

  variables {
    managed_role_path_prefix = "/data-consumers/"
  }

  assert {
    condition = toset(flatten([
      for s in jsondecode(module.account_iam.policy_json).Statement :
      s.Action if s.Effect == "Allow"
      ])) == toset([
      "iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy", "iam:PutRolePolicy",
      "iam:DeleteRolePolicy", "iam:CreateRole", "iam:TagRole", "iam:UpdateAssumeRolePolicy",
      "iam:DeleteRole", "iam:PutRolePermissionsBoundary", "s3:GetBucketTagging", "glue:GetTags", "kinesis:ListTagsForStream",
      "kafka:ListTagsForResource", "kms:ListResourceTags", "athena:ListTagsForResource",
      "lakeformation:GrantPermissions", "lakeformation:RevokePermissions", "lakeformation:ListPermissions",
      "glue:GetDatabase", "glue:GetTable",
      "iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:GetPolicy",
      "iam:GetPolicyVersion", "iam:ListPolicyVersions", "iam:CreatePolicy", "iam:TagPolicy",
      "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:DeletePolicy",
    ])
    error_message = "The management role allows exactly the IAM actions of permissions::MANAGE_IAM_POLICIES_ACTIONS, OWNERSHIP_TAG_ACTIONS and LAKE_FORMATION_ACTIONS."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(module.account_iam.policy_json).Statement :
      alltrue([for r in flatten([s.Resource]) : startswith(r, "arn:aws:iam::222222222222:role/data-consumers/") || r == "arn:aws:iam::222222222222:policy/dmm-integration/dmm-grants-*"])
      if s.Effect == "Allow" && startswith(flatten([s.Action])[0], "iam:")
    ])
    error_message = "Every IAM Allow must be on roles under the managed path of this account, or on the integration's own packed policies."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(module.account_iam.policy_json).Statement :
      alltrue([for r in flatten([s.Resource]) : r == "arn:aws:s3:::*" || strcontains(r, ":222222222222:")])
      if s.Effect == "Allow" && !startswith(flatten([s.Action])[0], "iam:") && !startswith(flatten([s.Action])[0], "lakeformation:")
    ])
    error_message = "The ownership tag reads stay in this account (buckets have no account in their ARN)."
  }
  assert {
    condition = [
      for s in jsondecode(module.account_iam.policy_json).Statement :
      [toset(flatten([s.Action])), s.Resource] if anytrue([for a in flatten([s.Action]) : startswith(a, "lakeformation:")])
    ] == [[toset(["lakeformation:GrantPermissions", "lakeformation:RevokePermissions", "lakeformation:ListPermissions"]), "*"]]
    error_message = "Lake Formation's grant actions, which IAM cannot scope, stand alone in one statement: Lake Formation's grantable permissions in this account's catalog decide what may be granted."
  }
  assert {
    condition = [
      for s in jsondecode(module.account_iam.policy_json).Statement :
      s.Condition if s.Sid == "CreateAccessRoles"
      ] == [{
        StringEquals = {
          "aws:RequestTag/managed-by" = "dmm-integration-aws"
          "iam:PermissionsBoundary"   = "arn:aws:iam::222222222222:policy/dmm-integration-access-role-boundary"
        }
        "ForAllValues:StringEquals" = { "aws:TagKeys" = ["managed-by", "dmm-agreement-id"] }
    }]
    error_message = "CreateRole/TagRole need the managed-by tag in the request, no other tag keys, and the access-role boundary."
  }
  assert {
    condition = [
      for s in jsondecode(module.account_iam.policy_json).Statement :
      [s.Condition, toset(s.Resource)] if s.Sid == "ManageOwnAccessRoles"
      ] == [[
        { StringEquals = { "iam:ResourceTag/managed-by" = "dmm-integration-aws" } },
        toset([
          "arn:aws:iam::222222222222:role/data-consumers/dmm-access-*",
          "arn:aws:iam::222222222222:role/data-consumers/dmm-acc-*",
        ]),
    ]]
    error_message = "Access roles are changed and deleted only when they carry the managed-by tag."
  }
}

run "denies_itself_and_protected_roles" {
  command = plan

  variables {
    protected_role_names = ["ci-deployment"]
  }

  assert {
    condition = length(setsubtract([
      "arn:aws:iam::222222222222:role/dmm-integration-management",
      "arn:aws:iam::222222222222:role/*/dmm-integration-management",
      "arn:aws:iam::222222222222:role/ci-deployment",
      "arn:aws:iam::222222222222:role/OrganizationAccountAccessRole",
      "arn:aws:iam::222222222222:role/aws-service-role/*",
      "arn:aws:iam::222222222222:role/aws-reserved/*",
      ], flatten([
        for s in jsondecode(module.account_iam.policy_json).Statement :
        s.Resource if s.Effect == "Deny" && s.Action == "iam:*"
    ]))) == 0
    error_message = "iam:* must be denied on the management role itself and every protected role."
  }
}

run "name_pattern_narrows_consumer_roles_not_access_roles" {
  command = plan

  variables {
    managed_role_name_pattern = "dp-*"
  }

  assert {
    condition = [
      for s in jsondecode(module.account_iam.policy_json).Statement :
      toset(flatten([s.Resource])) if s.Sid == "ReadAndRevokeInlinePoliciesOfAllowlistedRoles"
      ] == [toset([
        "arn:aws:iam::222222222222:role/dp-*",
        "arn:aws:iam::222222222222:role/*/dp-*",
    ])]
    error_message = "With a name pattern, consumer roles are `<prefix><pattern>` and `<prefix>*/<pattern>`."
  }
}

run "wildcard_hub_role_is_rejected" {
  command = plan

  variables {
    hub_role_arn = "arn:aws:iam::111111111111:role/*"
  }

  expect_failures = [var.hub_role_arn]
}

run "short_external_id_is_rejected" {
  command = plan

  variables {
    external_id = "x"
  }

  expect_failures = [var.external_id]
}

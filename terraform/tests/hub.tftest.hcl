# The hub module, planned offline with `terraform test` (Terraform >= 1.7) with the real
# hashicorp/aws provider and no AWS access: managed accounts and the drift sweep's schedule. A
# plan renders the IAM policy documents that depend only on variables (locally, in the
# provider); the account id is overridden. Run by scripts/check-terraform.sh when the provider
# can be installed. crates/core/tests/terraform_consistency.rs checks the same documents
# statically against the code.

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
    account_id = "111111111111"
  }
}

override_data {
  target          = data.aws_region.current
  override_during = plan
  values = {
    id   = "eu-central-1"
    name = "eu-central-1"
  }
}

variables {
  versions              = { poll_feed = "0.0.0", manage_iam_policies = "0.0.0" }
  artifacts_bucket_name = "offline-artifacts"
  bucket_name           = "offline-state"
}

run "single_account_has_no_assume_role_statement" {
  command = plan

  assert {
    condition     = length(aws_iam_role_policy.manage_iam_policies_assume_management_roles) == 0
    error_message = "Without managed_accounts, manage_iam_policies must not be allowed sts:AssumeRole at all."
  }
  assert {
    condition     = jsondecode(data.aws_iam_policy_document.manage_iam_policies_assume_management_roles.json) == { Version = "2012-10-17" }
    error_message = "Without managed_accounts, the assume document has no statement."
  }
}

run "assumes_exactly_the_configured_management_roles" {
  command = plan

  variables {
    managed_accounts = {
      "222222222222" = { role_arn = "arn:aws:iam::222222222222:role/dmm-integration-management", external_id = "0123456789abcdef" }
      "333333333333" = { role_arn = "arn:aws:iam::333333333333:role/platform/dmm-mgmt", external_id = "fedcba9876543210" }
    }
  }

  assert {
    condition = [
      for s in jsondecode(aws_iam_role_policy.manage_iam_policies_assume_management_roles[0].policy).Statement :
      [s.Sid, s.Effect, s.Action, toset(s.Resource), try(s.Condition, null)]
      ] == [[
        "AssumeManagementRolesOfManagedAccounts", "Allow", "sts:AssumeRole",
        toset([
          "arn:aws:iam::222222222222:role/dmm-integration-management",
          "arn:aws:iam::333333333333:role/platform/dmm-mgmt",
        ]),
        null,
    ]]
    error_message = "sts:AssumeRole must be allowed on exactly the management roles of managed_accounts."
  }
  assert {
    condition     = output.managed_account_ids == tolist(["222222222222", "333333333333"])
    error_message = "managed_account_ids lists the keys."
  }
}

run "access_roles_are_created_and_changed_only_with_the_managed_by_tag" {
  command = plan

  variables {
    managed_role_path_prefix  = "/data-consumers/"
    managed_role_name_pattern = "dp-*"
  }

  assert {
    condition = {
      for s in jsondecode(module.account_iam.policy_json).Statement :
      s.Sid => [toset(flatten([s.Action])), toset(flatten([s.Resource])), try(s.Condition, null)] if s.Effect == "Allow"
      } == {
      ReadAndRevokeInlinePoliciesOfAllowlistedRoles = [
        toset(["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy", "iam:DeleteRolePolicy"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dp-*", "arn:aws:iam::111111111111:role/data-consumers/*/dp-*"]),
        null,
      ]
      GrantOnRolesOwnedByADataProduct = [
        toset(["iam:PutRolePolicy"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dp-*", "arn:aws:iam::111111111111:role/data-consumers/*/dp-*"]),
        { Null = { "iam:ResourceTag/dmm-data-product" = "false" } },
      ]
      GrantOnRolesOwnedByATeam = [
        toset(["iam:PutRolePolicy"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dp-*", "arn:aws:iam::111111111111:role/data-consumers/*/dp-*"]),
        { Null = { "iam:ResourceTag/dmm-team" = "false" } },
      ]
      ReadBucketOwnerTags = [
        toset(["s3:GetBucketTagging"]),
        toset(["arn:aws:s3:::*"]),
        null,
      ]
      ReadOwnerTagsOfCatalogStreamsClustersKeysAndWorkgroups = [
        toset(["glue:GetTags", "kinesis:ListTagsForStream", "kafka:ListTagsForResource", "kms:ListResourceTags", "athena:ListTagsForResource"]),
        toset([
          "arn:aws:glue:*:111111111111:database/*", "arn:aws:glue:*:111111111111:table/*",
          "arn:aws:kinesis:*:111111111111:stream/*", "arn:aws:kafka:*:111111111111:cluster/*",
          "arn:aws:kms:*:111111111111:key/*", "arn:aws:athena:*:111111111111:workgroup/*",
        ]),
        null,
      ]
      ReadAccessRoles = [
        toset(["iam:GetRole", "iam:ListRolePolicies", "iam:GetRolePolicy"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dmm-access-*", "arn:aws:iam::111111111111:role/data-consumers/dmm-acc-*"]),
        null,
      ]
      AttachPackedPoliciesToAllowlistedRoles = [
        toset(["iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dp-*", "arn:aws:iam::111111111111:role/data-consumers/*/dp-*"]),
        { ArnLike = { "iam:PolicyARN" = "arn:aws:iam::111111111111:policy/dmm-integration/dmm-grants-*" } },
      ]
      ReadPackedPolicies = [
        toset(["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]),
        toset(["arn:aws:iam::111111111111:policy/dmm-integration/dmm-grants-*"]),
        null,
      ]
      CreatePackedPolicies = [
        toset(["iam:CreatePolicy", "iam:TagPolicy"]),
        toset(["arn:aws:iam::111111111111:policy/dmm-integration/dmm-grants-*"]),
        {
          StringEquals                = { "aws:RequestTag/managed-by" = "dmm-integration-aws" }
          "ForAllValues:StringEquals" = { "aws:TagKeys" = "managed-by" }
        },
      ]
      ChangeOwnPackedPolicies = [
        toset(["iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:DeletePolicy"]),
        toset(["arn:aws:iam::111111111111:policy/dmm-integration/dmm-grants-*"]),
        { StringEquals = { "iam:ResourceTag/managed-by" = "dmm-integration-aws" } },
      ]
      ReadCatalogEntriesToGrantThem = [
        toset(["glue:GetDatabase", "glue:GetTable"]),
        toset(["arn:aws:glue:*:111111111111:catalog", "arn:aws:glue:*:111111111111:database/*", "arn:aws:glue:*:111111111111:table/*"]),
        null,
      ]
      GrantTablesThroughLakeFormation = [
        toset(["lakeformation:GrantPermissions", "lakeformation:RevokePermissions", "lakeformation:ListPermissions"]),
        toset(["*"]),
        null,
      ]
      CreateAccessRoles = [
        toset(["iam:CreateRole", "iam:TagRole"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dmm-access-*", "arn:aws:iam::111111111111:role/data-consumers/dmm-acc-*"]),
        {
          StringEquals = {
            "aws:RequestTag/managed-by" = "dmm-integration-aws"
            "iam:PermissionsBoundary"   = "arn:aws:iam::111111111111:policy/dmm-integration-access-role-boundary"
          }
          "ForAllValues:StringEquals" = { "aws:TagKeys" = ["managed-by", "dmm-agreement-id"] }
        },
      ]
      ManageOwnAccessRoles = [
        toset(["iam:UpdateAssumeRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRole"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dmm-access-*", "arn:aws:iam::111111111111:role/data-consumers/dmm-acc-*"]),
        { StringEquals = { "iam:ResourceTag/managed-by" = "dmm-integration-aws" } },
      ]
      WriteDataPoliciesOfBoundedAccessRoles = [
        toset(["iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"]),
        toset(["arn:aws:iam::111111111111:role/data-consumers/dmm-access-*", "arn:aws:iam::111111111111:role/data-consumers/dmm-acc-*"]),
        {
          StringEquals = {
            "iam:ResourceTag/managed-by" = "dmm-integration-aws"
            "iam:PermissionsBoundary"    = "arn:aws:iam::111111111111:policy/dmm-integration-access-role-boundary"
          }
        },
      ]
    }
    error_message = "The IAM statements of manage_iam_policies in its own account differ from ADR 014."
  }
}

run "own_account_is_rejected" {
  command = plan

  variables {
    managed_accounts = {
      "111111111111" = { role_arn = "arn:aws:iam::111111111111:role/dmm-integration-management", external_id = "0123456789abcdef" }
    }
  }

  expect_failures = [aws_lambda_function.manage_iam_policies]
}

run "role_in_another_partition_is_rejected" {
  command = plan

  variables {
    managed_accounts = {
      "222222222222" = { role_arn = "arn:aws-cn:iam::222222222222:role/dmm-integration-management", external_id = "0123456789abcdef" }
    }
  }

  expect_failures = [aws_lambda_function.manage_iam_policies]
}

run "role_of_another_account_is_rejected" {
  command = plan

  variables {
    managed_accounts = {
      "222222222222" = { role_arn = "arn:aws:iam::333333333333:role/dmm-integration-management", external_id = "0123456789abcdef" }
    }
  }

  expect_failures = [var.managed_accounts]
}

run "wildcard_role_is_rejected" {
  command = plan

  variables {
    managed_accounts = {
      "222222222222" = { role_arn = "arn:aws:iam::222222222222:role/*", external_id = "0123456789abcdef" }
    }
  }

  expect_failures = [var.managed_accounts]
}

run "invalid_external_id_is_rejected" {
  command = plan

  variables {
    managed_accounts = {
      "222222222222" = { role_arn = "arn:aws:iam::222222222222:role/dmm-integration-management", external_id = "has spaces" }
    }
  }

  expect_failures = [var.managed_accounts]
}

# --- the drift sweep's schedule (ADR 016) ---

run "the_sweep_runs_daily_by_default_and_asks_for_all" {
  command = plan

  assert {
    condition     = aws_cloudwatch_event_rule.drift_reconcile[0].schedule_expression == "rate(1 day)"
    error_message = "The drift sweep runs daily by default."
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_target.drift_reconcile[0].input) == { reconcile = "all" }
    error_message = "The schedule must invoke manage_iam_policies with {\"reconcile\": \"all\"}, the payload the binary parses."
  }
  assert {
    condition     = aws_lambda_permission.drift_reconcile_schedule[0].principal == "events.amazonaws.com"
    error_message = "EventBridge must be allowed to invoke manage_iam_policies."
  }
}

run "null_turns_the_sweep_off" {
  command = plan

  variables {
    drift_reconcile_schedule_expression = null
  }

  assert {
    condition     = length(aws_cloudwatch_event_rule.drift_reconcile) == 0 && length(aws_lambda_permission.drift_reconcile_schedule) == 0
    error_message = "Without a schedule there is no rule and no permission."
  }
}

run "an_invalid_schedule_is_rejected" {
  command = plan

  variables {
    drift_reconcile_schedule_expression = "every day"
  }

  expect_failures = [var.drift_reconcile_schedule_expression]
}

run "audit_mode_lets_the_integration_grant_onto_untagged_roles" {
  command = plan

  variables {
    ownership_check = "audit"
  }

  assert {
    condition = [
      for s in jsondecode(module.account_iam.policy_json).Statement :
      [s.Action, try(s.Condition, null)] if s.Sid == "GrantOnAnyAllowlistedRoleWithoutOwnershipCheck"
    ] == [["iam:PutRolePolicy", null]]
    error_message = "ownership_check = audit grants as the Python reference did: PutRolePolicy without the owner-tag condition."
  }
}

run "enforce_mode_writes_only_onto_owner_tagged_roles" {
  command = plan

  assert {
    condition = length([
      for s in jsondecode(module.account_iam.policy_json).Statement :
      s if s.Sid == "GrantOnAnyAllowlistedRoleWithoutOwnershipCheck"
    ]) == 0
    error_message = "With the default ownership_check = enforce, PutRolePolicy needs a dmm-data-product or dmm-team tag on the role."
  }
}

run "the_connector_is_named_per_deployment" {
  command = plan

  assert {
    condition     = output.connector_id == "aws-${var.name_prefix}-111111111111-eu-central-1"
    error_message = "Without connector_id, each deployment registers its own connector: aws-<name_prefix>-<account>-<region>."
  }
}

run "a_connector_id_that_is_set_is_used_as_it_is" {
  command = plan

  variables {
    connector_id = "aws-prod-hub"
  }

  assert {
    condition     = output.connector_id == "aws-prod-hub"
    error_message = "A connector_id that is set is used as it is."
  }
}

run "an_unknown_status_reporting_is_rejected" {
  command = plan

  variables {
    status_reporting = "email"
  }

  expect_failures = [var.status_reporting]
}

run "an_unknown_grant_layout_is_rejected" {
  command = plan

  variables {
    grant_layout = "squeezed"
  }

  expect_failures = [var.grant_layout]
}

run "more_packed_policies_than_iam_attaches_are_rejected" {
  command = plan

  variables {
    managed_policies_per_role = 21
  }

  expect_failures = [var.managed_policies_per_role]
}

run "an_unknown_glue_access_mode_is_rejected" {
  command = plan

  variables {
    glue_access_mode = "lake-formation-ish"
  }

  expect_failures = [var.glue_access_mode]
}

run "the_dashboard_draws_the_alarm_thresholds" {
  command = plan

  variables {
    feed_lag_alarm_seconds = 777
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.integration) == 1 && strcontains(aws_cloudwatch_dashboard.integration[0].dashboard_body, "{\"label\":\"feed_lag alarm\",\"value\":777}")
    error_message = "The dashboard draws the feed_lag alarm's threshold into the feed lag graph."
  }

  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.integration[0].dashboard_body).widgets) == 8
    error_message = "Eight graphs: events, feed lag, grants, errors and retries, DLQ, oldest message, function errors, durations."
  }

  assert {
    condition     = output.dashboard_url == "https://eu-central-1.console.aws.amazon.com/cloudwatch/home?region=eu-central-1#dashboards/dashboard/${var.name_prefix}__overview"
    error_message = "dashboard_url links to the dashboard in the deployment's region."
  }
}

run "no_dashboard_when_it_is_turned_off" {
  command = plan

  variables {
    dashboard_enabled = false
  }

  assert {
    condition     = length(aws_cloudwatch_dashboard.integration) == 0 && output.dashboard_url == null
    error_message = "dashboard_enabled = false creates no dashboard and no link."
  }
}

run "a_message_starts_manage_iam_policies_at_once" {
  command = plan

  assert {
    condition     = aws_lambda_event_source_mapping.manage_iam_policies.maximum_batching_window_in_seconds == 0 && aws_lambda_event_source_mapping.manage_iam_policies.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The event source mapping waits for no batching window and reports failed records."
  }
}

# A run that could never wait for news (interval + margin at or above the timeout) is refused.
run "poll_interval_leaving_no_time_to_poll_is_rejected" {
  command = plan

  variables {
    poll_feed_timeout_seconds = 20
    deadline_margin_ms        = 3000
    poll_interval_ms          = 17000
  }

  expect_failures = [aws_lambda_function.poll_feed]
}

run "negative_poll_interval_is_rejected" {
  command = plan

  variables {
    poll_interval_ms = -1
  }

  expect_failures = [var.poll_interval_ms]
}

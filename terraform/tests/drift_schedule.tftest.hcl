# `terraform test` (offline, like managed_accounts.tftest.hcl): the drift sweep's schedule.

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

variables {
  versions              = { poll_feed = "0.0.0", manage_iam_policies = "0.0.0" }
  artifacts_bucket_name = "offline-artifacts"
  bucket_name           = "offline-state"
}

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

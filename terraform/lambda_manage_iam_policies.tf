# manage_iam_policies: triggered by the FIFO queue; converges the IAM inline policies of an
# agreement's consumer role to the agreement's current state and writes the status back to DMM.

resource "aws_cloudwatch_log_group" "manage_iam_policies" {
  #checkov:skip=CKV_AWS_158:Log lines carry no secrets (the API key is never logged, ADR 011); CloudWatch Logs encrypts at rest. A customer managed key can be set with log_kms_key_arn.
  name              = "/aws/lambda/${local.manage_iam_policies_function_name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_lambda_function" "manage_iam_policies" {
  #checkov:skip=CKV_AWS_117:Must reach the Data Mesh Manager SaaS API on the internet; a VPC would add a NAT gateway and no protection (IAM and S3 are public AWS APIs).
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the SQS event source mapping, where a function DLQ is never used; failed messages go to the queue's own FIFO dead-letter queue (redrive policy).
  #checkov:skip=CKV_AWS_173:The environment holds names, URLs and the managed accounts' external ids, no secrets (the API key is in Secrets Manager; an external id is a confused-deputy guard, not a credential); Lambda encrypts it with its service key.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile in the deploying account; artifacts are built and deployed by cicd.sh from the repository.
  #checkov:skip=CKV_AWS_50:The binary emits structured JSON logs, not X-Ray segments; Active tracing would only add xray:PutTraceSegments on "*" to the role.
  #checkov:skip=CKV_AWS_115:Concurrency is capped by the event source mapping's maximum_concurrency (event_maximum_concurrency); reserving it as well is optional (manage_iam_policies_reserved_concurrency) because a reservation takes capacity from the whole account.
  function_name = local.manage_iam_policies_function_name
  description   = "Converges IAM policies to Data Mesh Manager access agreements (${var.versions.manage_iam_policies})"
  role          = aws_iam_role.manage_iam_policies.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.lambda_architecture]
  memory_size   = var.manage_iam_policies_memory_size
  timeout       = var.manage_iam_policies_timeout_seconds

  reserved_concurrent_executions = var.manage_iam_policies_reserved_concurrency

  s3_bucket        = local.use_s3_artifacts ? var.artifacts_bucket_name : null
  s3_key           = local.use_s3_artifacts ? local.artifacts.manage_iam_policies.s3_key : null
  filename         = local.use_s3_artifacts ? null : local.artifacts.manage_iam_policies.zip_path
  source_code_hash = local.use_s3_artifacts ? null : (fileexists(local.artifacts.manage_iam_policies.zip_path) ? filebase64sha256(local.artifacts.manage_iam_policies.zip_path) : null)

  # Exactly MANAGE_IAM_POLICIES_VARIABLES (crates/core/src/config.rs).
  environment {
    variables = {
      dmm_base_url              = var.dmm_base_url
      dmm_api_key_secret_name   = aws_secretsmanager_secret.dmm_api_key.name
      bucket_name               = local.bucket_name
      sqs_queue_url             = aws_sqs_queue.events.url
      managed_role_path_prefix  = var.managed_role_path_prefix
      managed_role_name_pattern = var.managed_role_name_pattern
      protected_role_names      = join(",", local.protected_role_names)
      managed_accounts          = jsonencode(var.managed_accounts)
      ownership_check           = var.ownership_check
      ownership_map             = jsonencode(var.ownership_map)
      protected_bucket_names    = join(",", var.protected_bucket_names)
      status_reporting          = var.status_reporting
      glue_access_mode          = var.glue_access_mode
      grant_layout              = var.grant_layout
      managed_policies_per_role = tostring(var.managed_policies_per_role)
      artifacts_bucket_name     = var.artifacts_bucket_name == null ? "" : var.artifacts_bucket_name
      dmm_request_timeout_ms    = tostring(var.dmm_request_timeout_ms)
      aws_operation_timeout_ms  = tostring(var.aws_operation_timeout_ms)
      log_level                 = var.log_level
    }
  }

  tags = {
    version = var.versions.manage_iam_policies
  }

  depends_on = [
    aws_cloudwatch_log_group.manage_iam_policies,
    aws_iam_role_policy.manage_iam_policies,
    aws_iam_role_policy.manage_iam_policies_iam,
    aws_iam_role_policy.manage_iam_policies_logging,
    aws_iam_role_policy.manage_iam_policies_assume_management_roles,
  ]

  lifecycle {
    precondition {
      condition     = local.use_s3_artifacts || fileexists(local.artifacts.manage_iam_policies.zip_path)
      error_message = "No manage_iam_policies artifact at ${local.artifacts.manage_iam_policies.zip_path}: build it with ./cicd.sh (cargo lambda build --release --output-format zip), or set artifacts_bucket_name."
    }
    precondition {
      condition     = var.manage_iam_policies_reserved_concurrency == null || coalesce(var.manage_iam_policies_reserved_concurrency, 0) >= var.event_maximum_concurrency
      error_message = "manage_iam_policies_reserved_concurrency must be at least event_maximum_concurrency, or SQS messages are throttled into the dead-letter queue."
    }
    precondition {
      condition     = !contains(local.managed_account_ids, local.account_id)
      error_message = "managed_accounts lists this deployment's own account (${local.account_id}): remove it, the integration manages its own account with its function role."
    }
    precondition {
      condition     = alltrue([for arn in local.management_role_arns : startswith(arn, "arn:${local.partition}:")])
      error_message = "managed_accounts: every role_arn must be in this deployment's partition (arn:${local.partition}:...); STS cannot assume a role in another partition."
    }
    precondition {
      condition     = var.dmm_request_timeout_ms < var.manage_iam_policies_timeout_seconds * 1000
      error_message = "dmm_request_timeout_ms must be below manage_iam_policies_timeout_seconds * 1000."
    }
    precondition {
      condition     = var.aws_operation_timeout_ms < var.manage_iam_policies_timeout_seconds * 1000
      error_message = "aws_operation_timeout_ms must be below manage_iam_policies_timeout_seconds * 1000."
    }
  }
}

resource "aws_lambda_event_source_mapping" "manage_iam_policies" {
  event_source_arn = aws_sqs_queue.events.arn
  function_name    = aws_lambda_function.manage_iam_policies.arn
  batch_size       = var.event_batch_size
  enabled          = true
  # A message starts the function at once: no batching window to fill (access in seconds).
  maximum_batching_window_in_seconds = 0

  # The function reports failed records itself (ADR 002); only those are retried.
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.event_maximum_concurrency
  }

  # Creating the mapping checks that the role may read the queue.
  depends_on = [aws_iam_role_policy.manage_iam_policies]
}

# The drift sweep: every agreement DMM lists, and every one only the grant ledger knows, is
# reconciled through the queue like an event (README "Drift reconciliation").
resource "aws_cloudwatch_event_rule" "drift_reconcile" {
  count               = var.drift_reconcile_schedule_expression == null ? 0 : 1
  name                = "${var.name_prefix}__drift_reconcile_schedule"
  description         = "Reconciles every agreement with ${local.manage_iam_policies_function_name}"
  schedule_expression = var.drift_reconcile_schedule_expression
}

resource "aws_cloudwatch_event_target" "drift_reconcile" {
  count     = var.drift_reconcile_schedule_expression == null ? 0 : 1
  rule      = aws_cloudwatch_event_rule.drift_reconcile[0].name
  target_id = "drift_reconcile"
  arn       = aws_lambda_function.manage_iam_policies.arn
  input     = jsonencode({ reconcile = "all" })
}

resource "aws_lambda_permission" "drift_reconcile_schedule" {
  count         = var.drift_reconcile_schedule_expression == null ? 0 : 1
  statement_id  = "AllowExecutionFromEventBridgeDriftSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.manage_iam_policies.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.drift_reconcile[0].arn
}

# poll_feed: every minute, reads new Data Mesh Manager events and forwards them to the FIFO queue,
# then moves the checkpoint in S3. At most one runs at a time (reserved concurrency 1 plus the
# conditional checkpoint write in the code).

resource "aws_cloudwatch_log_group" "poll_feed" {
  #checkov:skip=CKV_AWS_158:Log lines carry no secrets (the API key is never logged, ADR 011); CloudWatch Logs encrypts at rest. A customer managed key can be set with log_kms_key_arn.
  name              = "/aws/lambda/${local.poll_feed_function_name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_lambda_function" "poll_feed" {
  #checkov:skip=CKV_AWS_117:Must reach the Data Mesh Manager SaaS API on the internet; a VPC would add a NAT gateway and no protection (no private resources are accessed).
  #checkov:skip=CKV_AWS_116:Invoked by the schedule, whose events carry no data: a failed run is simply repeated by the next one (retries are off, see the invoke config), so a DLQ would only collect empty schedule events.
  #checkov:skip=CKV_AWS_173:The environment holds names and URLs only, no secrets (the API key is in Secrets Manager); Lambda encrypts it with its service key.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile in the deploying account; artifacts are built and deployed by cicd.sh from the repository.
  #checkov:skip=CKV_AWS_50:The binary emits structured JSON logs, not X-Ray segments; Active tracing would only add xray:PutTraceSegments on "*" to the role.
  function_name = local.poll_feed_function_name
  description   = "Forwards Data Mesh Manager events to SQS (${var.versions.poll_feed})"
  role          = aws_iam_role.poll_feed.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.lambda_architecture]
  memory_size   = var.poll_feed_memory_size
  timeout       = var.poll_feed_timeout_seconds

  # Only one poll at a time (ADR 001).
  reserved_concurrent_executions = 1

  s3_bucket        = local.use_s3_artifacts ? var.artifacts_bucket_name : null
  s3_key           = local.use_s3_artifacts ? local.artifacts.poll_feed.s3_key : null
  filename         = local.use_s3_artifacts ? null : local.artifacts.poll_feed.zip_path
  source_code_hash = local.use_s3_artifacts ? null : (fileexists(local.artifacts.poll_feed.zip_path) ? filebase64sha256(local.artifacts.poll_feed.zip_path) : null)

  # Exactly POLL_FEED_VARIABLES (crates/core/src/config.rs).
  environment {
    variables = {
      dmm_base_url              = var.dmm_base_url
      dmm_api_key_secret_name   = aws_secretsmanager_secret.dmm_api_key.name
      bucket_name               = local.bucket_name
      last_event_id_object_name = var.last_event_id_object_name
      sqs_queue_url             = aws_sqs_queue.events.url
      forward_all_events        = tostring(var.forward_all_events)
      connector_id              = local.connector_id
      dmm_request_timeout_ms    = tostring(var.dmm_request_timeout_ms)
      aws_operation_timeout_ms  = tostring(var.aws_operation_timeout_ms)
      deadline_margin_ms        = tostring(var.deadline_margin_ms)
      poll_interval_ms          = tostring(var.poll_interval_ms)
      log_level                 = var.log_level
    }
  }

  tags = {
    version = var.versions.poll_feed
  }

  depends_on = [
    aws_cloudwatch_log_group.poll_feed,
    aws_iam_role_policy.poll_feed,
    aws_iam_role_policy.poll_feed_logging,
  ]

  lifecycle {
    precondition {
      condition     = local.use_s3_artifacts || fileexists(local.artifacts.poll_feed.zip_path)
      error_message = "No poll_feed artifact at ${local.artifacts.poll_feed.zip_path}: build it with ./cicd.sh (cargo lambda build --release --output-format zip), or set artifacts_bucket_name."
    }
    precondition {
      condition     = local.schedule_interval_seconds == null || var.poll_feed_timeout_seconds < coalesce(local.schedule_interval_seconds, 0)
      error_message = "poll_feed_timeout_seconds (${var.poll_feed_timeout_seconds}) must be below the interval of poll_feed_schedule_expression (${var.poll_feed_schedule_expression})."
    }
    precondition {
      condition     = var.deadline_margin_ms < var.poll_feed_timeout_seconds * 1000 && var.dmm_request_timeout_ms < var.poll_feed_timeout_seconds * 1000
      error_message = "deadline_margin_ms and dmm_request_timeout_ms must both be below poll_feed_timeout_seconds * 1000."
    }
    precondition {
      condition     = var.poll_interval_ms + var.deadline_margin_ms < var.poll_feed_timeout_seconds * 1000
      error_message = "poll_interval_ms + deadline_margin_ms (${var.poll_interval_ms + var.deadline_margin_ms}) must be below poll_feed_timeout_seconds * 1000, or a run never waits for news."
    }
    precondition {
      condition     = var.aws_operation_timeout_ms < var.poll_feed_timeout_seconds * 1000
      error_message = "aws_operation_timeout_ms must be below poll_feed_timeout_seconds * 1000."
    }
  }
}

# Retries of a failed scheduled run would queue up behind the reserved concurrency of 1 and
# overlap the next scheduled run; the next run retries anyway.
resource "aws_lambda_function_event_invoke_config" "poll_feed" {
  function_name                = aws_lambda_function.poll_feed.function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 60
}

resource "aws_cloudwatch_event_rule" "poll_feed" {
  name                = "${var.name_prefix}__poll_feed_schedule"
  description         = "Runs ${local.poll_feed_function_name}"
  schedule_expression = var.poll_feed_schedule_expression
}

resource "aws_cloudwatch_event_target" "poll_feed" {
  rule      = aws_cloudwatch_event_rule.poll_feed.name
  target_id = "poll_feed"
  arn       = aws_lambda_function.poll_feed.arn
}

resource "aws_lambda_permission" "poll_feed_schedule" {
  statement_id  = "AllowExecutionFromEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.poll_feed.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.poll_feed.arn
}

locals {
  account_id = data.aws_caller_identity.current.account_id

  # Who may use the state bucket's objects and send to the event queue besides the two functions
  # (ADR 017): the principal that deploys (an assumed role is named by its role, with or without a
  # path) and var.operator_principal_arns (break-glass, DLQ redrive).
  deployer_arn = data.aws_caller_identity.current.arn
  deployer_role = (
    can(regex("^arn:[^:]+:sts::[0-9]{12}:assumed-role/", local.deployer_arn))
    ? split("/", local.deployer_arn)[1]
    : null
  )
  deployer_principal_arns = local.deployer_role == null ? [local.deployer_arn] : [
    "arn:${local.partition}:iam::${local.account_id}:role/${local.deployer_role}",
    "arn:${local.partition}:iam::${local.account_id}:role/*/${local.deployer_role}",
  ]
  trusted_principal_arns = concat(
    [aws_iam_role.poll_feed.arn, aws_iam_role.manage_iam_policies.arn],
    local.deployer_principal_arns,
    var.operator_principal_arns,
  )
  partition = data.aws_partition.current.partition

  # --- Names (the Python reference's `<prefix>__<function>` scheme) ---
  poll_feed_function_name           = "${var.name_prefix}__poll_feed"
  manage_iam_policies_function_name = "${var.name_prefix}__manage_iam_policies"
  poll_feed_role_name               = "${var.name_prefix}__poll_feed"
  manage_iam_policies_role_name     = "${var.name_prefix}__manage_iam_policies"
  dmm_api_key_secret_name           = "${var.secrets_manager_prefix}api_key"
  dead_letter_queue_name            = "${trimsuffix(var.event_queue_name, ".fifo")}-dlq.fifo"

  # --- State bucket: created here or an existing one ---
  bucket_name = var.create_bucket ? aws_s3_bucket.state[0].id : data.aws_s3_bucket.state[0].id
  bucket_arn  = var.create_bucket ? aws_s3_bucket.state[0].arn : data.aws_s3_bucket.state[0].arn
  # Whether versioning, encryption, public access block, lifecycle and the bucket policy are
  # managed here.
  configure_bucket = var.create_bucket || var.manage_existing_bucket_configuration
  # manage_iam_policies' grant ledger: grants/<agreement-id>.json (ADR 002).
  ledger_prefix = "grants/"
  # The holders of shared Lake Formation permissions: lake-formation/<catalog>/<region>/… (ADR 022,
  # aws/ledger.rs HOLDERS_PREFIX).
  holders_prefix = "lake-formation/"
  # The role records of the packed layout: roles/<account>/<role>.json (ADR 023, aws/ledger.rs
  # ROLE_RECORDS_PREFIX).
  role_records_prefix = "roles/"
  # manage_iam_policies' health record, which poll_feed reports in the connector document
  # (aws/health.rs HEALTH_KEY, ADR 018).
  health_key = "health/manage_iam_policies.json"
  # The connector document's id in DMM: one per deployment.
  connector_id = var.connector_id != "" ? var.connector_id : "aws-${var.name_prefix}-${local.account_id}-${data.aws_region.current.id}"

  # --- Schedule: the interval in seconds when the expression is rate(...), null for cron(...) ---
  schedule_rate = try(regex("^rate\\((\\d+) (minute|hour|day)s?\\)$", var.poll_feed_schedule_expression), null)
  schedule_interval_seconds = local.schedule_rate == null ? null : (
    tonumber(local.schedule_rate[0]) * { minute = 60, hour = 3600, day = 86400 }[local.schedule_rate[1]]
  )

  # AWS: the visibility timeout of a queue that triggers a function is at least six times the
  # function's timeout, so a batch that is being retried is never handed out twice.
  queue_visibility_timeout_seconds = 6 * var.manage_iam_policies_timeout_seconds

  # --- IAM scope of manage_iam_policies (modules/account-iam has the rest) ---
  # Never written to, whatever the allowlist says: the integration's own roles, and any the
  # operator adds (the module adds the AWS administrator, service-linked and reserved roles).
  protected_role_names = distinct(concat(
    [local.poll_feed_role_name, local.manage_iam_policies_role_name],
    var.protected_role_names,
  ))

  # --- Cross-account: the management roles in var.managed_accounts ---
  # Role ARNs are not secret; only the external ids are why the variable is sensitive.
  management_role_arns = sort(nonsensitive([for account in values(var.managed_accounts) : account.role_arn]))
  managed_account_ids  = sort(nonsensitive(keys(var.managed_accounts)))

  # --- Lambda code: local zips (uploaded by Terraform) or artifacts cicd.sh put into S3 ---
  use_s3_artifacts = var.artifacts_bucket_name != null
  artifacts_dir    = coalesce(var.artifacts_dir, "${path.module}/../target/lambda")
  artifacts = {
    for function in ["poll_feed", "manage_iam_policies"] : function => {
      s3_key   = "${function}/src/${var.versions[function]}/lambda.zip"
      zip_path = "${local.artifacts_dir}/${function}/bootstrap.zip"
    }
  }

  # --- Alarm actions ---
  alarm_actions = concat(aws_sns_topic.alarms[*].arn, var.alarm_actions)
}

# Every variable an operator may set. The root terraform.tfvars.example lists them with comments.
# Names shared with the Python reference integration (bucket_name, secrets_manager_prefix,
# event_queue_name, versions) keep their meaning, so an existing tfvars file keeps working.

# --- General ---------------------------------------------------------------------------------

variable "aws_region" {
  type        = string
  default     = null
  description = "AWS region to deploy to. Null takes it from the environment (AWS_REGION, profile). Credentials never go here: the provider uses the standard credential chain."
}

variable "name_prefix" {
  type        = string
  default     = "DMM_integration"
  description = "Prefix of every named resource (functions, roles, schedule, alarms), joined with `__` as in the Python reference (e.g. DMM_integration__poll_feed)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,24}$", var.name_prefix))
    error_message = "name_prefix must be 1-24 characters of letters, digits, `_` or `-` (it becomes part of IAM role and Lambda function names)."
  }
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags added to every resource (provider default_tags)."
}

# --- Data Mesh Manager -----------------------------------------------------------------------

variable "dmm_base_url" {
  type        = string
  default     = "https://api.datamesh-manager.com"
  description = "Base URL of the Data Mesh Manager API, without `/api` (env `dmm_base_url`)."

  validation {
    condition     = can(regex("^https?://[^/\\s]+(/[^\\s]*)?$", var.dmm_base_url))
    error_message = "dmm_base_url must be an http(s) URL such as https://api.datamesh-manager.com."
  }
}

variable "dmm_api_key" {
  type        = string
  default     = null
  sensitive   = true
  description = "Data Mesh Manager API key. When set, Terraform writes it into the secret (and so into the Terraform state). Leave null to set the secret value out of band (aws secretsmanager put-secret-value), which keeps the key out of the state."

  validation {
    # try(): length(null) is an error, and null (set out of band) is fine.
    condition     = try(length(trimspace(var.dmm_api_key)) > 0, true)
    error_message = "dmm_api_key must be null (set the secret out of band) or a non-empty key."
  }
}

variable "secrets_manager_prefix" {
  type        = string
  default     = "dmm_integration__"
  description = "Prefix of the Secrets Manager secret name; the secret is `<prefix>api_key` as in the Python reference."

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{0,400}$", var.secrets_manager_prefix))
    error_message = "secrets_manager_prefix may contain only letters, digits and /_+=.@- ."
  }
}

variable "secret_recovery_window_in_days" {
  type        = number
  default     = 7
  description = "Days a deleted secret can still be restored (0 deletes it at once, 7-30 otherwise)."

  validation {
    condition     = var.secret_recovery_window_in_days == 0 || (var.secret_recovery_window_in_days >= 7 && var.secret_recovery_window_in_days <= 30)
    error_message = "secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "dmm_request_timeout_ms" {
  type        = number
  default     = 10000
  description = "Timeout of one Data Mesh Manager HTTP request in milliseconds, both functions (env `dmm_request_timeout_ms`)."

  validation {
    condition     = var.dmm_request_timeout_ms >= 100 && floor(var.dmm_request_timeout_ms) == var.dmm_request_timeout_ms
    error_message = "dmm_request_timeout_ms must be a whole number of at least 100."
  }
}

variable "aws_operation_timeout_ms" {
  type        = number
  default     = 25000
  description = "Longest one AWS call (S3, SQS, IAM, STS, Secrets Manager) may take including the SDK's retries, in milliseconds, both functions (env `aws_operation_timeout_ms`); each attempt gets two fifths of it, connecting at most 3 s (ADR 015)."

  validation {
    condition     = var.aws_operation_timeout_ms >= 1000 && floor(var.aws_operation_timeout_ms) == var.aws_operation_timeout_ms
    error_message = "aws_operation_timeout_ms must be a whole number of at least 1000."
  }
}

# --- State bucket ----------------------------------------------------------------------------

variable "bucket_name" {
  type        = string
  default     = "dmm-integration"
  description = "S3 bucket for the poll_feed checkpoint and the grant ledger (env `bucket_name`). Bucket names are global: pick one unique to your account."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, `.` or `-`)."
  }
}

variable "create_bucket" {
  type        = bool
  default     = true
  description = "Create the state bucket. Set false to use an existing bucket named bucket_name (as the Python reference did)."
}

variable "manage_existing_bucket_configuration" {
  type        = bool
  default     = false
  description = "Only with create_bucket = false: also enforce versioning, encryption, public access block, ACLs off, lifecycle and the TLS-only bucket policy on the existing bucket. The bucket policy REPLACES any policy the bucket has. A bucket created by this configuration is always configured."
}

variable "bucket_force_destroy" {
  type        = bool
  default     = false
  description = "Let `terraform destroy` delete the created state bucket with its contents (checkpoint, grant ledger). Keep false in production: the ledger is what revokes grants of deleted agreements."
}

variable "bucket_noncurrent_version_expiration_days" {
  type        = number
  default     = 90
  description = "Days old versions of the checkpoint and ledger objects are kept (versioning protects against a bad write)."

  validation {
    condition     = var.bucket_noncurrent_version_expiration_days >= 1
    error_message = "bucket_noncurrent_version_expiration_days must be at least 1."
  }
}

variable "last_event_id_object_name" {
  type        = string
  default     = "poll_feed/last_event_id"
  description = "Key of the checkpoint object in the state bucket (env `last_event_id_object_name`). Keep the key an existing Python deployment uses to continue where it stopped."

  validation {
    condition     = length(var.last_event_id_object_name) > 0 && !startswith(var.last_event_id_object_name, "/") && !startswith(var.last_event_id_object_name, "grants/") && !strcontains(var.last_event_id_object_name, "*") && !strcontains(var.last_event_id_object_name, "?")
    error_message = "last_event_id_object_name must be a plain object key: not empty, no leading `/`, no `*` or `?`, and not under the ledger prefix `grants/`."
  }
}

# --- Lambda artifacts ------------------------------------------------------------------------

variable "versions" {
  type = object({
    poll_feed           = string
    manage_iam_policies = string
  })
  description = "Version of each function's artifact. cicd.sh sets both to its version argument. With artifacts_bucket_name, the code is read from `s3://<artifacts_bucket_name>/<function>/src/<version>/lambda.zip` (the Python reference's layout)."

  validation {
    condition     = alltrue([for v in values(var.versions) : can(regex("^[A-Za-z0-9._+-]{1,64}$", v))])
    error_message = "Each version must be 1-64 characters of letters, digits, `.`, `_`, `+` or `-`."
  }
}

variable "artifacts_bucket_name" {
  type        = string
  default     = null
  description = "Existing S3 bucket cicd.sh uploads the zips to. Null: Terraform uploads the local zips from artifacts_dir with the functions."
}

variable "artifacts_dir" {
  type        = string
  default     = null
  description = "Directory holding `<function>/bootstrap.zip` as written by `cargo lambda build --output-format zip`. Null: `../target/lambda` relative to this directory. Ignored with artifacts_bucket_name."
}

variable "lambda_architecture" {
  type        = string
  default     = "arm64"
  description = "Instruction set of both functions; must match the build (cicd.sh builds arm64 unless LAMBDA_ARCH=x86_64)."

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "log_level" {
  type        = string
  default     = "info"
  description = "Log filter of both functions: error, warn, info, debug or a tracing directive (env `log_level`)."

  validation {
    condition     = length(trimspace(var.log_level)) > 0
    error_message = "log_level must not be empty."
  }
}

variable "log_retention_in_days" {
  type        = number
  default     = 365
  description = "Retention of the functions' CloudWatch log groups. The logs are the audit trail of every grant and revocation."

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "log_kms_key_arn" {
  type        = string
  default     = null
  description = "Optional customer managed KMS key for the log groups (its key policy must allow logs.<region>.amazonaws.com). Null: CloudWatch Logs' own encryption."
}

# --- poll_feed -------------------------------------------------------------------------------

variable "poll_feed_schedule_expression" {
  type        = string
  default     = "rate(1 minute)"
  description = "EventBridge schedule of poll_feed. poll_feed_timeout_seconds must stay below its interval."

  validation {
    condition     = can(regex("^(rate\\(\\d+ (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", var.poll_feed_schedule_expression))
    error_message = "poll_feed_schedule_expression must be an EventBridge rate(...) or cron(...) expression."
  }
}

variable "poll_feed_timeout_seconds" {
  type        = number
  default     = 58
  description = "Timeout of poll_feed; below the schedule interval so two runs never overlap (reserved concurrency is 1 as well). With poll_interval_ms above zero a run polls until its timeout less deadline_margin_ms, so the feed goes unread for only about 60 s less this plus the margin each minute."

  validation {
    condition     = var.poll_feed_timeout_seconds >= 10 && var.poll_feed_timeout_seconds <= 900
    error_message = "poll_feed_timeout_seconds must be between 10 and 900."
  }
}

variable "poll_feed_memory_size" {
  type        = number
  default     = 256
  description = "Memory of poll_feed in MB (CPU scales with it)."

  validation {
    condition     = var.poll_feed_memory_size >= 128 && var.poll_feed_memory_size <= 10240
    error_message = "poll_feed_memory_size must be between 128 and 10240."
  }
}

variable "forward_all_events" {
  type        = bool
  default     = false
  description = "Forward every event type to the queue, not only the agreement events manage_iam_policies acts on (env `forward_all_events`)."
}

variable "deadline_margin_ms" {
  type        = number
  default     = 3000
  description = "poll_feed starts no new page once less than this many milliseconds of its timeout are left (env `deadline_margin_ms`)."

  validation {
    condition     = var.deadline_margin_ms >= 0 && floor(var.deadline_margin_ms) == var.deadline_margin_ms
    error_message = "deadline_margin_ms must be a non-negative whole number."
  }
}

variable "poll_interval_ms" {
  type        = number
  default     = 2000
  description = "After catching up, poll_feed waits this many milliseconds and reads the feed again, until its deadline margin (env `poll_interval_ms`): access follows DMM in seconds instead of up to a minute. 0 reads the feed once per scheduled run. README \"Latency and cost\" prices each choice."

  validation {
    condition     = var.poll_interval_ms >= 0 && floor(var.poll_interval_ms) == var.poll_interval_ms
    error_message = "poll_interval_ms must be a non-negative whole number."
  }
}

# --- manage_iam_policies ---------------------------------------------------------------------

variable "manage_iam_policies_timeout_seconds" {
  type        = number
  default     = 60
  description = "Timeout of manage_iam_policies. The queue's visibility timeout is six times this."

  validation {
    condition     = var.manage_iam_policies_timeout_seconds >= 10 && var.manage_iam_policies_timeout_seconds <= 900
    error_message = "manage_iam_policies_timeout_seconds must be between 10 and 900."
  }
}

variable "manage_iam_policies_memory_size" {
  type        = number
  default     = 256
  description = "Memory of manage_iam_policies in MB."

  validation {
    condition     = var.manage_iam_policies_memory_size >= 128 && var.manage_iam_policies_memory_size <= 10240
    error_message = "manage_iam_policies_memory_size must be between 128 and 10240."
  }
}

variable "manage_iam_policies_reserved_concurrency" {
  type        = number
  default     = null
  description = "Optional reserved concurrency of manage_iam_policies; at least event_maximum_concurrency when set. Null: no reservation, the event source mapping's maximum concurrency caps it."
}

variable "drift_reconcile_schedule_expression" {
  type        = string
  default     = "rate(1 day)"
  nullable    = true
  description = "EventBridge schedule of the drift sweep, which reconciles every agreement (repairs policies changed by hand and grants whose events were lost). Null turns it off."

  validation {
    condition     = var.drift_reconcile_schedule_expression == null || can(regex("^(rate\\(\\d+ (minute|minutes|hour|hours|day|days)\\)|cron\\(.+\\))$", coalesce(var.drift_reconcile_schedule_expression, "x")))
    error_message = "drift_reconcile_schedule_expression must be an EventBridge rate(...) or cron(...) expression, or null."
  }
}

variable "managed_role_path_prefix" {
  type        = string
  default     = "/"
  description = "The integration writes inline policies only to roles whose path starts with this (env `managed_role_path_prefix`); its IAM permissions are scoped to the same ARNs. Example: /data-consumers/."
}

variable "managed_role_name_pattern" {
  type        = string
  default     = "*"
  description = "The integration writes only to roles whose name matches this pattern (`*` wildcards; env `managed_role_name_pattern`); its IAM permissions are scoped the same way. Example: dp-*."
}

variable "protected_role_names" {
  type        = list(string)
  default     = []
  description = "Further role names the integration must never write to (e.g. your deployment role). The integration's own roles are always protected (env `protected_role_names`) and denied in IAM."
}

variable "managed_accounts" {
  type = map(object({
    role_arn    = string
    external_id = string
  }))
  default     = {}
  sensitive   = true
  description = <<-EOT
    Other AWS accounts the integration manages (cross-account, ADR 003), keyed by 12-digit account
    id: the ARN of the management role created there by modules/managed-account (its output
    role_arn) and the external id given to that module. Rendered as JSON into env
    `managed_accounts`; manage_iam_policies may sts:AssumeRole exactly these roles. Empty: the
    integration manages its own account only, and an agreement that needs another account gets an
    error status naming it. Do not list this deployment's own account: it is managed with the
    function's own role.
    Sensitive: an external id is a confused-deputy guard, not a password (the trust policy names
    the hub role exactly), but it should not be handed around, so it is kept out of plan output.
    It is still stored in the Terraform state and readable in the function's configuration
    (lambda:GetFunctionConfiguration).
  EOT

  validation {
    condition = alltrue([
      for account_id, account in var.managed_accounts :
      can(regex("^[0-9]{12}$", account_id))
      && can(regex("^arn:aws(-[a-z]+)*:iam::${account_id}:role/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$", account.role_arn))
      # (RE2 repeats at most 1000 times, hence length() for STS's 2-1224.)
      && can(regex("^[A-Za-z0-9+=,.@:/_-]+$", account.external_id))
      && length(account.external_id) >= 2 && length(account.external_id) <= 1224
    ])
    error_message = "managed_accounts: each key must be a 12-digit account id, its role_arn the ARN of a role in that same account (no wildcards), and its external_id 2-1224 characters of letters, digits and +=,.@:/_- (what STS accepts)."
  }
}

# --- Queue -----------------------------------------------------------------------------------

variable "event_queue_name" {
  type        = string
  default     = "dmm-events.fifo"
  description = "Name of the SQS FIFO queue poll_feed forwards events to. Must end with `.fifo`; the dead-letter queue is `<name without .fifo>-dlq.fifo`."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,71}\\.fifo$", var.event_queue_name))
    error_message = "event_queue_name must end with .fifo and have at most 71 letters, digits, `_` or `-` before it (the dead-letter queue name adds `-dlq`)."
  }
}

variable "event_queue_message_retention_seconds" {
  type        = number
  default     = 1209600
  description = "How long an unprocessed event stays in the queue (and in the dead-letter queue). Default: the maximum, 14 days."

  validation {
    condition     = var.event_queue_message_retention_seconds >= 60 && var.event_queue_message_retention_seconds <= 1209600
    error_message = "event_queue_message_retention_seconds must be between 60 and 1209600."
  }
}

variable "event_queue_max_receive_count" {
  type        = number
  default     = 5
  description = "Receives of one message (transient failures) before SQS moves it to the dead-letter queue."

  validation {
    condition     = var.event_queue_max_receive_count >= 1 && var.event_queue_max_receive_count <= 1000
    error_message = "event_queue_max_receive_count must be between 1 and 1000."
  }
}

variable "event_batch_size" {
  type        = number
  default     = 10
  description = "Messages per manage_iam_policies invocation (FIFO queues allow 1-10)."

  validation {
    condition     = var.event_batch_size >= 1 && var.event_batch_size <= 10
    error_message = "event_batch_size must be between 1 and 10 for a FIFO queue."
  }
}

variable "event_maximum_concurrency" {
  type        = number
  default     = 5
  description = "Maximum concurrent manage_iam_policies invocations the SQS trigger starts (2-1000). Keeps IAM and Data Mesh Manager API rates bounded."

  validation {
    condition     = var.event_maximum_concurrency >= 2 && var.event_maximum_concurrency <= 1000
    error_message = "event_maximum_concurrency must be between 2 and 1000."
  }
}

# --- Alarms ----------------------------------------------------------------------------------

variable "create_alarm_topic" {
  type        = bool
  default     = false
  description = "Create an SNS topic the alarms notify (subscribe alarm_email_addresses to it)."
}

variable "alarm_email_addresses" {
  type        = list(string)
  default     = []
  description = "E-mail addresses subscribed to the created alarm topic (each must confirm the subscription)."
}

variable "alarm_topic_kms_key_id" {
  type        = string
  default     = null
  description = "Optional customer managed KMS key for the created alarm topic; its key policy must allow cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*. The AWS managed aws/sns key cannot be used: CloudWatch could not publish."
}

variable "alarm_actions" {
  type        = list(string)
  default     = []
  description = "ARNs of existing SNS topics (or other alarm actions) notified on alarm and on recovery, in addition to the created topic."
}

variable "oldest_message_age_alarm_seconds" {
  type        = number
  default     = 900
  description = "Alarm when the oldest message in the event queue is older than this (processing is stuck)."

  validation {
    condition     = var.oldest_message_age_alarm_seconds >= 60
    error_message = "oldest_message_age_alarm_seconds must be at least 60."
  }
}

variable "feed_lag_alarm_seconds" {
  type        = number
  default     = 900
  description = "Alarm when the newest event poll_feed read is older than this when read (metric FeedLagSeconds): DMM unreachable or poll_feed falling behind."

  validation {
    condition     = var.feed_lag_alarm_seconds >= 60
    error_message = "feed_lag_alarm_seconds must be at least 60."
  }
}

variable "poll_feed_error_alarm_evaluation_periods" {
  type        = number
  default     = 3
  description = "Alarm when poll_feed failed in this many consecutive 5-minute periods (a single failed poll is retried by the next one)."

  validation {
    condition     = var.poll_feed_error_alarm_evaluation_periods >= 1 && var.poll_feed_error_alarm_evaluation_periods <= 288
    error_message = "poll_feed_error_alarm_evaluation_periods must be between 1 and 288."
  }
}

variable "ownership_check" {
  type        = string
  default     = "enforce"
  description = "enforce: a grant needs proof (tags dmm-data-product / dmm-team, or ownership_map) that the provider owns the port's resources and the consumer owns the role, and IAM lets the integration write only onto tagged roles; audit: grant as the Python reference did and report every missing proof; off: no check (env `ownership_check`, ADR 017)."
}

variable "ownership_map" {
  type        = map(list(string))
  default     = {}
  description = "For resources that cannot be tagged: owner team id (a data product's info.owner) => ARN patterns the team owns, `*` and `?` in the resource part only, e.g. { sales = [\"arn:aws:s3:::sales-*\"] } (env `ownership_map`, ADR 017)."

  validation {
    condition = alltrue(flatten([for team, patterns in var.ownership_map : [
      for p in patterns : can(regex("^arn:[a-z-]+:(s3|glue|kinesis|kafka|kms|athena):[a-z0-9-]*:[0-9]{0,12}:[^*?]+", p))
    ]]))
    error_message = "ownership_map: every pattern is an ARN of s3, glue, kinesis, kafka, kms or athena whose resource part starts with a literal prefix (wildcards only after it)."
  }
}

variable "protected_bucket_names" {
  type        = list(string)
  default     = []
  description = "Buckets no agreement may ever grant, whatever their tags (env `protected_bucket_names`). The state and artifacts buckets are always protected."

  validation {
    condition     = alltrue([for b in var.protected_bucket_names : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", b))])
    error_message = "protected_bucket_names must be S3 bucket names."
  }
}

variable "operator_principal_arns" {
  type        = list(string)
  default     = []
  description = "IAM principals (role or user ARNs, `*` allowed in the path) that may read and write the state bucket's objects and send to the event queue besides the two functions and the deploying principal: break-glass access and redriving the dead-letter queue (ADR 017)."

  validation {
    condition     = alltrue([for a in var.operator_principal_arns : can(regex("^arn:[a-z-]+:iam::[0-9]{12}:(role|user)/", a))])
    error_message = "operator_principal_arns must be IAM role or user ARNs."
  }
}

variable "status_reporting" {
  type        = string
  default     = "both"
  description = "Where each agreement's state is reported in DMM: both (the access provisioning record, shown on DMM's access page and mailed to the provider team on failure, and the aws-integration-* tags and custom fields of the Python reference), tags (only those), or provisioning (only the record; the agreement document is never written). A DMM without the provisioning API falls back to tags (env `status_reporting`, ADR 018)."

  validation {
    condition     = contains(["both", "tags", "provisioning"], var.status_reporting)
    error_message = "status_reporting must be both, tags or provisioning."
  }
}

variable "glue_access_mode" {
  type        = string
  default     = "iam"
  description = "How glue_table ports are granted unless a port sets `aws-glue-access-mode`: iam (the table's S3 data in the consumer role's policy) or lake_formation (SELECT and DESCRIBE in Lake Formation, for lakes whose tables no longer honour IAM alone; the integration's role must be a data lake administrator or hold those permissions grantable, see the README). Env `glue_access_mode`, ADR 022."

  validation {
    condition     = contains(["iam", "lake_formation"], var.glue_access_mode)
    error_message = "glue_access_mode must be iam or lake_formation."
  }
}

variable "grant_layout" {
  type        = string
  default     = "packed"
  description = "How grants are laid out on consumer roles: packed (the default: every agreement on a role, and the consumer side of cross-account grants, packed into the role's inline policy dmm-integration-grants while its inline budget has room, then at most managed_policies_per_role customer managed policies dmm-grants-<role>-<n> on the path /dmm-integration/; inline grants of the Python reference or of earlier versions move over as their agreements converge) or inline (one inline policy DMM_DataUsageAgreement_<id> per agreement, as the Python reference, for operators who depend on the names; IAM's 10,240 characters of inline policy per role cap a role at a few dozen agreements). Env `grant_layout`, ADR 023."

  validation {
    condition     = contains(["inline", "packed"], var.grant_layout)
    error_message = "grant_layout must be inline or packed."
  }
}

variable "managed_policies_per_role" {
  type        = number
  default     = 5
  description = "With grant_layout = packed (the default): how many managed policies (6,144 characters each) the integration may attach to one consumer role. IAM attaches 10 per role by default (a quota raisable to 20); the rest stays for the role's owners. Env `managed_policies_per_role`, ADR 023."

  validation {
    condition     = var.managed_policies_per_role >= 1 && var.managed_policies_per_role <= 20 && floor(var.managed_policies_per_role) == var.managed_policies_per_role
    error_message = "managed_policies_per_role must be a whole number from 1 to 20."
  }
}

variable "connector_id" {
  type        = string
  default     = ""
  description = "Id of the connector document poll_feed keeps in DMM (PUT /api/connectors/{id}) with its version, last event and last run. Empty: aws-<name_prefix>-<account>-<region> (env `connector_id`, ADR 018)."

  validation {
    condition     = can(regex("^[A-Za-z0-9._:-]{0,200}$", var.connector_id))
    error_message = "connector_id may hold letters, digits, '.', '_', ':' and '-' only (it is a URL path segment), at most 200 characters."
  }
}

variable "dashboard_enabled" {
  type        = bool
  default     = true
  description = "Create the CloudWatch dashboard <name_prefix>__overview (output dashboard_url)."
}

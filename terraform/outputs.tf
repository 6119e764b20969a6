output "event_queue_url" {
  description = "URL of the SQS FIFO event queue."
  value       = aws_sqs_queue.events.url
}

output "dead_letter_queue_url" {
  description = "URL of the FIFO dead-letter queue (redrive it to the event queue after fixing the cause)."
  value       = aws_sqs_queue.events_dlq.url
}

output "bucket_name" {
  description = "State bucket (checkpoint and grant ledger)."
  value       = local.bucket_name
}

output "poll_feed_function_name" {
  description = "Name of the poll_feed Lambda function."
  value       = aws_lambda_function.poll_feed.function_name
}

output "manage_iam_policies_function_name" {
  description = "Name of the manage_iam_policies Lambda function."
  value       = aws_lambda_function.manage_iam_policies.function_name
}

output "manage_iam_policies_role_arn" {
  description = "Execution role of manage_iam_policies (the principal management roles in other accounts will trust)."
  value       = aws_iam_role.manage_iam_policies.arn
}

output "dmm_api_key_secret_name" {
  description = "Secrets Manager secret holding the Data Mesh Manager API key."
  value       = aws_secretsmanager_secret.dmm_api_key.name
}

output "alarm_topic_arn" {
  description = "ARN of the created alarm topic, or null."
  value       = one(aws_sns_topic.alarms[*].arn)
}

output "lake_formation_grantor_arn" {
  description = "The principal that grants glue_table ports in Lake Formation in this account (glue_access_mode = lake_formation or a port's aws-glue-access-mode): make it a data lake administrator, or grant it SELECT and DESCRIBE with the grant option on the provider tables and DESCRIBE with the grant option on their databases (ADR 022). In a managed account, that is the managed-account module's role_arn output."
  value       = aws_iam_role.manage_iam_policies.arn
}

output "managed_account_ids" {
  description = "Accounts (keys of managed_accounts) whose management role manage_iam_policies may assume."
  value       = local.managed_account_ids
}

output "connector_id" {
  description = "The connector document poll_feed keeps in DMM (GET /api/connectors/{id}): version, last event, last run (ADR 018)."
  value       = local.connector_id
}

output "dashboard_url" {
  description = "The CloudWatch console link of the integration's dashboard (null without one)."
  value       = var.dashboard_enabled ? "https://${local.dashboard_region}.console.aws.amazon.com/cloudwatch/home?region=${local.dashboard_region}#dashboards/dashboard/${aws_cloudwatch_dashboard.integration[0].dashboard_name}" : null
}

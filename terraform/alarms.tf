# Alarms an operator needs: events that could not be processed (DLQ not empty), the feed not being
# polled (poll_feed failing), and processing stuck (old messages in the queue). They notify the
# optional SNS topic created here and/or the existing actions in var.alarm_actions.

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:Alarm notifications carry no data beyond alarm names. The AWS managed aws/sns key cannot be used (CloudWatch could not publish); a customer managed key can be set with alarm_topic_kms_key_id.
  count = var.create_alarm_topic ? 1 : 0

  name              = "${var.name_prefix}__alarms"
  kms_master_key_id = var.alarm_topic_kms_key_id
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = var.create_alarm_topic ? toset(var.alarm_email_addresses) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_metric_alarm" "dead_letter_queue_not_empty" {
  alarm_name        = "${var.name_prefix}__dead_letter_queue_not_empty"
  alarm_description = "Events in ${local.dead_letter_queue_name} failed ${var.event_queue_max_receive_count} times and were not applied. Check the manage_iam_policies logs, fix the cause, then redrive the DLQ to ${var.event_queue_name}."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.events_dlq.name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = local.alarm_actions
  ok_actions      = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "poll_feed_errors" {
  alarm_name        = "${var.name_prefix}__poll_feed_errors"
  alarm_description = "${local.poll_feed_function_name} failed in ${var.poll_feed_error_alarm_evaluation_periods} consecutive 5-minute periods: new Data Mesh Manager events are not forwarded. Check its logs (DMM reachable? API key valid?)."

  namespace   = "AWS/Lambda"
  metric_name = "Errors"
  dimensions = {
    FunctionName = aws_lambda_function.poll_feed.function_name
  }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = var.poll_feed_error_alarm_evaluation_periods
  datapoints_to_alarm = var.poll_feed_error_alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = local.alarm_actions
  ok_actions      = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "event_queue_oldest_message_age" {
  alarm_name        = "${var.name_prefix}__event_queue_oldest_message_age"
  alarm_description = "The oldest event in ${var.event_queue_name} waits longer than ${var.oldest_message_age_alarm_seconds} s: manage_iam_policies is not keeping up or is failing. Check its logs and throttles."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateAgeOfOldestMessage"
  dimensions = {
    QueueName = aws_sqs_queue.events.name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_message_age_alarm_seconds
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = local.alarm_actions
  ok_actions      = local.alarm_actions
}

check "alarm_emails_need_the_topic" {
  assert {
    condition     = var.create_alarm_topic || length(var.alarm_email_addresses) == 0
    error_message = "alarm_email_addresses are only subscribed when create_alarm_topic = true; they are ignored now."
  }
}

# From the EMF metrics poll_feed writes to its log stream: the age of the newest event it read.
# It grows when DMM is unreachable or every run fails, even while Lambda reports no errors (e.g.
# a run that is always cut off by its deadline).
resource "aws_cloudwatch_metric_alarm" "feed_lag" {
  alarm_name        = "${var.name_prefix}__feed_lag"
  alarm_description = "poll_feed reads DMM events late: check poll_feed's errors and DMM's availability."

  namespace   = "DmmIntegrationAws"
  metric_name = "FeedLagSeconds"
  dimensions = {
    Function = aws_lambda_function.poll_feed.function_name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = var.feed_lag_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = local.alarm_actions
  ok_actions      = local.alarm_actions
}

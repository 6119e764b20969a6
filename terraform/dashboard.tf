# One CloudWatch dashboard with what an operator looks at first: is the feed read (events
# forwarded, feed lag), are grants made and revoked (and with which errors), is anything stuck
# (retries, queue age, dead-letter queue), and how the functions run. The alarm thresholds are
# drawn into the graphs they watch. Metrics in the integration's namespace come from the
# functions' EMF log lines (telemetry::metrics), with the dimension Function.

locals {
  metrics_namespace = "DmmIntegrationAws"
  dashboard_region  = data.aws_region.current.id

  # Each widget: a title, its metrics ([namespace, name, dimension, value, options]) and the
  # alarm threshold drawn into it, if one watches it.
  dashboard_widgets = [
    {
      title = "Events forwarded and skipped (poll_feed)"
      metrics = [
        [local.metrics_namespace, "EventsForwarded", "Function", local.poll_feed_function_name, { stat = "Sum" }],
        [local.metrics_namespace, "EventsSkipped", "Function", local.poll_feed_function_name, { stat = "Sum" }],
      ]
      threshold = null
    },
    {
      title = "Feed lag, seconds (poll_feed)"
      metrics = [
        [local.metrics_namespace, "FeedLagSeconds", "Function", local.poll_feed_function_name, { stat = "Maximum" }],
      ]
      threshold = { label = "feed_lag alarm", value = var.feed_lag_alarm_seconds }
    },
    {
      title = "Grants applied, revoked, unchanged (manage_iam_policies)"
      metrics = [
        [local.metrics_namespace, "GrantsApplied", "Function", local.manage_iam_policies_function_name, { stat = "Sum" }],
        [local.metrics_namespace, "GrantsRevoked", "Function", local.manage_iam_policies_function_name, { stat = "Sum" }],
        [local.metrics_namespace, "GrantsUnchanged", "Function", local.manage_iam_policies_function_name, { stat = "Sum" }],
      ]
      threshold = null
    },
    {
      title = "Error statuses and retries (manage_iam_policies)"
      metrics = [
        [local.metrics_namespace, "ErrorStatuses", "Function", local.manage_iam_policies_function_name, { stat = "Sum" }],
        [local.metrics_namespace, "Retries", "Function", local.manage_iam_policies_function_name, { stat = "Sum" }],
        [local.metrics_namespace, "OwnershipUnproven", "Function", local.manage_iam_policies_function_name, { stat = "Sum" }],
      ]
      threshold = null
    },
    {
      title = "Dead-letter queue depth"
      metrics = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.events_dlq.name, { stat = "Maximum" }],
      ]
      threshold = { label = "dead_letter_queue_not_empty alarm", value = 0 }
    },
    {
      title = "Oldest event waiting, seconds"
      metrics = [
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.events.name, { stat = "Maximum" }],
      ]
      threshold = { label = "event_queue_oldest_message_age alarm", value = var.oldest_message_age_alarm_seconds }
    },
    {
      title = "Function errors"
      metrics = [
        ["AWS/Lambda", "Errors", "FunctionName", local.poll_feed_function_name, { stat = "Sum" }],
        ["AWS/Lambda", "Errors", "FunctionName", local.manage_iam_policies_function_name, { stat = "Sum" }],
      ]
      threshold = { label = "poll_feed_errors alarm", value = 0 }
    },
    {
      title = "Function duration, ms (p95)"
      metrics = [
        ["AWS/Lambda", "Duration", "FunctionName", local.poll_feed_function_name, { stat = "p95" }],
        ["AWS/Lambda", "Duration", "FunctionName", local.manage_iam_policies_function_name, { stat = "p95" }],
      ]
      threshold = null
    },
  ]
}

resource "aws_cloudwatch_dashboard" "integration" {
  count = var.dashboard_enabled ? 1 : 0

  dashboard_name = "${var.name_prefix}__overview"
  dashboard_body = jsonencode({
    widgets = [
      for i, widget in local.dashboard_widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = merge(
          {
            title   = widget.title
            region  = local.dashboard_region
            view    = "timeSeries"
            stacked = false
            period  = 300
            metrics = widget.metrics
          },
          widget.threshold == null ? {} : {
            annotations = { horizontal = [widget.threshold] }
          },
        )
      }
    ]
  })
}

# Events travel from poll_feed to manage_iam_policies through a FIFO queue: MessageGroupId is the
# agreement id (one agreement strictly in order, different agreements in parallel) and
# MessageDeduplicationId is the event id, so content-based deduplication stays off.

resource "aws_sqs_queue" "events_dlq" {
  name                        = local.dead_letter_queue_name
  fifo_queue                  = true
  content_based_deduplication = false
  sqs_managed_sse_enabled     = true
  message_retention_seconds   = 1209600
}

resource "aws_sqs_queue" "events" {
  name                        = var.event_queue_name
  fifo_queue                  = true
  content_based_deduplication = false
  sqs_managed_sse_enabled     = true
  message_retention_seconds   = var.event_queue_message_retention_seconds
  visibility_timeout_seconds  = local.queue_visibility_timeout_seconds

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq.arn
    maxReceiveCount     = var.event_queue_max_receive_count
  })
}

# Only poll_feed and manage_iam_policies put messages on the event queue (ADR 017): a message
# from anyone else could run in an agreement's FIFO group and undo its grant. The deploying
# principal and var.operator_principal_arns keep the right to redrive the dead-letter queue.
data "aws_iam_policy_document" "events_queue" {
  statement {
    sid       = "OnlyTheIntegrationSendsEvents"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = local.trusted_principal_arns
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.events_queue.json
}

# Only the event queue may dead-letter into the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

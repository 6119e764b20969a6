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

# Only the event queue may dead-letter into the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

# State bucket: the poll_feed checkpoint (`last_event_id_object_name`) and the grant ledger
# (`grants/`). Created here, or an existing bucket (create_bucket = false) as in the Python reference.

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket this integration does not own; only its two Lambda roles read or write here. Use CloudTrail S3 data events or the account's central access-log bucket.
  #checkov:skip=CKV_AWS_144:Cross-region replication is not needed: the checkpoint and ledger are small, versioned state that a new region rebuilds (poll_feed replays the feed; level-triggered handling converges).
  #checkov:skip=CKV2_AWS_62:No consumer of bucket events exists; the integration itself is the only writer.
  count = var.create_bucket ? 1 : 0

  bucket        = var.bucket_name
  force_destroy = var.bucket_force_destroy
}

data "aws_s3_bucket" "state" {
  count = var.create_bucket ? 0 : 1

  bucket = var.bucket_name
}

resource "aws_s3_bucket_ownership_controls" "state" {
  count = local.configure_bucket ? 1 : 0

  bucket = local.bucket_name

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  count = local.configure_bucket ? 1 : 0

  bucket                  = local.bucket_name
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "state" {
  count = local.configure_bucket ? 1 : 0

  bucket = local.bucket_name

  versioning_configuration {
    status = "Enabled"
  }
}

# SSE-KMS with the AWS managed key aws/s3: its key policy lets every principal of the account use
# it through S3, so the function roles need no kms: actions (see docs/adr/011).
resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  count = local.configure_bucket ? 1 : 0

  bucket = local.bucket_name

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  count = local.configure_bucket ? 1 : 0

  bucket = local.bucket_name

  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.bucket_noncurrent_version_expiration_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.state]
}

data "aws_iam_policy_document" "state_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.bucket_arn,
      "${local.bucket_arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyOutdatedTls"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.bucket_arn,
      "${local.bucket_arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

# The checkpoint, the grant ledger and the external ids of cross-account grants are the
# integration's alone (ADR 017): no other principal of the account reads or writes them, whatever
# its IAM policies say.
data "aws_iam_policy_document" "state_bucket_owners" {
  source_policy_documents = [data.aws_iam_policy_document.state_bucket.json]

  statement {
    sid    = "OnlyTheIntegrationUsesItsState"
    effect = "Deny"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
    ]
    resources = ["${local.bucket_arn}/*"]

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

resource "aws_s3_bucket_policy" "state" {
  count = local.configure_bucket ? 1 : 0

  bucket = local.bucket_name
  policy = data.aws_iam_policy_document.state_bucket_owners.json

  # A policy is rejected while the public access block is being changed.
  depends_on = [aws_s3_bucket_public_access_block.state]
}

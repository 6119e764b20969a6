# The permissions boundary of every cross-account access role the integration creates in this
# account (ADR 017): the catalogue's read actions only (policy::CATALOGUE_ACTIONS), so an access
# role can never do more than read, whatever data policy it carries. The integration may create
# access roles, and write their data policy, only with this boundary, and may never remove it.
data "aws_iam_policy_document" "access_role_boundary" {
  #checkov:skip=CKV_AWS_356:A permissions boundary caps what any policy of the role can grant; the role's own data policy names the resources.
  #checkov:skip=CKV_AWS_111:Read-only actions; the boundary caps, the data policy scopes.
  #checkov:skip=CKV_AWS_108:A permissions boundary grants nothing by itself; it caps the access role's own data policy, which names the one bucket or folder, to reads.
  statement {
    sid    = "AtMostTheCatalogueReadActions"
    effect = "Allow"
    actions = [
      "s3:GetBucketLocation",
      "s3:ListBucket",
      "s3:GetObject",
      "kms:Decrypt",
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:GetWorkGroup",
      "athena:StartQueryExecution",
      "athena:StopQueryExecution",
      "glue:BatchGetPartition",
      "glue:GetDatabase",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:GetTable",
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamConsumer",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
      "kinesis:RegisterStreamConsumer",
      "kinesis:SubscribeToShard",
      "kafka-cluster:AlterGroup",
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeCluster",
      "kafka-cluster:DescribeGroup",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:ReadData",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "access_role_boundary" {
  # The code derives the ARN from this exact name (reconcile/iam.rs ACCESS_ROLE_BOUNDARY_NAME).
  name        = "dmm-integration-access-role-boundary"
  path        = "/"
  description = "Permissions boundary of the Data Mesh Manager integration's access roles: read only"
  policy      = data.aws_iam_policy_document.access_role_boundary.json
}

output "policy_json" {
  description = "The IAM-write and tag-read statements, for the caller's aws_iam_role_policy."
  value       = data.aws_iam_policy_document.account_iam.json
}

output "access_role_boundary_arn" {
  description = "The permissions boundary every access role in this account carries."
  value       = local.access_role_boundary_arn
}

output "role_arn" {
  description = "ARN of the management role: put it into the hub's managed_accounts under account_id."
  value       = aws_iam_role.management.arn
}

output "role_name" {
  description = "Name of the management role."
  value       = aws_iam_role.management.name
}

output "account_id" {
  description = "This account's id: the key of its entry in the hub's managed_accounts."
  value       = data.aws_caller_identity.current.account_id
}

output "managed_accounts_entry" {
  description = "This account's entry for the hub's managed_accounts, e.g. managed_accounts = merge(module.a.managed_accounts_entry, module.b.managed_accounts_entry). Sensitive: it holds the external id."
  sensitive   = true
  value = {
    (data.aws_caller_identity.current.account_id) = {
      role_arn    = aws_iam_role.management.arn
      external_id = var.external_id
    }
  }
}

# Applied by a team in its own account (with credentials for that account). The hub deployment is
# applied first; its output manage_iam_policies_role_arn is hub_role_arn here. Afterwards, add
#   "<account_id>" = { role_arn = "<role_arn>", external_id = "<the same external id>" }
# to the hub's managed_accounts and apply the hub again.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.50, < 7.0"
    }
  }
}

provider "aws" {
  region = var.aws_region
}

variable "aws_region" {
  type        = string
  default     = null
  description = "Region of the provider (IAM is global; null takes AWS_REGION)."
}

variable "hub_role_arn" {
  type        = string
  description = "The hub's output manage_iam_policies_role_arn."
}

variable "external_id" {
  type        = string
  sensitive   = true
  description = "Random string, also set in the hub's managed_accounts entry for this account."
}

module "dmm_integration_management" {
  source = "../.."

  hub_role_arn             = var.hub_role_arn
  external_id              = var.external_id
  managed_role_path_prefix = "/data-consumers/"
  protected_role_names     = ["ci-deployment"]

  tags = {
    owner = "data-platform"
  }
}

output "role_arn" {
  description = "For the hub's managed_accounts."
  value       = module.dmm_integration_management.role_arn
}

output "account_id" {
  description = "The key of this account in the hub's managed_accounts."
  value       = module.dmm_integration_management.account_id
}

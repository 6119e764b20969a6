# Inputs of the management role one account team creates in its own account.

variable "hub_role_arn" {
  type        = string
  description = "ARN of the integration's manage_iam_policies execution role in the hub account (the hub's output manage_iam_policies_role_arn). The management role trusts exactly this role. The role must exist when this module is applied: IAM rejects a trust policy naming a missing role, and a trust policy whose role was deleted and recreated must be applied again."

  validation {
    condition     = can(regex("^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$", var.hub_role_arn))
    error_message = "hub_role_arn must be the ARN of one IAM role (arn:<partition>:iam::<account>:role/<name>), without wildcards."
  }
}

variable "external_id" {
  type        = string
  sensitive   = true
  description = "External id the hub must present when assuming the management role (trust condition sts:ExternalId). Use a random string and put the same value into the hub's managed_accounts entry for this account. It is a confused-deputy guard, not a password, but it is kept out of plan output; it is stored in the Terraform state."

  validation {
    # RE2 repeats at most 1000 times, hence length() for STS's 2-1224.
    condition     = can(regex("^[A-Za-z0-9+=,.@:/_-]+$", var.external_id)) && length(var.external_id) >= 2 && length(var.external_id) <= 1224
    error_message = "external_id must be 2-1224 characters of letters, digits and +=,.@:/_- (what STS accepts)."
  }
}

variable "managed_role_path_prefix" {
  type        = string
  default     = "/"
  description = "The management role may write inline policies only to roles whose path starts with this, and creates the cross-account access roles (dmm-access-*, dmm-acc-*) directly under it. Set it to the hub's managed_role_path_prefix: the integration uses that one prefix in every account."
}

variable "managed_role_name_pattern" {
  type        = string
  default     = "*"
  description = "The management role may write inline policies only to (consumer) roles whose name matches this pattern (`*` wildcards). Set it to the hub's managed_role_name_pattern, or narrower. Access roles are not subject to it."
}

variable "protected_role_names" {
  type        = list(string)
  default     = []
  description = "Further roles of this account the management role must never touch (e.g. your deployment role), denied explicitly. The management role itself, service-linked and AWS-reserved roles, and the Organizations/Control Tower/StackSets administrator roles are always denied."
}

variable "role_name" {
  type        = string
  default     = "dmm-integration-management"
  description = "Name of the management role."

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.role_name)) && !startswith(lower(var.role_name), "dmm-acc")
    error_message = "role_name must be an IAM role name (1-64 characters of letters, digits, +=,.@_-) and must not start with dmm-acc (reserved for access roles)."
  }
}

variable "role_path" {
  type        = string
  default     = "/"
  description = "Path of the management role."

  validation {
    condition     = startswith(var.role_path, "/") && endswith(var.role_path, "/") && can(regex("^/[!-~]*$", var.role_path)) && length(var.role_path) <= 512
    error_message = "role_path must be an IAM path: start and end with `/`, printable ASCII."
  }
}

variable "permissions_boundary_arn" {
  type        = string
  default     = null
  description = "Optional permissions boundary of the management role, where your organisation requires one on every role."
}

variable "tags" {
  type        = map(string)
  default     = {}
  description = "Tags of the management role (in addition to the provider's default_tags)."
}

variable "ownership_check" {
  type        = string
  default     = "enforce"
  description = "enforce: a grant needs proof (tags dmm-data-product / dmm-team, or ownership_map) that the provider owns the port's resources and the consumer owns the role, and IAM lets the integration write only onto tagged roles; audit: grant as the Python reference did and report every missing proof; off: no check Must equal the hub's ownership_check (ADR 017)."
}

# The one declaration of the allowlist settings and their validation: the hub and
# modules/managed-account pass their own variables through, so a wrong value fails the plan here.

variable "partition" {
  type        = string
  description = "The AWS partition of the account (aws, aws-cn, aws-us-gov)."
}

variable "account_id" {
  type        = string
  description = "The account whose roles these statements are about."

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be a 12-digit AWS account id."
  }
}

variable "managed_role_path_prefix" {
  type        = string
  description = "Only roles under this path get grants; see the hub's variable of the same name."

  validation {
    condition     = startswith(var.managed_role_path_prefix, "/") && endswith(var.managed_role_path_prefix, "/") && can(regex("^/[!-~]*$", var.managed_role_path_prefix)) && !strcontains(var.managed_role_path_prefix, "*") && !strcontains(var.managed_role_path_prefix, "?") && length(var.managed_role_path_prefix) <= 512
    error_message = "managed_role_path_prefix must be an IAM path: start and end with `/`, printable ASCII, no `*` or `?`."
  }
}

variable "managed_role_name_pattern" {
  type        = string
  description = "Only roles whose name matches this (`*` wildcards) get grants; see the hub's variable of the same name."

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_*-]{1,64}$", var.managed_role_name_pattern))
    error_message = "managed_role_name_pattern must be 1-64 characters of role-name characters (letters, digits, +=,.@_-) and `*`."
  }
}

variable "protected_role_names" {
  type        = list(string)
  description = "Roles never touched: the caller's own roles and the operator's list. The AWS administrator roles are added here."

  validation {
    condition     = alltrue([for n in var.protected_role_names : can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", n))])
    error_message = "protected_role_names must be IAM role names (1-64 characters of letters, digits, +=,.@_-)."
  }
}

variable "ownership_check" {
  type        = string
  description = "enforce, audit or off; see the hub's variable of the same name (ADR 017)."

  validation {
    condition     = contains(["enforce", "audit", "off"], var.ownership_check)
    error_message = "ownership_check must be enforce, audit or off."
  }
}

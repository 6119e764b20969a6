terraform {
  # Same floor as the hub configuration (startswith/endswith/strcontains in validations).
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.50, < 7.0"
    }
  }
}

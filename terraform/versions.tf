terraform {
  # 1.5: startswith/endswith/strcontains in variable validations.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x and 6.x both carry every argument used here (ESM scaling_config, SSE-SQS, S3 split resources).
      version = ">= 5.50, < 7.0"
    }
  }
}

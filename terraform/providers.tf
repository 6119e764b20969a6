# No credentials here: the provider takes them from the standard chain (environment, profile, SSO,
# instance/web identity role). Only the region may be pinned, and may as well come from AWS_REGION.
provider "aws" {
  region = var.aws_region

  default_tags {
    tags = var.tags
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

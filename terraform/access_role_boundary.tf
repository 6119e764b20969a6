# The access-role boundary moved into modules/account-iam with the statements that require it; an
# existing deployment keeps its policy.
moved {
  from = aws_iam_policy.access_role_boundary
  to   = module.account_iam.aws_iam_policy.access_role_boundary
}

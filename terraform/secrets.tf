# The Data Mesh Manager API key. Both functions read it (GetSecretValue) and cache it in memory.

resource "aws_secretsmanager_secret" "dmm_api_key" {
  #checkov:skip=CKV_AWS_149:Encrypted with the AWS managed key aws/secretsmanager. A customer managed key would add kms:Decrypt to both function roles for no gain: the secret is only readable by those roles anyway.
  #checkov:skip=CKV2_AWS_57:The value is an API key issued by Data Mesh Manager; Secrets Manager cannot rotate it. Rotate it in Data Mesh Manager and put the new value (the functions pick it up on their next cold start).
  name                    = local.dmm_api_key_secret_name
  description             = "Data Mesh Manager API key of the ${var.name_prefix} integration (x-api-key)."
  recovery_window_in_days = var.secret_recovery_window_in_days
}

# Only when the key is given as a variable; otherwise put the value out of band:
#   aws secretsmanager put-secret-value --secret-id <prefix>api_key --secret-string "$KEY"
resource "aws_secretsmanager_secret_version" "dmm_api_key" {
  count = nonsensitive(var.dmm_api_key != null) ? 1 : 0

  secret_id     = aws_secretsmanager_secret.dmm_api_key.id
  secret_string = var.dmm_api_key
}

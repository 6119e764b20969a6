//! What moto's Lake Formation holds, for the tests and the demo: moto stores Lake Formation
//! permissions without enforcing them, so they are checked by reading them back.

use aws_config::SdkConfig;
use aws_sdk_lakeformation::types::{DataLakePrincipal, PrincipalResourcePermissions};

use crate::MotoError;

/// The permissions `principal` holds in the Data Catalog `catalog`, one sorted line per resource:
/// `database sales: DESCRIBE`, `table sales.orders: DESCRIBE, SELECT`. (A listing by principal
/// needs a resource, in moto as in Lake Formation, so the whole catalog is listed and filtered.)
pub async fn held(
    sdk: &SdkConfig,
    catalog: &str,
    principal: &str,
) -> Result<Vec<String>, MotoError> {
    let output = aws_sdk_lakeformation::Client::new(sdk)
        .list_permissions()
        .catalog_id(catalog)
        .send()
        .await
        .map_err(|e| MotoError::Setup(format!("list Lake Formation permissions: {e:?}")))?;
    let mut lines: Vec<String> = output
        .principal_resource_permissions()
        .iter()
        .filter(|row| {
            row.principal()
                .and_then(DataLakePrincipal::data_lake_principal_identifier)
                == Some(principal)
                && !row.permissions().is_empty()
        })
        .map(line)
        .collect();
    lines.sort();
    Ok(lines)
}

fn line(row: &PrincipalResourcePermissions) -> String {
    let resource = row.resource();
    let name = match (
        resource.and_then(|r| r.table()),
        resource.and_then(|r| r.database()),
    ) {
        (Some(t), _) => format!("table {}.{}", t.database_name(), t.name().unwrap_or("*")),
        (_, Some(d)) => format!("database {}", d.name()),
        _ => format!("{resource:?}"),
    };
    let mut permissions: Vec<&str> = row.permissions().iter().map(|p| p.as_str()).collect();
    permissions.sort_unstable();
    format!("{name}: {}", permissions.join(", "))
}

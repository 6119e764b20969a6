//! Lake Formation permissions of `glue_table` ports (ADR 022): read, granted and revoked in the
//! Data Catalog of the table's account, through the same session as that account's IAM.

use std::collections::BTreeSet;

use aws_sdk_lakeformation::config::Region;
use aws_sdk_lakeformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lakeformation::types::{
    DataLakePrincipal, DatabaseResource, Permission, Resource, TableResource,
};

use super::iam::IamRoles;
use super::{describe, error_code};
use crate::reconcile::lake_formation::{LakeFormationError, LfResource, TablePermissions};

/// Errors that the same request will meet again: the integration may not grant on the resource,
/// the table or principal does not exist, the request is malformed.
const REFUSED_CODES: &[&str] = &[
    "AccessDeniedException",
    "EntityNotFoundException",
    "InvalidInputException",
];

fn classify<E, R>(
    action: &'static str,
    resource: LfResource<'_>,
    err: &SdkError<E, R>,
) -> LakeFormationError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (resource, reason) = (resource.to_string(), describe(err));
    if error_code(err).is_some_and(|code| REFUSED_CODES.contains(&code)) {
        LakeFormationError::Refused {
            action,
            resource,
            reason,
        }
    } else {
        LakeFormationError::Unavailable {
            action,
            resource,
            reason,
        }
    }
}

/// The resource as Lake Formation names it.
fn resource(of: LfResource<'_>) -> Result<Resource, LakeFormationError> {
    let table = of.table();
    let built = match of {
        LfResource::Database(_) => DatabaseResource::builder()
            .catalog_id(&table.catalog_id)
            .name(&table.database)
            .build()
            .map(|d| Resource::builder().database(d).build()),
        LfResource::Table(_) => TableResource::builder()
            .catalog_id(&table.catalog_id)
            .database_name(&table.database)
            .name(&table.table)
            .build()
            .map(|t| Resource::builder().table(t).build()),
    };
    built.map_err(|e| LakeFormationError::Refused {
        action: "GrantPermissions",
        resource: of.to_string(),
        reason: e.to_string(),
    })
}

fn principal(arn: &str) -> DataLakePrincipal {
    DataLakePrincipal::builder()
        .data_lake_principal_identifier(arn)
        .build()
}

impl IamRoles {
    /// Lake Formation of the table's region: the Data Catalog is regional, and a port may name a
    /// table outside the integration's region.
    fn lake_formation(&self, region: &str) -> aws_sdk_lakeformation::Client {
        let own = self.own_lake_formation();
        let config = own.config();
        if config.region().is_some_and(|r| r.as_ref() == region) {
            return own.clone();
        }
        aws_sdk_lakeformation::Client::from_conf(
            config
                .to_builder()
                .region(Region::new(region.to_owned()))
                .build(),
        )
    }
}

/// A grant or a revocation: the same request to two operations whose builders are different
/// types.
macro_rules! write_permissions {
    ($roles:ident, $operation:ident, $action:literal, $arn:ident, $of:ident, $permissions:ident) => {{
        let table = $of.table();
        $roles
            .lake_formation(&table.region)
            .$operation()
            .catalog_id(&table.catalog_id)
            .principal(principal($arn))
            .resource(resource($of)?)
            .set_permissions(Some(
                $permissions.iter().map(|p| Permission::from(*p)).collect(),
            ))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify($action, $of, &e))
    }};
}

impl TablePermissions for IamRoles {
    async fn permissions(
        &self,
        arn: &str,
        of: LfResource<'_>,
    ) -> Result<BTreeSet<String>, LakeFormationError> {
        let table = of.table();
        let client = self.lake_formation(&table.region);
        let mut held = BTreeSet::new();
        let mut next = None;
        loop {
            let output = client
                .list_permissions()
                .catalog_id(&table.catalog_id)
                .principal(principal(arn))
                .resource(resource(of)?)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classify("ListPermissions", of, &e))?;
            // Only the rows of the principal itself: Lake Formation may list group grants too.
            held.extend(
                output
                    .principal_resource_permissions()
                    .iter()
                    .filter(|row| {
                        row.principal()
                            .and_then(|p| p.data_lake_principal_identifier())
                            == Some(arn)
                    })
                    .flat_map(|row| row.permissions())
                    .map(|p| p.as_str().to_owned()),
            );
            next = output.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(held);
            }
        }
    }

    async fn grant(
        &self,
        arn: &str,
        of: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        write_permissions!(
            self,
            grant_permissions,
            "GrantPermissions",
            arn,
            of,
            permissions
        )
    }

    async fn revoke(
        &self,
        arn: &str,
        of: LfResource<'_>,
        permissions: &[&str],
    ) -> Result<(), LakeFormationError> {
        write_permissions!(
            self,
            revoke_permissions,
            "RevokePermissions",
            arn,
            of,
            permissions
        )
    }
}

//! The desired state of one agreement, decided from DMM's documents alone.

use super::directory::Directory;
use super::{Permanent, ReconcileError};
use crate::dmm::{Agreement, ConsumerRef};
use crate::policy::{ConsumerRole, Context, PolicyDocument, policy_name, resolve_port};

/// The grant an active agreement should have.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantPlan {
    pub role: ConsumerRole,
    pub policy_name: String,
    pub document: PolicyDocument,
}

/// What AWS should look like for an agreement.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    Grant(GrantPlan),
    /// No access. `consumer` is the role the agreement names today, when it can be read: a grant
    /// made before the ledger existed (by the Python reference integration) is found there.
    NoGrant {
        consumer: Option<ConsumerRole>,
    },
}

/// Where the integration runs, for deciding what it may manage.
#[derive(Debug, Clone)]
pub struct Scope {
    pub context: Context,
    /// The integration's own account (from the function ARN); roles elsewhere need the
    /// cross-account setup.
    pub account: Option<String>,
}

impl Scope {
    fn manages(&self, role: &ConsumerRole) -> bool {
        match (role.account(), self.account.as_deref()) {
            (None, _) => true,
            (Some(account), Some(own)) => account == own,
            (Some(_), None) => false,
        }
    }
}

/// The consumer's role, from the consumer data product's or team's custom fields.
pub async fn consumer_role<D: Directory>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
) -> Result<ConsumerRole, ReconcileError> {
    let (kind, id, custom) = match agreement.consumer().map_err(Permanent::from)? {
        ConsumerRef::DataProduct(id) => {
            let product = directory.data_product(&id).await?;
            let custom = product.map(|p| p.custom_fields());
            ("data product", id, custom)
        }
        ConsumerRef::Team(id) => {
            let team = directory.team(&id).await?;
            ("team", id, team.map(|t| t.custom_fields()))
        }
        ConsumerRef::User(id) => return Err(Permanent::UserConsumer(id).into()),
    };
    let custom = custom.ok_or_else(|| Permanent::ConsumerNotFound {
        kind,
        id: id.clone(),
    })?;
    let role = ConsumerRole::from_custom(&custom, &scope.context)
        .map_err(|source| Permanent::Consumer { kind, id, source })?;
    if let (false, Some(account)) = (scope.manages(&role), role.account()) {
        return Err(Permanent::UnmanagedAccount {
            role: role.name().to_string(),
            account: account.to_owned(),
        }
        .into());
    }
    Ok(role)
}

/// Decides the desired state. Inactive agreements never grant; an active one grants exactly the
/// catalogue's policy for its output port to its consumer's role.
pub async fn plan<D: Directory>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
) -> Result<Desired, ReconcileError> {
    if !agreement.is_active() {
        // Best effort for problems with the data: a consumer without a usable role only means
        // there is no extra place to look. A DMM fault is not such a problem: taking it as "no
        // consumer" would report the agreement inactive while a pre-ledger grant stays.
        let consumer = match consumer_role(agreement, directory, scope).await {
            Ok(role) => Some(role),
            Err(ReconcileError::Permanent(_)) => None,
            Err(retry @ ReconcileError::Retry(_)) => return Err(retry),
        };
        return Ok(Desired::NoGrant { consumer });
    }
    let provider = agreement.provider().map_err(Permanent::from)?;
    let product = directory
        .data_product(&provider.data_product_id)
        .await?
        .ok_or_else(|| Permanent::ProviderNotFound(provider.data_product_id.clone()))?;
    let port = product
        .output_port(&provider.output_port_id)
        .ok_or_else(|| Permanent::PortNotFound {
            product: provider.data_product_id.clone(),
            port: provider.output_port_id.clone(),
        })?;
    let access = resolve_port(port, &scope.context).map_err(|source| Permanent::Provider {
        product: provider.data_product_id.clone(),
        port: provider.output_port_id.clone(),
        source,
    })?;
    let role = consumer_role(agreement, directory, scope).await?;
    Ok(Desired::Grant(GrantPlan {
        role,
        policy_name: policy_name(agreement.id())?,
        document: access.policy(),
    }))
}

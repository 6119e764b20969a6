//! The desired state of one agreement, decided from DMM's documents alone.

use super::directory::Directory;
use super::ownership::{
    self, Finding, Owners, OwnershipMode, OwnershipPolicy, Parties, ResourceTags, RoleOwnership,
};
use super::{Permanent, ReconcileError};
use std::collections::BTreeSet;

use serde_json::Value;

use crate::aws::accounts::is_account_id;
use crate::dmm::{Agreement, ConsumerRef, DataProduct, ProviderRef};
use crate::policy::contract;
use crate::policy::{Arn, ConsumerRole, Context, PolicyDocument, policy_name, resolve_port, shown};

/// Optional custom field on the output port (or, failing that, the provider data product)
/// naming the account that holds the port's resources. Needed only when no ARN of the port names
/// its account (S3 ARNs do not).
pub const ACCOUNT_ID_FIELD: &str = "aws-account-id";

/// The grant an active agreement should have.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantPlan {
    pub role: ConsumerRole,
    pub policy_name: String,
    pub document: PolicyDocument,
    /// The consumer role's account; `None` is the integration's own.
    pub consumer_account: Option<String>,
    /// The account holding the port's resources; `None` is the integration's own. When it
    /// differs from `consumer_account`, the grant is an access role in this account.
    pub provider_account: Option<String>,
    /// What the consumer role's tags must show before anything is written to it.
    pub role_ownership: RoleOwnership,
    /// Missing ownership proofs of the port's resources, in `audit` mode.
    pub findings: Vec<Finding>,
}

impl GrantPlan {
    pub fn is_cross_account(&self) -> bool {
        self.consumer_account != self.provider_account
    }
}

/// What AWS should look like for an agreement.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    Grant(Box<GrantPlan>),
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
    /// The other accounts it manages (`managed_accounts`).
    pub managed: BTreeSet<String>,
    /// `ownership_check`, `ownership_map` and the buckets never granted.
    pub ownership: std::sync::Arc<OwnershipPolicy>,
}

impl Scope {
    /// `account` as the plan names it: `None` for the integration's own.
    pub fn local(&self, account: Option<&str>) -> Option<String> {
        account
            .filter(|a| Some(*a) != self.account.as_deref())
            .map(str::to_owned)
    }

    fn manages_account(&self, account: Option<&str>) -> bool {
        match self.local(account) {
            None => true,
            Some(other) => self.managed.contains(&other),
        }
    }

    fn manages(&self, role: &ConsumerRole) -> bool {
        self.manages_account(role.account())
    }
}

/// The account of the provider's resources: `aws-account-id` on the port, then on the data
/// product, then the account of the first ARN of the port that names one (S3 ARNs do not);
/// `None` when nothing names one (the integration's own account).
pub fn provider_account(product: &DataProduct, port: &Value) -> Result<Option<String>, String> {
    // Err: the invalid `aws-account-id` value (shortened).
    let custom = port.get("custom").and_then(Value::as_object);
    let field = custom
        .and_then(|c| c.get(ACCOUNT_ID_FIELD))
        .and_then(Value::as_str)
        .or_else(|| product.custom(ACCOUNT_ID_FIELD))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if let Some(account) = field {
        return if is_account_id(account) {
            Ok(Some(account.to_owned()))
        } else {
            Err(account.chars().take(40).collect())
        };
    }
    let from_arn = custom.into_iter().flatten().find_map(|(key, value)| {
        let is_arn_field = key.starts_with("aws") && key.ends_with("arn");
        let arn = Arn::parse(value.as_str().filter(|_| is_arn_field)?).ok()?;
        is_account_id(arn.account()).then(|| arn.account().to_owned())
    });
    Ok(from_arn)
}

/// The consumer as a grant needs it: its role, and who owns it.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub role: ConsumerRole,
    /// The data product's or team's id.
    pub id: String,
    pub owners: Owners,
    /// `consumer data product `shipments``, for messages.
    pub label: String,
}

/// The consumer's role, from the consumer data product's or team's custom fields.
pub async fn consumer_role<D: Directory>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
) -> Result<ConsumerRole, ReconcileError> {
    consumer(agreement, directory, scope).await.map(|c| c.role)
}

/// The consumer data product or team, its role and owners (a data product and its owner team,
/// or the team).
pub async fn consumer<D: Directory>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
) -> Result<Consumer, ReconcileError> {
    let (kind, id, found) = match agreement.consumer().map_err(Permanent::from)? {
        ConsumerRef::DataProduct(id) => {
            let product = directory.data_product(&id).await?;
            let found = product.map(|p| (p.custom_fields(), Owners::product(&id, p.owner())));
            ("data product", id, found)
        }
        ConsumerRef::Team(id) => {
            let team = directory.team(&id).await?;
            let found = team.map(|t| (t.custom_fields(), Owners::team(&id)));
            ("team", id, found)
        }
        ConsumerRef::User(id) => return Err(Permanent::UserConsumer(id).into()),
    };
    let (custom, owners) = found.ok_or_else(|| Permanent::ConsumerNotFound {
        kind,
        id: id.clone(),
    })?;
    let role = ConsumerRole::from_custom(&custom, &scope.context).map_err(|source| {
        Permanent::Consumer {
            kind,
            id: id.clone(),
            source,
        }
    })?;
    if let (false, Some(account)) = (scope.manages(&role), role.account()) {
        return Err(Permanent::UnmanagedAccount {
            role: role.name().to_string(),
            account: account.to_owned(),
        }
        .into());
    }
    Ok(Consumer {
        label: format!("consumer {kind} `{}`", shown(&id)),
        role,
        id,
        owners,
    })
}

/// The port as its data contract describes it (ADR 018): the contract's server turned into the
/// custom fields the catalogue reads, so its values are checked like any custom field.
async fn port_from_contract<D: Directory>(
    directory: &D,
    product: &DataProduct,
    port: &Value,
    contract_id: &str,
    provider: &ProviderRef,
    scope: &Scope,
) -> Result<Value, ReconcileError> {
    let contract =
        directory
            .data_contract(contract_id)
            .await?
            .ok_or_else(|| Permanent::ContractNotFound {
                product: provider.data_product_id.clone(),
                port: provider.output_port_id.clone(),
                contract: shown(contract_id),
            })?;
    // A server that names no account is in the port's or product's `aws-account-id`, else in
    // the integration's own account, as for custom fields.
    let account = provider_account(product, port).map_err(Permanent::InvalidAccountId)?;
    contract::port_from_contract(
        port,
        contract_id,
        &contract,
        scope.context.partition().as_str(),
        account.as_deref().or(scope.account.as_deref()),
    )
    .map_err(|source| {
        Permanent::Contract {
            product: provider.data_product_id.clone(),
            port: provider.output_port_id.clone(),
            source,
        }
        .into()
    })
}

/// Decides the desired state. Inactive agreements never grant; an active one grants exactly the
/// catalogue's policy for its output port to its consumer's role.
pub async fn plan<D: Directory, T: ResourceTags>(
    agreement: &Agreement,
    directory: &D,
    scope: &Scope,
    tags: &T,
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
    let described;
    let port = match contract::described_by(port) {
        None => port,
        Some(contract_id) => {
            described =
                port_from_contract(directory, &product, port, contract_id, &provider, scope)
                    .await?;
            &described
        }
    };
    let access = resolve_port(port, &scope.context).map_err(|source| Permanent::Provider {
        product: provider.data_product_id.clone(),
        port: provider.output_port_id.clone(),
        source,
    })?;
    let provider_account = provider_account(&product, port).map_err(Permanent::InvalidAccountId)?;
    if !scope.manages_account(provider_account.as_deref()) {
        return Err(Permanent::UnmanagedProviderAccount {
            product: provider.data_product_id.clone(),
            account: provider_account.unwrap_or_default(),
        }
        .into());
    }
    let consumer = consumer(agreement, directory, scope).await?;
    let policy = &scope.ownership;
    ownership::check_protected(policy, &access)?;
    let document = access.policy();
    ownership::check_size(&document)?;
    let parties = Parties {
        provider_product: provider.data_product_id.clone(),
        provider: Owners::product(&provider.data_product_id, product.owner()),
        consumer_id: consumer.id.clone(),
        consumer: consumer.owners.clone(),
    };
    let mut findings = Vec::new();
    if let Some(cause) = ownership::check_groups(&access, &parties.consumer_id) {
        match policy.mode {
            OwnershipMode::Enforce => return Err(cause.into()),
            OwnershipMode::Audit => findings.push(Finding(cause.to_string())),
            OwnershipMode::Off => {}
        }
    }
    let claims = ownership::claims(
        &access,
        scope.local(provider_account.as_deref()).as_deref(),
        &parties,
    );
    findings.extend(ownership::prove(policy, tags, &claims).await?);
    Ok(Desired::Grant(Box::new(GrantPlan {
        consumer_account: scope.local(consumer.role.account()),
        provider_account: scope.local(provider_account.as_deref()),
        role_ownership: RoleOwnership {
            mode: policy.mode,
            owners: consumer.owners,
            consumer: consumer.label,
        },
        role: consumer.role,
        policy_name: policy_name(agreement.id())?,
        document,
        findings,
    })))
}

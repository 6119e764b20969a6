//! The demo's Lake Formation table (ADR 022): an agreement on a `glue_table` port under Lake
//! Formation is granted as permissions in Lake Formation, not as S3 access in IAM.
//!
//! moto keeps Lake Formation's permissions but enforces none of them, so the demo shows and checks
//! what Lake Formation holds; in a real account those permissions are what lets the consumer's
//! Athena query see the table and read its data.

use dmm_simulator::Scenario;
use local_stack::owned::Owned;

use crate::DemoResult;

/// The scenario's agreement on a port with `aws-glue-access-mode: lake-formation`.
pub struct LakeTable {
    pub agreement_id: String,
    pub provider: String,
    pub table_arn: String,
    pub workgroup_arn: String,
}

impl LakeTable {
    /// The first agreement of the scenario on a Lake Formation port, if there is one.
    pub fn find(scenario: &Scenario) -> Option<Self> {
        scenario.agreements.iter().find_map(|agreement| {
            let provider = agreement["provider"]["dataProductId"].as_str()?;
            let port_id = agreement["provider"]["outputPortId"].as_str()?;
            let product = scenario
                .data_products
                .iter()
                .find(|p| p["id"] == provider)?;
            let port = product["outputPorts"]
                .as_array()?
                .iter()
                .find(|p| p["id"] == port_id)?;
            let custom = &port["custom"];
            let field = |name: &str| custom[name].as_str().map(str::to_owned);
            (field("aws-glue-access-mode")?.replace('_', "-") == "lake-formation").then_some(())?;
            Some(LakeTable {
                agreement_id: agreement["id"].as_str()?.to_owned(),
                provider: provider.to_owned(),
                table_arn: field("aws-glue-table-arn")?,
                workgroup_arn: field("aws-athena-workgroup-arn")?,
            })
        })
    }

    /// Tags the table and the workgroup for the provider, as its owners would.
    pub async fn own(&self, owned: &Owned<'_>) -> DemoResult<()> {
        let tag = [("dmm-data-product", self.provider.as_str())];
        owned.glue(&self.table_arn, &tag).await?;
        owned.workgroup(&self.workgroup_arn, &tag).await?;
        Ok(())
    }

    /// `database.table` from the table's ARN.
    pub fn name(&self) -> String {
        self.table_arn
            .rsplit_once(":table/")
            .map(|(_, name)| name.replace('/', "."))
            .unwrap_or_default()
    }
}

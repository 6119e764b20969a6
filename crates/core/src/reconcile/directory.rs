//! Data products, teams and data contracts, read from DMM at most once per SQS batch: ten agreements on the same
//! provider cost one data product request, and a batch still sees changes made before it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::dmm::{DataProduct, DmmClient, DmmError, Team};

/// Where the reconciler looks up the documents an agreement names.
pub trait Directory {
    fn data_product(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Arc<DataProduct>>, DmmError>> + Send;
    fn team(&self, id: &str) -> impl Future<Output = Result<Option<Arc<Team>>, DmmError>> + Send;
    /// An ODCS data contract, for ports described by their contract.
    fn data_contract(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Value>>, DmmError>> + Send;
}

type Slot<T> = Arc<OnceCell<Option<Arc<T>>>>;

/// A per-batch memo in front of the DMM client. Failed reads are not cached, so a later record
/// of the batch tries again.
pub struct BatchDirectory<'a> {
    dmm: &'a DmmClient,
    products: Mutex<HashMap<String, Slot<DataProduct>>>,
    teams: Mutex<HashMap<String, Slot<Team>>>,
    contracts: Mutex<HashMap<String, Slot<Value>>>,
}

impl<'a> BatchDirectory<'a> {
    pub fn new(dmm: &'a DmmClient) -> Self {
        Self {
            dmm,
            products: Mutex::default(),
            teams: Mutex::default(),
            contracts: Mutex::default(),
        }
    }
}

fn slot<T>(map: &Mutex<HashMap<String, Slot<T>>>, id: &str) -> Slot<T> {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(id.to_owned()).or_default().clone()
}

impl Directory for BatchDirectory<'_> {
    async fn data_product(&self, id: &str) -> Result<Option<Arc<DataProduct>>, DmmError> {
        let cell = slot(&self.products, id);
        cell.get_or_try_init(|| async { Ok(self.dmm.get_data_product(id).await?.map(Arc::new)) })
            .await
            .cloned()
    }

    async fn team(&self, id: &str) -> Result<Option<Arc<Team>>, DmmError> {
        let cell = slot(&self.teams, id);
        cell.get_or_try_init(|| async { Ok(self.dmm.get_team(id).await?.map(Arc::new)) })
            .await
            .cloned()
    }

    async fn data_contract(&self, id: &str) -> Result<Option<Arc<Value>>, DmmError> {
        let cell = slot(&self.contracts, id);
        cell.get_or_try_init(|| async { Ok(self.dmm.get_data_contract(id).await?.map(Arc::new)) })
            .await
            .cloned()
    }
}

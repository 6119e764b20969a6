use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::state::Shared;
use crate::{CloudEvent, Error, Fault, RecordedPut, Scenario};

/// How long `shutdown` lets in-flight requests (e.g. a delayed one) finish before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator on a real socket, so the client under test talks plain HTTP to it.
///
/// Every method acts on the same state the HTTP API serves, immediately: there is no need to wait
/// for anything after a call returns. Dropping the handle stops the server.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Listens on `addr` (port 0 picks a free port) and serves `scenario` until stopped.
    pub async fn start(scenario: Scenario, addr: impl ToSocketAddrs) -> Result<Self, Error> {
        let shared = Arc::new(Shared::from_scenario(scenario)?);
        let listener = TcpListener::bind(addr).await.map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let app = crate::http::router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                // A dropped sender means the handle is gone: stop as well.
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "simulator server failed");
            }
        });
        tracing::info!(%addr, "DMM simulator listening");
        Ok(Simulator {
            shared,
            addr,
            base_url: format!("http://{addr}"),
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// `http://host:port`, without a trailing slash; the DMM base URL to configure the client with.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address, for callers that need host and port apart (e.g. to build a config).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key the client must send as `x-api-key`.
    pub fn api_key(&self) -> &str {
        self.shared.api_key()
    }

    /// Appends an event exactly as given (only a unique string `id` is required), so a test can
    /// also feed the client events DMM would never produce.
    pub fn append_event(&self, event: Value) -> Result<(), Error> {
        self.shared.append_events(vec![event])
    }

    /// Appends an event of `event_type` (short names get the `com.datamesh-manager.events.` prefix)
    /// about `resource_id`, with a generated id and the current time.
    pub fn emit(&self, event_type: &str, resource_id: &str) -> CloudEvent {
        self.shared.emit(event_type, resource_id)
    }

    /// Appends `count` events cycling through `resource_ids`, in one lock: the way to build a large
    /// backlog for benchmarks without `count` round trips.
    pub fn emit_bulk(
        &self,
        event_type: &str,
        resource_ids: &[String],
        count: usize,
    ) -> Result<Vec<CloudEvent>, Error> {
        self.shared.emit_bulk(event_type, resource_ids, count)
    }

    /// Creates or replaces an agreement without announcing it in the feed, so a test can stage
    /// state first and then choose the event that makes the client look at it. Returns its id.
    pub fn upsert_agreement(&self, document: Value) -> Result<String, Error> {
        self.shared.upsert_agreement(document)
    }

    /// Removes an agreement (GET answers 404 from now on) and appends `AccessDeletedEvent`.
    pub fn delete_agreement(&self, id: &str) -> Result<CloudEvent, Error> {
        self.shared.delete_agreement(id)
    }

    /// The agreement as the API serves it now, e.g. to check what the client wrote back.
    pub fn agreement(&self, id: &str) -> Option<Value> {
        self.shared.agreement(id)
    }

    /// Sets `info.active = true` and `info.status = "approved"`, appends `AccessActivatedEvent`.
    pub fn activate(&self, id: &str) -> Result<CloudEvent, Error> {
        self.shared.set_active(id, true)
    }

    /// Sets `info.active = false` (the status stays), appends `AccessDeactivatedEvent`.
    pub fn deactivate(&self, id: &str) -> Result<CloudEvent, Error> {
        self.shared.set_active(id, false)
    }

    /// Creates or replaces a data product by its top-level `id`, silently like `upsert_agreement`.
    pub fn upsert_data_product(&self, document: Value) -> Result<String, Error> {
        self.shared.upsert_data_product(document)
    }

    /// Removes a data product (GET answers 404), appends `DataProductDeletedEvent`, and makes
    /// agreements naming it as provider read `"unknown"` there, as the real server does.
    pub fn delete_data_product(&self, id: &str) -> Result<CloudEvent, Error> {
        self.shared.delete_data_product(id)
    }

    /// Creates or replaces an ODCS data contract by its top-level `id`, silently.
    pub fn upsert_data_contract(&self, document: Value) -> Result<String, Error> {
        self.shared.upsert_data_contract(document)
    }

    /// Appends the event with id `id` again, unchanged: the real feed may repeat an event.
    pub fn repeat_event(&self, id: &str) -> Result<Value, Error> {
        self.shared.repeat_event(id)
    }

    /// The connector document a client registered under `id`.
    pub fn connector(&self, id: &str) -> Option<Value> {
        self.shared.connector(id)
    }

    /// The agreement's provisioning record, as the client last reported it.
    pub fn provisioning(&self, id: &str) -> Option<Value> {
        self.shared.provisioning(id)
    }

    /// Creates or replaces a team by its top-level `id`, silently like `upsert_agreement`.
    pub fn upsert_team(&self, document: Value) -> Result<String, Error> {
        self.shared.upsert_team(document)
    }

    /// Every PUT on an agreement received so far, oldest first, including invalid ones.
    pub fn puts(&self) -> Vec<RecordedPut> {
        self.shared.puts()
    }

    /// API requests received per route, keyed like `GET /api/access/{id}`; faulted and
    /// unauthorised requests count too, since a client's retries are what benchmarks measure.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.request_counts()
    }

    /// Starts counting afresh, so a benchmark measures one phase rather than its setup.
    pub fn reset_request_counts(&self) {
        self.shared.reset_request_counts()
    }

    /// Arms a fault; faults fire in the order they were injected.
    pub fn inject_fault(&self, fault: Fault) -> Result<(), Error> {
        self.shared.inject_fault(fault)
    }

    /// Disarms every fault not yet used up, e.g. to let a retrying client recover mid-test.
    pub fn clear_faults(&self) {
        self.shared.clear_faults()
    }

    /// Stops accepting connections, closes idle ones and waits (briefly) for requests in flight,
    /// so that once this returns the port no longer answers.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

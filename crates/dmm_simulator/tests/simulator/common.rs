//! Shared by the test modules: a simulator on a free port and a client that talks to it.

use dmm_simulator::{Scenario, Simulator};
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};

pub struct Harness {
    pub sim: Simulator,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(scenario: Scenario) -> Self {
        let sim = Simulator::start(scenario, "127.0.0.1:0")
            .await
            .expect("simulator starts");
        Harness {
            sim,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// A request to the DMM API with the right key, as the integration sends it.
    pub fn api(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-api-key", self.sim.api_key())
    }

    pub async fn get(&self, path: &str) -> Response {
        self.api(reqwest::Method::GET, path).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.api(reqwest::Method::PUT, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The whole feed, following `lastEventId` page by page until the empty page.
    pub async fn read_feed(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let mut request = self.api(reqwest::Method::GET, "/api/events");
            if let Some(last) = &last {
                request = request.query(&[("lastEventId", last)]);
            }
            let page: Vec<Value> = request.send().await.unwrap().json().await.unwrap();
            match page.last() {
                None => return events,
                Some(event) => last = Some(event["id"].as_str().unwrap().to_owned()),
            }
            events.extend(page);
        }
    }
}

/// A complete agreement between `orders` and `shipments`, with a field DMM's schema does not know.
pub fn agreement(id: &str) -> Value {
    json!({
        "id": id,
        "info": {"purpose": "testing", "status": "requested", "active": false},
        "provider": {"dataProductId": "orders", "outputPortId": "orders-bucket"},
        "consumer": {"dataProductId": "shipments", "teamId": "logistics", "userId": "unknown"},
        "tags": ["user-tag"],
        "custom": {"owner-note": "keep me"},
        "futureField": {"nested": [1, 2, 3]}
    })
}

pub fn event_type(short: &str) -> String {
    format!("com.datamesh-manager.events.{short}")
}

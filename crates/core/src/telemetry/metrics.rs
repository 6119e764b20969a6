//! Metrics in CloudWatch Embedded Metric Format: one JSON line on stdout per invocation, which
//! CloudWatch Logs turns into metrics. No API call, no extra permission, no latency.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric the integration emits.
pub const NAMESPACE: &str = "DmmIntegrationAws";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// The metrics of one invocation, dimensioned by function.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    /// Dimensioned by the deployed function's name (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda),
    /// so two installations in one account keep apart; `function` when run elsewhere.
    pub fn new(function: &'static str) -> Self {
        Self {
            function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|_| function.to_owned()),
            values: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &'static str, value: f64, unit: Unit) -> &mut Self {
        self.values.push((name, value, unit));
        self
    }

    pub fn count(&mut self, name: &'static str, value: usize) -> &mut Self {
        self.add(name, value as f64, Unit::Count)
    }

    /// The EMF document.
    pub fn to_json(&self) -> Value {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({"Timestamp": timestamp, "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }]}),
        );
        doc.insert("Function".into(), Value::from(self.function.as_str()));
        for (name, value, _) in &self.values {
            doc.insert((*name).into(), Value::from(*value));
        }
        Value::Object(doc)
    }

    /// Writes the line to stdout, where the Lambda runtime sends it to CloudWatch Logs.
    pub fn emit(&self) {
        println!("{}", self.to_json());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_every_value() {
        let mut metrics = Metrics::new("poll_feed");
        metrics
            .count("EventsForwarded", 12)
            .add("FeedLag", 3.5, Unit::Seconds);
        let doc = metrics.to_json();
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"], json!([["Function"]]));
        assert_eq!(
            declared["Metrics"],
            json!([{"Name": "EventsForwarded", "Unit": "Count"}, {"Name": "FeedLag", "Unit": "Seconds"}])
        );
        let expected = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or("poll_feed".into());
        assert_eq!(doc["Function"], expected.as_str());
        assert_eq!(doc["EventsForwarded"], 12.0);
        assert_eq!(doc["FeedLag"], 3.5);
        assert!(doc["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }
}

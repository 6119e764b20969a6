//! `msk_topic` ports: consuming one topic of an Amazon MSK cluster with IAM authentication.
//!
//! MSK authorises every Kafka request against `kafka-cluster:` actions on three kinds of ARN,
//! all below one cluster: the cluster (to connect), the topic (to read), and consumer groups (to
//! commit offsets). Groups belong to the consumer; the port lists the ones it may use. Without
//! any, the consumer can still read with manually assigned partitions.

use super::arn::{Arn, Partition};
use super::document::Statement;

/// An MSK cluster, `arn:aws:kafka:region:account:cluster/name/uuid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MskCluster {
    partition: Partition,
    region: String,
    account: String,
    name: String,
    uuid: String,
}

/// One of the MSK ARNs a port may name, each tied to its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MskResource {
    Cluster(MskCluster),
    Topic(MskCluster, String),
    Group(MskCluster, String),
}

/// A topic ready to be granted, with the consumer groups that go with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MskTopic {
    cluster: MskCluster,
    topic: String,
    groups: Vec<String>,
}

impl MskResource {
    pub(crate) fn from_arn(arn: &Arn) -> Result<Self, String> {
        let parts: Vec<&str> = arn.resource().split('/').collect();
        let cluster = |name: &str, uuid: &str| -> Result<MskCluster, String> {
            let valid = |s: &str| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if valid(name) && valid(uuid) {
                Ok(MskCluster {
                    partition: arn.partition(),
                    region: arn.region().to_owned(),
                    account: arn.account().to_owned(),
                    name: name.to_owned(),
                    uuid: uuid.to_owned(),
                })
            } else {
                Err("whose cluster part is not `<cluster name>/<cluster uuid>`".to_owned())
            }
        };
        match parts[..] {
            ["cluster", name, uuid] => Ok(MskResource::Cluster(cluster(name, uuid)?)),
            ["topic", name, uuid, topic] => {
                Ok(MskResource::Topic(cluster(name, uuid)?, kafka_name(topic, "topic", 249)?.to_owned()))
            }
            ["group", name, uuid, group] => {
                Ok(MskResource::Group(cluster(name, uuid)?, kafka_name(group, "consumer group", 255)?.to_owned()))
            }
            _ => Err(
                "which is not an MSK cluster, topic or group ARN (…:cluster/name/uuid, …:topic/name/uuid/topic, …:group/name/uuid/group)"
                    .into(),
            ),
        }
    }
}

impl MskCluster {
    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn arn_of(&self, kind: &str, suffix: Option<&str>) -> String {
        let base = format!(
            "arn:{}:kafka:{}:{}:{kind}/{}/{}",
            self.partition, self.region, self.account, self.name, self.uuid
        );
        match suffix {
            Some(suffix) => format!("{base}/{suffix}"),
            None => base,
        }
    }

    pub fn arn(&self) -> String {
        self.arn_of("cluster", None)
    }
}

impl MskTopic {
    /// Groups are sorted and deduplicated so the policy does not depend on the order of custom
    /// fields in DMM.
    pub(crate) fn new(cluster: MskCluster, topic: String, mut groups: Vec<String>) -> Self {
        groups.sort();
        groups.dedup();
        MskTopic {
            cluster,
            topic,
            groups,
        }
    }

    pub fn cluster(&self) -> &MskCluster {
        &self.cluster
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    pub(crate) fn statements(&self) -> Vec<Statement> {
        let mut statements = vec![
            Statement::allow(
                "KafkaConnect",
                &["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
                [self.cluster.arn()],
            ),
            Statement::allow(
                "KafkaReadTopic",
                &["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                [self.cluster.arn_of("topic", Some(&self.topic))],
            ),
        ];
        if !self.groups.is_empty() {
            statements.push(Statement::allow(
                "KafkaConsumerGroups",
                &["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                self.groups
                    .iter()
                    .map(|g| self.cluster.arn_of("group", Some(g))),
            ));
        }
        statements
    }
}

/// Topic and group names as Kafka allows them (`[a-zA-Z0-9._-]`, not `.` or `..`).
fn kafka_name<'a>(name: &'a str, what: &str, max_len: usize) -> Result<&'a str, String> {
    let valid = !name.is_empty()
        && name.len() <= max_len
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(name)
    } else {
        Err(format!(
            "whose {what} name `{}` is not a Kafka name (letters, digits, `.`, `_`, `-`)",
            crate::text::shown(name)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::document::PolicyDocument;

    const CLUSTER: &str = "arn:aws:kafka:eu-central-1:111122223333:cluster/events/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2";

    fn parse(arn: &str) -> Result<MskResource, String> {
        MskResource::from_arn(&Arn::parse(arn).unwrap())
    }

    fn topic(arn: &str) -> (MskCluster, String) {
        match parse(arn).unwrap() {
            MskResource::Topic(cluster, topic) => (cluster, topic),
            other => panic!("not a topic: {other:?}"),
        }
    }

    #[test]
    fn policy_for_a_topic_with_groups() {
        let (cluster, name) = topic(
            "arn:aws:kafka:eu-central-1:111122223333:topic/events/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2/orders",
        );
        let msk = MskTopic::new(
            cluster,
            name,
            vec!["reporting".into(), "billing".into(), "reporting".into()],
        );
        assert_eq!(
            PolicyDocument::new(msk.statements()).to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Sid":"KafkaConnect","Effect":"Allow","Action":["kafka-cluster:Connect","kafka-cluster:DescribeCluster"],"Resource":"arn:aws:kafka:eu-central-1:111122223333:cluster/events/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2"},"#,
                r#"{"Sid":"KafkaReadTopic","Effect":"Allow","Action":["kafka-cluster:DescribeTopic","kafka-cluster:ReadData"],"Resource":"arn:aws:kafka:eu-central-1:111122223333:topic/events/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2/orders"},"#,
                r#"{"Sid":"KafkaConsumerGroups","Effect":"Allow","Action":["kafka-cluster:AlterGroup","kafka-cluster:DescribeGroup"],"Resource":["arn:aws:kafka:eu-central-1:111122223333:group/events/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2/billing","arn:aws:kafka:eu-central-1:111122223333:group/events/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2/reporting"]}]}"#
            )
        );
    }

    #[test]
    fn without_groups_there_is_no_group_statement() {
        let (cluster, name) =
            topic("arn:aws-us-gov:kafka:us-gov-east-1:111122223333:topic/c/u-1/t");
        let json = PolicyDocument::new(MskTopic::new(cluster, name, vec![]).statements()).to_json();
        assert!(!json.contains("Group"), "{json}");
        assert!(
            json.contains(
                r#""Resource":"arn:aws-us-gov:kafka:us-gov-east-1:111122223333:cluster/c/u-1""#
            ),
            "{json}"
        );
    }

    #[test]
    fn parses_cluster_topic_and_group_arns() {
        let MskResource::Cluster(cluster) = parse(CLUSTER).unwrap() else {
            panic!()
        };
        assert_eq!(cluster.arn(), CLUSTER);
        assert_eq!(
            (cluster.name(), cluster.region()),
            ("events", "eu-central-1")
        );
        let group = parse("arn:aws:kafka:eu-central-1:111122223333:group/c/u/my.group-1").unwrap();
        assert!(matches!(group, MskResource::Group(_, ref g) if g == "my.group-1"));
    }

    #[test]
    fn rejects_other_kafka_resources_and_bad_names() {
        for arn in [
            "arn:aws:kafka:eu-central-1:111122223333:cluster/c",
            "arn:aws:kafka:eu-central-1:111122223333:cluster/c/u/x",
            "arn:aws:kafka:eu-central-1:111122223333:topic/c/u",
            "arn:aws:kafka:eu-central-1:111122223333:topic/c/u/",
            "arn:aws:kafka:eu-central-1:111122223333:topic/c/u/..",
            "arn:aws:kafka:eu-central-1:111122223333:topic/c/u/a:b",
            "arn:aws:kafka:eu-central-1:111122223333:topic/c_1/u/t",
            "arn:aws:kafka:eu-central-1:111122223333:group/c/u/a/b",
            "arn:aws:kafka:eu-central-1:111122223333:transactional-id/c/u/t",
            "arn:aws:kafka:eu-central-1:111122223333:configuration/x/1",
        ] {
            assert!(parse(arn).is_err(), "{arn}");
        }
        let long = format!(
            "arn:aws:kafka:eu-central-1:111122223333:topic/c/u/{}",
            "t".repeat(250)
        );
        assert!(parse(&long).is_err());
    }
}

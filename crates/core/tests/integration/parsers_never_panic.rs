//! Everything that reads DMM's documents takes untrusted input (ADR 001): the CloudEvent, the
//! agreement, the data product and team, and the output port behind the policy. Whatever DMM
//! sends, these never panic, and every rejection is a typed error with a message an operator can
//! read. On top, the invariants the reliability story leans on: status write-back is idempotent
//! and keeps what users set, batches respect SQS's limits, FIFO ids are always valid, and a
//! granted policy fits IAM and has no wildcard but the catalogue's own.
//!
//! Runs with a fixed seed so CI is reproducible; `PROPTEST_RNG_SEED=<n>` (and `PROPTEST_CASES`)
//! explore other cases.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use dmm_aws_core::dmm::{Agreement, ConsumerRef, DataProduct, FeedEvent, Team};
use dmm_aws_core::feed::{self, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use dmm_aws_core::policy::{
    Context, Partition, PolicyDocument, ROLE_INLINE_POLICY_LIMIT, check_inline_policy_budget,
    resolve_port,
};
use dmm_aws_core::reconcile::status::{
    self, AccessRoleStatus, FIELD_ACCESS_ROLE_ARN, FIELD_ERROR, FIELD_EXTERNAL_ID,
    FIELD_POLICY_NAME, FIELD_ROLE_ARN, Status, TAG_ACTIVE, TAG_ERROR, TAG_INACTIVE,
    TAG_INTEGRATION,
};

/// Verbs of actions that change something; a grant never has one (ADR 011: read only).
const WRITE_VERBS: &[&str] = &[
    "Put",
    "Delete",
    "Create",
    "Update",
    "Write",
    "Attach",
    "Detach",
    "Pass",
    "Tag",
    "Untag",
    "Set",
    "Modify",
    "Restore",
    "Encrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "Replicate",
];

const OWN_TAGS: [&str; 4] = [TAG_INTEGRATION, TAG_ACTIVE, TAG_INACTIVE, TAG_ERROR];
const OWN_FIELDS: [&str; 5] = [
    FIELD_POLICY_NAME,
    FIELD_ROLE_ARN,
    FIELD_ERROR,
    FIELD_ACCESS_ROLE_ARN,
    FIELD_EXTERNAL_ID,
];

/// `cases` with a fixed seed, so CI runs are reproducible and take a few seconds; the usual
/// `PROPTEST_CASES` and `PROPTEST_RNG_SEED` variables override both for a deeper search.
fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(20_240_611);
    }
    config
}

/// The error's message: never empty, whatever the input.
fn message(error: &impl std::fmt::Display) -> String {
    let text = error.to_string();
    assert!(!text.trim().is_empty(), "empty error message");
    text
}

// ---------------------------------------------------------------------------------------------
// Generators. Each is boxed: unboxed, the nested strategy types need more stack than a test
// thread has in a debug build.

/// Keys the parsers look at, so generated documents hit their branches, plus anything else.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "id", "type", "data", "info", "active", "status", "provider", "consumer",
            "dataProductId", "outputPortId", "teamId", "userId", "tags", "custom",
            "outputPorts", "specversion", "server", "location", "output-port-type",
            FIELD_ERROR, FIELD_POLICY_NAME, FIELD_ROLE_ARN,
        ])
        .prop_map(str::to_owned),
        1 => "aws-[a-z0-9-]{0,8}-arn",
        1 => any::<String>(),
    ]
    .boxed()
}

/// Strings biased towards what the parsers treat specially: empty, blank, own tags, ARNs.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => any::<String>(),
        1 => Just(String::new()),
        1 => Just("  ".to_owned()),
        1 => prop::sample::select(OWN_TAGS.to_vec()).prop_map(str::to_owned),
        1 => "[a-z0-9-]{1,12}",
        1 => arn_text(),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        text().prop_map(Value::from),
    ]
    .boxed()
}

/// Any JSON value, up to four levels deep.
fn json_value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::vec((key(), inner), 0..7)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
        .boxed()
}

/// An agreement-shaped object: info, provider and consumer in their places, each part sometimes
/// missing or malformed, plus arbitrary other fields.
fn agreement_value() -> BoxedStrategy<Value> {
    let info = prop_oneof![
        4 => (prop_oneof![3 => any::<bool>().prop_map(Value::from), 1 => leaf()], text())
            .prop_map(|(active, status)| json!({"active": active, "status": status})),
        1 => json_value(),
    ];
    let provider = prop_oneof![
        4 => (id_or_junk(), id_or_junk())
            .prop_map(|(d, o)| json!({"dataProductId": d, "outputPortId": o})),
        1 => json_value(),
    ];
    let consumer = prop_oneof![
        4 => prop::collection::vec(
            (prop::sample::select(vec!["dataProductId", "teamId", "userId"]), id_or_junk()),
            0..3,
        )
        .prop_map(|refs| Value::Object(refs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        1 => json_value(),
    ];
    (
        document(),
        prop::option::of(info),
        prop::option::of(provider),
        prop::option::of(consumer),
    )
        .prop_map(|(mut doc, info, provider, consumer)| {
            for (name, value) in [
                ("info", info),
                ("provider", provider),
                ("consumer", consumer),
            ] {
                if let Some(value) = value {
                    doc[name] = value;
                }
            }
            doc
        })
        .boxed()
}

/// An object with a usable `id` and arbitrary everything else, so the accessors past
/// `from_value` get exercised too.
fn document() -> BoxedStrategy<Value> {
    (
        "[a-z0-9-]{1,12}",
        prop::collection::vec((key(), json_value()), 0..8),
    )
        .prop_map(|(id, entries)| {
            let mut doc: Map<String, Value> = entries.into_iter().collect();
            doc.insert("id".into(), id.into());
            Value::Object(doc)
        })
        .boxed()
}

/// A value that is mostly a usable id, sometimes empty or not a string.
fn id_or_junk() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => "[a-zA-Z0-9-]{1,12}".prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        1 => leaf(),
    ]
    .boxed()
}

/// A CloudEvent as the feed sends it, with every field sometimes missing or of the wrong type.
fn event_value() -> BoxedStrategy<Value> {
    let event_type = prop_oneof![
        4 => prop::sample::select(vec![
            "AccessActivatedEvent", "AccessUpdatedEvent", "DataUsageAgreementDeletedEvent",
            "DataProductUpdatedEvent",
        ])
        .prop_map(|t| Value::from(format!("com.datamesh-manager.events.{t}"))),
        1 => leaf(),
    ];
    let data = prop_oneof![
        4 => (id_or_junk(), prop::collection::vec((key(), json_value()), 0..3)).prop_map(
            |(id, rest)| {
                let mut data: Map<String, Value> = rest.into_iter().collect();
                data.insert("id".into(), id);
                Value::Object(data)
            }
        ),
        1 => json_value(),
    ];
    (
        prop::option::of(id_or_junk()),
        prop::option::of(event_type),
        prop::option::of(data),
        prop::collection::vec((key(), json_value()), 0..3),
    )
        .prop_map(|(id, event_type, data, rest)| {
            let mut event: Map<String, Value> = rest.into_iter().collect();
            event.insert("specversion".into(), "1.0".into());
            for (name, value) in [("id", id), ("type", event_type), ("data", data)] {
                if let Some(value) = value {
                    event.insert(name.into(), value);
                }
            }
            Value::Object(event)
        })
        .boxed()
}

/// Text that is sometimes JSON, sometimes nearly JSON, sometimes noise.
fn json_ish() -> BoxedStrategy<String> {
    let document = prop_oneof![
        3 => event_value(),
        1 => prop::collection::vec(event_value(), 0..4).prop_map(Value::from),
        1 => json_value(),
    ];
    prop_oneof![
        3 => document.clone().prop_map(|v| v.to_string()),
        1 => document.clone().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        // A prefix of a valid document: unterminated strings, objects, escapes.
        1 => (document, any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = v.to_string();
            let cut = cut.index(text.len() + 1);
            text.get(..cut).unwrap_or(&text).to_owned()
        }),
        1 => r#"[\[\]{}":,0-9a-z\\ .eE+-]{0,40}"#,
        1 => any::<String>(),
    ]
    .boxed()
}

/// ARN-like text: valid shapes with hostile parts (wildcards, traversal, unicode, emptiness).
fn arn_text() -> BoxedStrategy<String> {
    let part = || {
        prop_oneof![
            4 => "[a-z0-9][a-z0-9._-]{0,15}",
            1 => "[a-zA-Z0-9/*?._=:-]{0,20}",
            1 => Just("*".to_owned()),
            1 => Just("..".to_owned()),
            1 => any::<String>(),
        ]
    };
    let partition = prop::sample::select(vec!["aws", "aws-cn", "aws-us-gov", "aws-x", ""]);
    let region = prop::sample::select(vec!["eu-central-1", "us-east-1", "", "*"]);
    let account = prop::sample::select(vec!["111122223333", "", "*", "12"]);
    let service = prop::sample::select(vec![
        "s3", "kms", "glue", "athena", "kinesis", "kafka", "iam", "sqs",
    ]);
    let resource = prop_oneof![
        part(),
        (part(), part()).prop_map(|(a, b)| format!("{a}/{b}")),
        (
            prop::sample::select(vec![
                "table",
                "database",
                "catalog",
                "workgroup",
                "stream",
                "key",
                "alias",
                "topic",
                "cluster",
                "group",
            ]),
            prop::collection::vec(part(), 0..4),
        )
            .prop_map(|(kind, parts)| {
                std::iter::once(kind.to_owned())
                    .chain(parts)
                    .collect::<Vec<_>>()
                    .join("/")
            }),
    ];
    (partition, service, region, account, resource)
        .prop_map(|(partition, service, region, account, resource)| {
            let (region, account) = if service == "s3" {
                ("", "")
            } else {
                (region, account)
            };
            format!("arn:{partition}:{service}:{region}:{account}:{resource}")
        })
        .boxed()
}

/// An output port of any shape: a declared or inferable type, `aws…arn` custom fields with
/// hostile ARNs, maybe a location.
fn hostile_port() -> BoxedStrategy<Value> {
    let port_type = prop::option::of(prop::sample::select(vec![
        "s3_bucket",
        "s3_folder",
        "glue_table",
        "kinesis_stream",
        "msk_topic",
        "S3_BUCKET",
        "",
    ]));
    let std_type = prop::option::of(prop::sample::select(vec!["s3", "kinesis", "glue", "kafka"]));
    let fields = prop::collection::vec(
        (
            prop::sample::select(vec![
                "aws-s3-bucket-arn",
                "aws-s3-folder-arn",
                "aws-glue-table-arn",
                "aws-glue-database-arn",
                "aws-glue-catalog-arn",
                "aws-athena-workgroup-arn",
                "aws-kinesis-stream-arn",
                "aws-msk-topic-arn",
                "aws-msk-cluster-arn",
                "aws-msk-group-arn",
                "aws-kms-key-arn",
                "aws-x-arn",
            ]),
            prop_oneof![8 => arn_text().prop_map(Value::from), 1 => leaf()],
        ),
        0..5,
    );
    let location = prop::option::of(prop_oneof![
        "s3://[a-z0-9][a-z0-9.-]{1,20}(/[a-zA-Z0-9*?._=-]{0,12}){0,3}/?",
        "s3://.{0,30}",
        "gs://[a-z]{1,10}",
    ]);
    (
        prop::option::of("[a-z0-9-]{1,8}"),
        std_type,
        port_type,
        fields,
        location,
        prop::option::of((key(), json_value())),
    )
        .prop_map(|(id, std_type, port_type, fields, location, extra)| {
            let mut custom = Map::new();
            if let Some(port_type) = port_type {
                custom.insert("output-port-type".into(), port_type.into());
            }
            for (name, value) in fields {
                custom.insert(name.into(), value);
            }
            let mut port = Map::new();
            if let Some(id) = id {
                port.insert("id".into(), id.into());
            }
            if let Some(t) = std_type {
                port.insert("type".into(), t.into());
            }
            if let Some(location) = location {
                port.insert("server".into(), json!({ "location": location }));
            }
            port.insert("custom".into(), Value::Object(custom));
            if let Some((k, v)) = extra {
                port.insert(k, v);
            }
            Value::Object(port)
        })
        .boxed()
}

/// A name for a bucket, folder, table, stream, topic or key: mostly valid for all of them,
/// sometimes not valid for any.
fn name() -> BoxedStrategy<String> {
    prop_oneof![
        40 => "[a-z0-9][a-z0-9-]{1,10}[a-z0-9]",
        2 => "[a-zA-Z0-9._=-]{1,12}",
        2 => prop::sample::select(vec![
            "*", "a*", "..", ".", "a?b", "a/b", "", "A", "a b", "a\u{202e}b", "a\nb", "-",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
        1 => (1usize..400).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

/// An output port the catalogue can usually resolve: the ARNs its type needs, in the partition
/// the integration runs in (mostly), sometimes a KMS key, sometimes a stray field.
fn valid_port() -> BoxedStrategy<(Partition, Value)> {
    let env = prop::sample::select(vec![
        (Partition::Aws, "aws", "eu-central-1"),
        (Partition::Aws, "aws", "us-east-1"),
        (Partition::AwsCn, "aws-cn", "cn-north-1"),
        (Partition::AwsUsGov, "aws-us-gov", "us-gov-west-1"),
    ]);
    let kind = prop::sample::select(vec![
        "s3_bucket",
        "s3_folder",
        "glue_table",
        "kinesis_stream",
        "msk_topic",
    ]);
    let stray = prop::option::weighted(
        0.15,
        (
            "aws-[a-z-]{0,10}-arn",
            prop_oneof![arn_text().prop_map(Value::from), leaf()],
        ),
    );
    (
        env,
        prop_oneof![9 => Just("111122223333"), 1 => Just("444455556666")],
        kind,
        prop::collection::vec(name(), 8),
        prop::collection::vec(0usize..4, 4),
        stray,
    )
        .prop_map(
            |((partition, p, region), account, kind, n, switch, stray)| {
                let arn = |service: &str, resource: String| {
                    Value::from(if service == "s3" {
                        format!("arn:{p}:s3:::{resource}")
                    } else {
                        format!("arn:{p}:{service}:{region}:{account}:{resource}")
                    })
                };
                let folder = format!("{}/{}", n[0], n[1..2 + switch[0] % 3].join("/"));
                let mut custom = Map::new();
                let mut field = |name: &str, value: Value| custom.insert(name.to_owned(), value);
                match kind {
                    "s3_bucket" => field("aws-s3-bucket-arn", arn("s3", n[0].clone())),
                    "s3_folder" => field("aws-s3-folder-arn", arn("s3", folder.clone())),
                    "glue_table" => {
                        field(
                            "aws-glue-table-arn",
                            arn("glue", format!("table/{}/{}", n[2], n[3])),
                        );
                        field(
                            "aws-athena-workgroup-arn",
                            arn("athena", format!("workgroup/{}", n[4])),
                        );
                        field("aws-s3-folder-arn", arn("s3", folder.clone()));
                        match switch[1] {
                            0 => field(
                                "aws-glue-database-arn",
                                arn("glue", format!("database/{}", n[2])),
                            ),
                            1 => field("aws-glue-catalog-arn", arn("glue", "catalog".into())),
                            _ => None,
                        }
                    }
                    "kinesis_stream" => field(
                        "aws-kinesis-stream-arn",
                        arn("kinesis", format!("stream/{}", n[2])),
                    ),
                    _ => {
                        let cluster = format!("{}/{}", n[2], n[3]);
                        field(
                            "aws-msk-topic-arn",
                            arn("kafka", format!("topic/{cluster}/{}", n[4])),
                        );
                        for (i, group) in n[5..5 + switch[1] % 3].iter().enumerate() {
                            field(
                                &format!("aws-msk-group-{i}-arn"),
                                arn("kafka", format!("group/{cluster}/{group}")),
                            );
                        }
                        if switch[2] == 0 {
                            field(
                                "aws-msk-cluster-arn",
                                arn("kafka", format!("cluster/{cluster}")),
                            );
                        }
                        None
                    }
                };
                if switch[3] == 0 {
                    field("aws-kms-key-arn", arn("kms", format!("key/{}", n[7])));
                }
                let mut port = json!({"id": n[6]});
                // Mostly declared; S3 and Kinesis ports may leave the type to be inferred, S3 ones
                // then sometimes from `server.location` alone.
                match (kind, switch[2]) {
                    ("s3_bucket" | "s3_folder", 3) => {
                        port["type"] = "s3".into();
                        if switch[0] == 3 {
                            custom.clear();
                            port["server"] = json!({"location": format!("s3://{folder}/")});
                        }
                    }
                    ("kinesis_stream", 3) => port["type"] = "kinesis".into(),
                    _ => {
                        custom.insert("output-port-type".into(), kind.into());
                    }
                }
                if let Some((name, value)) = stray {
                    custom.insert(name, value);
                }
                port["custom"] = Value::Object(custom);
                (partition, port)
            },
        )
        .boxed()
}

fn port() -> BoxedStrategy<(Partition, Value)> {
    let any_partition =
        prop::sample::select(vec![Partition::Aws, Partition::AwsCn, Partition::AwsUsGov]);
    prop_oneof![
        4 => valid_port(),
        1 => (any_partition.clone(), hostile_port()),
        1 => (any_partition, json_value()),
    ]
    .boxed()
}

fn status() -> BoxedStrategy<Status> {
    prop_oneof![
        (text(), text(), prop::option::of((text(), text()))).prop_map(
            |(role_arn, policy_name, access)| Status::Active {
                role_arn,
                policy_name,
                access_role: access.map(|(role_arn, external_id)| AccessRoleStatus {
                    role_arn,
                    external_id
                }),
            }
        ),
        Just(Status::Inactive),
        prop_oneof![text(), "[a-z ]{900,1100}", ".{990,1010}"]
            .prop_map(|message| Status::Error { message }),
    ]
    .boxed()
}

/// An agreement whose tags and custom map mix user entries, the integration's own, and junk.
fn agreement_with_status_fields() -> BoxedStrategy<Agreement> {
    let tags = prop_oneof![
        4 => prop::collection::vec(
            prop_oneof![text().prop_map(Value::from), leaf()],
            0..8,
        )
        .prop_map(Value::from),
        1 => leaf(),
    ];
    let custom_key = prop_oneof![
        prop::sample::select(OWN_FIELDS.to_vec()).prop_map(str::to_owned),
        key(),
    ];
    let custom = prop_oneof![
        4 => prop::collection::vec((custom_key, json_value()), 0..8)
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        1 => leaf(),
    ];
    (document(), tags, custom)
        .prop_map(|(mut doc, tags, custom)| {
            doc["tags"] = tags;
            doc["custom"] = custom;
            Agreement::from_value(doc).unwrap()
        })
        .boxed()
}

fn event(id: &str, resource: Option<&str>, pad: usize) -> FeedEvent {
    let mut value = json!({"id": id, "pad": "x".repeat(pad)});
    if let Some(resource) = resource {
        value["data"] = json!({ "id": resource });
    }
    let raw = RawValue::from_string(value.to_string()).unwrap();
    FeedEvent::parse(raw, 0).unwrap()
}

fn is_sqs_id(id: &str) -> bool {
    (1..=128).contains(&id.chars().count())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
}

/// Every string in a policy document: actions, resources, condition keys and values.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The CloudEvent

proptest! {
    #![proptest_config(config(512))]

    /// The two ways events arrive: one body from SQS (manage_iam_policies) and a feed page
    /// (poll_feed's DMM client). Either the text is not JSON (serde's error, before the
    /// parser), or the parser answers.
    #[test]
    fn feed_events_parse_or_are_refused_with_a_message(
        text in json_ish(),
        position in 0usize..100,
    ) {
        if let Ok(raw) = RawValue::from_string(text.clone()) {
            check_event(FeedEvent::parse(raw, position), &text, position);
        }
        if let Ok(page) = serde_json::from_str::<Vec<Box<RawValue>>>(&text) {
            for (position, raw) in page.into_iter().enumerate() {
                let exact = raw.get().to_owned();
                check_event(FeedEvent::parse(raw, position), &exact, position);
            }
        }
    }

    #[test]
    fn feed_events_from_any_json_value(value in json_value(), id in prop::option::of(text())) {
        let mut value = value;
        if let (Some(id), Value::Object(map)) = (id, &mut value) {
            map.insert("id".into(), id.into());
        }
        let text = value.to_string();
        check_event(FeedEvent::parse(RawValue::from_string(text.clone()).unwrap(), 7), &text, 7);
    }
}

fn check_event(parsed: Result<FeedEvent, impl std::fmt::Display>, text: &str, position: usize) {
    let event = match parsed {
        Ok(event) => event,
        Err(error) => {
            let text = message(&error);
            assert!(text.contains(&format!("#{position}")), "{text}");
            return;
        }
    };
    assert!(!event.id().is_empty());
    assert_eq!(event.raw_json(), text, "the exact bytes are kept");
    assert!(is_sqs_id(&feed::deduplication_id(&event)));
    assert!(is_sqs_id(&feed::group_id(&event)));
    // For objects, the routing fields are what a plain JSON reading sees. (A three-element
    // array `[id, type, data]` is accepted too, because serde reads a struct from a sequence;
    // DMM never sends one, so only objects are compared here.)
    let value: Value = serde_json::from_str(text).unwrap();
    if value.is_object() {
        assert_eq!(Some(event.id()), value["id"].as_str());
        assert_eq!(event.event_type(), value["type"].as_str());
        let resource = value["data"]["id"].as_str().filter(|id| !id.is_empty());
        assert_eq!(event.resource_id(), resource);
    }
}

// ---------------------------------------------------------------------------------------------
// Agreement, data product, team

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn agreements_from_any_value(value in prop_oneof![1 => json_value(), 3 => agreement_value()]) {
        let agreement = match Agreement::from_value(value.clone()) {
            Ok(agreement) => agreement,
            Err(error) => {
                message(&error);
                return Ok(());
            }
        };
        prop_assert!(!agreement.id().is_empty());
        prop_assert_eq!(agreement.to_value(), value.clone(), "the document is kept whole");
        prop_assert_eq!(
            agreement.is_active(),
            value["info"]["active"] == Value::Bool(true),
            "only a literal `true` is active"
        );
        let _ = agreement.status();
        match agreement.provider() {
            Ok(provider) => {
                prop_assert!(!provider.data_product_id.is_empty());
                prop_assert!(!provider.output_port_id.is_empty());
            }
            Err(error) => { message(&error); }
        }
        match agreement.consumer() {
            Ok(ConsumerRef::DataProduct(id) | ConsumerRef::Team(id) | ConsumerRef::User(id)) => {
                prop_assert!(!id.is_empty());
            }
            Err(error) => { message(&error); }
        }
        let tags = agreement.tags();
        let expected: Vec<String> = value["tags"].as_array().into_iter().flatten()
            .filter_map(|t| t.as_str().map(str::to_owned)).collect();
        prop_assert_eq!(&tags, &expected);
        let custom = agreement.custom_map();
        for (key, field) in &custom {
            prop_assert_eq!(agreement.custom(key), field.as_str());
        }

        // Replacing tags and custom keeps every other field and the id.
        let mut new_custom = custom.clone();
        new_custom.insert("k".into(), "v".into());
        let updated = agreement.with_status(vec!["t".into()], new_custom.clone());
        prop_assert_eq!(updated.id(), agreement.id());
        prop_assert_eq!(updated.tags(), vec!["t".to_owned()]);
        prop_assert_eq!(updated.custom_map(), new_custom);
        let (mut before, mut after) = (value.clone(), updated.to_value());
        for doc in [&mut before, &mut after] {
            let map = doc.as_object_mut().unwrap();
            map.remove("tags");
            map.remove("custom");
        }
        prop_assert_eq!(before, after);
        prop_assert_eq!(Agreement::from_value(updated.to_value()).unwrap(), updated);
    }

    #[test]
    fn data_products_and_teams_from_any_value(
        value in prop_oneof![json_value(), document()],
        key in key(),
        port_id in text(),
    ) {
        match DataProduct::from_value(value.clone()) {
            Ok(product) => {
                if let Some(id) = product.id() {
                    prop_assert!(!id.is_empty());
                }
                if let Some(custom) = product.custom(&key) {
                    prop_assert!(!custom.is_empty() && custom == custom.trim());
                }
                prop_assert!(product.custom_fields().is_object());
                if let Some(port) = product.output_port(&port_id) {
                    prop_assert_eq!(port["id"].as_str(), Some(port_id.as_str()));
                }
            }
            Err(error) => { message(&error); }
        }
        match Team::from_value(value) {
            Ok(team) => {
                if let Some(custom) = team.custom(&key) {
                    prop_assert!(!custom.is_empty() && custom == custom.trim());
                }
                prop_assert!(team.custom_fields().is_object());
            }
            Err(error) => { message(&error); }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Status write-back

proptest! {
    #![proptest_config(config(512))]

    /// The second write of the same status is no write at all (what stops the integration from
    /// reacting to its own `AccessUpdatedEvent` forever), and nothing a user set is lost.
    #[test]
    fn status_write_back_is_idempotent_and_keeps_user_data(
        agreement in agreement_with_status_fields(),
        status in status(),
    ) {
        let first = status::with_status(&agreement, &status).unwrap_or_else(|| agreement.clone());
        let second = status::with_status(&first, &status);
        prop_assert!(second.is_none(), "the second write changed {:?}", first);

        let user_tags: Vec<String> = agreement.tags().into_iter()
            .filter(|t| !OWN_TAGS.contains(&t.as_str())).collect();
        let status_tag = match &status {
            Status::Active { .. } => TAG_ACTIVE,
            Status::Inactive => TAG_INACTIVE,
            Status::Error { .. } => TAG_ERROR,
        };
        let mut expected_tags = user_tags;
        expected_tags.extend([TAG_INTEGRATION.to_owned(), status_tag.to_owned()]);
        prop_assert_eq!(first.tags(), expected_tags, "user tags kept in order, own tags once");

        let before = agreement.custom_map();
        let after = first.custom_map();
        for (key, value) in &before {
            if !OWN_FIELDS.contains(&key.as_str()) {
                prop_assert_eq!(after.get(key), Some(value), "user field {} kept", key);
            }
        }
        for key in after.keys() {
            prop_assert!(before.contains_key(key) || OWN_FIELDS.contains(&key.as_str()));
        }
        match &status {
            Status::Active { role_arn, policy_name, access_role } => {
                prop_assert_eq!(first.custom(FIELD_ROLE_ARN), Some(role_arn.as_str()));
                prop_assert_eq!(first.custom(FIELD_POLICY_NAME), Some(policy_name.as_str()));
                prop_assert_eq!(
                    first.custom(FIELD_EXTERNAL_ID),
                    access_role.as_ref().map(|a| a.external_id.as_str())
                );
                prop_assert!(!after.contains_key(FIELD_ERROR));
            }
            Status::Inactive => {
                for field in OWN_FIELDS {
                    prop_assert!(!after.contains_key(field));
                }
            }
            Status::Error { message } => {
                let written = first.custom(FIELD_ERROR).unwrap();
                prop_assert!(written.chars().count() <= 1001);
                let kept = written.strip_suffix('…').unwrap_or(written);
                prop_assert!(message.starts_with(kept));
            }
        }
        prop_assert_eq!(first.id(), agreement.id());
    }
}

// ---------------------------------------------------------------------------------------------
// Batching and FIFO ids

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn batches_keep_order_and_respect_sqs_limits(
        sizes in prop::collection::vec(
            prop_oneof![
                6 => 0usize..2_000,
                3 => 20_000usize..80_000,
                1 => (MAX_BATCH_BYTES - 64)..(MAX_BATCH_BYTES + 1_000),
            ],
            0..40,
        ),
    ) {
        let events: Vec<FeedEvent> = sizes.iter().enumerate()
            .map(|(i, &pad)| event(&format!("e{i}"), Some("a"), pad)).collect();
        let refs: Vec<&FeedEvent> = events.iter().collect();
        let batches = feed::batches(&refs);

        let flat: Vec<&FeedEvent> = batches.iter().flatten().copied().collect();
        prop_assert_eq!(flat.len(), events.len());
        prop_assert!(flat.iter().zip(&events).all(|(a, b)| std::ptr::eq(*a, b)), "order kept");
        let bytes = |batch: &[&FeedEvent]| batch.iter().map(|e| e.raw_json().len()).sum::<usize>();
        for (index, batch) in batches.iter().enumerate() {
            prop_assert!(!batch.is_empty() && batch.len() <= MAX_BATCH_ENTRIES);
            prop_assert!(bytes(batch) <= MAX_BATCH_BYTES || batch.len() == 1,
                "{} bytes in {} entries", bytes(batch), batch.len());
            // Greedy: the next batch starts only because its first event did not fit here.
            if let Some(next) = batches.get(index + 1) {
                prop_assert!(batch.len() == MAX_BATCH_ENTRIES
                    || bytes(batch) + next[0].raw_json().len() > MAX_BATCH_BYTES);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn fifo_ids_are_always_valid_and_distinct(
        a in prop_oneof![any::<String>(), "[ -~]{120,140}", ".{0,200}"],
        b in prop_oneof![any::<String>(), "[a-zA-Z0-9-]{1,130}"],
        resource in prop::option::of(prop_oneof![any::<String>(), ".{100,200}"]),
    ) {
        prop_assume!(!a.is_empty() && !b.is_empty());
        let first = event(&a, resource.as_deref(), 0);
        let second = event(&b, None, 0);
        let ids = [
            feed::deduplication_id(&first),
            feed::group_id(&first),
            feed::group_id(&second),
        ];
        for id in ids {
            prop_assert!(is_sqs_id(&id), "{:?}", id);
        }
        let same_id = event(&a, None, 9);
        prop_assert_eq!(
            feed::deduplication_id(&first),
            feed::deduplication_id(&same_id),
            "deterministic, from the id alone"
        );
        if a != b {
            prop_assert_ne!(feed::deduplication_id(&first), feed::deduplication_id(&second));
        }
        if is_sqs_id(&a) {
            prop_assert_eq!(feed::deduplication_id(&first), a, "valid ids are used as they are");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The policy builder

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn ports_resolve_to_bounded_policies_or_typed_errors(
        (partition, port) in port(),
    ) {
        let access = match resolve_port(&port, &Context::new(partition)) {
            Ok(access) => access,
            Err(error) => {
                let text = message(&error);
                prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
                return Ok(());
            }
        };
        let policy = access.policy();
        let json = policy.to_json();
        prop_assert!(!policy.statements().is_empty());
        prop_assert_eq!(PolicyDocument::from_iam(&json).unwrap(), policy.clone());
        // Fits IAM's inline limit, or the budget check refuses it with a typed error.
        match check_inline_policy_budget("role", "policy", &policy, []) {
            Ok(()) => prop_assert!(policy.size() <= ROLE_INLINE_POLICY_LIMIT),
            Err(error) => {
                prop_assert!(policy.size() > ROLE_INLINE_POLICY_LIMIT);
                message(&error);
            }
        }

        // Read-only grants on named resources: the only wildcard is a trailing `/*` the
        // catalogue appends (objects under a bucket or folder, a stream's consumers).
        let mut all = Vec::new();
        strings(&serde_json::from_str(&json).unwrap(), &mut all);
        for s in &all {
            if s.contains(['*', '?']) {
                let one = s.matches(['*', '?']).count() == 1;
                prop_assert!(s.ends_with("/*") && one && s.len() > 2, "{} in {}", s, json);
            }
        }
        let arn_prefix = format!("arn:{}:", partition.as_str());
        for statement in policy.statements() {
            for action in statement.actions() {
                let verb = action.split_once(':').map_or("", |(_, verb)| verb);
                prop_assert!(!verb.is_empty() && !verb.contains('*'), "{}", action);
                prop_assert!(!WRITE_VERBS.iter().any(|w| verb.starts_with(w)), "{}", action);
            }
            for resource in statement.resources() {
                prop_assert!(resource.starts_with(&arn_prefix), "{}", resource);
            }
        }
    }
}

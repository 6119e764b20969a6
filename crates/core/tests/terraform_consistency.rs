//! Terraform (`terraform/`) must agree with the code, statically (no AWS, no terraform binary):
//!
//! * each function's `environment.variables` are exactly the variables its binary reads
//!   (`config::POLL_FEED_VARIABLES`, `config::MANAGE_IAM_POLICIES_VARIABLES`);
//! * each function's role allows exactly the actions its binary calls (`permissions::*_ACTIONS`,
//!   plus the SQS actions the event source mapping uses for manage_iam_policies, plus writing the
//!   function's own log group, which the Lambda service does on the function's behalf);
//! * those actions are scoped: no `Resource: "*"`, IAM writes only on the managed-role allowlist,
//!   an explicit Deny on the integration's own roles, ListBucket only with an `s3:prefix` condition.
//!
//! The role's policies are found by following references from `aws_lambda_function.<name>.role`
//! through every `aws_iam_role_policy` on that role to its `data.aws_iam_policy_document`
//! (including `source_policy_documents`), so a statement added anywhere is seen here. Policies
//! the test cannot read (managed policy attachments, inline JSON) are rejected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dmm_aws_core::config::{
    DEFAULT_LAST_EVENT_ID_OBJECT_NAME, MANAGE_IAM_POLICIES_VARIABLES, POLL_FEED_VARIABLES,
};
use dmm_aws_core::permissions::{
    MANAGE_IAM_POLICIES_ACTIONS, MANAGE_IAM_POLICIES_EVENT_SOURCE_ACTIONS, POLL_FEED_ACTIONS,
};
use hcl::expr::{TemplateExpr, TraversalOperator};
use hcl::{Block, Body, Expression, ObjectKey};

/// Written by the Lambda service with the function's role into the function's own log group; the
/// function's code never calls them.
const LAMBDA_LOGGING_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];

/// The root module: every top-level block of every `terraform/*.tf` file.
struct Module {
    blocks: Vec<(String, Block)>,
}

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../terraform")
}

fn load() -> Module {
    load_edited(|_, text| text.to_owned())
}

/// The module with `edit(file name, text)` applied to each file: lets the tests below prove that
/// the checks catch drift.
fn load_edited(edit: impl Fn(&str, &str) -> String) -> Module {
    let dir = terraform_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    let mut blocks = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = edit(&name, &std::fs::read_to_string(&path).unwrap());
        let body =
            hcl::parse(&text).unwrap_or_else(|e| panic!("terraform/{name} does not parse: {e}"));
        blocks.extend(body.into_blocks().map(|b| (name.clone(), b)));
    }
    Module { blocks }
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

impl Module {
    /// All `<kind> "<type>" "<name>"` blocks of a type, as (name, block).
    fn all<'a>(&'a self, kind: &'a str, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> {
        self.blocks.iter().filter_map(move |(_, b)| {
            let l = labels(b);
            (b.identifier() == kind && l.len() == 2 && l[0] == ty)
                .then(|| (b.labels()[1].as_str(), b))
        })
    }

    fn get(&self, kind: &str, ty: &str, name: &str) -> &Block {
        self.blocks
            .iter()
            .map(|(_, b)| b)
            .find(|b| b.identifier() == kind && labels(b) == [ty, name])
            .unwrap_or_else(|| panic!("terraform/ has no {kind} \"{ty}\" \"{name}\""))
    }

    fn variable(&self, name: &str) -> &Block {
        self.blocks
            .iter()
            .map(|(_, b)| b)
            .find(|b| b.identifier() == "variable" && labels(b) == [name])
            .unwrap_or_else(|| panic!("terraform/ has no variable \"{name}\""))
    }

    fn local(&self, name: &str) -> &Expression {
        self.blocks
            .iter()
            .filter(|(_, b)| b.identifier() == "locals")
            .flat_map(|(_, b)| b.body().attributes())
            .find(|a| a.key() == name)
            .map(|a| a.expr())
            .unwrap_or_else(|| panic!("terraform/ has no local `{name}`"))
    }
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn sub_blocks<'a>(body: &'a Body, ident: &'a str) -> impl Iterator<Item = &'a Block> {
    body.blocks().filter(move |b| b.identifier() == ident)
}

/// `a.b.c` / `a.b[0].c` as path segments; `None` for anything but a plain reference.
fn reference(expr: &Expression) -> Option<Vec<String>> {
    let Expression::Traversal(t) = expr else {
        return None;
    };
    let Expression::Variable(root) = &t.expr else {
        return None;
    };
    let mut path = vec![root.as_str().to_owned()];
    for op in &t.operators {
        match op {
            TraversalOperator::GetAttr(id) => path.push(id.as_str().to_owned()),
            TraversalOperator::Index(Expression::Number(n)) => path.push(n.to_string()),
            TraversalOperator::LegacyIndex(n) => path.push(n.to_string()),
            _ => return None,
        }
    }
    Some(path)
}

fn reference_str(expr: &Expression) -> String {
    reference(expr)
        .map(|p| p.join("."))
        .unwrap_or_else(|| format!("{expr}"))
}

/// A string without interpolation.
fn literal(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(s) => Some(s),
        Expression::TemplateExpr(t) => match t.as_ref() {
            TemplateExpr::QuotedString(s) if !s.contains("${") && !s.contains("%{") => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// Every string or template leaf of an expression (through lists, conditionals, parentheses,
/// function arguments), as its raw template text; references are returned as `ref:<path>`.
fn leaves(expr: &Expression, out: &mut Vec<String>) {
    match expr {
        Expression::String(s) => out.push(s.clone()),
        Expression::TemplateExpr(t) => out.push(t.to_string()),
        Expression::Array(items) => items.iter().for_each(|e| leaves(e, out)),
        Expression::Parenthesis(e) => leaves(e, out),
        Expression::Conditional(c) => {
            leaves(&c.true_expr, out);
            leaves(&c.false_expr, out);
        }
        Expression::FuncCall(f) => f.args.iter().for_each(|e| leaves(e, out)),
        Expression::ForExpr(f) => leaves(&f.value_expr, out),
        other => out.push(format!("ref:{}", reference_str(other))),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Panics with both directions of the difference when the sets differ.
fn assert_same(what: &str, code_side: &str, code: &BTreeSet<String>, terraform: &BTreeSet<String>) {
    let missing: Vec<_> = code.difference(terraform).collect();
    let extra: Vec<_> = terraform.difference(code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} differ between the code and terraform/\n  \
         in the code ({code_side}) but not in Terraform: {missing:?}\n  \
         in Terraform but not in the code:            {extra:?}\n  \
         code:      {code:?}\n  terraform: {terraform:?}"
    );
}

// --- Environment variables ----------------------------------------------------------------------

fn environment_variables(module: &Module, function: &str) -> BTreeSet<String> {
    let lambda = module.get("resource", "aws_lambda_function", function);
    let env: Vec<_> = sub_blocks(lambda.body(), "environment").collect();
    assert_eq!(
        env.len(),
        1,
        "aws_lambda_function.{function} needs exactly one environment block"
    );
    let Some(Expression::Object(vars)) = attr(env[0].body(), "variables") else {
        panic!("aws_lambda_function.{function}: environment.variables must be an object literal");
    };
    let mut names = BTreeSet::new();
    for key in vars.keys() {
        let name = match key {
            ObjectKey::Identifier(id) => id.as_str().to_owned(),
            ObjectKey::Expression(e) => literal(e)
                .unwrap_or_else(|| {
                    panic!("aws_lambda_function.{function}: computed env var name {e}")
                })
                .to_owned(),
            other => panic!("aws_lambda_function.{function}: unexpected env var key {other:?}"),
        };
        assert!(
            names.insert(name.clone()),
            "aws_lambda_function.{function}: `{name}` set twice"
        );
    }
    names
}

fn check_poll_feed_environment_is_exactly_what_the_binary_reads(module: &Module) {
    assert_same(
        "poll_feed environment variables",
        "config::POLL_FEED_VARIABLES",
        &set(POLL_FEED_VARIABLES),
        &environment_variables(module, "poll_feed"),
    );
}

fn check_manage_iam_policies_environment_is_exactly_what_the_binary_reads(module: &Module) {
    assert_same(
        "manage_iam_policies environment variables",
        "config::MANAGE_IAM_POLICIES_VARIABLES",
        &set(MANAGE_IAM_POLICIES_VARIABLES),
        &environment_variables(module, "manage_iam_policies"),
    );
}

fn check_checkpoint_key_default_matches_the_code(module: &Module) {
    let default = attr(
        module.variable("last_event_id_object_name").body(),
        "default",
    )
    .and_then(literal)
    .expect("variable last_event_id_object_name needs a literal default");
    assert_eq!(
        default, DEFAULT_LAST_EVENT_ID_OBJECT_NAME,
        "variable last_event_id_object_name defaults differ from config::DEFAULT_LAST_EVENT_ID_OBJECT_NAME"
    );
}

// --- IAM ------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Statement {
    origin: String,
    effect: String,
    actions: Vec<String>,
    resources: Vec<String>,
    condition_keys: Vec<String>,
}

/// The role of a function, from `role = aws_iam_role.<name>.arn`.
fn role_of(module: &Module, function: &str) -> String {
    let lambda = module.get("resource", "aws_lambda_function", function);
    let role = attr(lambda.body(), "role").expect("aws_lambda_function without role");
    match reference(role).as_deref() {
        Some([r, name, arn]) if r == "aws_iam_role" && arn == "arn" => name.clone(),
        _ => panic!(
            "aws_lambda_function.{function}.role must be aws_iam_role.<name>.arn, is {}",
            reference_str(role)
        ),
    }
}

fn policy_document_statements(
    module: &Module,
    doc: &str,
    seen: &mut Vec<String>,
    out: &mut Vec<Statement>,
) {
    assert!(
        !seen.contains(&doc.to_owned()),
        "policy document cycle through {doc}"
    );
    seen.push(doc.to_owned());
    let block = module.get("data", "aws_iam_policy_document", doc);
    let body = block.body();
    for key in ["override_policy_documents", "policy_id"] {
        assert!(
            attr(body, key).is_none(),
            "data.aws_iam_policy_document.{doc}: `{key}` is not supported by this test"
        );
    }
    if let Some(sources) = attr(body, "source_policy_documents") {
        let Expression::Array(items) = sources else {
            panic!(
                "data.aws_iam_policy_document.{doc}.source_policy_documents must be a list of references"
            )
        };
        for item in items {
            match reference(item).as_deref() {
                Some([d, t, name, json])
                    if d == "data" && t == "aws_iam_policy_document" && json == "json" =>
                {
                    policy_document_statements(module, name, seen, out)
                }
                _ => panic!(
                    "data.aws_iam_policy_document.{doc}: source {} is not a policy document reference",
                    reference_str(item)
                ),
            }
        }
    }
    let dynamic = body
        .blocks()
        .filter(|b| b.identifier() == "dynamic" && labels(b) == ["statement"])
        .map(|b| {
            sub_blocks(b.body(), "content")
                .next()
                .expect("dynamic statement without content")
        });
    for (i, st) in sub_blocks(body, "statement").chain(dynamic).enumerate() {
        let b = st.body();
        let origin = format!("data.aws_iam_policy_document.{doc} statement #{}", i + 1);
        for key in ["not_actions", "not_resources", "not_principals"] {
            assert!(
                attr(b, key).is_none(),
                "{origin}: `{key}` cannot be checked against the code; list actions and resources"
            );
        }
        let effect = attr(b, "effect")
            .map_or("Allow", |e| literal(e).expect("effect must be a literal"))
            .to_owned();
        let actions = match attr(b, "actions") {
            Some(Expression::Array(items)) => items
                .iter()
                .map(|a| {
                    literal(a)
                        .unwrap_or_else(|| panic!("{origin}: action {a} must be a literal string"))
                        .to_owned()
                })
                .collect(),
            other => panic!("{origin}: actions must be a literal list, is {other:?}"),
        };
        let mut resources = Vec::new();
        match attr(b, "resources") {
            Some(e) => leaves(e, &mut resources),
            None => panic!("{origin}: no resources (would mean \"*\")"),
        }
        let condition_keys = sub_blocks(b, "condition")
            .map(|c| {
                attr(c.body(), "variable")
                    .and_then(literal)
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect();
        out.push(Statement {
            origin,
            effect,
            actions,
            resources,
            condition_keys,
        });
    }
}

/// Every statement of every policy on the function's role.
fn role_statements(module: &Module, function: &str) -> (String, Vec<Statement>) {
    let role = role_of(module, function);
    let role_block = module.get("resource", "aws_iam_role", &role);
    for key in ["inline_policy", "managed_policy_arns"] {
        assert!(
            attr(role_block.body(), key).is_none()
                && sub_blocks(role_block.body(), key).next().is_none(),
            "aws_iam_role.{role}: `{key}` cannot be checked; use aws_iam_role_policy with a data.aws_iam_policy_document"
        );
    }
    let refers_to_role = |b: &Block| {
        attr(b.body(), "role")
            .and_then(reference)
            .is_some_and(|p| p.len() == 3 && p[0] == "aws_iam_role" && p[1] == role)
    };
    for ty in [
        "aws_iam_role_policy_attachment",
        "aws_iam_policy_attachment",
        "aws_iam_role_policy_attachments_exclusive",
    ] {
        for (name, b) in module.all("resource", ty) {
            assert!(
                !refers_to_role(b) && attr(b.body(), "roles").is_none(),
                "{ty}.{name}: managed policies on the function roles cannot be checked against the code"
            );
        }
    }
    let mut statements = Vec::new();
    let mut policies = 0;
    for (name, b) in module.all("resource", "aws_iam_role_policy") {
        if !refers_to_role(b) {
            continue;
        }
        policies += 1;
        let policy = attr(b.body(), "policy").expect("aws_iam_role_policy without policy");
        match reference(policy).as_deref() {
            Some([d, t, doc, json])
                if d == "data" && t == "aws_iam_policy_document" && json == "json" =>
            {
                policy_document_statements(module, doc, &mut Vec::new(), &mut statements)
            }
            _ => panic!(
                "aws_iam_role_policy.{name}.policy must be data.aws_iam_policy_document.<name>.json so it can be checked"
            ),
        }
    }
    assert!(
        policies > 0,
        "no aws_iam_role_policy on aws_iam_role.{role}"
    );
    (role, statements)
}

fn allowed_actions(statements: &[Statement]) -> BTreeSet<String> {
    statements
        .iter()
        .filter(|s| s.effect == "Allow")
        .flat_map(|s| s.actions.iter().cloned())
        .collect()
}

/// Scope rules every Allow statement of a function role must follow.
fn assert_scoped(module: &Module, function: &str, statements: &[Statement]) {
    for s in statements.iter().filter(|s| s.effect == "Allow") {
        assert!(
            !s.resources
                .iter()
                .any(|r| r == "*" || r.ends_with(":*:*") || r == "ref:*"),
            "{}: Resource \"*\" is not allowed ({:?})",
            s.origin,
            s.resources
        );
        for a in &s.actions {
            assert!(!a.contains('*'), "{}: wildcard action {a}", s.origin);
        }
        if s.actions.iter().any(|a| a == "s3:ListBucket") {
            assert_eq!(
                s.actions,
                ["s3:ListBucket"],
                "{}: keep ListBucket in its own statement",
                s.origin
            );
            assert!(
                s.condition_keys.iter().any(|k| k == "s3:prefix"),
                "{}: s3:ListBucket needs an s3:prefix condition",
                s.origin
            );
        }
        if s.actions.iter().any(|a| a.starts_with("logs:")) {
            let own = format!("${{aws_cloudwatch_log_group.{function}.arn}}:*");
            assert!(
                s.resources.iter().all(|r| *r == own),
                "{}: logs actions only on the function's own log group ({own}), not {:?}",
                s.origin,
                s.resources
            );
        }
        if s.actions.iter().any(|a| a.starts_with("iam:")) {
            assert_iam_scoped(module, s);
        }
    }
}

/// IAM actions only on `arn:<partition>:iam::<account>:role<managed_role_path_prefix>…`.
fn assert_iam_scoped(module: &Module, s: &Statement) {
    assert!(
        s.actions.iter().all(|a| a.starts_with("iam:")),
        "{}: keep IAM actions in their own statement",
        s.origin
    );
    assert_eq!(
        s.resources,
        ["ref:local.managed_role_arns"],
        "{}: IAM actions must be on local.managed_role_arns",
        s.origin
    );
    let mut arns = Vec::new();
    leaves(module.local("managed_role_arns"), &mut arns);
    assert!(!arns.is_empty());
    for arn in &arns {
        assert!(
            arn.starts_with("${local.role_arn_prefix}${var.managed_role_path_prefix}"),
            "local.managed_role_arns: {arn} is not under the managed role path prefix"
        );
    }
    let mut prefix = Vec::new();
    leaves(module.local("role_arn_prefix"), &mut prefix);
    assert_eq!(
        prefix,
        ["arn:${local.partition}:iam::${local.account_id}:role"],
        "local.role_arn_prefix"
    );
}

fn check_poll_feed_role_allows_exactly_what_the_binary_calls(module: &Module) {
    let (role, statements) = role_statements(module, "poll_feed");
    let mut expected = set(POLL_FEED_ACTIONS);
    expected.extend(set(LAMBDA_LOGGING_ACTIONS));
    assert_same(
        &format!("actions allowed to aws_iam_role.{role} (poll_feed)"),
        "permissions::POLL_FEED_ACTIONS + Lambda logging",
        &expected,
        &allowed_actions(&statements),
    );
    assert_scoped(module, "poll_feed", &statements);
}

fn check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
    module: &Module,
) {
    let (role, statements) = role_statements(module, "manage_iam_policies");
    let mut expected = set(MANAGE_IAM_POLICIES_ACTIONS);
    expected.extend(set(MANAGE_IAM_POLICIES_EVENT_SOURCE_ACTIONS));
    expected.extend(set(LAMBDA_LOGGING_ACTIONS));
    assert_same(
        &format!("actions allowed to aws_iam_role.{role} (manage_iam_policies)"),
        "permissions::MANAGE_IAM_POLICIES_ACTIONS + MANAGE_IAM_POLICIES_EVENT_SOURCE_ACTIONS + Lambda logging",
        &expected,
        &allowed_actions(&statements),
    );
    assert_scoped(module, "manage_iam_policies", &statements);
}

fn check_manage_iam_policies_can_never_write_to_the_integrations_own_roles(module: &Module) {
    let (_, statements) = role_statements(module, "manage_iam_policies");
    let iam_actions: Vec<&str> = MANAGE_IAM_POLICIES_ACTIONS
        .iter()
        .copied()
        .filter(|a| a.starts_with("iam:"))
        .collect();
    let deny = statements
        .iter()
        .find(|s| s.effect == "Deny" && s.resources == ["ref:local.protected_role_arns"])
        .expect("manage_iam_policies needs a Deny statement on local.protected_role_arns");
    for action in &iam_actions {
        assert!(
            deny.actions.iter().any(|d| d == action || d == "iam:*"),
            "{}: the Deny does not cover {action}",
            deny.origin
        );
    }

    // The protected names are the roles of both functions (plus what the operator adds) ...
    let mut names = Vec::new();
    leaves(module.local("protected_role_names"), &mut names);
    for function in ["poll_feed", "manage_iam_policies"] {
        let role = role_of(module, function);
        let role_name = attr(module.get("resource", "aws_iam_role", &role).body(), "name")
            .expect("role without name");
        let role_name = format!("ref:{}", reference_str(role_name));
        assert!(
            names.contains(&role_name),
            "local.protected_role_names must contain the name of aws_iam_role.{role} ({role_name}); has {names:?}"
        );
    }
    // ... the Deny covers them ...
    let mut arns = Vec::new();
    leaves(module.local("protected_role_arns"), &mut arns);
    assert!(
        arns.iter().any(|a| a.contains("${name}")),
        "local.protected_role_arns must be built from local.protected_role_names: {arns:?}"
    );
    // ... and the function is told the same names.
    let lambda = module.get("resource", "aws_lambda_function", "manage_iam_policies");
    let env = sub_blocks(lambda.body(), "environment").next().unwrap();
    let Some(Expression::Object(vars)) = attr(env.body(), "variables") else {
        unreachable!()
    };
    let value = vars
        .iter()
        .find(|(k, _)| matches!(k, ObjectKey::Identifier(id) if id.as_str() == dmm_aws_core::config::PROTECTED_ROLE_NAMES))
        .map(|(_, v)| v)
        .expect("protected_role_names not set");
    let mut refs = Vec::new();
    leaves(value, &mut refs);
    assert_eq!(
        refs,
        [",", "ref:local.protected_role_names"],
        "env protected_role_names must be join(\",\", local.protected_role_names)"
    );
}

// --- The checks against the real terraform/ ------------------------------------------------------

#[test]
fn poll_feed_environment_is_exactly_what_the_binary_reads() {
    check_poll_feed_environment_is_exactly_what_the_binary_reads(&load());
}

#[test]
fn manage_iam_policies_environment_is_exactly_what_the_binary_reads() {
    check_manage_iam_policies_environment_is_exactly_what_the_binary_reads(&load());
}

#[test]
fn checkpoint_key_default_matches_the_code() {
    check_checkpoint_key_default_matches_the_code(&load());
}

#[test]
fn poll_feed_role_allows_exactly_what_the_binary_calls() {
    check_poll_feed_role_allows_exactly_what_the_binary_calls(&load());
}

#[test]
fn manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(&load());
}

#[test]
fn manage_iam_policies_can_never_write_to_the_integrations_own_roles() {
    check_manage_iam_policies_can_never_write_to_the_integrations_own_roles(&load());
}

#[test]
fn tfvars_example_lists_every_variable() {
    let module = load();
    let example_path = terraform_dir().join("../terraform.tfvars.example");
    let example = std::fs::read_to_string(&example_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", example_path.display()));
    let listed: BTreeSet<String> = example
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches('#').trim_start();
            let (name, _) = l.split_once(" = ")?;
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                .then(|| name.to_owned())
        })
        .collect();
    let declared: BTreeSet<String> = module
        .blocks
        .iter()
        .filter(|(_, b)| b.identifier() == "variable")
        .map(|(_, b)| b.labels()[0].as_str().to_owned())
        .collect();
    assert_same(
        "variables",
        "terraform/variables.tf (here: declared)",
        &declared,
        &listed,
    );
}

// --- The checks catch drift (each edits a copy of terraform/ in memory) ---------------------------

#[test]
#[should_panic(expected = "in Terraform but not in the code")]
fn an_action_the_code_does_not_call_is_caught() {
    check_poll_feed_role_allows_exactly_what_the_binary_calls(&load_edited(|name, text| {
        edit(
            name,
            "iam.tf",
            text,
            r#"actions   = ["sqs:SendMessage"]"#,
            r#"actions   = ["sqs:SendMessage", "sqs:PurgeQueue"]"#,
        )
    }));
}

#[test]
#[should_panic(
    expected = "in the code (config::POLL_FEED_VARIABLES) but not in Terraform: [\"deadline_margin_ms\"]"
)]
fn a_missing_environment_variable_is_caught() {
    check_poll_feed_environment_is_exactly_what_the_binary_reads(&load_edited(|name, text| {
        edit(
            name,
            "lambda_poll_feed.tf",
            text,
            "deadline_margin_ms        = tostring(var.deadline_margin_ms)",
            "",
        )
    }));
}

#[test]
#[should_panic(expected = "IAM actions must be on local.managed_role_arns")]
fn iam_writes_on_any_role_are_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "iam.tf",
                text,
                "resources = local.managed_role_arns",
                r#"resources = ["arn:aws:iam::123456789012:role/*"]"#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "needs an s3:prefix condition")]
fn an_unconditioned_list_bucket_is_caught() {
    check_poll_feed_role_allows_exactly_what_the_binary_calls(&load_edited(|name, text| {
        edit(
            name,
            "iam.tf",
            text,
            r#"variable = "s3:prefix"
      values   = [var.last_event_id_object_name]"#,
            r#"variable = "s3:delimiter"
      values   = ["/"]"#,
        )
    }));
}

#[test]
#[should_panic(expected = "managed policies on the function roles cannot be checked")]
fn a_managed_policy_attachment_is_caught() {
    check_poll_feed_role_allows_exactly_what_the_binary_calls(&load_edited(|name, text| {
        let mut text = text.to_owned();
        if name == "iam.tf" {
            text.push_str("\nresource \"aws_iam_role_policy_attachment\" \"extra\" {\n  role       = aws_iam_role.poll_feed.name\n  policy_arn = \"arn:aws:iam::aws:policy/AdministratorAccess\"\n}\n");
        }
        text
    }));
}

#[test]
#[should_panic(expected = "Resource \"*\" is not allowed")]
fn resource_star_is_caught() {
    check_poll_feed_role_allows_exactly_what_the_binary_calls(&load_edited(|name, text| {
        edit(
            name,
            "iam.tf",
            text,
            "resources = [aws_secretsmanager_secret.dmm_api_key.arn]",
            r#"resources = ["*"]"#,
        )
    }));
}

/// Replaces `from` (which must occur) by `to` in `file`.
fn edit(name: &str, file: &str, text: &str, from: &str, to: &str) -> String {
    if name != file {
        return text.to_owned();
    }
    assert!(
        text.contains(from),
        "test fixture: {file} no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

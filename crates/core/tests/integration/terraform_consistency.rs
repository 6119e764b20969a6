//! Terraform (`terraform/`) must agree with the code, statically (no AWS, no terraform binary):
//!
//! * each function's `environment.variables` are exactly the variables its binary reads
//!   (`config::POLL_FEED_VARIABLES`, `config::MANAGE_IAM_POLICIES_VARIABLES`);
//! * each function's role allows exactly the actions its binary calls (`permissions::*_ACTIONS`,
//!   plus the SQS actions the event source mapping uses for manage_iam_policies, plus writing the
//!   function's own log group, which the Lambda service does on the function's behalf);
//! * those actions are scoped: no `Resource: "*"`, IAM writes only on the managed-role allowlist
//!   or on the integration's own access roles (`dmm-access-*`/`dmm-acc-*` under the managed path,
//!   created only with and changed only with the `managed-by` tag), an explicit Deny on the
//!   integration's own roles, ListBucket only with an `s3:prefix` condition, `sts:AssumeRole`
//!   only on the management roles configured in `var.managed_accounts`;
//! * the management role of `terraform/modules/managed-account` allows exactly the code's `iam:`
//!   actions with the same scoping, denies itself, and trusts only the hub's role with
//!   `sts:ExternalId`.
//!
//! The role's policies are found by following references from `aws_lambda_function.<name>.role`
//! through every `aws_iam_role_policy` on that role to its `data.aws_iam_policy_document`
//! (including `source_policy_documents`, and into a local module when the policy is a module's
//! output), so a statement added anywhere is seen here. Every IAM statement must come from
//! `terraform/modules/account-iam`, which the hub and the managed-account module both call with
//! their allowlist unchanged. Policies
//! the test cannot read (managed policy attachments, inline JSON) are rejected.
//!
//! The check is static: a `dynamic "statement"` counts as present. That is right for
//! `sts:AssumeRole`, the one action that is legitimately absent from the deployed policy: with
//! an empty `managed_accounts` there is no role to assume, so its statement (and the role policy
//! carrying it, as IAM rejects a policy without statements) is not rendered. The code still
//! declares the action, so it is compared like every other action, and a separate rule checks
//! that its statement and role policy are conditioned on there being management roles, and on
//! nothing else. What the rendered documents look like is checked by `terraform test`
//! (`terraform/tests/`, `terraform/modules/managed-account/tests/`, run by
//! `scripts/check-terraform.sh` where the provider can be installed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dmm_aws_core::config::{
    DEFAULT_LAST_EVENT_ID_OBJECT_NAME, MANAGE_IAM_POLICIES_VARIABLES, MANAGED_ACCOUNTS,
    POLL_FEED_VARIABLES,
};
use dmm_aws_core::permissions::{
    LAKE_FORMATION_ACTIONS, LAKE_FORMATION_GRANTOR_ACTIONS, MANAGE_IAM_POLICIES_ACTIONS,
    MANAGE_IAM_POLICIES_EVENT_SOURCE_ACTIONS, POLL_FEED_ACTIONS,
};
use dmm_aws_core::policy::{ACCESS_ROLE_NAME_PREFIX, MAPPED_ACCESS_ROLE_NAME_PREFIX};
use dmm_aws_core::reconcile::packed::{PACKED_POLICY_PATH, PACKED_POLICY_PREFIX};
use hcl::expr::{TemplateExpr, TraversalOperator};
use hcl::{Block, Body, Expression, ObjectKey};

/// Written by the Lambda service with the function's role into the function's own log group; the
/// function's code never calls them.
const LAMBDA_LOGGING_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];

/// The tag every access role carries (`key = value`), required by the tag conditions on the
/// access-role statements; the code sets it when it creates an access role. (Spelled out here
/// until the code declares them as constants; then import those.)
const MANAGED_BY_TAG_KEY: &str = "managed-by";
const MANAGED_BY_TAG_VALUE: &str = "dmm-integration-aws";
/// The only tag keys the integration may set on an access role.
const ACCESS_ROLE_TAG_KEYS: &[&str] = &[MANAGED_BY_TAG_KEY, "dmm-agreement-id"];
/// Only on access roles (`local.access_role_arns`), never on consumer roles.
const ACCESS_ROLE_ONLY_ACTIONS: &[&str] = &[
    "iam:CreateRole",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRole",
    "iam:PutRolePermissionsBoundary",
];
/// On access roles only with `iam:PermissionsBoundary` = the access-role boundary (ADR 017).
const ACCESS_ROLE_BOUNDED_ACTIONS: &[&str] = &[
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:PutRolePermissionsBoundary",
];
/// On consumer roles only for the integration's own packed policies (`iam:PolicyARN`).
const PACKED_ATTACH_ACTIONS: &[&str] = &["iam:AttachRolePolicy", "iam:DetachRolePolicy"];
/// On the packed policies, creating only with `aws:RequestTag/managed-by`…
const PACKED_CREATE_ACTIONS: &[&str] = &["iam:CreatePolicy", "iam:TagPolicy"];
/// …and changing only with `iam:ResourceTag/managed-by`.
const PACKED_WRITE_ACTIONS: &[&str] = &[
    "iam:CreatePolicyVersion",
    "iam:DeletePolicyVersion",
    "iam:DeletePolicy",
];
/// Allowed on access roles only with `aws:RequestTag/managed-by` (the role does not exist yet).
const ACCESS_ROLE_CREATE_ACTIONS: &[&str] = &["iam:CreateRole", "iam:TagRole"];
/// Allowed on access roles only with `iam:ResourceTag/managed-by`: every other write.
const ACCESS_ROLE_WRITE_ACTIONS: &[&str] = &[
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:PutRolePermissionsBoundary",
];

/// The internal module that holds every IAM statement the integration has in an account: the
/// hub's and each managed account's (ADR 019).
const ACCOUNT_IAM_MODULE: &str = "modules/account-iam";
/// Its `local.role_arn_prefix`.
const ACCOUNT_IAM_ROLE_ARN_PREFIX: &str = "arn:${var.partition}:iam::${var.account_id}:role";

/// A Terraform configuration: every top-level block of every `*.tf` file of one directory, and
/// the local modules it calls.
struct Module {
    /// For messages: `terraform/` or `terraform/modules/managed-account/`.
    name: String,
    /// The directory relative to `terraform/` (empty for `terraform/` itself).
    path: String,
    blocks: Vec<(String, Block)>,
    /// `module "<name>"` blocks with a local `source`, loaded.
    children: Vec<(String, Module)>,
}

/// Read when the test runs (cargo sets it), not compiled in: cargo does not rebuild a workspace
/// crate when the checkout moves, so with a shared target directory a compiled-in path can name
/// another checkout's `terraform/`.
fn terraform_dir() -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    Path::new(&manifest).join("../../terraform")
}

const MANAGED_ACCOUNT_MODULE: &str = "modules/managed-account";

fn load() -> Module {
    load_edited(|_, text| text.to_owned())
}

/// The module with `edit(path, text)` applied to each file (`path` relative to `terraform/`, as
/// `iam.tf` or `modules/account-iam/main.tf`): lets the tests below prove that the checks catch
/// drift.
fn load_edited(edit: impl Fn(&str, &str) -> String) -> Module {
    load_dir_edited("", &edit)
}

fn load_managed_account() -> Module {
    load_managed_account_edited(|_, text| text.to_owned())
}

fn load_managed_account_edited(edit: impl Fn(&str, &str) -> String) -> Module {
    load_dir_edited(MANAGED_ACCOUNT_MODULE, &edit)
}

/// `terraform/<sub>` (`sub` empty: `terraform/` itself), with the local modules it calls.
fn load_dir_edited(sub: &str, edit: &dyn Fn(&str, &str) -> String) -> Module {
    let name = if sub.is_empty() {
        "terraform/".to_owned()
    } else {
        format!("terraform/{sub}/")
    };
    let dir = terraform_dir().join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    let mut blocks = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let relative = if sub.is_empty() {
            file.clone()
        } else {
            format!("{sub}/{file}")
        };
        let text = edit(&relative, &std::fs::read_to_string(&path).unwrap());
        let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{name}{file} does not parse: {e}"));
        blocks.extend(body.into_blocks().map(|b| (file.clone(), b)));
    }
    let children = blocks
        .iter()
        .filter(|(_, b)| b.identifier() == "module")
        .filter_map(|(_, b)| {
            let source = attr(b.body(), "source").and_then(literal)?;
            let local = source
                .strip_prefix("./")
                .or_else(|| source.strip_prefix("../"))?;
            let child = if source.starts_with("./") {
                join_path(sub, local)
            } else {
                join_path(parent_of(sub), local)
            };
            Some((
                b.labels()[0].as_str().to_owned(),
                load_dir_edited(&child, edit),
            ))
        })
        .collect();
    Module {
        name,
        path: sub.to_owned(),
        blocks,
        children,
    }
}

fn join_path(dir: &str, rest: &str) -> String {
    if dir.is_empty() {
        rest.to_owned()
    } else {
        format!("{dir}/{rest}")
    }
}

fn parent_of(dir: &str) -> &str {
    dir.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

impl Module {
    /// The module called `module "<name>"` here.
    fn child(&self, name: &str) -> &Module {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
            .unwrap_or_else(|| panic!("{} calls no local module \"{name}\"", self.name))
    }

    /// This module or one it calls (at any depth), by its path relative to `terraform/`.
    fn at(&self, path: &str) -> &Module {
        if self.path == path {
            return self;
        }
        self.children
            .iter()
            .find_map(|(_, m)| (path.starts_with(&m.path)).then(|| m.at(path)))
            .unwrap_or_else(|| panic!("{} does not call {path}", self.name))
    }

    /// The expression passed as `input` to `module "<name>"`.
    fn module_input(&self, name: &str, input: &str) -> &Expression {
        let block = self.block("module", &[name]);
        attr(block.body(), input)
            .unwrap_or_else(|| panic!("{}: module \"{name}\" is not given `{input}`", self.name))
    }

    /// All `<kind> "<type>" "<name>"` blocks of a type, as (name, block).
    fn all<'a>(&'a self, kind: &'a str, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> {
        self.blocks.iter().filter_map(move |(_, b)| {
            let l = labels(b);
            (b.identifier() == kind && l.len() == 2 && l[0] == ty)
                .then(|| (b.labels()[1].as_str(), b))
        })
    }

    /// The `<kind> "<labels>…"` block, or a panic naming what is missing.
    fn block(&self, kind: &str, wanted: &[&str]) -> &Block {
        self.blocks
            .iter()
            .map(|(_, b)| b)
            .find(|b| b.identifier() == kind && labels(b) == wanted)
            .unwrap_or_else(|| panic!("{} has no {kind} {wanted:?}", self.name))
    }

    fn get(&self, kind: &str, ty: &str, name: &str) -> &Block {
        self.block(kind, &[ty, name])
    }

    fn get_output(&self, name: &str) -> &Block {
        self.block("output", &[name])
    }

    fn variable(&self, name: &str) -> &Block {
        self.block("variable", &[name])
    }

    fn local(&self, name: &str) -> &Expression {
        self.blocks
            .iter()
            .filter(|(_, b)| b.identifier() == "locals")
            .flat_map(|(_, b)| b.body().attributes())
            .find(|a| a.key() == name)
            .map(|a| a.expr())
            .unwrap_or_else(|| panic!("{} has no local `{name}`", self.name))
    }

    fn has_local(&self, name: &str) -> bool {
        self.blocks
            .iter()
            .filter(|(_, b)| b.identifier() == "locals")
            .flat_map(|(_, b)| b.body().attributes())
            .any(|a| a.key() == name)
    }

    /// The leaves of an expression (see [`leaves`]) with references to locals replaced by the
    /// locals' own (resolved) leaves, and locals that are plain strings substituted inside
    /// templates too: `aws:RequestTag/${local.key}` reads as `aws:RequestTag/managed-by`.
    fn resolved_leaves(&self, expr: &Expression) -> Vec<String> {
        let string_locals: Vec<(&str, &str)> = self
            .blocks
            .iter()
            .filter(|(_, b)| b.identifier() == "locals")
            .flat_map(|(_, b)| b.body().attributes())
            .filter_map(|a| literal(a.expr()).map(|v| (a.key(), v)))
            .collect();
        let mut out = Vec::new();
        leaves(expr, &mut out);
        out.into_iter()
            .flat_map(|leaf| match leaf.strip_prefix("ref:local.") {
                Some(name) if self.has_local(name) => self.resolved_leaves(self.local(name)),
                _ => vec![string_locals.iter().fold(leaf, |acc, (k, v)| {
                    acc.replace(&format!("${{local.{k}}}"), v)
                })],
            })
            .collect()
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
    /// The module that holds it (its path relative to `terraform/`), whose locals it uses.
    module: String,
    origin: String,
    effect: String,
    actions: Vec<String>,
    /// Raw leaves (references as `ref:<path>`), so scope rules can insist on a named local.
    resources: Vec<String>,
    conditions: Vec<Condition>,
    /// `for_each` of a `dynamic "statement"` block; `None` for a plain statement.
    dynamic_for_each: Option<Expression>,
    /// `count` of the `aws_iam_role_policy` that attaches the statement's document.
    role_policy_count: Option<Expression>,
}

/// A `condition` block, with locals resolved ([`Module::resolved_leaves`]).
#[derive(Debug)]
struct Condition {
    test: String,
    variable: String,
    values: Vec<String>,
}

impl Statement {
    fn has_condition(&self, test: &str, variable: &str, values: &[&str]) -> bool {
        self.conditions
            .iter()
            .any(|c| c.test == test && c.variable == variable && c.values == values)
    }
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
    let plain = sub_blocks(body, "statement").map(|b| (b, None));
    let dynamic = body
        .blocks()
        .filter(|b| b.identifier() == "dynamic" && labels(b) == ["statement"])
        .map(|b| {
            let content = sub_blocks(b.body(), "content")
                .next()
                .expect("dynamic statement without content");
            (content, attr(b.body(), "for_each").cloned())
        });
    for (i, (st, dynamic_for_each)) in plain.chain(dynamic).enumerate() {
        let b = st.body();
        let origin = format!(
            "{}data.aws_iam_policy_document.{doc} statement #{}",
            module.name,
            i + 1
        );
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
        let conditions = conditions_of(module, b);
        out.push(Statement {
            module: module.path.clone(),
            origin,
            effect,
            actions,
            resources,
            conditions,
            dynamic_for_each,
            role_policy_count: None,
        });
    }
}

fn conditions_of(module: &Module, statement: &Body) -> Vec<Condition> {
    sub_blocks(statement, "condition")
        .map(|c| {
            let part = |key: &str| {
                attr(c.body(), key)
                    .map(|e| module.resolved_leaves(e))
                    .unwrap_or_default()
            };
            Condition {
                test: part("test").join(","),
                variable: part("variable").join(","),
                values: part("values"),
            }
        })
        .collect()
}

/// Every statement of every policy on the function's role.
fn role_statements(module: &Module, function: &str) -> (String, Vec<Statement>) {
    let role = role_of(module, function);
    let statements = role_policy_statements(module, &role);
    (role, statements)
}

/// Every statement of every policy on `aws_iam_role.<role>`.
fn role_policy_statements(module: &Module, role: &str) -> Vec<Statement> {
    let role_block = module.get("resource", "aws_iam_role", role);
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
        let first = statements.len();
        match reference(policy).as_deref() {
            Some([d, t, doc, json])
                if d == "data" && t == "aws_iam_policy_document" && json == "json" =>
            {
                policy_document_statements(module, doc, &mut Vec::new(), &mut statements);
            }
            Some([m, child, output]) if m == "module" => {
                let (child_module, doc) = module_policy_document(module, child, output);
                policy_document_statements(child_module, &doc, &mut Vec::new(), &mut statements);
            }
            _ => panic!(
                "aws_iam_role_policy.{name}.policy must be data.aws_iam_policy_document.<name>.json, or a local module's output of one, so it can be checked"
            ),
        }
        for s in &mut statements[first..] {
            s.role_policy_count = attr(b.body(), "count").cloned();
        }
    }
    assert!(
        policies > 0,
        "no aws_iam_role_policy on aws_iam_role.{role}"
    );
    statements
}

/// The module `module "<child>"` and the policy document its `output "<output>"` is the JSON of.
fn module_policy_document<'a>(
    module: &'a Module,
    child: &str,
    output: &str,
) -> (&'a Module, String) {
    let child_module = module.child(child);
    let block = child_module.get_output(output);
    let value = attr(block.body(), "value").expect("output without value");
    match reference(value).as_deref() {
        Some([d, t, doc, json])
            if d == "data" && t == "aws_iam_policy_document" && json == "json" =>
        {
            (child_module, doc.clone())
        }
        _ => panic!(
            "{}: output {output} must be data.aws_iam_policy_document.<name>.json so it can be checked",
            child_module.name
        ),
    }
}

/// `module "account_iam"` is given the caller's allowlist and mode unchanged, and the account
/// (`partition`, `account_id`) the caller's role is in.
fn check_account_iam_wiring(module: &Module, partition: &str, account_id: &str) {
    for (input, expected) in [
        ("partition", partition),
        ("account_id", account_id),
        ("managed_role_path_prefix", "var.managed_role_path_prefix"),
        ("managed_role_name_pattern", "var.managed_role_name_pattern"),
        ("ownership_check", "var.ownership_check"),
    ] {
        let given = reference_str(module.module_input("account_iam", input));
        assert_eq!(
            given, expected,
            "{}: module \"account_iam\" must be given {input} = {expected}",
            module.name
        );
    }
    let account_iam = module.child("account_iam");
    assert_eq!(
        account_iam.path, ACCOUNT_IAM_MODULE,
        "{}: module \"account_iam\" must be {ACCOUNT_IAM_MODULE}",
        module.name
    );
    // The one declaration of the allowlist's validation.
    for var in [
        "managed_role_path_prefix",
        "managed_role_name_pattern",
        "protected_role_names",
        "ownership_check",
    ] {
        assert!(
            sub_blocks(account_iam.variable(var).body(), "validation")
                .next()
                .is_some(),
            "variable {var} of {ACCOUNT_IAM_MODULE} needs its validation"
        );
    }
}

fn allowed_actions(statements: &[Statement]) -> BTreeSet<String> {
    statements
        .iter()
        .filter(|s| s.effect == "Allow")
        .flat_map(|s| s.actions.iter().cloned())
        .collect()
}

/// Scope rules every Allow statement of a role must follow. `function`: the Lambda function
/// whose role it is (its log group is the only one it may write), `None` for the management role.
fn assert_scoped(module: &Module, function: Option<&str>, statements: &[Statement]) {
    for s in statements.iter().filter(|s| s.effect == "Allow") {
        if s.actions.iter().any(|a| a.starts_with("lakeformation:")) {
            assert_lake_formation_alone(s);
            continue;
        }
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
                s.conditions.iter().any(|c| c.variable == "s3:prefix"),
                "{}: s3:ListBucket needs an s3:prefix condition",
                s.origin
            );
        }
        if s.actions.iter().any(|a| a.starts_with("logs:")) {
            let function = function.unwrap_or_else(|| {
                panic!("{}: logs actions on a role without a function", s.origin)
            });
            let own = format!("${{aws_cloudwatch_log_group.{function}.arn}}:*");
            assert!(
                s.resources.iter().all(|r| *r == own),
                "{}: logs actions only on the function's own log group ({own}), not {:?}",
                s.origin,
                s.resources
            );
        }
        if s.actions.iter().any(|a| a.starts_with("iam:")) {
            assert_iam_scoped(module.at(&s.module), s);
        }
        if s.actions.iter().any(|a| a.starts_with("sts:")) {
            assert_assume_role_scoped(module, s);
        }
        // ownership_check = audit/off adds an untagged-role PutRolePolicy; the action is in the
        // tag-conditioned statements whatever the mode, so the comparison with the code holds.
        let mode_dependent_put = s.actions == ["iam:PutRolePolicy"]
            && s.conditions.is_empty()
            && s.dynamic_for_each.as_ref().is_some_and(|f| {
                reference_str(f).contains("ownership_check")
                    || f.to_string().contains("ownership_check")
            });
        if (s.dynamic_for_each.is_some() || s.role_policy_count.is_some()) && !mode_dependent_put {
            assert!(
                s.actions == ["sts:AssumeRole"],
                "{}: only the sts:AssumeRole statement may depend on the configuration (dynamic/count); \
                 every other permission is always there, so the comparison with the code holds",
                s.origin
            );
        }
    }
}

/// Lake Formation's grant actions have no resource-level permissions, so `Resource "*"` is the
/// only way to allow them: their statement holds exactly `LAKE_FORMATION_ACTIONS` and nothing
/// else, so `*` can never reach another action.
fn assert_lake_formation_alone(s: &Statement) {
    assert_eq!(
        s.actions
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        LAKE_FORMATION_ACTIONS
            .iter()
            .copied()
            .collect::<BTreeSet<_>>(),
        "{}: the Lake Formation statement holds exactly permissions::LAKE_FORMATION_ACTIONS",
        s.origin
    );
    assert_eq!(
        s.resources,
        ["*"],
        "{}: Lake Formation actions take Resource \"*\" only",
        s.origin
    );
    assert_eq!(
        s.module, ACCOUNT_IAM_MODULE,
        "{}: the Lake Formation statement belongs in {ACCOUNT_IAM_MODULE}, for the hub and every managed account",
        s.origin
    );
}

/// `local.packed_policy_arns` as it must read: the packed policies of `reconcile::packed`.
fn packed_policy_arn() -> String {
    format!(
        "arn:${{var.partition}}:iam::${{var.account_id}}:policy{PACKED_POLICY_PATH}{PACKED_POLICY_PREFIX}*"
    )
}

/// IAM actions only on `arn:<partition>:iam::<account>:role<managed_role_path_prefix>…`: the
/// consumer-role allowlist (`local.managed_role_arns`) or the integration's own access roles
/// (`local.access_role_arns`, exactly `dmm-access-*` and `dmm-acc-*` under the path). Creating,
/// retagging, re-trusting and deleting roles only on access roles; creating only with the
/// managed-by tag in the request (and no other tag keys), every other write on an access role
/// only when the role carries that tag.
fn assert_iam_scoped(module: &Module, s: &Statement) {
    assert!(
        s.actions.iter().all(|a| a.starts_with("iam:")),
        "{}: keep IAM actions in their own statement",
        s.origin
    );
    assert_eq!(
        s.module, ACCOUNT_IAM_MODULE,
        "{}: IAM statements belong in {ACCOUNT_IAM_MODULE}, the one place both the hub and the managed accounts take them from",
        s.origin
    );
    let has = |list: &[&str]| s.actions.iter().any(|a| list.contains(&a.as_str()));
    match s.resources.as_slice() {
        [r] if r == "ref:local.managed_role_arns" => {
            assert!(
                !has(ACCESS_ROLE_ONLY_ACTIONS),
                "{}: {:?} only on local.access_role_arns (the integration's own access roles), never on consumer roles",
                s.origin,
                s.actions
            );
            if has(PACKED_ATTACH_ACTIONS) {
                assert!(
                    s.conditions.iter().any(|c| c.test == "ArnLike"
                        && c.variable == "iam:PolicyARN"
                        && c.values == [packed_policy_arn()]),
                    "{}: {PACKED_ATTACH_ACTIONS:?} only with ArnLike iam:PolicyARN = local.packed_policy_arns (the integration's own packed policies); has {:?}",
                    s.origin,
                    s.conditions
                );
            }
        }
        [r] if r == "ref:local.packed_policy_arns" => {
            assert!(
                !has(ACCESS_ROLE_ONLY_ACTIONS) && !has(PACKED_ATTACH_ACTIONS),
                "{}: only policy actions on the packed policies, not {:?}",
                s.origin,
                s.actions
            );
            if has(PACKED_CREATE_ACTIONS) {
                assert!(
                    s.has_condition(
                        "StringEquals",
                        &format!("aws:RequestTag/{MANAGED_BY_TAG_KEY}"),
                        &[MANAGED_BY_TAG_VALUE]
                    ),
                    "{}: {PACKED_CREATE_ACTIONS:?} need StringEquals aws:RequestTag/{MANAGED_BY_TAG_KEY} = {MANAGED_BY_TAG_VALUE}; has {:?}",
                    s.origin,
                    s.conditions
                );
            }
            if has(PACKED_WRITE_ACTIONS) {
                assert!(
                    s.has_condition(
                        "StringEquals",
                        &format!("iam:ResourceTag/{MANAGED_BY_TAG_KEY}"),
                        &[MANAGED_BY_TAG_VALUE]
                    ),
                    "{}: {PACKED_WRITE_ACTIONS:?} need StringEquals iam:ResourceTag/{MANAGED_BY_TAG_KEY} = {MANAGED_BY_TAG_VALUE}; has {:?}",
                    s.origin,
                    s.conditions
                );
            }
            let mut packed = Vec::new();
            leaves(module.local("packed_policy_arns"), &mut packed);
            assert_eq!(
                packed,
                [packed_policy_arn()],
                "{}: local.packed_policy_arns must be exactly the packed policies of reconcile::packed",
                module.name
            );
        }
        [r] if r == "ref:local.access_role_arns" => {
            if has(ACCESS_ROLE_CREATE_ACTIONS) {
                assert!(
                    s.has_condition(
                        "StringEquals",
                        &format!("aws:RequestTag/{MANAGED_BY_TAG_KEY}"),
                        &[MANAGED_BY_TAG_VALUE]
                    ),
                    "{}: {ACCESS_ROLE_CREATE_ACTIONS:?} need the condition StringEquals aws:RequestTag/{MANAGED_BY_TAG_KEY} = {MANAGED_BY_TAG_VALUE}; has {:?}",
                    s.origin,
                    s.conditions
                );
                let tag_keys = s
                    .conditions
                    .iter()
                    .find(|c| c.test == "ForAllValues:StringEquals" && c.variable == "aws:TagKeys")
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: {ACCESS_ROLE_CREATE_ACTIONS:?} need ForAllValues:StringEquals aws:TagKeys (only the integration's own tag keys)",
                            s.origin
                        )
                    });
                assert!(
                    tag_keys
                        .values
                        .iter()
                        .all(|k| ACCESS_ROLE_TAG_KEYS.contains(&k.as_str())),
                    "{}: aws:TagKeys may only be {ACCESS_ROLE_TAG_KEYS:?}, is {:?}",
                    s.origin,
                    tag_keys.values
                );
            }
            if has(ACCESS_ROLE_BOUNDED_ACTIONS) {
                assert!(
                    s.conditions.iter().any(|c| c.test == "StringEquals"
                        && c.variable == "iam:PermissionsBoundary"
                        && c.values.len() == 1
                        && c.values[0].contains("access_role_boundary")),
                    "{}: {ACCESS_ROLE_BOUNDED_ACTIONS:?} on access roles need StringEquals iam:PermissionsBoundary = local.access_role_boundary_arn; has {:?}",
                    s.origin,
                    s.conditions
                );
            }
            if has(ACCESS_ROLE_WRITE_ACTIONS) {
                assert!(
                    s.has_condition(
                        "StringEquals",
                        &format!("iam:ResourceTag/{MANAGED_BY_TAG_KEY}"),
                        &[MANAGED_BY_TAG_VALUE]
                    ),
                    "{}: {:?} on access roles need the condition StringEquals iam:ResourceTag/{MANAGED_BY_TAG_KEY} = {MANAGED_BY_TAG_VALUE}; has {:?}",
                    s.origin,
                    s.actions,
                    s.conditions
                );
            }
        }
        other => panic!(
            "{}: IAM actions must be on local.managed_role_arns, local.access_role_arns or local.packed_policy_arns, not {other:?}",
            s.origin
        ),
    }

    let path = "${local.role_arn_prefix}${var.managed_role_path_prefix}";
    let mut arns = Vec::new();
    leaves(module.local("managed_role_arns"), &mut arns);
    assert!(!arns.is_empty());
    for arn in &arns {
        assert!(
            arn.starts_with(path),
            "{}: local.managed_role_arns: {arn} is not under the managed role path prefix",
            module.name
        );
    }
    let mut access = Vec::new();
    leaves(module.local("access_role_arns"), &mut access);
    assert_eq!(
        access,
        [
            format!("{path}{ACCESS_ROLE_NAME_PREFIX}*"),
            format!("{path}{MAPPED_ACCESS_ROLE_NAME_PREFIX}*"),
        ],
        "{}: local.access_role_arns must be exactly the access role names of policy::access_role_name directly under the managed path",
        module.name
    );
    let mut prefix = Vec::new();
    leaves(module.local("role_arn_prefix"), &mut prefix);
    assert_eq!(
        prefix,
        [ACCOUNT_IAM_ROLE_ARN_PREFIX],
        "{}: local.role_arn_prefix",
        module.name
    );
}

/// `sts:AssumeRole` (cross-account) only on the management roles of `var.managed_accounts`, in a
/// statement and role policy that exist only when there is at least one.
fn assert_assume_role_scoped(module: &Module, s: &Statement) {
    assert_eq!(
        s.actions,
        ["sts:AssumeRole"],
        "{}: keep sts:AssumeRole in its own statement, and no other sts: action",
        s.origin
    );
    assert_eq!(
        s.resources,
        ["ref:local.management_role_arns"],
        "{}: sts:AssumeRole only on local.management_role_arns (the management roles of var.managed_accounts)",
        s.origin
    );
    let local = module.local("management_role_arns");
    let mut arns = Vec::new();
    leaves(local, &mut arns);
    let text = local.to_string();
    assert!(
        arns == ["ref:account.role_arn"] && text.contains("var.managed_accounts"),
        "local.management_role_arns must be the role_arn of each var.managed_accounts entry, is {text}"
    );
    // Absent, not "Resource: []", when no account is managed: a dynamic statement and a
    // role policy with a count, both on local.management_role_arns being non-empty.
    let only_with_management_roles = |what: &str, expr: Option<&Expression>, absent: &str| {
        let ok = match expr {
            Some(Expression::Conditional(c)) => {
                c.cond_expr.to_string().replace(' ', "") == "length(local.management_role_arns)>0"
                    && c.false_expr.to_string().replace(' ', "") == absent
            }
            _ => false,
        };
        assert!(
            ok,
            "{}: the {what} must be `length(local.management_role_arns) > 0 ? … : {absent}`, is {:?}",
            s.origin,
            expr.map(|e| e.to_string())
        );
    };
    only_with_management_roles(
        "dynamic statement's for_each",
        s.dynamic_for_each.as_ref(),
        "[]",
    );
    only_with_management_roles("role policy's count", s.role_policy_count.as_ref(), "0");
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
    assert_scoped(module, Some("poll_feed"), &statements);
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
    assert_scoped(module, Some("manage_iam_policies"), &statements);
    check_account_iam_wiring(module, "local.partition", "local.account_id");
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
    assert_eq!(
        reference_str(module.module_input("account_iam", "protected_role_names")),
        "local.protected_role_names",
        "module \"account_iam\" must be given protected_role_names = local.protected_role_names"
    );
    assert_protected_arns_cover_the_names(module.at(&deny.module));
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

fn check_managed_accounts_reach_the_function_as_json(module: &Module) {
    let lambda = module.get("resource", "aws_lambda_function", "manage_iam_policies");
    let env = sub_blocks(lambda.body(), "environment").next().unwrap();
    let Some(Expression::Object(vars)) = attr(env.body(), "variables") else {
        unreachable!()
    };
    let value = vars
        .iter()
        .find(|(k, _)| matches!(k, ObjectKey::Identifier(id) if id.as_str() == MANAGED_ACCOUNTS))
        .map(|(_, v)| v.to_string())
        .expect("managed_accounts not set");
    assert_eq!(
        value, "jsonencode(var.managed_accounts)",
        "env {MANAGED_ACCOUNTS} must be the JSON of var.managed_accounts (config::MANAGED_ACCOUNTS)"
    );
    let variable = module.variable("managed_accounts").body();
    assert!(
        attr(variable, "sensitive").is_some_and(|e| matches!(e, Expression::Bool(true))),
        "variable managed_accounts holds the external ids: keep it sensitive"
    );
    assert!(
        sub_blocks(variable, "validation").next().is_some(),
        "variable managed_accounts needs its validation (account ids, role ARNs without wildcards)"
    );
}

// --- terraform/modules/managed-account ------------------------------------------------------------

/// The IAM actions of the code: what the management role in a managed account does on the
/// hub's behalf (sts:AssumeRole is the hub's own call; S3, SQS and Secrets Manager stay in the
/// hub).
fn code_iam_actions() -> BTreeSet<String> {
    MANAGE_IAM_POLICIES_ACTIONS
        .iter()
        .filter(|a| a.starts_with("iam:"))
        .map(|a| a.to_string())
        .collect()
}

fn check_management_role_allows_exactly_the_iam_actions_of_the_code(module: &Module) {
    let statements = role_policy_statements(module, "management");
    let mut expected = code_iam_actions();
    expected.extend(
        dmm_aws_core::permissions::OWNERSHIP_TAG_ACTIONS
            .iter()
            .chain(LAKE_FORMATION_ACTIONS)
            .chain(LAKE_FORMATION_GRANTOR_ACTIONS)
            .map(|a| (*a).to_owned()),
    );
    assert_same(
        "actions allowed to the management role (modules/managed-account)",
        "the iam: actions of permissions::MANAGE_IAM_POLICIES_ACTIONS and OWNERSHIP_TAG_ACTIONS",
        &expected,
        &allowed_actions(&statements),
    );
    assert_scoped(module, None, &statements);
    check_account_iam_wiring(
        module,
        "data.aws_partition.current.partition",
        "data.aws_caller_identity.current.account_id",
    );
}

fn check_management_role_never_touches_itself_or_protected_roles(module: &Module) {
    let statements = role_policy_statements(module, "management");
    let deny = statements
        .iter()
        .find(|s| s.effect == "Deny" && s.resources == ["ref:local.protected_role_arns"])
        .expect("the management role needs a Deny statement on local.protected_role_arns");
    for action in code_iam_actions() {
        assert!(
            deny.actions.iter().any(|d| *d == action || d == "iam:*"),
            "{}: the Deny does not cover {action}",
            deny.origin
        );
    }
    let role_name = attr(
        module.get("resource", "aws_iam_role", "management").body(),
        "name",
    )
    .map(|e| format!("ref:{}", reference_str(e)))
    .expect("management role without name");
    let mut names = Vec::new();
    leaves(
        module.module_input("account_iam", "protected_role_names"),
        &mut names,
    );
    assert!(
        names.contains(&role_name),
        "module \"account_iam\" must be given protected_role_names with the management role's own name ({role_name}); has {names:?}"
    );
    assert_protected_arns_cover_the_names(module.at(&deny.module));
}

/// `local.protected_role_arns` of the module holding the Deny: every name it is given (on any
/// path), and the service-linked and AWS-reserved roles.
fn assert_protected_arns_cover_the_names(module: &Module) {
    let mut names = Vec::new();
    leaves(module.local("protected_role_names"), &mut names);
    assert!(
        names.iter().any(|n| n == "ref:var.protected_role_names"),
        "{}: local.protected_role_names must include var.protected_role_names: {names:?}",
        module.name
    );
    let mut arns = Vec::new();
    leaves(module.local("protected_role_arns"), &mut arns);
    for needed in ["${name}", "/aws-service-role/*", "/aws-reserved/*"] {
        assert!(
            arns.iter().any(|a| a.contains(needed)),
            "{}: local.protected_role_arns must cover {needed}: {arns:?}",
            module.name
        );
    }
}

fn check_management_role_trusts_only_the_hub_role_with_the_external_id(module: &Module) {
    let role = module.get("resource", "aws_iam_role", "management").body();
    let trust = attr(role, "assume_role_policy").expect("management role without trust policy");
    let doc = match reference(trust).as_deref() {
        Some([d, t, doc, json])
            if d == "data" && t == "aws_iam_policy_document" && json == "json" =>
        {
            doc.clone()
        }
        _ => panic!(
            "aws_iam_role.management.assume_role_policy must be data.aws_iam_policy_document.<name>.json, is {trust}"
        ),
    };
    let body = module.get("data", "aws_iam_policy_document", &doc).body();
    for key in [
        "source_policy_documents",
        "override_policy_documents",
        "policy_id",
    ] {
        assert!(
            attr(body, key).is_none(),
            "data.aws_iam_policy_document.{doc}: `{key}` hides statements of the trust policy"
        );
    }
    let all: Vec<&Block> = body.blocks().collect();
    assert!(
        all.iter().all(|b| b.identifier() == "statement"),
        "data.aws_iam_policy_document.{doc}: only plain statements in the trust policy (no dynamic)"
    );
    assert_eq!(
        all.len(),
        1,
        "data.aws_iam_policy_document.{doc}: exactly one trust statement"
    );
    let st = all[0].body();
    // A trust statement has principals instead of resources.
    let s = Statement {
        module: module.path.clone(),
        origin: format!("data.aws_iam_policy_document.{doc}"),
        effect: attr(st, "effect")
            .map_or("Allow".to_owned(), |e| module.resolved_leaves(e).join(",")),
        actions: attr(st, "actions")
            .map(|e| module.resolved_leaves(e))
            .unwrap_or_default(),
        resources: Vec::new(),
        conditions: conditions_of(module, st),
        dynamic_for_each: None,
        role_policy_count: None,
    };
    for key in ["not_actions", "not_principals", "resources"] {
        assert!(
            attr(st, key).is_none(),
            "{}: no `{key}` in the trust statement",
            s.origin
        );
    }
    assert!(
        s.effect == "Allow" && s.actions == ["sts:AssumeRole"],
        "{}: the trust statement allows sts:AssumeRole only, is {} {:?}",
        s.origin,
        s.effect,
        s.actions
    );
    let principals: Vec<(String, Vec<String>)> = sub_blocks(st, "principals")
        .map(|p| {
            (
                module
                    .resolved_leaves(attr(p.body(), "type").expect("principals without type"))
                    .join(","),
                module.resolved_leaves(
                    attr(p.body(), "identifiers").expect("principals without identifiers"),
                ),
            )
        })
        .collect();
    assert_eq!(
        principals,
        [("AWS".to_owned(), vec!["ref:var.hub_role_arn".to_owned()])],
        "{}: the only principal must be the hub's manage_iam_policies role (var.hub_role_arn)",
        s.origin
    );
    assert!(
        s.conditions.len() == 1
            && s.has_condition("StringEquals", "sts:ExternalId", &["ref:var.external_id"]),
        "{}: the trust needs exactly the condition StringEquals sts:ExternalId = var.external_id; has {:?}",
        s.origin,
        s.conditions
    );
    for var in ["hub_role_arn", "external_id"] {
        assert!(
            sub_blocks(module.variable(var).body(), "validation")
                .next()
                .is_some(),
            "variable {var} of the managed-account module needs its validation"
        );
    }
}

/// The access-role boundary allows exactly the catalogue's actions, under the name the code
/// derives its ARN from, and no access role may lose it.
fn check_access_role_boundary_is_the_catalogue(module: &Module) {
    let mut statements = Vec::new();
    policy_document_statements(
        module,
        "access_role_boundary",
        &mut Vec::new(),
        &mut statements,
    );
    assert_same(
        "actions of the access-role permissions boundary",
        "policy::CATALOGUE_ACTIONS",
        &set(dmm_aws_core::policy::CATALOGUE_ACTIONS),
        &allowed_actions(&statements),
    );
    let policy = module.get("resource", "aws_iam_policy", "access_role_boundary");
    let name = attr(policy.body(), "name").and_then(literal);
    assert_eq!(
        name,
        Some(dmm_aws_core::reconcile::iam::ACCESS_ROLE_BOUNDARY_NAME),
        "{}: the boundary's name is the one the code derives its ARN from",
        module.name
    );
}

// --- The checks against the real terraform/ ------------------------------------------------------

#[test]
fn access_role_boundaries_allow_exactly_the_catalogue() {
    let hub = load();
    let managed = load_managed_account();
    check_access_role_boundary_is_the_catalogue(hub.child("account_iam"));
    assert_eq!(
        (
            &hub.child("account_iam").path,
            &managed.child("account_iam").path
        ),
        (
            &ACCOUNT_IAM_MODULE.to_owned(),
            &ACCOUNT_IAM_MODULE.to_owned()
        ),
        "the hub and the managed accounts take the boundary from the same module"
    );
}

#[test]
#[should_panic(expected = "need StringEquals iam:PermissionsBoundary")]
fn creating_access_roles_without_the_boundary_is_caught() {
    check_management_role_allows_exactly_the_iam_actions_of_the_code(&load_managed_account_edited(
        |name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"      variable = "iam:PermissionsBoundary"
      values   = [local.access_role_boundary_arn]
    }
  }

  # Changing"#,
                r#"      variable = "iam:PermissionsBoundary"
      values   = ["arn:aws:iam::111111111111:policy/anything"]
    }
  }

  # Changing"#,
            )
        },
    ));
}

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
fn managed_accounts_reach_the_function_as_json() {
    check_managed_accounts_reach_the_function_as_json(&load());
}

#[test]
fn management_role_allows_exactly_the_iam_actions_of_the_code() {
    check_management_role_allows_exactly_the_iam_actions_of_the_code(&load_managed_account());
}

#[test]
fn management_role_never_touches_itself_or_protected_roles() {
    check_management_role_never_touches_itself_or_protected_roles(&load_managed_account());
}

#[test]
fn management_role_trusts_only_the_hub_role_with_the_external_id() {
    check_management_role_trusts_only_the_hub_role_with_the_external_id(&load_managed_account());
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
                "modules/account-iam/main.tf",
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

#[test]
#[should_panic(expected = "only on local.access_role_arns")]
fn deleting_consumer_roles_is_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#""iam:DeleteRolePolicy",
    ]
    resources = local.managed_role_arns"#,
                r#""iam:DeleteRolePolicy",
      "iam:DeleteRole",
    ]
    resources = local.managed_role_arns"#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "need the condition StringEquals aws:RequestTag/managed-by")]
fn creating_access_roles_without_the_tag_is_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"variable = "aws:RequestTag/${local.managed_by_tag_key}""#,
                r#"variable = "aws:RequestTag/owner""#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "only with ArnLike iam:PolicyARN = local.packed_policy_arns")]
fn attaching_any_policy_to_consumer_roles_is_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"variable = "iam:PolicyARN""#,
                r#"variable = "iam:PolicyArn""#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "need StringEquals iam:ResourceTag/managed-by = dmm-integration-aws")]
fn changing_untagged_packed_policies_is_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"actions   = ["iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:DeletePolicy"]
    resources = local.packed_policy_arns

    condition {
      test     = "StringEquals"
      variable = "iam:ResourceTag/${local.managed_by_tag_key}""#,
                r#"actions   = ["iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:DeletePolicy"]
    resources = local.packed_policy_arns

    condition {
      test     = "StringEquals"
      variable = "iam:ResourceTag/owner""#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "need the condition StringEquals iam:ResourceTag/managed-by")]
fn deleting_untagged_access_roles_is_caught() {
    check_management_role_allows_exactly_the_iam_actions_of_the_code(&load_managed_account_edited(
        |name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"values   = [local.managed_by_tag_value]
    }
  }

  # The data policy only"#,
                r#"values   = ["anything"]
    }
  }

  # The data policy only"#,
            )
        },
    ));
}

#[test]
#[should_panic(expected = "must be exactly the access role names")]
fn access_roles_outside_the_reserved_names_are_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"${var.managed_role_path_prefix}dmm-acc-*""#,
                r#"${var.managed_role_path_prefix}*""#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "sts:AssumeRole only on local.management_role_arns")]
fn assuming_any_role_is_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "iam.tf",
                text,
                "resources = local.management_role_arns",
                r#"resources = ["arn:aws:iam::*:role/*"]"#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "the role policy's count must be")]
fn an_assume_role_policy_without_managed_accounts_is_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "iam.tf",
                text,
                "count = length(local.management_role_arns) > 0 ? 1 : 0",
                "count = 1",
            )
        }),
    );
}

#[test]
#[should_panic(expected = "in Terraform but not in the code")]
fn pass_role_on_the_management_role_is_caught() {
    check_management_role_allows_exactly_the_iam_actions_of_the_code(&load_managed_account_edited(
        |name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"actions   = ["iam:CreateRole", "iam:TagRole"]"#,
                r#"actions   = ["iam:CreateRole", "iam:TagRole", "iam:PassRole"]"#,
            )
        },
    ));
}

#[test]
#[should_panic(expected = "the only principal must be the hub's manage_iam_policies role")]
fn a_second_trusted_principal_is_caught() {
    check_management_role_trusts_only_the_hub_role_with_the_external_id(
        &load_managed_account_edited(|name, text| {
            edit(
                name,
                "modules/managed-account/main.tf",
                text,
                "identifiers = [var.hub_role_arn]",
                r#"identifiers = [var.hub_role_arn, "arn:aws:iam::123456789012:root"]"#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "exactly the condition StringEquals sts:ExternalId")]
fn a_trust_without_the_external_id_is_caught() {
    check_management_role_trusts_only_the_hub_role_with_the_external_id(
        &load_managed_account_edited(|name, text| {
            edit(
                name,
                "modules/managed-account/main.tf",
                text,
                r#"variable = "sts:ExternalId""#,
                r#"variable = "aws:PrincipalAccount""#,
            )
        }),
    );
}

#[test]
#[should_panic(expected = "the Deny does not cover iam:AttachRolePolicy")]
fn a_management_role_that_may_change_itself_is_caught() {
    check_management_role_never_touches_itself_or_protected_roles(&load_managed_account_edited(
        |name, text| {
            edit(
                name,
                "modules/account-iam/main.tf",
                text,
                r#"actions   = ["iam:*"]"#,
                r#"actions   = ["iam:PutRolePolicy", "iam:DeleteRolePolicy"]"#,
            )
        },
    ));
}

#[test]
#[should_panic(expected = "must be given managed_role_path_prefix = var.managed_role_path_prefix")]
fn an_allowlist_the_iam_statements_do_not_follow_is_caught() {
    check_manage_iam_policies_role_allows_exactly_what_the_binary_and_its_trigger_call(
        &load_edited(|name, text| {
            edit(
                name,
                "iam.tf",
                text,
                "managed_role_path_prefix  = var.managed_role_path_prefix",
                r#"managed_role_path_prefix  = "/""#,
            )
        }),
    );
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

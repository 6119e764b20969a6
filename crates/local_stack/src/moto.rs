use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_iam::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_iam::error::{BoxError, DisplayErrorContext};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::logs::LogBook;
use crate::paths::{LocateError, repo_root};
use crate::process::{capture_output, isolate, kill_group};

/// The account moto uses when a request names no other; also the account of [`Moto::bootstrap_admin`]
/// callers that do not care about multi-account setups.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";

/// Region the integration is deployed to in every local scenario unless a test says otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Overrides the moto executable (e.g. a system-wide install); otherwise `<repo>/.venv/bin/moto_server`.
const MOTO_BIN_ENV: &str = "DMM_AWS_MOTO_BIN";

/// Python start-up on a loaded CI machine can take several seconds; beyond this moto is broken.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts with a fresh port when moto could not bind the one it was given (another process
/// may take a free port between our probe and moto's bind).
const START_ATTEMPTS: u32 = 3;

const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Everything that can go wrong with the moto server; each message says what to do about it.
#[derive(thiserror::Error)]
pub enum MotoError {
    #[error(transparent)]
    Locate(#[from] LocateError),
    #[error("moto server not found at {}: run scripts/setup.sh (it creates the project-local .venv), or set {MOTO_BIN_ENV} to a moto_server executable", path.display())]
    NotInstalled { path: PathBuf },
    #[error("cannot start {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("moto server exited during start-up ({status}); last output:\n{}", tail.join("\n"))]
    Exited {
        status: ExitStatus,
        tail: Vec<String>,
    },
    #[error("moto server did not answer within {READY_TIMEOUT:?}; last output:\n{}", tail.join("\n"))]
    NotReady { tail: Vec<String> },
    #[error("moto API {path}: {source}")]
    Http {
        path: &'static str,
        source: reqwest::Error,
    },
    #[error("moto API {path} answered {status}: {body}")]
    Api {
        path: &'static str,
        status: reqwest::StatusCode,
        body: String,
    },
    /// Creating a test fixture failed.
    #[error("setting up a fixture: {0}")]
    Setup(String),
    #[error("IAM {operation} while bootstrapping an admin: {message}")]
    Bootstrap {
        operation: &'static str,
        message: String,
    },
}

/// Tests `unwrap()` these, which prints `Debug`: make that the actionable message.
impl std::fmt::Debug for MotoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A moto server of its own for one test (or the demo), on a free loopback port.
///
/// Each instance is a separate process with separate state, so tests run in parallel without
/// seeing each other's buckets or users. Dropping it kills the server and anything it started.
pub struct Moto {
    child: Child,
    endpoint: String,
    http: reqwest::Client,
    logs: LogBook,
    /// Whether IAM is currently enforced, so a bootstrap after enforcement can lift it briefly.
    enforcing: AtomicBool,
    admins: AtomicU32,
}

impl Moto {
    /// Starts moto from the project-local virtualenv and waits until it serves requests.
    ///
    /// It starts with IAM *not* enforced (every request allowed), which is when test fixtures
    /// and admins are created; see [`Moto::enforce_iam`].
    pub async fn start() -> Result<Self, MotoError> {
        let program = moto_program()?;
        let mut attempt = 1;
        loop {
            match Self::launch(&program).await {
                Err(MotoError::Exited { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    async fn launch(program: &Path) -> Result<Self, MotoError> {
        let port = free_port().map_err(|source| MotoError::Spawn {
            path: program.to_path_buf(),
            source,
        })?;
        let patches = moto_patches()
            .map_err(|e| MotoError::Setup(format!("write moto's fixes (sitecustomize.py): {e}")))?;
        let mut cmd = Command::new(program);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONPATH", python_path(&patches))
            // Both would silently change what the tests check: a fixed account for every request,
            // or enforcement from the first request on.
            .env_remove("MOTO_ACCOUNT_ID")
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        isolate(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| MotoError::Spawn {
            path: program.to_path_buf(),
            source,
        })?;
        let logs = LogBook::new("moto");
        let readers = capture_output(&mut child, &logs, 1)
            .map_err(|source| MotoError::Spawn {
                path: program.to_path_buf(),
                source,
            })?
            .into_iter()
            .map(|capture| capture.task)
            .collect();
        let mut moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|source| MotoError::Http {
                    path: "(client)",
                    source,
                })?,
            logs,
            enforcing: AtomicBool::new(false),
            admins: AtomicU32::new(0),
        };
        moto.wait_ready(readers).await?;
        Ok(moto)
    }

    async fn wait_ready(&mut self, readers: Vec<JoinHandle<()>>) -> Result<(), MotoError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The pipes are closed now; let the readers store the last words before quoting them.
                for reader in readers {
                    let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
                }
                return Err(MotoError::Exited {
                    status,
                    tail: self.logs.tail(1, 20),
                });
            }
            let probe = self
                .http
                .get(format!("{}/moto-api/", self.endpoint))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(MotoError::NotReady {
                    tail: self.logs.tail(1, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Base URL for SDK clients and for the binaries' `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration that talks to this moto as the holder of `credentials`, in
    /// [`DEFAULT_REGION`]. Built from scratch, so nothing from the developer's `~/.aws` or
    /// `AWS_*` environment can send a test to real AWS.
    pub fn sdk_config(&self, credentials: &Credentials) -> SdkConfig {
        self.sdk_config_in(DEFAULT_REGION, credentials)
    }

    /// Like [`Moto::sdk_config`] for another region.
    pub fn sdk_config_in(&self, region: &str, credentials: &Credentials) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .build()
    }

    /// Environment for a Lambda binary that should act as `credentials` against this moto,
    /// the way the Lambda service hands a function its execution role.
    pub fn lambda_env(&self, credentials: &Credentials) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL".to_owned(), self.endpoint.clone()),
            (
                "AWS_ACCESS_KEY_ID".to_owned(),
                credentials.access_key_id().to_owned(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                credentials.secret_access_key().to_owned(),
            ),
        ];
        if let Some(token) = credentials.session_token() {
            env.push(("AWS_SESSION_TOKEN".to_owned(), token.to_owned()));
        }
        env
    }

    /// Creates an IAM user with `"Action": "*"` in `account_id` and returns an access key for it.
    ///
    /// Once IAM is enforced only known access keys work, and a key acts in the account of the
    /// user that owns it; this is how a test gets a key for each account it uses. Called after
    /// [`Moto::enforce_iam`], it lifts enforcement for the few requests it makes, so do not
    /// bootstrap while something else is expected to be denied at that very moment.
    pub async fn bootstrap_admin(&self, account_id: &str) -> Result<Credentials, MotoError> {
        let suspended = self.enforcing.load(Ordering::SeqCst);
        if suspended {
            self.set_no_auth_budget("inf").await?;
        }
        let created = self.create_admin(account_id).await;
        if suspended {
            self.enforce_iam().await?;
        }
        created
    }

    async fn create_admin(&self, account_id: &str) -> Result<Credentials, MotoError> {
        // Without enforcement any key is accepted; the account comes from moto's header.
        let anyone = Credentials::new("AKIAIOSFODNN7EXAMPLE", "bootstrap", None, None, "moto");
        let config = aws_sdk_iam::config::Builder::from(&self.sdk_config(&anyone))
            .interceptor(MotoAccount(account_id.to_owned()))
            .build();
        let iam = aws_sdk_iam::Client::from_conf(config);
        let n = self.admins.fetch_add(1, Ordering::SeqCst) + 1;
        let user = format!("local-stack-admin-{n}");
        iam_user(&iam, &user, Some(ADMIN_POLICY))
            .await
            .map(|(_, credentials)| credentials)
    }

    /// From now on every request is authenticated and checked against the caller's IAM
    /// policies (S3, STS, IAM, SQS, ...), so access granted or revoked by the integration is
    /// observable as allowed or denied requests.
    pub async fn enforce_iam(&self) -> Result<(), MotoError> {
        self.set_no_auth_budget("0").await?;
        self.enforcing.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Forgets all state, back to a freshly started server. Enforcement is lifted too: the
    /// reset removed every IAM user, so nothing could be authorised any more.
    pub async fn reset(&self) -> Result<(), MotoError> {
        self.post("/moto-api/reset", "").await?;
        self.set_no_auth_budget("inf").await?;
        self.enforcing.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Moto authorises nothing after this many further requests ("inf": never enforce).
    /// Seeds moto's random generator, so the ids it makes next (KMS key ids) are the same on
    /// every run.
    pub async fn seed(&self, seed: u64) -> Result<(), MotoError> {
        self.post_with_query("/moto-api/seed", &format!("a={seed}"), "")
            .await
    }

    async fn set_no_auth_budget(&self, budget: &'static str) -> Result<(), MotoError> {
        self.post("/moto-api/reset-auth", budget).await
    }

    async fn post(&self, path: &'static str, body: &'static str) -> Result<(), MotoError> {
        self.post_with_query(path, "", body).await
    }

    async fn post_with_query(
        &self,
        path: &'static str,
        query: &str,
        body: &'static str,
    ) -> Result<(), MotoError> {
        let url = match query {
            "" => format!("{}{path}", self.endpoint),
            query => format!("{}{path}?{query}", self.endpoint),
        };
        let response = self
            .http
            .post(url)
            .body(body)
            .send()
            .await
            .map_err(|source| MotoError::Http { path, source })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(MotoError::Api { path, status, body })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Not yet reaped, so the group id still belongs to this server.
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.child.id()) {
            kill_group(pid);
        }
    }
}

/// An S3 client for `config` that addresses buckets by path (`http://host/bucket/key`): moto on
/// loopback has no DNS for `bucket.127.0.0.1`.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Fixes to moto's Lake Formation permission catalog (its hashing and its thread safety), which
/// Python loads into the server at start-up as `sitecustomize` (see the file for what they fix).
const SITECUSTOMIZE: &str = include_str!("../python/sitecustomize.py");

/// The directory holding [`SITECUSTOMIZE`], written once per content.
fn moto_patches() -> std::io::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    SITECUSTOMIZE.hash(&mut hasher);
    let dir = std::env::temp_dir().join(format!("dmm-aws-moto-patches-{:016x}", hasher.finish()));
    let file = dir.join("sitecustomize.py");
    if std::fs::read_to_string(&file).ok().as_deref() != Some(SITECUSTOMIZE) {
        std::fs::create_dir_all(&dir)?;
        // Written aside under a name of its own (servers start concurrently, in one process
        // and in several) and renamed, so a server starting meanwhile never reads half a file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partial = dir.join(format!("sitecustomize.{}.{n}.tmp", std::process::id()));
        std::fs::write(&partial, SITECUSTOMIZE)?;
        std::fs::rename(&partial, &file)?;
    }
    Ok(dir)
}

/// `patches` ahead of whatever PYTHONPATH the caller has.
fn python_path(patches: &Path) -> std::ffi::OsString {
    let mut paths = vec![patches.to_path_buf()];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).unwrap_or_else(|_| patches.as_os_str().to_owned())
}

fn moto_program() -> Result<PathBuf, MotoError> {
    let path = match std::env::var_os(MOTO_BIN_ENV) {
        Some(path) => PathBuf::from(path),
        None => repo_root()?.join(".venv/bin/moto_server"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(MotoError::NotInstalled { path })
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// An IAM user with `policy` (a JSON policy document) inline, or none, and an access key: a
/// workload or function principal whose requests moto checks once IAM is enforced. Returns the
/// user's ARN and its credentials.
pub async fn iam_user(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: Option<&str>,
) -> Result<(String, Credentials), MotoError> {
    let arn = iam
        .create_user()
        .user_name(name)
        .send()
        .await
        .map_err(|e| bootstrap_error("CreateUser", e))?
        .user
        .map(|user| user.arn)
        .unwrap_or_default();
    if let Some(policy) = policy {
        iam.put_user_policy()
            .user_name(name)
            .policy_name("policy")
            .policy_document(policy)
            .send()
            .await
            .map_err(|e| bootstrap_error("PutUserPolicy", e))?;
    }
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .map_err(|e| bootstrap_error("CreateAccessKey", e))?
        .access_key
        .ok_or_else(|| MotoError::Bootstrap {
            operation: "CreateAccessKey",
            message: "response has no AccessKey".to_owned(),
        })?;
    let credentials = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        None,
        None,
        "local-stack",
    );
    Ok((arn, credentials))
}

fn bootstrap_error(operation: &'static str, error: impl std::error::Error) -> MotoError {
    MotoError::Bootstrap {
        operation,
        message: DisplayErrorContext(error).to_string(),
    }
}

/// Makes moto act in a chosen account (its `x-moto-account-id` header) while IAM is not enforced,
/// when no access key of that account exists yet.
#[derive(Debug)]
struct MotoAccount(String);

impl Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "MotoAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

use std::env;
use std::path::{Path, PathBuf};

/// Why the harness could not find something it needs on disk. The messages say which command
/// fixes the problem, because the reader is usually looking at a failed test run.
#[derive(thiserror::Error)]
pub enum LocateError {
    #[error(
        "cannot find the repository root (a directory with tools/requirements.txt); looked at {}. \
         Set DMM_AWS_REPO_ROOT to the checkout",
        display_paths(tried)
    )]
    RepoRoot { tried: Vec<PathBuf> },
    #[error(
        "binary `{name}` not found; looked at {}. Build it first: `cargo build{} --bin {name}`",
        display_paths(tried),
        if *release { " --release" } else { "" }
    )]
    Binary {
        name: String,
        release: bool,
        tried: Vec<PathBuf>,
    },
}

/// Tests `unwrap()` these, which prints `Debug`: make that the actionable message.
impl std::fmt::Debug for LocateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

/// The checkout this harness belongs to, where `.venv` and `target/` live.
///
/// Resolved at run time rather than trusted from the build, so a test binary copied elsewhere
/// (or a checkout moved after building) still finds its tools; `DMM_AWS_REPO_ROOT` wins when set.
pub fn repo_root() -> Result<PathBuf, LocateError> {
    let mut tried = Vec::new();
    if let Some(root) = env::var_os("DMM_AWS_REPO_ROOT") {
        let root = PathBuf::from(root);
        if is_repo_root(&root) {
            return Ok(root);
        }
        tried.push(root);
    }
    // `cargo test` runs a test binary in its package's directory. Cargo does not rebuild a
    // workspace crate when the checkout moves (its fingerprint holds relative paths), so with a
    // shared target directory the path compiled in below can name another checkout.
    if let Ok(cwd) = env::current_dir() {
        if let Some(root) = cwd.ancestors().find(|dir| is_repo_root(dir)) {
            return Ok(root.to_path_buf());
        }
        tried.push(cwd);
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if is_repo_root(&built_in) {
        return Ok(built_in.canonicalize().unwrap_or(built_in));
    }
    tried.push(built_in);
    if let Ok(exe) = env::current_exe() {
        if let Some(root) = exe.ancestors().skip(1).find(|dir| is_repo_root(dir)) {
            return Ok(root.to_path_buf());
        }
        tried.push(exe);
    }
    Err(LocateError::RepoRoot { tried })
}

fn is_repo_root(dir: &Path) -> bool {
    dir.join("tools/requirements.txt").is_file() && dir.join("Cargo.toml").is_file()
}

/// Path of a workspace binary built by cargo for the profile this code was compiled with.
///
/// Tests of one crate run another crate's binary (the Lambda functions), which cargo does not
/// build for them; this finds the build that matches the running tests — same target directory
/// (`CARGO_TARGET_DIR`, else the one the running executable sits in, else `<repo>/target`) and same
/// profile — instead of silently picking up a binary from some other build.
pub fn binary_path(name: &str) -> Result<PathBuf, LocateError> {
    let release = !cfg!(debug_assertions);
    let profile = if release { "release" } else { "debug" };
    let mut dirs = Vec::new();
    if let Some(target) = env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(target).join(profile));
    }
    if let Some(dir) = env::current_exe().ok().as_deref().and_then(profile_dir_of) {
        dirs.push(dir);
    }
    if let Ok(root) = repo_root() {
        dirs.push(root.join("target").join(profile));
    }
    let mut tried = Vec::new();
    for dir in dirs {
        let candidate = dir.join(format!("{name}{}", env::consts::EXE_SUFFIX));
        if candidate.is_file() {
            return Ok(candidate);
        }
        if !tried.contains(&candidate) {
            tried.push(candidate);
        }
    }
    Err(LocateError::Binary {
        name: name.to_owned(),
        release,
        tried,
    })
}

/// Cargo puts test, bench and example executables one level below the profile directory
/// (`deps/`, `examples/`) and binaries directly in it.
fn profile_dir_of(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    match dir.file_name()?.to_str()? {
        "deps" | "examples" => dir.parent().map(Path::to_path_buf),
        _ => Some(dir.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_is_the_checkout_containing_this_crate() {
        let root = repo_root().unwrap();
        assert!(
            root.join("crates/local_stack/Cargo.toml").is_file(),
            "{root:?}"
        );
    }

    #[test]
    fn test_and_example_executables_map_to_their_profile_directory() {
        assert_eq!(
            profile_dir_of(Path::new("/t/debug/deps/moto-1a2b")).unwrap(),
            Path::new("/t/debug")
        );
        assert_eq!(
            profile_dir_of(Path::new("/t/release/examples/demo")).unwrap(),
            Path::new("/t/release")
        );
        assert_eq!(
            profile_dir_of(Path::new("/t/debug/demo")).unwrap(),
            Path::new("/t/debug")
        );
    }

    #[test]
    fn a_missing_binary_names_the_build_command() {
        let message = binary_path("no_such_binary_here").unwrap_err().to_string();
        let expected = if cfg!(debug_assertions) {
            "`cargo build --bin no_such_binary_here`"
        } else {
            "`cargo build --release --bin no_such_binary_here`"
        };
        assert!(message.contains(expected), "{message}");
    }
}

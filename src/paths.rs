//! Default locations, which follow who runs cronwarden: root gets the system paths, any other
//! user the XDG ones, so every command can be tried without root.

use std::env;
use std::path::PathBuf;

/// True when running with effective uid 0.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn home() -> PathBuf {
    if let Some(h) = env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    match nix::unistd::User::from_uid(nix::unistd::geteuid()) {
        Ok(Some(u)) => u.dir,
        _ => PathBuf::from("/"),
    }
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    {
        Some(p) if p.is_absolute() => p,
        _ => home().join(fallback),
    }
}

/// `$CRONWARDEN_CONFIG`, else `/etc/cronwarden/jobs.toml` for root, else
/// `$XDG_CONFIG_HOME/cronwarden/jobs.toml` (`~/.config/cronwarden/jobs.toml`).
pub(crate) fn default_config() -> PathBuf {
    if let Some(p) = env::var_os("CRONWARDEN_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if is_root() {
        PathBuf::from("/etc/cronwarden/jobs.toml")
    } else {
        xdg("XDG_CONFIG_HOME", ".config").join("cronwarden/jobs.toml")
    }
}

/// `/var/lib/cronwarden` for root, else `$XDG_STATE_HOME/cronwarden`
/// (`~/.local/state/cronwarden`).
pub(crate) fn default_state_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/cronwarden")
    } else {
        xdg("XDG_STATE_HOME", ".local/state").join("cronwarden")
    }
}

/// `/run/cronwarden` for root, else `$XDG_RUNTIME_DIR/cronwarden`, else a private directory
/// under the state directory.
pub(crate) fn default_lock_dir(state_dir: &std::path::Path) -> PathBuf {
    if is_root() {
        return PathBuf::from("/run/cronwarden");
    }
    match env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
    {
        Some(p) if p.is_absolute() => p.join("cronwarden"),
        _ => state_dir.join("run"),
    }
}

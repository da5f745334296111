//! A real headless Chromium, for tests/html.rs: the page a command wrote, loaded from disk
//! as a person would open it, its DOM after its script ran, what it logged to the
//! console, every URL the browser fetched, and a screenshot.
//!
//! The browser is `TASK_TEST_CHROMIUM`, else `chromium` or `chromium-browser` on PATH
//! (Debian's package; CI installs it). Without one a test prints one `SKIPPED:` line and
//! returns, unless `TASK_TEST_CHROMIUM_REQUIRED` is set (CI sets it): then it fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser, or None after saying the test is skipped.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let named = std::env::var_os("TASK_TEST_CHROMIUM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let found = named.or_else(|| {
        ["chromium", "chromium-browser"].iter().find_map(|b| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(b))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        if std::env::var_os("TASK_TEST_CHROMIUM_REQUIRED").is_some_and(|v| !v.is_empty()) {
            panic!("TASK_TEST_CHROMIUM_REQUIRED is set but no chromium was found (apt-get install chromium)");
        }
        eprintln!("SKIPPED: no chromium (apt-get install chromium)");
    }
    found
}

/// What loading a page showed.
pub struct Loaded {
    /// The DOM after the page's script ran (`--dump-dom`).
    pub dom: String,
    /// The page's console messages (`CONSOLE` lines of the browser's log).
    pub console: Vec<String>,
    /// Every URL the browser fetched or tried to, from its network log.
    pub urls: Vec<String>,
}

/// The hosts of Chromium's own background services, which it calls whatever the page.
const BROWSER_HOSTS: &[&str] = &["google.com", "googleapis.com", "gvt1.com", "gstatic.com"];

impl Loaded {
    /// The URLs the page itself caused: not its own file, not the browser's services.
    pub fn page_requests(&self) -> Vec<&String> {
        self.urls
            .iter()
            .filter(|u| !u.starts_with("file://"))
            .filter(|u| {
                let host = u
                    .split("://")
                    .nth(1)
                    .unwrap_or("")
                    .split(['/', '?', ':'])
                    .next()
                    .unwrap_or("");
                !BROWSER_HOSTS
                    .iter()
                    .any(|h| host == *h || host.ends_with(&format!(".{h}")))
            })
            .collect()
    }
}

/// Chromium opening `page` with a profile of its own in `profile`; `extra` says what to
/// do with it. Its output, once it ended well.
fn open(chromium: &Path, profile: &Path, page: &Path, extra: &[String]) -> std::process::Output {
    let out = base(chromium, profile)
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn base(chromium: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Load `page` (a file) in `dir` (which gets the browser's profile and logs).
pub fn load(chromium: &Path, dir: &Path, page: &Path) -> Loaded {
    let net = dir.join("net-log.json");
    let extra = [
        format!("--log-net-log={}", net.display()),
        "--dump-dom".into(),
    ];
    let out = open(chromium, &dir.join("profile"), page, &extra);
    let log = String::from_utf8_lossy(&out.stderr);
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let net_log = std::fs::read_to_string(&net).unwrap_or_default();
    let mut urls: Vec<String> = net_log
        .match_indices("\"url\":\"")
        .map(|(i, m)| {
            let rest = &net_log[i + m.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        })
        .collect();
    urls.sort();
    urls.dedup();
    Loaded {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console,
        urls,
    }
}

/// A screenshot of `page` at `width`×`height` into `png`.
pub fn screenshot(chromium: &Path, dir: &Path, page: &Path, png: &Path, width: u32, height: u32) {
    let extra = [
        format!("--screenshot={}", png.display()),
        format!("--window-size={width},{height}"),
    ];
    open(chromium, &dir.join("profile-shot"), page, &extra);
}
